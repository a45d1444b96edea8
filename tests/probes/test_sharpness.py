"""Sharpness probes on quadratics with a known Hessian, and on a small MLP against dense autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gdlens.probes.sharpness import (
    adam_preconditioner,
    directional_curvature,
    hessian_operator,
    hessian_trace,
    preconditioned_sharpness,
    spike_warning,
    stability_threshold,
    top_hessian_eig,
)

F64 = torch.float64
N_PARAMS = 7


def spd(n: int, seed: int = 0, shift: float = 0.1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    B = torch.randn(n, n, generator=gen, dtype=F64)
    return B @ B.T / n + shift * torch.eye(n, dtype=F64)


def flat(p: dict) -> torch.Tensor:
    return torch.cat([p["a"].reshape(-1), p["b"].reshape(-1)])


def quadratic(A: torch.Tensor, c: torch.Tensor | None = None):
    """L(θ) = ½ θᵀAθ − cᵀθ with θ = (a (3,), b (2, 2)) flattened: Hessian A, gradient Aθ − c."""
    c = torch.zeros(A.shape[0], dtype=F64) if c is None else c

    def loss(p):
        t = flat(p)
        return 0.5 * t @ (A @ t) - c @ t

    return loss


def point(seed: int = 1, requires_grad: bool = False) -> dict:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(3, generator=gen, dtype=F64)
    b = torch.randn(2, 2, generator=gen, dtype=F64)
    if requires_grad:
        return {"a": torch.nn.Parameter(a), "b": torch.nn.Parameter(b)}
    return {"a": a, "b": b}


def test_hessian_operator_is_A():
    A = spd(N_PARAMS)
    H = hessian_operator(quadratic(A), point())
    assert H.shape_in == (N_PARAMS,) and H.is_symmetric
    assert torch.allclose(H.dense(), A, atol=1e-12)
    loop = hessian_operator(quadratic(A), point(), vectorize=False)
    assert torch.allclose(loop.dense(), A, atol=1e-12)


def test_top_eig_and_trace_of_quadratic():
    A = spd(N_PARAMS)
    A[0, 0] += 3.0  # a clear top eigenvalue
    evals = torch.linalg.eigvalsh(A)
    top = top_hessian_eig(quadratic(A), point())
    assert float(top) == pytest.approx(float(evals[-1]), rel=1e-10)
    top3 = top_hessian_eig(quadratic(A), point(), k=3)
    assert torch.allclose(top3, evals.flip(0)[:3], rtol=1e-9)
    eigs = top_hessian_eig(quadratic(A), point(), k=1, return_vectors=True)
    v = eigs.vectors[0]
    assert torch.allclose(A @ v, eigs.values[0] * v, atol=1e-8)
    assert hessian_trace(quadratic(A), point(), method="exact").value == pytest.approx(float(torch.trace(A)), rel=1e-12)
    # Hutch++ is exact once its sketch (m/3 = 10 vectors) spans all 7 dimensions
    est = hessian_trace(quadratic(A), point(), method="hutch++", num_matvecs=30, seed=3)
    assert est.value == pytest.approx(float(torch.trace(A)), rel=1e-10)


def test_negative_curvature_with_which():
    A = spd(N_PARAMS) - 2.0 * torch.eye(N_PARAMS, dtype=F64)
    smallest = top_hessian_eig(quadratic(A), point(), which="smallest")
    assert float(smallest) == pytest.approx(float(torch.linalg.eigvalsh(A)[0]), rel=1e-9)


def test_mlp_hessian_matches_dense_autograd():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, generator=gen, dtype=F64)
    y = torch.randn(6, 1, generator=gen, dtype=F64)
    params = {
        "W1": torch.randn(4, 3, generator=gen, dtype=F64),
        "b1": torch.randn(4, generator=gen, dtype=F64),
        "W2": torch.randn(1, 4, generator=gen, dtype=F64),
    }

    def loss(p):
        h = torch.tanh(x @ p["W1"].T + p["b1"])
        return ((h @ p["W2"].T - y) ** 2).mean()

    names = list(params)
    sizes = [params[n].numel() for n in names]

    def loss_flat(t):
        pieces = torch.split(t, sizes)
        return loss({n: q.reshape(params[n].shape) for n, q in zip(names, pieces)})

    theta = torch.cat([params[n].reshape(-1) for n in names])
    dense = torch.autograd.functional.hessian(loss_flat, theta)
    H = hessian_operator(loss, params).dense()
    assert torch.allclose(H, dense, atol=1e-12)
    top = float(top_hessian_eig(loss, params))
    assert top == pytest.approx(float(torch.linalg.eigvalsh(dense)[-1]), rel=1e-9)
    # list parameters give the same operator
    H_list = hessian_operator(lambda p: loss(dict(zip(names, p))), [params[n] for n in names]).dense()
    assert torch.allclose(H_list, dense, atol=1e-12)


def hand_built_adam(params: dict, v: dict, step: int, betas=(0.9, 0.99), eps=1e-3, cls=torch.optim.Adam, **kw):
    opt = cls(list(params.values()), lr=0.01, betas=betas, eps=eps, **kw)
    for name, p in params.items():
        opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": torch.zeros_like(p), "exp_avg_sq": v[name]}
        if kw.get("amsgrad"):
            opt.state[p]["max_exp_avg_sq"] = 2 * v[name]
    return opt


def expected_D(v: dict, step: int, beta2: float, eps: float) -> torch.Tensor:
    vflat = torch.cat([v["a"].reshape(-1), v["b"].reshape(-1)])
    return 1.0 / (torch.sqrt(vflat / (1 - beta2**step)) + eps)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_preconditioned_sharpness_hand_built_state(cls):
    A = spd(N_PARAMS, seed=5)
    params = point(requires_grad=True)
    gen = torch.Generator().manual_seed(6)
    v = {"a": torch.rand(3, generator=gen, dtype=F64) ** 2 * 1e-2, "b": torch.rand(2, 2, generator=gen, dtype=F64) ** 2}
    opt = hand_built_adam(params, v, step=5, cls=cls)
    D = expected_D(v, 5, 0.99, 1e-3)
    assert torch.allclose(adam_preconditioner(opt, params), D)
    s = D.sqrt()
    expected = float(torch.linalg.eigvalsh(s[:, None] * A * s[None, :])[-1])
    # the same number as the largest (real) eigenvalue of the non-symmetric D A
    assert expected == pytest.approx(float(np.max(np.linalg.eigvals((D[:, None] * A).numpy()).real)), rel=1e-10)
    got = preconditioned_sharpness(quadratic(A), params, opt)
    assert got == pytest.approx(expected, rel=1e-9)
    # a flat diagonal gives the same
    assert preconditioned_sharpness(quadratic(A), params, D) == pytest.approx(expected, rel=1e-9)


def test_amsgrad_uses_max_exp_avg_sq():
    params = point(requires_grad=True)
    v = {"a": torch.full((3,), 0.04, dtype=F64), "b": torch.full((2, 2), 0.09, dtype=F64)}
    opt = hand_built_adam(params, v, step=3, amsgrad=True)
    v2 = {k: 2 * t for k, t in v.items()}
    assert torch.allclose(adam_preconditioner(opt, params), expected_D(v2, 3, 0.99, 1e-3))


def test_preconditioned_sharpness_after_real_steps():
    A = spd(N_PARAMS, seed=7)
    params = point(requires_grad=True)
    loss = quadratic(A)
    opt = torch.optim.Adam(list(params.values()), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss(params).backward()
        opt.step()
    D = adam_preconditioner(opt, params)
    s = D.sqrt()
    expected = float(torch.linalg.eigvalsh(s[:, None] * A * s[None, :])[-1])
    assert preconditioned_sharpness(loss, params, opt) == pytest.approx(expected, rel=1e-9)


def test_preconditioner_errors():
    A = spd(N_PARAMS)
    params = point(requires_grad=True)
    sgd = torch.optim.SGD(list(params.values()), lr=0.1)
    with pytest.raises(ValueError, match="Adam.*SGD"):
        preconditioned_sharpness(quadratic(A), params, sgd)
    fresh = torch.optim.Adam(list(params.values()), lr=0.1)
    with pytest.raises(ValueError, match="no state"):
        preconditioned_sharpness(quadratic(A), params, fresh)
    with pytest.raises(ValueError, match="not one of the optimizer's parameters"):
        adam_preconditioner(fresh, {"a": params["a"].detach().clone(), "b": params["b"]})
    with pytest.raises(ValueError, match="positive"):
        preconditioned_sharpness(quadratic(A), params, -torch.ones(N_PARAMS, dtype=F64))
    with pytest.raises(ValueError, match="scalar"):
        hessian_operator(lambda p: flat(p), point())


def test_directional_curvature_on_quadratic():
    A = spd(N_PARAMS, seed=8)
    c = torch.randn(N_PARAMS, generator=torch.Generator().manual_seed(9), dtype=F64)
    loss = quadratic(A, c)
    params = point()
    g = A @ flat(params) - c
    assert directional_curvature(loss, params) == pytest.approx(float(g @ A @ g / (g @ g)), rel=1e-12)
    d = torch.randn(N_PARAMS, generator=torch.Generator().manual_seed(10), dtype=F64)
    assert directional_curvature(loss, params, direction=d) == pytest.approx(float(d @ A @ d / (d @ d)), rel=1e-12)
    # a direction shaped like the parameters
    d_struct = {"a": d[:3], "b": d[3:].reshape(2, 2)}
    expected = float(d @ A @ d / (d @ d))
    assert directional_curvature(loss, params, direction=d_struct) == pytest.approx(expected, rel=1e-12)
    # along the top eigenvector it is the sharpness
    evals, evecs = torch.linalg.eigh(A)
    assert directional_curvature(loss, params, direction=evecs[:, -1]) == pytest.approx(float(evals[-1]), rel=1e-12)
    # preconditioned: (Dg)ᵀA(Dg) / gᵀDg, bounded by λ_max(D^{1/2} A D^{1/2})
    D = torch.linspace(0.5, 3.0, N_PARAMS, dtype=F64)
    Dg = D * g
    pc = directional_curvature(loss, params, preconditioner=D)
    assert pc == pytest.approx(float(Dg @ A @ Dg / (g @ Dg)), rel=1e-12)
    assert pc <= preconditioned_sharpness(loss, params, D) + 1e-12
    # zero gradient: undefined
    origin = {"a": torch.zeros(3, dtype=F64), "b": torch.zeros(2, 2, dtype=F64)}
    assert math.isnan(directional_curvature(quadratic(A), origin))


def test_threshold_formulas():
    assert stability_threshold(0.1) == pytest.approx(20.0)
    assert stability_threshold(0.1, "gd") == pytest.approx(20.0)
    assert stability_threshold(0.1, "momentum", beta1=0.9) == pytest.approx(38.0)
    assert stability_threshold(0.1, "adam", beta1=0.9) == pytest.approx(380.0)  # 38/η
    assert stability_threshold(0.1, "adam", beta1=0.0) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        stability_threshold(0.1, "lion")
    with pytest.raises(ValueError, match="lr"):
        stability_threshold(0.0)
    with pytest.raises(ValueError, match="beta1"):
        stability_threshold(0.1, "adam", beta1=1.0)


def simulate(curv: float, lr: float, beta: float, ema: bool, steps: int = 4000) -> float:
    """|x| after heavy-ball (ema=False) or EMA-momentum (Adam-like, fixed preconditioner 1)
    iterations on the 1-D quadratic ½ curv x²."""
    x, m = 1.0, 0.0
    for _ in range(steps):
        g = curv * x
        m = beta * m + ((1 - beta) * g if ema else g)
        x = x - lr * m
        if abs(x) > 1e6:  # diverged (stop before overflow)
            break
    return abs(x)


@pytest.mark.parametrize("opt,ema", [("sgd", False), ("momentum", False), ("adam", True)])
def test_thresholds_are_where_the_iteration_turns_unstable(opt, ema):
    lr, beta = 0.05, (0.0 if opt == "sgd" else 0.8)
    thr = stability_threshold(lr, opt, beta1=beta)
    assert simulate(0.98 * thr, lr, beta, ema) < 1e-3
    assert simulate(1.02 * thr, lr, beta, ema) > 1e3


def test_spike_warning():
    lr = 0.01
    assert spike_warning(201.0, lr) and not spike_warning(199.0, lr)  # default: Bai et al.'s 2/η
    assert not spike_warning(3000.0, lr, beta1=0.9) and spike_warning(3900.0, lr, beta1=0.9)  # 38/η = 3800
    assert spike_warning(torch.tensor(181.0, dtype=F64), lr, optimizer="sgd", margin=0.9)
