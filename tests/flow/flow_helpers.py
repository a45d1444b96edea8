"""Small float64 problems and dense reference Jacobians for the flow tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gdlens import models

F64 = torch.float64


@dataclass
class Case:
    """A model with an input, a target and an optional constant z0, all float64."""

    name: str
    model: torch.nn.Module
    x: Tensor
    target: Tensor
    z0: Tensor | None


def _randomise(model: torch.nn.Module, gen: torch.Generator, scale: float = 0.5) -> None:
    """Give the (zero-initialised) biases and z0 random values, so every path is exercised."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n == "z0" or n.split(".")[-1].startswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


def make_case(
    kind: str, learn_z0: bool = False, seed: int = 0, B: int = 2, T: int = 4, H: int = 3, bias: bool = True
) -> Case:
    """A small problem for model ``kind``: ``"rnn-tanh"``, ``"rnn-relu"``, ``"rnn-linear"``,
    ``"rnn-tanh-nobias"``, ``"gru"``, ``"lstm"``, ``"ode"``, ``"stacked-lstm"``, ``"resnet"``,
    ``"resnet-wide"`` (residual stacks of depth T with x (B, I) and y (B, 1, O)).

    With learn_z0 the model's own z0 is used (a random learnable z0 parameter; the residual
    stack's embedding z0 = E x + e) and no constant z0 is passed; otherwise a random constant
    z0 (B, H) is passed and held fixed. ``bias=False`` drops the GRU's and LSTM's biases (the
    RNN's through the ``"nobias"`` kinds).
    """
    I, O = 2, 2
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind.startswith("rnn"):
            nonlin = kind.split("-")[1]
            model = models.RNN(I, H, O, nonlinearity=nonlin, bias="nobias" not in kind, learn_z0=learn_z0)
        elif kind == "gru":
            model = models.GRU(I, H, O, bias=bias, learn_z0=learn_z0)
        elif kind == "lstm":
            model = models.LSTM(I, H, O, bias=bias, learn_z0=learn_z0)
        elif kind == "ode":
            model = models.NeuralODE(I, H, O, width=4, depth=2, dt=0.3, learn_z0=learn_z0)
        elif kind == "stacked-lstm":
            model = models.StackedRNN("lstm", I, 2, O, num_layers=2, learn_z0=learn_z0)
        elif kind == "resnet":
            model = models.ResidualStack(I, H, O, depth=T, g=2.0)
        elif kind == "resnet-wide":
            model = models.ResidualStack(I, H, O, depth=T, width=4, g=2.0)
        else:
            raise ValueError(kind)
    model = model.double()
    _randomise(model, gen)
    resnet = kind.startswith("resnet")
    S = model.state_size
    x = torch.randn((B, I) if resnet else (B, T, I), generator=gen, dtype=F64)
    target = torch.randn((B, 1, O) if resnet else (B, T, O), generator=gen, dtype=F64)
    z0 = None if learn_z0 else torch.randn(B, S, generator=gen, dtype=F64) * 0.5
    return Case(f"{kind}{'-z0' if learn_z0 else ''}", model, x, target, z0)


def params(model: torch.nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    theta = {n: p.detach() for n, p in model.state_params().items()}
    phi = {n: p.detach() for n, p in model.readout_params().items()}
    return theta, phi


def flat_jacobian(jac: dict[str, Tensor], n_out: int) -> Tensor:
    """Columns of a jacrev dict (each (*out_shape, *param_shape)) side by side: (n_out, n_params)."""
    return torch.cat([j.reshape(n_out, -1) for j in jac.values()], dim=1)


def state_jacobian(case: Case) -> Tensor:
    """dz/dθ (B·T·H, n_θ) from jacrev of θ ↦ model.unroll(θ, x, z0) over ALL θ."""
    theta, _ = params(case.model)
    z = case.model.unroll(theta, case.x, case.z0)
    jac = torch.func.jacrev(lambda th: case.model.unroll(th, case.x, case.z0))(theta)
    return flat_jacobian(jac, z.numel())


def output_jacobian(case: Case) -> Tensor:
    """dy/d(θ, φ) (B·T'·O, n_θ + n_φ) from jacrev of the full forward map over all parameters."""
    theta, phi = params(case.model)
    m = case.model

    def forward(th: dict[str, Tensor], ph: dict[str, Tensor]) -> Tensor:
        return m.read(ph, m.unroll(th, case.x, case.z0))

    y = forward(theta, phi)
    j_theta, j_phi = torch.func.jacrev(forward, argnums=(0, 1))(theta, phi)
    return torch.cat([flat_jacobian(j_theta, y.numel()), flat_jacobian(j_phi, y.numel())], dim=1)


def rel(a: Tensor, b: Tensor) -> float:
    """‖a − b‖ / ‖b‖."""
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def inner(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum()


def randn_like_shape(shape: tuple[int, ...], seed: int, k: int | None = None) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    full = shape if k is None else (k, *shape)
    return torch.randn(full, generator=gen, dtype=F64)


def loss_through_unroll(case: Case, loss: Callable[[Tensor, Tensor], Tensor], target: Tensor) -> Callable:
    """δ ↦ L when every state is perturbed additively, z_t = f(z_{t-1}, x_t; θ) + δ_t; its
    gradient at δ = 0 is the BPTT adjoint dL/dz."""
    m = case.model
    theta, phi = params(m)

    def L(delta: Tensor) -> Tensor:
        z = m.initial_state(theta, case.x) if case.z0 is None else case.z0
        states = []
        for t, x_t in enumerate(m.step_inputs(case.x), start=1):
            z = m.step(theta, z, x_t, t) + delta[:, t - 1]
            states.append(z)
        return loss(m.read(phi, torch.stack(states, dim=1)), target)

    return L


def assert_dense_gram_and_adjoints(kp, case: Case, tol: float = 1e-10) -> None:
    """G equals the Gram of dz/dθ (dense jacrev of the unrolled model), and ⟨A q, r⟩ = ⟨q, Aᵀ r⟩
    for P, K and G on random q, r."""
    J = state_jacobian(case)
    assert rel(kp.G.dense(), J @ J.T) <= tol
    gen = torch.Generator().manual_seed(2)
    q, r = (torch.randn(kp.shape, generator=gen, dtype=F64) for _ in range(2))
    for op in (kp.P, kp.K, kp.G):
        lhs, rhs = inner(op @ q, r), inner(q, op.T @ r)
        assert abs(float(lhs - rhs)) <= tol * float(lhs.abs() + rhs.abs())
