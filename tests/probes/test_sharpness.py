"""Sharpness probes on quadratics with a known Hessian, and on a small MLP against dense autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gdlens.operators import DenseOperator, top_eigs
from gdlens.probes.sharpness import (
    adam_preconditioner,
    directional_curvature,
    hessian_operator,
    hessian_trace,
    lanczos_top_eig,
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
    for backend in ("func", "autograd", "forward"):
        for vectorize in (True, False):
            H = hessian_operator(quadratic(A), point(), vectorize=vectorize, backend=backend)
            assert H.is_symmetric and torch.allclose(H.dense(), A, atol=1e-12)


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


def test_autograd_backend_is_the_same_hessian():
    A = spd(N_PARAMS)
    H = hessian_operator(quadratic(A), point(), backend="autograd")
    assert H.is_symmetric and torch.allclose(H.dense(), A, atol=1e-12)
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 3, generator=gen, dtype=F64), torch.randn(6, 1, generator=gen, dtype=F64)
    params = {"W1": torch.randn(4, 3, generator=gen, dtype=F64), "W2": torch.randn(1, 4, generator=gen, dtype=F64)}

    def loss(p):
        return ((torch.tanh(x @ p["W1"].T) @ p["W2"].T - y) ** 2).mean()

    func = hessian_operator(loss, params).dense()
    assert torch.allclose(hessian_operator(loss, params, backend="autograd").dense(), func, atol=1e-12)
    # the operator keeps the gradient it was built from; directional curvature reuses both
    Hg = hessian_operator(loss, params, backend="autograd")
    g = torch.cat([t.reshape(-1) for t in torch.func.grad(loss)(params).values()])
    assert torch.allclose(Hg.gradient, g, atol=1e-14)
    assert torch.allclose(hessian_operator(loss, params).gradient, g, atol=1e-14)  # reverse-over-reverse: g on the way
    assert hessian_operator(loss, params, backend="forward").gradient is None
    D = torch.linspace(0.5, 2.0, g.numel(), dtype=F64)
    for kw in ({}, {"preconditioner": D}, {"direction": D}):
        plain = directional_curvature(loss, params, **kw)
        assert directional_curvature(loss, params, hessian=Hg, **kw) == pytest.approx(plain, rel=1e-12)
        for backend in ("func", "forward"):
            H = hessian_operator(loss, params, backend=backend)
            assert directional_curvature(loss, params, hessian=H, **kw) == pytest.approx(plain, rel=1e-12)
    with pytest.raises(ValueError, match="hessian acts on"):
        directional_curvature(loss, params, hessian=hessian_operator(quadratic(spd(N_PARAMS)), point()))
    # a loss linear in θ has a zero Hessian (its gradient carries no graph)
    assert torch.equal(hessian_operator(lambda p: flat(p).sum(), point(), backend="autograd").dense(),
                       torch.zeros(N_PARAMS, N_PARAMS, dtype=F64))
    with pytest.raises(ValueError, match="backend"):
        hessian_operator(quadratic(A), point(), backend="jax")
    with pytest.raises(ValueError, match="scalar"):
        hessian_operator(lambda p: flat(p), point(), backend="autograd")


def spectrum_matrix(values, seed=0):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=gen, dtype=F64))
    return Q @ torch.diag(torch.as_tensor(values, dtype=F64)) @ Q.T, Q


def test_top_eig_cold_and_warm_start():
    """The sharpness probe's warm start: top_eigs(A, 1, v0=previous, v0_noise=1.0)."""
    values = torch.cat([torch.tensor([10.0, 8.0]), torch.linspace(-3.0, 6.0, 58, dtype=F64)])
    A, Q = spectrum_matrix(values)
    (value, vector), info = top_eigs(DenseOperator(A, is_symmetric=True), 1, return_info=True)
    assert float(value[0]) == pytest.approx(10.0, rel=1e-12) and float(info["residuals"][0]) <= 1e-9
    assert torch.allclose(A @ vector[0], 10.0 * vector[0], atol=1e-7) and float(vector.norm()) == pytest.approx(1.0)
    # a nearby matrix: started from the old eigenvector, fewer products
    B = A + 1e-3 * spectrum_matrix(torch.randn(60, generator=torch.Generator().manual_seed(1), dtype=F64), seed=2)[0]
    Bop = DenseOperator(B, is_symmetric=True)
    (_, _), cold = top_eigs(Bop, 1, seed=3, return_info=True)
    (warm, _), warm_info = top_eigs(Bop, 1, v0=vector[0], v0_noise=1.0, seed=3, return_info=True)
    assert float(warm[0]) == pytest.approx(float(torch.linalg.eigvalsh(B)[-1]), rel=1e-12)
    assert warm_info["num_matvecs"] < cold["num_matvecs"]
    # without noise the start is used as it is: nearly converged already
    (_, _), plain = top_eigs(Bop, 1, v0=vector[0], seed=3, return_info=True)
    assert plain["num_matvecs"] < warm_info["num_matvecs"]
    # a warm start that is exactly the eigenvector of the second eigenvalue (the top two have
    # crossed since) still finds the top one with equal parts of noise
    crossed = top_eigs(DenseOperator(A, is_symmetric=True), 1, v0=Q[:, 1], v0_noise=1.0, tol=1e-3)
    assert float(crossed.values[0]) == pytest.approx(10.0, rel=1e-4)
    # float32: default tolerance 1e-4
    r32 = top_eigs(DenseOperator(A.float(), is_symmetric=True), 1)
    assert float(r32.values[0]) == pytest.approx(10.0, rel=1e-4) and r32.vectors.dtype == torch.float32
    with pytest.warns(RuntimeWarning, match="stopped after 3"):
        (short, _), short_info = top_eigs(DenseOperator(A, is_symmetric=True), 1, max_matvecs=3, return_info=True)
    assert short_info["num_matvecs"] == 3 and float(short[0]) <= 10.0 + 1e-9


def test_lanczos_top_eig_is_a_deprecated_wrapper_of_top_eigs():
    values = torch.cat([torch.tensor([10.0, 8.0]), torch.linspace(-3.0, 6.0, 58, dtype=F64)])
    A, Q = spectrum_matrix(values)
    op = DenseOperator(A, is_symmetric=True)
    with pytest.warns(DeprecationWarning, match="top_eigs"):
        r = lanczos_top_eig(op, v0=Q[:, 0] + 0.1 * Q[:, 1], seed=2)
    (value, vector), info = top_eigs(op, 1, v0=Q[:, 0] + 0.1 * Q[:, 1], v0_noise=1.0, seed=2, return_info=True)
    assert r.value == float(value[0]) == pytest.approx(10.0, rel=1e-12)
    assert torch.equal(r.vector, vector[0]) and r.num_matvecs == info["num_matvecs"] and r.residual <= 1e-9
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="v0 must have 60"):
        lanczos_top_eig(op, v0=torch.ones(5, dtype=F64))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="square"):
        lanczos_top_eig(DenseOperator(torch.ones(3, 4, dtype=F64)))


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


# ---------------------------------------------------------------------- dynamics at the threshold
def test_adam_preconditioned_sharpness_on_a_1d_quadratic_at_every_step():
    """Adam on L(θ) = a θ²/2: the preconditioned Hessian is the number a/(√v̂ + ε), read by hand
    from the optimizer state after every step. With β₁ = 0 the update is θ ← θ (1 − η a/(√v̂+ε)),
    v̂ including the step's own gradient, so the step into state t contracts |θ| iff η λ_t < 2
    (λ_t the preconditioned sharpness measured after it). As θ → 0, v̂ decays and λ_t grows
    (Adam's self-sharpening, arXiv 2506.04805): the loss falls until the step where η λ first
    exceeds 2 and is minimal just before it."""
    a, lr, beta2, eps = 2.0, 0.01, 0.9, 1e-8
    theta = torch.nn.Parameter(torch.tensor([1.0], dtype=F64))
    opt = torch.optim.Adam([theta], lr=lr, betas=(0.0, beta2), eps=eps)

    def loss(p):
        return 0.5 * a * (p[0] ** 2).sum()

    losses, lams = [float(loss([theta.detach()]))], [math.nan]
    for _ in range(250):
        opt.zero_grad()
        loss([theta]).backward()
        opt.step()
        state = opt.state[theta]
        t = float(state["step"])
        v_hat = float(state["exp_avg_sq"]) / (1.0 - beta2**t)
        by_hand = a / (math.sqrt(v_hat) + eps)
        measured = preconditioned_sharpness(loss, [theta], opt)
        assert measured == pytest.approx(by_hand, rel=1e-10)
        losses.append(float(loss([theta.detach()])))
        lams.append(measured)
    losses, lams = np.array(losses), np.array(lams)
    first = int(np.argmax(lr * np.nan_to_num(lams) > 2.0))  # first state with η λ > 2
    assert 20 < first < 240 and lr * lams[1] < 0.1  # it starts far below and crosses mid-run
    assert np.all(np.diff(losses[:first]) < 0)  # every step with η λ < 2 lowers the loss
    assert losses[first] > losses[first - 1]  # the first step with η λ > 2 raises it
    assert int(np.argmin(losses)) == first - 1  # the minimum of the whole run: just before
    assert losses[-1] > 1e3 * losses[first - 1]  # and it then spikes


def one_sample_net(seed: int = 0):
    """A tanh MLP (3 -> 8 -> 1) fitting one input to 0: L = r², one residual r = f(x; θ)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, generator=gen, dtype=F64)
    params = {
        "W1": torch.randn(8, 3, generator=gen, dtype=F64) / math.sqrt(3),
        "b1": 0.1 * torch.randn(8, generator=gen, dtype=F64),
        "W2": torch.randn(1, 8, generator=gen, dtype=F64) / math.sqrt(8),
    }

    def loss(p):
        return ((torch.tanh(x @ p["W1"].T + p["b1"]) @ p["W2"].T) ** 2).sum()

    return loss, params


def gd_run(loss, params: dict, lrs, measure_until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch GD θ ← θ − η_t ∇L(θ); returns the losses L(θ_t) and η_t λ_max(H(θ_t)), with
    λ_max measured by Lanczos on Hessian–vector products at every step (up to ``measure_until``
    steps; nan after)."""
    p = {k: v.clone() for k, v in params.items()}
    losses, eta_lam = [], []
    grad = torch.func.grad(loss)
    for t, lr in enumerate(lrs):
        losses.append(float(loss(p)))
        measure = measure_until is None or t < measure_until
        eta_lam.append(lr * float(top_hessian_eig(loss, p, block_size=2)[0]) if measure else math.nan)
        g = grad(p)
        p = {k: p[k] - lr * g[k] for k in p}
    return np.array(losses), np.array(eta_lam)


def test_gd_loss_is_minimal_just_before_eta_lambda_first_exceeds_2():
    """GD with a learning rate that grows 1% per step on a nonlinear net whose loss is one squared
    residual (so the only unstable direction is the one that carries the loss). The sharpness
    moves along the way by ~20% (it is measured at every θ_t, not known in advance); GD lowers
    the loss at every step while η_t λ_t < 2, and the minimum of the loss curve is the last
    iterate before the first step with η_t λ_t > 2, after which the loss climbs."""
    loss, params = one_sample_net(seed=0)
    lam0 = float(top_hessian_eig(loss, params)[0])
    lrs = 1.6 / lam0 * 1.01 ** np.arange(40)  # starts above η λ = 1: the residual flips sign each step
    losses, eta_lam = gd_run(loss, params, lrs)
    first = int(np.argmax(eta_lam > 2.0))
    assert 15 < first < 35 and losses[first] > 1e-12  # well above float64 rounding of the residual
    assert np.all(eta_lam[:first] < 2.0) and np.all(np.diff(losses[: first + 1]) < 0)
    assert int(np.argmin(losses)) == first
    assert np.all(np.diff(losses[first:]) > 0)
    lam = eta_lam / lrs  # λ is not the schedule in disguise: it moves by more than 10% on the way
    assert lam.max() / lam.min() > 1.1


def test_gd_progressive_sharpening_keeps_lowering_the_loss_below_the_threshold():
    """Constant-η GD on a tanh MLP regression sharpens progressively (η λ rises from ~1.4) until
    η λ crosses 2; up to that step every GD step lowers the loss, and the loss first rises only
    after the crossing (edge of stability, arXiv 2103.00065)."""
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(32, 2, generator=gen, dtype=F64)
    y = torch.sin(2 * X[:, 0]) * torch.cos(X[:, 1])
    params = {
        "W1": torch.randn(16, 2, generator=gen, dtype=F64) / math.sqrt(2),
        "b1": torch.zeros(16, dtype=F64),
        "W2": torch.randn(1, 16, generator=gen, dtype=F64) / 4.0,
    }

    def loss(p):
        return ((torch.tanh(X @ p["W1"].T + p["b1"]) @ p["W2"].T)[:, 0] - y).pow(2).mean()

    lr = 0.2
    losses, eta_lam = gd_run(loss, params, [lr] * 250, measure_until=100)
    first = int(np.argmax(eta_lam[:100] > 2.0))
    assert eta_lam[0] < 1.5 and 50 < first < 95  # sharpening from below 1.5 to 2
    assert np.all(np.diff(losses[: first + 1]) < 0)
    rises = np.nonzero(np.diff(losses) > 0)[0]
    assert rises.size and rises[0] >= first  # the loss first goes up after the crossing


# ---------------------------------------------------------------------- torch's own losses and layers
def _mlp(*middle: torch.nn.Module, d_in: int = 3, width: int = 5, d_out: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d_in, width), *middle, torch.nn.Linear(width, d_out)).to(F64)


def _case(name: str):
    """``(model, batch loss model -> scalar)`` of one torch model and loss, in float64."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, generator=gen, dtype=F64)
    y = torch.randn(7, 3, generator=gen, dtype=F64)
    labels = torch.randint(0, 3, (7,), generator=gen)
    F = torch.nn.functional
    if name == "nn.MSELoss":
        model, crit = _mlp(torch.nn.Tanh()), torch.nn.MSELoss()
        return model, lambda m: crit(m(x), y)
    if name == "nn.MSELoss(sum)":
        model, crit = _mlp(torch.nn.Tanh()), torch.nn.MSELoss(reduction="sum")
        return model, lambda m: crit(m(x), y)
    if name == "F.mse_loss":
        return _mlp(torch.nn.Tanh()), lambda m: F.mse_loss(m(x), y)
    if name == "F.mse_loss(sum)":
        return _mlp(torch.nn.Tanh()), lambda m: F.mse_loss(m(x), y, reduction="sum")
    if name == "F.cross_entropy":
        return _mlp(torch.nn.Tanh()), lambda m: F.cross_entropy(m(x), labels)
    if name == "F.cross_entropy(sum)":
        return _mlp(torch.nn.Tanh()), lambda m: F.cross_entropy(m(x), labels, reduction="sum")
    if name == "LayerNorm+nn.MSELoss":
        model, crit = _mlp(torch.nn.LayerNorm(5), torch.nn.GELU()), torch.nn.MSELoss()
        return model, lambda m: crit(m(x), y)
    if name == "LayerNorm+F.cross_entropy":
        return _mlp(torch.nn.LayerNorm(5), torch.nn.Tanh()), lambda m: F.cross_entropy(m(x), labels)
    if name == "Embedding+F.cross_entropy":
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(6, 2), torch.nn.Flatten(), torch.nn.Linear(6, 4),
                                    torch.nn.Tanh(), torch.nn.Linear(4, 3)).to(F64)
        tokens = torch.randint(0, 6, (7, 3), generator=gen)
        return model, lambda m: F.cross_entropy(m(tokens), labels)
    if name == "dropout(eval)+nn.MSELoss":
        model, crit = _mlp(torch.nn.Tanh(), torch.nn.Dropout(0.5)).eval(), torch.nn.MSELoss()
        return model, lambda m: crit(m(x), y)
    raise KeyError(name)


TORCH_CASES = ["nn.MSELoss", "nn.MSELoss(sum)", "F.mse_loss", "F.mse_loss(sum)", "F.cross_entropy",
               "F.cross_entropy(sum)", "LayerNorm+nn.MSELoss", "LayerNorm+F.cross_entropy",
               "Embedding+F.cross_entropy", "dropout(eval)+nn.MSELoss"]
# torch 2.13: mse_loss's backward with reduction="mean" has no forward-mode derivative ("ZeroTensors are immutable")
FORWARD_MODE_FAILS = {"nn.MSELoss", "F.mse_loss", "LayerNorm+nn.MSELoss", "dropout(eval)+nn.MSELoss"}


def dense_hessian(model: torch.nn.Module, loss_of_model) -> torch.Tensor:
    """H by reverse-over-reverse autograd on the module itself: the gradient with its graph, then
    one backward pass per entry of θ (row i = ∂g_i/∂θ). Independent of torch.func and of the
    functional_call the probes use."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_of_model(model), params, create_graph=True)
    g = torch.cat([t.reshape(-1) for t in grads])
    rows = []
    for i in range(g.numel()):
        row = torch.autograd.grad(g[i], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([torch.zeros_like(p).reshape(-1) if r is None else r.reshape(-1)
                               for r, p in zip(row, params)]))
    return torch.stack(rows).detach()


def test_dense_truth_is_symmetric_and_matches_finite_differences():
    """The reference itself, on the LayerNorm case (where torch.func.hessian is known to go
    wrong in torch 2.13): symmetric, and the gradient's central differences agree."""
    from gdlens.probes.plumbing import functional_loss

    model, loss_of_model = _case("LayerNorm+nn.MSELoss")
    dense = dense_hessian(model, loss_of_model)
    assert torch.allclose(dense, dense.T, atol=1e-12)
    params = dict(model.named_parameters())
    f = functional_loss(model, loss_of_model)
    grad = torch.func.grad(f)
    u = torch.randn(dense.shape[0], generator=torch.Generator().manual_seed(5), dtype=F64)
    from gdlens.probes._utils import flatten_params

    theta, unflatten = flatten_params(params)
    h = 1e-5
    gp, gm = grad(unflatten(theta + h * u)), grad(unflatten(theta - h * u))
    fd = torch.cat([(gp[n] - gm[n]).reshape(-1) for n in params]) / (2 * h)
    assert torch.allclose(fd, dense @ u, atol=1e-7)


@pytest.mark.parametrize("case", TORCH_CASES)
@pytest.mark.parametrize("backend", ["func", "autograd", "forward"])
def test_every_backend_on_torch_losses_and_layers(case, backend):
    """Each Hessian backend against the dense reverse-over-reverse Hessian, on torch's own losses
    (both reductions) and layers, through the probes' functional_call; forward-over-reverse fails
    on torch's mse_loss with an error that names the backend to use."""
    from gdlens.probes.plumbing import functional_loss

    model, loss_of_model = _case(case)
    dense = dense_hessian(model, loss_of_model)
    params = dict(model.named_parameters())
    loss = functional_loss(model, loss_of_model)
    H = hessian_operator(loss, params, backend=backend)
    if backend == "forward" and case in FORWARD_MODE_FAILS:
        with pytest.raises(RuntimeError, match="backend='func'"):
            H.dense()
        return
    assert torch.allclose(H.dense(), dense, atol=1e-10, rtol=1e-9)
    evals = torch.linalg.eigvalsh(dense)
    top = top_hessian_eig(loss, params, k=2, backend=backend, tol=1e-12)
    assert torch.allclose(top, evals.flip(0)[:2], rtol=1e-8, atol=1e-10)
    assert hessian_trace(loss, params, method="exact", backend=backend).value == pytest.approx(
        float(torch.trace(dense)), rel=1e-9, abs=1e-10)
    D = torch.linspace(0.5, 2.0, dense.shape[0], dtype=F64)
    s = D.sqrt()
    expected = float(torch.linalg.eigvalsh(s[:, None] * dense * s[None, :])[-1])
    assert preconditioned_sharpness(loss, params, D, backend=backend, tol=1e-12) == pytest.approx(expected, rel=1e-8)
    g = torch.cat([p.grad.reshape(-1) for p in _backward(model, loss_of_model)])
    assert directional_curvature(loss, params, hessian=H) == pytest.approx(float(g @ dense @ g / (g @ g)), rel=1e-9)


def _backward(model, loss_of_model):
    model.zero_grad()
    loss_of_model(model).backward()
    return [p for p in model.parameters()]


def test_reverse_over_reverse_is_the_default():
    """The crash of issue 15: top_hessian_eig on nn.Sequential with nn.MSELoss (forward-over-reverse
    raised 'ZeroTensors are immutable'); with the default backend it is λ_max of the dense truth."""
    from gdlens.probes.plumbing import functional_loss

    model, loss_of_model = _case("nn.MSELoss")
    loss = functional_loss(model, loss_of_model)
    value = float(top_hessian_eig(loss, dict(model.named_parameters()), tol=1e-12))
    assert value == pytest.approx(float(torch.linalg.eigvalsh(dense_hessian(model, loss_of_model))[-1]), rel=1e-9)
    assert hessian_operator(quadratic(spd(N_PARAMS)), point()).gradient is not None
    zero = hessian_operator(lambda p: flat(p).sum(), point()).dense()  # linear loss: H = 0
    assert torch.equal(zero, torch.zeros(N_PARAMS, N_PARAMS, dtype=F64))


# ---------------------------------------------------------------------- SharpnessProbe (moved from test_wrappers.py)
import copy  # noqa: E402

from torch import nn  # noqa: E402

import gdlens as gd  # noqa: E402
from gdlens.probes import ProbeContext, Schedule, SharpnessProbe  # noqa: E402


def mlp(input_size=1, width=16, output_size=1, seed=0, dtype=F64, **kw) -> gd.models.MLP:
    torch.manual_seed(seed)
    return gd.models.MLP(input_size, width, output_size, **kw).to(dtype)


def loss_through_functional_call(model: nn.Module, data) -> callable:
    """The training loss as a function of the parameters, through torch.func.functional_call
    (an implementation independent of the probes' own parameter swapping)."""
    return lambda p: data.loss_value(torch.func.functional_call(model, p, (data.x,)))


def keys(result, probe_name: str) -> set[str]:
    return {k.split("/", 1)[1] for k in result.history if k.startswith(probe_name + "/")}


def once(probe, ctx) -> dict:
    """One call of a probe outside gd.train: init, then compute (the values only)."""
    return probe.compute(ctx, probe.init(ctx))[0]


def test_sharpness_probe_with_sgd_momentum():
    model = mlp(width=12)
    data = gd.tasks.fourier_1d(frequencies=(1, 2), n_points=32, dtype=F64)
    lr, beta = 0.05, 0.9
    probes = [SharpnessProbe(tol=1e-10, schedule=Schedule(every=10)),
              SharpnessProbe(name="default_tol", schedule=Schedule(every=10))]
    result = gd.train(model, data, optimizer="sgd", lr=lr, momentum=beta, steps=20, probes=probes, progress=False)
    assert keys(result, "sharpness") == {"lambda_max", "threshold", "directional_curvature", "spike_warning"}
    assert len(result.history["sharpness/lambda_max"]) == 3
    loss = loss_through_functional_call(model, data)
    params = dict(model.named_parameters())
    lam = float(top_hessian_eig(loss, params)[0])
    last = result.recorder.last
    assert last("sharpness/lambda_max") == pytest.approx(lam, rel=1e-8)
    assert last("sharpness/threshold") == pytest.approx((2 + 2 * beta) / lr)
    assert last("sharpness/directional_curvature") == pytest.approx(directional_curvature(loss, params), rel=1e-8)
    assert last("sharpness/spike_warning") == float(lam > (2 + 2 * beta) / lr)
    # the default tolerance (1e-2 relative residual) bounds the eigenvalue's error by 1e-2
    assert last("default_tol/lambda_max") == pytest.approx(lam, rel=1e-2)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_sharpness_probe_with_adam(cls):
    model = mlp(width=12)
    data = gd.tasks.fourier_1d(frequencies=(1, 2), n_points=32, dtype=F64)
    lr = 0.01
    opt = cls(model.parameters(), lr=lr, betas=(0.9, 0.99))
    probe = SharpnessProbe(tol=1e-10, schedule=Schedule(every=10))
    result = gd.train(model, data, optimizer=opt, steps=20, probes=[probe], progress=False)
    adam_keys = ["precond_sharpness", "precond_threshold", "directional_curvature", "spike_warning"]
    assert keys(result, "sharpness") == {"lambda_max", "threshold", *adam_keys}
    # every key a panel draws is recorded (on an Adam run, which records them all)
    for panel in probe.panels:
        for key in panel.keys:
            assert f"sharpness/{key}" in result.history, (panel.title, key)
    assert {m.key for m in probe.metric_specs} == keys(result, "sharpness")
    # no optimizer state at step 0: only the Hessian's own sharpness
    assert result.series("sharpness/lambda_max")[0].tolist() == [0, 10, 20]
    for k in adam_keys:
        assert result.series(f"sharpness/{k}")[0].tolist() == [10, 20]
    loss = loss_through_functional_call(model, data)
    params = dict(model.named_parameters())
    last = result.recorder.last
    assert last("sharpness/lambda_max") == pytest.approx(float(top_hessian_eig(loss, params)[0]), rel=1e-8)
    assert last("sharpness/threshold") == pytest.approx(2 / lr)
    assert last("sharpness/precond_sharpness") == pytest.approx(preconditioned_sharpness(loss, params, opt), rel=1e-8)
    assert last("sharpness/precond_threshold") == pytest.approx(38 / lr)
    curv = directional_curvature(loss, params, preconditioner=opt)
    assert last("sharpness/directional_curvature") == pytest.approx(curv, rel=1e-8)
    assert last("sharpness/spike_warning") == float(curv > 2 / lr)
    # the warm starts are in the Recorder's state, not on the probe
    state = result.recorder.states["sharpness"]
    assert state["v"].shape == state["v_pre"].shape == (sum(p.numel() for p in params.values()),)


def test_one_sharpness_probe_serves_two_runs():
    """The same probe object in two gd.train runs: the second run measures the same numbers as a
    run with a fresh probe (nothing of run 1 is carried over), and the probe is unchanged."""
    data = gd.tasks.fourier_1d(frequencies=(1, 2), n_points=32, dtype=F64)
    probe = SharpnessProbe(schedule=Schedule(every=5))
    before = copy.deepcopy(vars(probe))

    def run(p, seed):
        model = mlp(width=10, seed=seed)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        return gd.train(model, data, optimizer=opt, steps=10, probes=[p], progress=False)

    run(probe, seed=1)
    second = run(probe, seed=2)
    fresh = run(SharpnessProbe(schedule=Schedule(every=5)), seed=2)
    for key in ("sharpness/lambda_max", "sharpness/precond_sharpness"):
        assert second.series(key)[1].tolist() == fresh.series(key)[1].tolist()
    assert vars(probe).keys() == before.keys() and probe.schedule == before["schedule"]
    with pytest.warns(DeprecationWarning, match="Recorder"):
        probe.reset()


@pytest.mark.parametrize("backend", ["func", "autograd"])
@pytest.mark.parametrize("case", ["nn.MSELoss", "LayerNorm+F.cross_entropy", "Embedding+F.cross_entropy",
                                  "dropout(eval)+nn.MSELoss"])
def test_sharpness_probe_on_torch_models_and_losses(case, backend):
    """The probe on a plain nn.Sequential with torch's own loss (ctx.loss_fn), against the dense
    reverse-over-reverse Hessian; with SGD, the threshold 2/η and its warning."""
    model, loss_of_model = _case(case)
    dense = dense_hessian(model, loss_of_model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = SharpnessProbe(tol=1e-10, backend=backend)
    out = once(probe, ProbeContext(0, model, optimizer=opt, loss_fn=loss_of_model))
    lam = float(torch.linalg.eigvalsh(dense)[-1])
    assert out["lambda_max"] == pytest.approx(lam, rel=1e-8)
    assert out["threshold"] == pytest.approx(20.0) and out["spike_warning"] == float(lam > 20.0)
    g = torch.cat([p.grad.reshape(-1) for p in _backward(model, loss_of_model)])
    assert out["directional_curvature"] == pytest.approx(float(g @ dense @ g / (g @ g)), rel=1e-9)


def test_sharpness_probe_on_a_state_space_model_and_a_subset():
    """gdlens' GRU: the probe's Hessian (through functional_call) against the dense
    reverse-over-reverse Hessian of the module itself, on the whole batch and on a subset."""
    torch.manual_seed(0)
    model = gd.models.GRU(2, 4, 2).to(F64)
    data = gd.tasks.flip_flop(batch_size=6, T=5, bits=2, pulse_prob=0.3, dtype=F64)
    result = gd.train(model, data, optimizer="sgd", lr=0.1, steps=5,
                      probes=[SharpnessProbe(tol=1e-10, schedule=Schedule(every=5)),
                              SharpnessProbe(tol=1e-10, max_samples=3, name="sharp3", schedule=Schedule(every=5),
                                             backend="func")],
                      progress=False)
    sub = data.subset(slice(0, 3))
    full = float(torch.linalg.eigvalsh(dense_hessian(model, lambda m: data.loss_value(m(data.x)[0])))[-1])
    part = float(torch.linalg.eigvalsh(dense_hessian(model, lambda m: sub.loss_value(m(sub.x)[0])))[-1])
    assert result.recorder.last("sharpness/lambda_max") == pytest.approx(full, rel=1e-8)
    assert result.recorder.last("sharp3/lambda_max") == pytest.approx(part, rel=1e-8)
    assert abs(full - part) > 1e-6 * full


def test_sharpness_probe_without_an_optimizer_and_errors():
    model = mlp(width=6)
    data = gd.tasks.fourier_1d(frequencies=(1,), n_points=16, dtype=F64)
    out = once(SharpnessProbe(), ProbeContext(0, model, batch=data))
    assert set(out) == {"lambda_max", "directional_curvature"}
    assert once(SharpnessProbe(), ProbeContext(0, model)) == {}
    groups = [{"params": [model.net[0].weight], "lr": 0.1}, {"params": [model.net[2].weight], "lr": 0.2}]
    with pytest.raises(ValueError, match="one learning rate"):  # at init: the first step, before any update
        SharpnessProbe().init(ProbeContext(0, model, batch=data, optimizer=torch.optim.SGD(groups)))
    # RMSprop: no threshold to compare with
    rms = torch.optim.RMSprop(model.parameters(), lr=0.01)
    assert set(once(SharpnessProbe(), ProbeContext(0, model, batch=data, optimizer=rms))) == {
        "lambda_max", "directional_curvature"}
    frozen = mlp(width=3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        SharpnessProbe().init(ProbeContext(0, frozen, batch=data))
    with pytest.raises(ValueError, match="backend"):
        SharpnessProbe(backend="jax")
    with pytest.raises(ValueError, match="max_samples"):
        SharpnessProbe(max_samples=0)


def test_sharpness_probe_warm_starts_travel_in_checkpoints(tmp_path):
    """An Adam run interrupted after a checkpoint and resumed records what an uninterrupted run
    records: the warm-start vectors are in the checkpointed state (tol 1e-10: the values do not
    depend on the start)."""
    data = gd.tasks.fourier_1d(frequencies=(1, 2), n_points=32, dtype=F64)

    def model():
        return mlp(width=8, seed=3)

    def probes(stop=None):
        out = [SharpnessProbe(tol=1e-10, schedule=Schedule(every=5))]
        if stop is not None:
            class StopAt:
                name, schedule = "stop", Schedule(every=1)

                def compute(self, ctx):
                    if ctx.step == stop:
                        raise KeyboardInterrupt
                    return {}

            out.append(StopAt())
        return out

    kwargs = dict(steps=20, optimizer="adam", lr=1e-2, progress=False)
    reference = gd.train(model(), data, probes=probes(), **kwargs)
    with pytest.raises(KeyboardInterrupt):
        gd.train(model(), data, store=tmp_path, checkpoint_every=10, probes=probes(stop=13), **kwargs)
    store = gd.open_store(tmp_path)
    (record,) = store.runs(as_frame=False)
    saved = store.run(record["id"]).latest_checkpoint()[1]["probes"]["sharpness"]["state"]
    assert saved["v"].shape == saved["v_pre"].shape == (sum(p.numel() for p in model().parameters()),)
    resumed = gd.train(model(), data, store=store, resume=record["id"], probes=probes(), **kwargs)
    for key in ("sharpness/lambda_max", "sharpness/precond_sharpness"):
        s_ref, v_ref = reference.series(key)
        s_res, v_res = resumed.series(key)
        assert list(s_res) == list(s_ref)
        assert np.allclose(v_res, v_ref, rtol=1e-8)


def test_sharpness_probe_reads_a_dropout_model_in_eval_mode():
    """gd.train keeps the model in train mode; the probe measures the Hessian with dropout off
    (the dense truth of the model in eval mode) and leaves the mode as it was."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 2)).to(F64)
    data = gd.tasks.teacher_student(16, input_dim=3, output_dim=2, dtype=F64)
    result = gd.train(model, data, optimizer="sgd", lr=0.05, steps=4, progress=False,
                      probes=[SharpnessProbe(tol=1e-10, schedule=Schedule(every=4)),
                              SharpnessProbe(tol=1e-10, backend="forward", name="fwd", schedule=Schedule(every=4))])
    model.eval()
    lam = float(torch.linalg.eigvalsh(dense_hessian(model, lambda m: data.loss_value(m(data.x))))[-1])
    assert result.recorder.last("sharpness/lambda_max") == pytest.approx(lam, rel=1e-8)
    assert result.recorder.last("fwd/lambda_max") == pytest.approx(lam, rel=1e-8)  # gdlens' L: no mse_loss
    model.train()
    ctx = ProbeContext(0, model, batch=data)
    once(SharpnessProbe(), ctx)
    assert model.training
