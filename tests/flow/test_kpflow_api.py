"""KPFlow's attributes: shapes, dtypes, batching over probes, and what the operators store."""

from __future__ import annotations

import math

import pytest
import torch
from flow_helpers import make_case, randn_like_shape, rel

from gdlens.flow import KPFlow
from gdlens.operators import LinearOperator


def test_attributes_and_shapes() -> None:
    case = make_case("rnn-tanh", learn_z0=True, B=3, T=5, H=4)
    kp = KPFlow(case.model, case.x, case.target)
    assert kp.shape == (3, 5, 4)
    for t in (kp.hidden, kp.error, kp.adjoint, kp.velocity()):
        assert t.shape == (3, 5, 4) and t.dtype == torch.float64 and not t.requires_grad
    for op in (kp.K, kp.P, kp.P.T, kp.G, *kp.K_groups.values()):
        assert isinstance(op, LinearOperator) and op.shape_in == op.shape_out == (3, 5, 4)
    assert kp.ntk.shape_in == kp.ntk.shape_out == tuple(kp.output.shape) == (3, 5, 2)
    assert kp.K.is_symmetric and kp.G.is_symmetric and kp.ntk.is_symmetric and not kp.P.is_symmetric
    assert math.isfinite(kp.loss_value) and kp.loss_value > 0


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_stack_equals_one_probe_at_a_time(fast: bool) -> None:
    """A stack (k, B, T, H) gives what its rows give one by one."""
    case = make_case("rnn-tanh", learn_z0=True)
    kp = KPFlow(case.model, case.x, case.target, fast=fast)
    V = randn_like_shape(kp.shape, seed=12, k=3)
    for op in (kp.K, kp.P, kp.P.T, kp.G):
        stacked = op @ V
        assert rel(stacked, torch.stack([op @ v for v in V])) <= 1e-12


def test_dtype_follows_model() -> None:
    case = make_case("rnn-tanh", learn_z0=True)
    model = case.model.float()
    kp = KPFlow(model, case.x.float(), case.target.float())
    assert kp.hidden.dtype == kp.error.dtype == kp.adjoint.dtype == torch.float32
    assert kp.G.dtype == kp.ntk.dtype == torch.float32
    kp64 = KPFlow(model.double(), case.x, case.target)
    assert rel((kp.velocity()).double(), kp64.velocity()) <= 1e-4


def test_closed_forms_store_no_dense_blocks() -> None:
    """The RNN closed forms keep O(B·T·(H + I) + H²) numbers, far below B·T·H²."""
    case = make_case("rnn-tanh", learn_z0=True, B=2, T=3, H=12)
    kp = KPFlow(case.model, case.x, case.target)
    B, T, H = kp.shape
    (point,) = kp.P.linearisation.layers
    stored = sum(t.numel() for t in (point.prev, point.inputs, point.s, point.weight_hh, point.weight_ih))
    assert stored < B * T * H * H / 2


@pytest.mark.parametrize("kind", ["rnn-tanh", "gru"])
def test_jacobian_rows_are_its_adjoint(kind: str) -> None:
    """⟨J dθ, v⟩ = Σ_name ⟨dθ_name, (Jᵀ v)_name⟩ for the exposed immediate Jacobian."""
    case = make_case(kind, learn_z0=True)
    kp = KPFlow(case.model, case.x, case.target)
    V = randn_like_shape(kp.shape, seed=13, k=2)
    gen = torch.Generator().manual_seed(14)
    dtheta = {n: torch.randn(2, *p.shape, generator=gen, dtype=p.dtype) for n, p in kp.theta.items()}
    rows = kp.jacobian.vjp(V)
    lhs = (kp.jacobian.jvp(dtheta) * V).flatten(1).sum(1)
    rhs = sum((dtheta[n] * rows[n]).flatten(1).sum(1) for n in kp.theta)
    assert rel(lhs, rhs) <= 1e-12
    assert rel(kp.K @ V, kp.jacobian.jvp(rows)) <= 1e-10


@pytest.mark.parametrize("kind", ["rnn-tanh", "gru", "lstm"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_a_kpflow_is_a_snapshot_that_later_training_does_not_move(kind: str, fast: bool) -> None:
    """Operators are built lazily; an optimiser step on the model between building the KPFlow
    and using it must not change them (nor step_check's starting point)."""
    import copy

    case = make_case(kind, B=2, T=4, H=3)
    frozen = copy.deepcopy(case.model)
    kp = KPFlow(case.model, case.x, case.target, fast=fast)
    reference = KPFlow(frozen, case.x, case.target, fast=fast)
    with torch.no_grad():  # "train" the model after the snapshot
        for p in case.model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    V = randn_like_shape(kp.shape, seed=3, k=2)
    for name in ("K", "P", "G"):
        assert rel(getattr(kp, name) @ V, getattr(reference, name) @ V) <= 1e-12, name
    assert rel(kp.ntk @ torch.ones_like(kp.output), reference.ntk @ torch.ones_like(kp.output)) <= 1e-12
    assert rel(kp.step_check(1e-3).actual, reference.step_check(1e-3).actual) <= 1e-12


@pytest.mark.parametrize("layers", [1, 2])
def test_kpflow_takes_a_torch_module_directly(layers: int) -> None:
    """KPFlow(nn.GRU, x, target, readout=nn.Linear) is KPFlow of from_torch's model, closed forms included."""
    from gdlens.models import from_torch

    torch.manual_seed(0)
    gru, head = torch.nn.GRU(2, 3, num_layers=layers, batch_first=True).double(), torch.nn.Linear(3, 2).double()
    case = make_case("gru")
    direct = KPFlow(gru, case.x, case.target, readout=head)
    via = KPFlow(from_torch(gru, readout=head), case.x, case.target)
    assert direct._closed_form == via._closed_form == "stacked-gru"
    V = randn_like_shape(direct.shape, seed=3, k=2)
    assert torch.equal(direct.G @ V, via.G @ V)
    y, _ = gru(case.x)
    assert rel(direct.output, head(y)) <= 1e-12


def test_kpflow_refuses_what_it_cannot_convert() -> None:
    case = make_case("gru")
    with pytest.raises(ValueError, match="readout= is for torch"):
        KPFlow(case.model, case.x, case.target, readout=torch.nn.Linear(3, 2).double())
    with pytest.raises(TypeError, match="'step'"):
        KPFlow(torch.nn.Linear(2, 2).double(), case.x, case.target)
