"""The RNN by hand, the closed forms against the generic paths, and the immediate map's
one-call (time-invariant) evaluation against its per-step reference."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import Case, make_case, params, randn_like_shape, rel

from gdlens.flow import (
    ImmediateJacobian,
    KPFlow,
    AutodiffLinearisation,
    FactoredKernel,
    LayeredLinearisation,
    Propagator,
    immediate_map,
    is_time_invariant,
    rnn_closed_form_applies,
)
from gdlens.models import RNN

TOL = 1e-10


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_linear_rnn_propagator_is_sum_of_powers(fast: bool) -> None:
    case = make_case("rnn-linear", T=5)
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=fast)
    W = case.model.weight_hh.detach()
    Q = randn_like_shape(kp.shape, seed=7, k=2)
    T = kp.shape[1]
    # (P q)_t = Σ_{s ≤ t} W^{t−s} q_s
    expected = torch.stack(
        [sum(Q[:, :, s] @ torch.linalg.matrix_power(W, t - s).T for s in range(t + 1)) for t in range(T)], dim=2
    )
    assert rel(kp.P @ Q, expected) <= TOL
    # and (Pᵀ r)_s = Σ_{t ≥ s} (W^{t−s})ᵀ r_t
    expected_T = torch.stack(
        [sum(Q[:, :, t] @ torch.linalg.matrix_power(W, t - s) for t in range(s, T)) for s in range(T)], dim=2
    )
    assert rel(kp.P.T @ Q, expected_T) <= TOL


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_bias_free_tanh_K_is_scaled_gram_kron_identity(fast: bool) -> None:
    case = make_case("rnn-tanh-nobias")
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=fast)
    B, T, H = kp.shape
    z = kp.hidden
    z_prev = torch.cat([case.z0.unsqueeze(1), z[:, :-1]], dim=1)  # z*_0..z*_{T-1}
    M = torch.cat([z_prev, case.x], dim=-1).reshape(B * T, -1)  # rows [z_{t-1}, x_t], (b, t) row-major
    S = torch.diag((1 - z**2).reshape(-1))
    expected = S @ torch.kron(M @ M.T, torch.eye(H, dtype=z.dtype)) @ S
    assert rel(kp.K.dense(), expected) <= TOL


RNN_KINDS = ["rnn-tanh", "rnn-relu", "rnn-linear", "rnn-tanh-nobias"]


@pytest.mark.parametrize("learn_z0", [False, True], ids=["const_z0", "learn_z0"])
@pytest.mark.parametrize("kind", RNN_KINDS)
def test_closed_forms_equal_generic(kind: str, learn_z0: bool) -> None:
    case = make_case(kind, learn_z0=learn_z0, T=5)
    fast = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=True)
    slow = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=False)
    assert isinstance(fast.P.linearisation, LayeredLinearisation) and isinstance(fast.K, FactoredKernel)
    assert isinstance(slow.P.linearisation, AutodiffLinearisation) and not isinstance(slow.K, FactoredKernel)
    V = randn_like_shape(fast.shape, seed=8, k=3)
    assert rel(fast.K @ V, slow.K @ V) <= TOL
    assert rel(fast.P @ V, slow.P @ V) <= TOL
    assert rel(fast.P.T @ V, slow.P.T @ V) <= TOL
    assert rel(fast.G @ V, slow.G @ V) <= TOL
    assert rel(fast.adjoint, slow.adjoint) <= TOL
    assert set(fast.K_groups) == set(slow.K_groups)
    for name in fast.K_groups:
        a, b = fast.K_groups[name] @ V, slow.K_groups[name] @ V
        if b.abs().max() == 0:  # z0's group with a constant z0: J_{z0} = 0
            assert a.abs().max() == 0, name
        else:
            assert rel(a, b) <= TOL, name


def test_constant_z0_gives_zero_z0_group() -> None:
    """With a learnable z0 but a constant z0 passed, the z0 parameter does not move z."""
    case = make_case("rnn-tanh", learn_z0=True)
    z0 = randn_like_shape((case.x.shape[0], case.model.state_size), seed=9)
    for fast in (True, False):
        kp = KPFlow(case.model, case.x, case.target, z0=z0, fast=fast)
        V = randn_like_shape(kp.shape, seed=10, k=2)
        assert (kp.K_groups["z0"] @ V).abs().max() == 0
        assert (kp.K_groups["weight_hh"] @ V).abs().max() > 0


def _subclass_case() -> Case:
    class ShiftedRNN(RNN):
        """Time-dependent: adds t to the pre-activation, so t matters."""

        def step(self, theta, z_prev, x_t, t):
            return torch.tanh(z_prev @ theta["weight_hh"].T + x_t @ theta["weight_ih"].T + theta["bias"] + 0.1 * t)

    base = make_case("rnn-tanh")
    model = ShiftedRNN(2, 3, 2).double()
    model.load_state_dict(base.model.state_dict())
    return Case("shifted", model, base.x, base.target, base.z0)


def test_time_invariance_detection() -> None:
    for kind in ("rnn-tanh", "gru", "lstm", "ode", "stacked-lstm"):
        assert is_time_invariant(make_case(kind).model), kind
    assert not is_time_invariant(make_case("resnet").model)  # untied weights per layer
    assert not rnn_closed_form_applies(make_case("gru").model)
    shifted = _subclass_case().model
    assert not is_time_invariant(shifted) and not rnn_closed_form_applies(shifted)
    assert rnn_closed_form_applies(make_case("rnn-relu").model)
    shifted.time_invariant = True  # an explicit attribute wins
    assert is_time_invariant(shifted)


@pytest.mark.parametrize("learn_z0", [False, True], ids=["const_z0", "learn_z0"])
@pytest.mark.parametrize("kind", ["rnn-tanh", "gru", "lstm", "ode"])
def test_one_call_immediate_map_equals_per_step(kind: str, learn_z0: bool) -> None:
    case = make_case(kind, learn_z0=learn_z0, T=5)
    theta, _ = params(case.model)
    hidden = case.model.unroll(theta, case.x, case.z0).detach()
    F_flat = immediate_map(case.model, case.x, hidden, case.z0, time_invariant=True)
    F_loop = immediate_map(case.model, case.x, hidden, case.z0, time_invariant=False)
    assert rel(F_flat(theta), F_loop(theta)) <= TOL
    assert rel(F_flat(theta), hidden) <= TOL  # at the trajectory itself F(θ) = z*
    J_flat, J_loop = ImmediateJacobian(F_flat, theta), ImmediateJacobian(F_loop, theta)
    V = randn_like_shape(tuple(hidden.shape), seed=11, k=3)
    rows_flat, rows_loop = J_flat.vjp(V), J_loop.vjp(V)
    for name in theta:
        if rows_loop[name].abs().max() == 0:
            assert rows_flat[name].abs().max() == 0
        else:
            assert rel(rows_flat[name], rows_loop[name]) <= TOL, name
    assert rel(J_flat.jvp(rows_loop), J_loop.jvp(rows_loop)) <= TOL


def test_time_dependent_cell_uses_per_step_path() -> None:
    """A cell that reads t: the flow still matches the dense Jacobian (per-step path)."""
    from flow_helpers import state_jacobian

    case = _subclass_case()
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0)
    J = state_jacobian(case)
    assert rel(kp.G.dense(), J @ J.T) <= TOL
