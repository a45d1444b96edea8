"""The GRU and LSTM closed forms of P, Pᵀ, K and the K_groups (gdlens.flow.gated) against
the generic JVP/VJP paths (fast=False), in float64."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import inner, make_case, randn_like_shape, rel

from gdlens.flow import (
    AutodiffLinearisation,
    FactoredKernel,
    KPFlow,
    LayeredLinearisation,
    ParameterKernel,
    Propagator,
    closed_form_kind,
    closed_form_layers,
    gru_closed_form_applies,
    lstm_closed_form_applies,
    rnn_closed_form_applies,
)
from gdlens.models import GRU, LSTM

TOL = 1e-10

KINDS = ["gru", "lstm"]
# (kind, bias, learn_z0): with learn_z0 the model's own random z0 (a function of θ) is used,
# otherwise a random non-zero constant z0 is passed to KPFlow
CASES = [(kind, bias, learn) for kind in KINDS for bias in (True, False) for learn in (False, True)]
IDS = [f"{k}-{'bias' if b else 'nobias'}-{'own_z0' if learn else 'const_z0'}" for k, b, learn in CASES]


def _pair(kind: str, bias: bool, learn_z0: bool, **sizes) -> tuple:
    case = make_case(kind, learn_z0=learn_z0, bias=bias, **sizes)
    fast = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=True)
    slow = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=False)
    return case, fast, slow


@pytest.mark.parametrize(("kind", "bias", "learn_z0"), CASES, ids=IDS)
def test_closed_forms_equal_generic(kind: str, bias: bool, learn_z0: bool) -> None:
    case, fast, slow = _pair(kind, bias, learn_z0, B=3, T=5, H=4)
    assert isinstance(fast.P.linearisation, LayeredLinearisation) and isinstance(fast.K, FactoredKernel)
    assert isinstance(slow.P.linearisation, AutodiffLinearisation) and isinstance(slow.K, ParameterKernel)
    V = randn_like_shape(fast.shape, seed=21, k=3)
    assert rel(fast.K @ V, slow.K @ V) <= TOL
    assert rel(fast.P @ V, slow.P @ V) <= TOL
    assert rel(fast.P.T @ V, slow.P.T @ V) <= TOL
    assert rel(fast.G @ V, slow.G @ V) <= TOL
    assert rel(fast.adjoint, slow.adjoint) <= TOL
    assert rel(fast.velocity(), slow.velocity()) <= TOL
    assert set(fast.K_groups) == set(slow.K_groups) == set(case.model.state_params())
    assert ("bias_ih" in fast.K_groups) == bias
    for name in fast.K_groups:
        assert isinstance(fast.K_groups[name], FactoredKernel)
        a, b = fast.K_groups[name] @ V, slow.K_groups[name] @ V
        assert b.abs().max() > 0, name  # every parameter moves z (z0 only when it is learnable)
        assert rel(a, b) <= TOL, name
    total = sum(op @ V for op in fast.K_groups.values())
    assert rel(total, fast.K @ V) <= TOL


@pytest.mark.parametrize(("kind", "bias", "learn_z0"), CASES, ids=IDS)
def test_jacobian_rows_equal_generic_vjp(kind: str, bias: bool, learn_z0: bool) -> None:
    """The closed-form rows Jᵀ v per parameter equal the generic VJP of the immediate map."""
    _, fast, slow = _pair(kind, bias, learn_z0)
    V = randn_like_shape(fast.shape, seed=22, k=2)
    rows = FactoredKernel(fast._linearisation, list(fast.theta)).rows(V)
    expected = slow.jacobian.vjp(V)
    assert set(rows) == set(expected)
    for name in expected:
        assert rows[name].shape == expected[name].shape, name
        assert rel(rows[name], expected[name]) <= TOL, name


@pytest.mark.parametrize(("kind", "bias", "learn_z0"), CASES, ids=IDS)
def test_adjoint_identities(kind: str, bias: bool, learn_z0: bool) -> None:
    _, kp, _ = _pair(kind, bias, learn_z0)
    q = randn_like_shape(kp.shape, seed=23)
    r = randn_like_shape(kp.shape, seed=24)
    ops = [kp.P, kp.K, kp.G, *kp.K_groups.values()]
    for op in ops:
        lhs, rhs = inner(op @ q, r), inner(q, op.T @ r)
        assert abs(float(lhs - rhs)) <= TOL * float(lhs.abs() + rhs.abs())
    assert rel(kp.P.T.dense(), kp.P.dense().T) <= TOL
    K = kp.K.dense()
    assert rel(K, K.T) <= TOL
    eig = torch.linalg.eigvalsh((K + K.T) / 2)
    assert eig.min() >= -TOL * eig.max()


@pytest.mark.parametrize("kind", KINDS)
def test_constant_z0_gives_zero_z0_group(kind: str) -> None:
    """A learnable z0 overridden by a constant z0 passed to KPFlow does not move z."""
    case = make_case(kind, learn_z0=True)
    z0 = randn_like_shape((case.x.shape[0], case.model.state_size), seed=25)
    kp = KPFlow(case.model, case.x, case.target, z0=z0)
    slow = KPFlow(case.model, case.x, case.target, z0=z0, fast=False)
    V = randn_like_shape(kp.shape, seed=26, k=2)
    assert (kp.K_groups["z0"] @ V).abs().max() == 0
    assert (kp.K_groups["weight_hh"] @ V).abs().max() > 0
    assert rel(kp.K @ V, slow.K @ V) <= TOL
    assert rel(kp.G @ V, slow.G @ V) <= TOL


@pytest.mark.parametrize("kind", KINDS)
def test_probe_chunks_give_the_same_K(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU the probes go through K in cache-sized chunks; chunks of one probe agree with one pass."""
    _, kp, _ = _pair(kind, True, True)
    V = randn_like_shape(kp.shape, seed=27, k=5)
    whole = kp.K @ V
    monkeypatch.setattr(FactoredKernel, "CPU_CHUNK_BYTES", 1)
    assert kp.K._chunk(5, V) == 1
    assert rel(kp.K @ V, whole) <= 1e-14


def test_gru_state_jacobian_by_hand() -> None:
    """D_t q = u ⊙ q + (1 − u) ⊙ dn + (h − n) ⊙ du from the gate values, against jacrev of the cell."""
    case = make_case("gru", B=1, T=2, H=3)
    m = case.model
    theta = {n: p.detach() for n, p in m.state_params().items()}
    h, x = case.z0[0], case.x[0, 0]
    H = h.shape[0]
    W_ih, W_hh, b_ih, b_hh = theta["weight_ih"], theta["weight_hh"], theta["bias_ih"], theta["bias_hh"]
    gi, gh = W_ih @ x + b_ih, W_hh @ h + b_hh
    r = torch.sigmoid(gi[:H] + gh[:H])
    u = torch.sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
    hn = gh[2 * H :]
    n = torch.tanh(gi[2 * H :] + r * hn)
    W_hr, W_hu, W_hn = W_hh[:H], W_hh[H : 2 * H], W_hh[2 * H :]
    eye = torch.eye(H, dtype=h.dtype)
    du = (u * (1 - u))[:, None] * W_hu
    dr = (r * (1 - r))[:, None] * W_hr
    dn = (1 - n**2)[:, None] * (hn[:, None] * dr + r[:, None] * W_hn)
    D = u[:, None] * eye + (1 - u)[:, None] * dn + (h - n)[:, None] * du
    expected = torch.func.jacrev(lambda z: m.step(theta, z, x, 1))(h)
    assert rel(D, expected) <= TOL
    specs = closed_form_layers(m)
    point = LayeredLinearisation.from_model(m, specs, theta, case.x[:1], m.unroll(theta, case.x[:1], case.z0[:1]), case.z0[:1])
    assert rel(point.d(0, eye.unsqueeze(1)).squeeze(1).T, D) <= TOL  # columns D e_j
    assert rel(point.dT(0, eye.unsqueeze(1)).squeeze(1), D) <= TOL  # rows: Dᵀ e_i = D[i]


@pytest.mark.parametrize("kind", KINDS)
def test_points_store_no_dense_blocks(kind: str) -> None:
    """The gated closed forms keep O(B·T·(S + I) + G·H²) numbers, far below B·T·H²."""
    case = make_case(kind, learn_z0=True, B=2, T=3, H=32)
    kp = KPFlow(case.model, case.x, case.target)
    B, T, S = kp.shape
    lin = kp.P.linearisation
    (point,) = lin.layers
    weights = point.weight_hh.numel() + point.weight_ih.numel()
    stored = sum(v.numel() for v in vars(point).values() if isinstance(v, torch.Tensor))
    assert stored - weights < B * T * S * S / 3
    assert stored < 12 * B * T * S + weights
    assert kp.K.linearisation is lin  # one snapshot of the gates, shared by P, K and the K_groups
    assert all(op.linearisation is lin for op in kp.K_groups.values())


def test_detection() -> None:
    gru, lstm, rnn = make_case("gru").model, make_case("lstm").model, make_case("rnn-tanh").model
    assert gru_closed_form_applies(gru) and not lstm_closed_form_applies(gru) and not rnn_closed_form_applies(gru)
    assert lstm_closed_form_applies(lstm) and not gru_closed_form_applies(lstm)
    assert [closed_form_kind(m) for m in (rnn, gru, lstm)] == ["rnn", "gru", "lstm"]
    assert closed_form_kind(make_case("stacked-lstm").model) == "stacked-lstm"
    assert closed_form_kind(make_case("ode").model) is None

    class ScaledGRU(GRU):
        def step(self, theta, z_prev, x_t, t):
            return 0.5 * super().step(theta, z_prev, x_t, t)

    class OffsetLSTM(LSTM):
        def initial_state(self, theta, x):
            return super().initial_state(theta, x) + 1.0

    assert closed_form_kind(ScaledGRU(2, 3, 2)) is None
    assert closed_form_kind(OffsetLSTM(2, 3, 2)) is None
    case = make_case("gru")
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0)
    assert "closed_forms='gru'" in repr(kp)
    assert "closed_forms=False" in repr(KPFlow(case.model, case.x, case.target, z0=case.z0, fast=False))


def test_subclass_falls_back_to_generic() -> None:
    """A GRU subclass with its own step gets the generic paths, which follow its step."""

    class ScaledGRU(GRU):
        def step(self, theta, z_prev, x_t, t):
            return 0.5 * super().step(theta, z_prev, x_t, t)

    base = make_case("gru")
    model = ScaledGRU(2, 3, 2).double()
    model.load_state_dict(base.model.state_dict())
    kp = KPFlow(model, base.x, base.target, z0=base.z0)
    assert isinstance(kp.P, Propagator) and isinstance(kp.K, ParameterKernel)


def test_lstm_point_is_float32_safe() -> None:
    """float32 in, float32 operators out, close to the float64 result."""
    case = make_case("lstm", learn_z0=True)
    kp64 = KPFlow(case.model, case.x, case.target)
    model32 = case.model.float()
    kp32 = KPFlow(model32, case.x.float(), case.target.float())
    assert isinstance(kp32._linearisation, LayeredLinearisation)
    V = randn_like_shape(kp64.shape, seed=28, k=2)
    out = kp32.G @ V.float()
    assert out.dtype == torch.float32
    assert rel(out.double(), kp64.G @ V) <= 1e-4
