"""The closed forms of K, P and G for the diagonal recurrences (gdlens.flow.diagonal): LRU with
complex and real eigenvalues, the selective recurrence, and deep stacks of them with and without
MLPs (StackedLRU), against the generic JVP/VJP paths and the dense jacrev of the unrolled model,
in float64."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import Case, assert_dense_gram_and_adjoints, rel

from gdlens.flow import AutodiffLinearisation, DiagonalKernel, KPFlow, closed_form_kind
from gdlens.models import LRU, SelectiveLRU, StackedLRU

TOL = 1e-10
F64 = torch.float64

MODELS = {
    "lru": lambda learn: LRU(2, 3, 2, r_min=0.5, learn_z0=learn),
    "lru-real": lambda learn: LRU(2, 3, 2, real=True, learn_z0=learn),
    "selective": lambda learn: SelectiveLRU(2, 3, 2, learn_z0=learn),
    "stack-lru-mlp": lambda learn: StackedLRU(2, 3, 2, 2, layers=3, mlp=4, r_min=0.5, learn_z0=learn),
    "stack-lru-linear": lambda learn: StackedLRU(2, 3, 2, 2, layers=2, learn_z0=learn),
    "stack-lru-real": lambda learn: StackedLRU(2, 3, 2, 2, layers=2, mlp=3, real=True, learn_z0=learn),
    "stack-selective-mlp": lambda learn: StackedLRU(2, 3, 2, 2, layers=2, mlp=4, cell="selective", learn_z0=learn),
}
KINDS = ("lru", "selective-lru", "stacked-lru", "stacked-selective-lru")


def _case(kind: str, learn_z0: bool, seed: int = 0) -> Case:
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MODELS[kind](learn_z0).double()
    with torch.no_grad():  # the zero-initialised biases at random values, so every path is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.5)
    if learn_z0:
        with torch.no_grad():
            model.z0.copy_(torch.randn(model.state_size, generator=gen, dtype=F64))
    x = torch.randn(2, 5, 2, generator=gen, dtype=F64)
    target = torch.randn(2, 5, 2, generator=gen, dtype=F64)
    z0 = None if learn_z0 else torch.randn(2, model.state_size, generator=gen, dtype=F64)
    return Case(kind, model, x, target, z0)


@pytest.mark.parametrize("learn_z0", [False, True], ids=["const_z0", "own_z0"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_diagonal_closed_forms_equal_generic(kind: str, learn_z0: bool) -> None:
    case = _case(kind, learn_z0)
    fast = KPFlow(case.model, case.x, case.target, z0=case.z0)
    slow = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=False)
    assert isinstance(fast.K, DiagonalKernel) and isinstance(slow.P.linearisation, AutodiffLinearisation)
    assert fast._closed_form == closed_form_kind(case.model) in KINDS
    gen = torch.Generator().manual_seed(1)
    V = torch.randn(3, *fast.shape, generator=gen, dtype=F64)
    for op in ("K", "P", "G"):
        assert rel(getattr(fast, op) @ V, getattr(slow, op) @ V) <= TOL, op
    assert rel(fast.P.T @ V, slow.P.T @ V) <= TOL
    assert set(fast.K_groups) == set(case.model.state_params())
    for name, op in fast.K_groups.items():
        a, b = op @ V, slow.K_groups[name] @ V
        assert (a.abs().max() == 0) if b.abs().max() == 0 else rel(a, b) <= TOL, name
    rows, expected = fast.K.rows(V), slow.jacobian.vjp(V)
    for name in expected:
        assert rows[name].shape == expected[name].shape, name
        if expected[name].abs().max() > 0:
            assert rel(rows[name], expected[name]) <= TOL, name
    for A, R in ((fast.K, slow.K), (fast.G, slow.G)):
        F = A.gram_factor
        assert rel(F @ (F.T @ V), R @ V) <= TOL


@pytest.mark.parametrize("kind", list(MODELS))
def test_diagonal_G_is_the_dense_gram_and_adjoints_hold(kind: str) -> None:
    case = _case(kind, True)
    kp = KPFlow(case.model, case.x, case.target)
    assert_dense_gram_and_adjoints(kp, case, TOL)


@pytest.mark.parametrize("kind", list(MODELS))
def test_diagonal_step_check(kind: str) -> None:
    """One SGD step moves z by −lr·G e to first order in lr."""
    case = _case(kind, True)
    kp = KPFlow(case.model, case.x, case.target)
    lr = 1e-3 if kind in ("lru", "lru-real", "selective") else 1e-5  # stacks have larger gradients
    big, small = kp.step_check(lr), kp.step_check(lr / 10)
    assert small.rel_error < 0.2 * big.rel_error
    assert small.rel_error < 1e-3


def test_lru_propagator_is_powers_of_lambda() -> None:
    """(P q)_t = Σ_{s ≤ t} λ^{t−s} q_s per mode, in complex arithmetic."""
    case = _case("lru", False)
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0)
    N = case.model.modes
    lam = case.model.eigenvalues().detach()
    q = torch.randn(kp.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    qc = torch.complex(q[..., :N], q[..., N:])
    T = kp.shape[1]
    expected = torch.stack([sum(lam ** (t - s) * qc[:, s] for s in range(t + 1)) for t in range(T)], dim=1)
    out = kp.P @ q
    assert rel(torch.complex(out[..., :N], out[..., N:]), expected) <= TOL


def test_a_changed_lru_is_not_closed_form() -> None:
    class Leaky(LRU):
        def step(self, theta, z_prev, x_t, t):
            return 0.5 * super().step(theta, z_prev, x_t, t)

    assert closed_form_kind(Leaky(2, 3, 1)) is None
    assert closed_form_kind(LRU(2, 3, 1)) == "lru"
    assert closed_form_kind(SelectiveLRU(2, 3, 1)) == "selective-lru"


def test_a_changed_stack_is_not_closed_form() -> None:
    class Extra(StackedLRU):
        def __init__(self) -> None:
            super().__init__(2, 3, 2, 1)
            self.extra = torch.nn.Parameter(torch.zeros(1))

    assert closed_form_kind(Extra()) is None
    assert closed_form_kind(StackedLRU(2, 3, 2, 1, mlp=2)) == "stacked-lru"
    assert closed_form_kind(StackedLRU(2, 3, 2, 1, cell="selective")) == "stacked-selective-lru"


def test_stack_propagator_is_layered_and_the_residual_stream_is_unread() -> None:
    """D_t of a stack has a zero column block for each o^ℓ_{t−1} (step t never reads it), and a
    perturbation of layer 1's x at step t reaches the top layer's o at step t + 1 (D = M Rec,
    M_t ≠ I carries it up through every layer within the step)."""
    case = _case("stack-lru-mlp", False)
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0)
    lin = kp.P.linearisation
    model, d = case.model, case.model.d_model
    B, T, S = kp.shape
    Q = torch.zeros(1, B, S, dtype=F64)
    for k in range(model.num_layers):
        Q[..., model.layer_slice(k)][..., :d] = 1.0  # o-parts of z_{t−1}
    assert lin.d(2, Q).abs().max() == 0
    R = torch.zeros(1, B, T, S, dtype=F64)
    R[0, :, 1, d : model.layer_slice(0).stop] = 1.0  # x^1 at t = 2
    out = kp.P @ R
    top = model.layer_slice(model.num_layers - 1)
    assert out[0, :, 2, top][..., :d].abs().max() > 0  # the top residual stream, one step later
    assert out[0, :, 1, top].abs().max() == 0 and out[0, :, 0].abs().max() == 0  # nothing before
