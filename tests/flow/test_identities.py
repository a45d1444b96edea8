"""The KP identities against dense Jacobians from torch.func.jacrev (float64)."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import inner, make_case, output_jacobian, randn_like_shape, rel, state_jacobian

from gdlens.flow import KPFlow

TOL = 1e-10

# every model the package exports, each with a random constant z0 and with its own z0 (a
# learnable parameter; the residual stack's embedding of x)
RNN_KINDS = ["rnn-tanh", "rnn-relu", "rnn-linear"]
KINDS = RNN_KINDS + ["gru", "lstm", "ode", "stacked-lstm", "resnet", "resnet-wide"]
CASES = [(kind, learn) for kind in KINDS for learn in (False, True)]
# the RNN, GRU and LSTM also run with their closed forms switched off (the others have one path)
CLOSED_FORM_KINDS = RNN_KINDS + ["gru", "lstm"]
FAST_CASES = [
    (k, learn, fast) for k, learn in CASES for fast in ((True, False) if k in CLOSED_FORM_KINDS else (True,))
]


def _id(kind: str, learn_z0: bool, fast: bool | None = None) -> str:
    name = f"{kind}-{'own_z0' if learn_z0 else 'const_z0'}"
    return name if kind not in CLOSED_FORM_KINDS or fast is None else f"{name}-{'fast' if fast else 'generic'}"


IDS = [_id(*c) for c in CASES]
FAST_IDS = [_id(*c) for c in FAST_CASES]


def _flow(kind: str, learn_z0: bool, fast: bool = True) -> tuple:
    case = make_case(kind, learn_z0=learn_z0)
    return case, KPFlow(case.model, case.x, case.target, z0=case.z0, fast=fast)


@pytest.mark.parametrize(("kind", "learn_z0", "fast"), FAST_CASES, ids=FAST_IDS)
def test_G_is_state_jacobian_gram(kind: str, learn_z0: bool, fast: bool) -> None:
    case, kp = _flow(kind, learn_z0, fast)
    J = state_jacobian(case)
    Q = randn_like_shape(kp.shape, seed=1, k=3)
    expected = (Q.reshape(3, -1) @ J @ J.T).reshape(Q.shape)  # G symmetric: rows of (J Jᵀ q)ᵀ
    assert rel(kp.G @ Q, expected) <= TOL
    assert rel(kp.G.dense(), J @ J.T) <= TOL


@pytest.mark.parametrize(("kind", "learn_z0"), CASES, ids=IDS)
def test_ntk_is_output_jacobian_gram(kind: str, learn_z0: bool) -> None:
    case, kp = _flow(kind, learn_z0)
    Jy = output_jacobian(case)
    assert kp.ntk.shape_in == tuple(kp.output.shape)
    assert rel(kp.ntk.dense(), Jy @ Jy.T) <= TOL


@pytest.mark.parametrize(("kind", "learn_z0", "fast"), FAST_CASES, ids=FAST_IDS)
def test_adjoint_identities(kind: str, learn_z0: bool, fast: bool) -> None:
    _, kp = _flow(kind, learn_z0, fast)
    q = randn_like_shape(kp.shape, seed=2)
    r = randn_like_shape(kp.shape, seed=3)
    for op in (kp.P, kp.K, kp.G):
        lhs, rhs = inner(op @ q, r), inner(q, op.T @ r)
        assert abs(float(lhs - rhs)) <= TOL * float(lhs.abs() + rhs.abs())
    # the readout Jacobian C and the output NTK, on output-shaped vectors
    s = randn_like_shape(tuple(kp.output.shape), seed=4)
    lhs, rhs = inner(kp.C @ q, s), inner(q, kp.C.T @ s)
    assert abs(float(lhs - rhs)) <= TOL * float(lhs.abs() + rhs.abs())
    s2 = randn_like_shape(tuple(kp.output.shape), seed=5)
    lhs, rhs = inner(kp.ntk @ s, s2), inner(s, kp.ntk @ s2)
    assert abs(float(lhs - rhs)) <= TOL * float(lhs.abs() + rhs.abs())
    # P.T is the adjoint as an operator too (dense transpose), not only in one inner product
    assert rel(kp.P.T.dense(), kp.P.dense().T) <= TOL


def _assert_symmetric_psd(M: torch.Tensor) -> None:
    assert rel(M, M.T) <= TOL
    eig = torch.linalg.eigvalsh((M + M.T) / 2)
    assert eig.max() > 0
    assert eig.min() >= -TOL * eig.max()


@pytest.mark.parametrize(("kind", "learn_z0", "fast"), FAST_CASES, ids=FAST_IDS)
def test_symmetric_psd(kind: str, learn_z0: bool, fast: bool) -> None:
    _, kp = _flow(kind, learn_z0, fast)
    for op in (kp.K, kp.G, kp.ntk):
        _assert_symmetric_psd(op.dense())
    for name, op in kp.K_groups.items():
        M = op.dense()
        if M.abs().max() > 0:  # a parameter z does not depend on (a held-fixed z0's) has K_g = 0
            _assert_symmetric_psd(M)


@pytest.mark.parametrize(("kind", "learn_z0", "fast"), FAST_CASES, ids=FAST_IDS)
def test_K_groups_sum_to_K(kind: str, learn_z0: bool, fast: bool) -> None:
    case, kp = _flow(kind, learn_z0, fast)
    assert set(kp.K_groups) == set(case.model.state_params())
    V = randn_like_shape(kp.shape, seed=6, k=4)
    total = sum(op @ V for op in kp.K_groups.values())
    assert rel(total, kp.K @ V) <= TOL
    if learn_z0:  # with the model's own z0 every parameter moves z
        assert all((op @ V).abs().max() > 0 for op in kp.K_groups.values())
    # each group is itself the Gram of its own block of columns of J
    theta = case.model.state_params()
    J = state_jacobian(case)  # dz/dθ = P J: so J = P⁻¹ (dz/dθ) and K_g = P⁻¹ (dz/dθ_g)(dz/dθ_g)ᵀ P⁻ᵀ
    P = kp.P.dense()
    start = 0
    for name, p in theta.items():
        block = torch.linalg.solve(P, J[:, start : start + p.numel()])
        start += p.numel()
        expected, got = block @ block.T, kp.K_groups[name].dense()
        if expected.abs().max() == 0:  # e.g. the embedding of a residual stack given a constant z0
            assert got.abs().max() == 0, name
        else:
            assert rel(got, expected) <= 1e3 * TOL, name  # the solve with P costs a few digits


@pytest.mark.parametrize(("kind", "learn_z0"), CASES, ids=IDS)
def test_velocity_is_minus_G_error(kind: str, learn_z0: bool) -> None:
    case, kp = _flow(kind, learn_z0)
    J = state_jacobian(case)
    # gradient flow: dθ/dτ = −(dz/dθ)ᵀ e, so dz/dτ = −(dz/dθ)(dz/dθ)ᵀ e
    expected = -(J @ (J.T @ kp.error.reshape(-1))).reshape(kp.shape)
    assert rel(kp.velocity(), expected) <= TOL
