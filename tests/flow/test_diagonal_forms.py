"""The closed forms of K, P and G for the diagonal recurrences (gdlens.flow.diagonal): LRU with
complex and real eigenvalues and the selective recurrence, against the generic JVP/VJP paths
and the dense jacrev of the unrolled model, in float64."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import Case, assert_dense_gram_and_adjoints, rel

from gdlens.flow import AutodiffLinearisation, DiagonalKernel, KPFlow, closed_form_kind
from gdlens.models import LRU, SelectiveLRU

TOL = 1e-10
F64 = torch.float64

MODELS = {
    "lru": lambda learn: LRU(2, 3, 2, r_min=0.5, learn_z0=learn),
    "lru-real": lambda learn: LRU(2, 3, 2, real=True, learn_z0=learn),
    "selective": lambda learn: SelectiveLRU(2, 3, 2, learn_z0=learn),
}


def _case(kind: str, learn_z0: bool, seed: int = 0) -> Case:
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MODELS[kind](learn_z0).double()
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
    assert fast._closed_form == closed_form_kind(case.model) in ("lru", "selective-lru")
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
    big, small = kp.step_check(1e-3), kp.step_check(1e-4)
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
