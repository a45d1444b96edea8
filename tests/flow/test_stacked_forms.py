"""The layered closed forms (gdlens.flow.linearisation) of every StackedRNN — 1, 2 and 3 layers of
RNN (tanh, relu), GRU and LSTM cells, with and without torch's two biases, with a learnable or a
constant z0 — against the generic JVP/VJP paths and the dense jacrev of the unrolled model, in
float64; and everything from_torch returns takes them."""

from __future__ import annotations

import itertools

import pytest
import torch
from flow_helpers import Case, assert_dense_gram_and_adjoints, rel

from gdlens.flow import AutodiffLinearisation, FactoredKernel, KPFlow, LayeredLinearisation, closed_form_kind
from gdlens.models import StackedRNN, from_torch

TOL = 1e-10
F64 = torch.float64

CASES = [
    (cell, layers, bias, learn, nonlin)
    for cell, layers, bias, learn, nonlin in itertools.product(
        ["rnn", "gru", "lstm"], [1, 2, 3], [True, False], [False, True], ["tanh", "relu"]
    )
    if cell == "rnn" or nonlin == "tanh"
]
IDS = [f"{c}{n if c == 'rnn' else ''}-L{L}-{'bias' if b else 'nobias'}-{'own_z0' if z else 'const_z0'}" for c, L, b, z, n in CASES]


def _case(cell: str, layers: int, bias: bool, learn_z0: bool, nonlin: str, seed: int = 0) -> Case:
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = StackedRNN(cell, 2, 3, 2, num_layers=layers, nonlinearity=nonlin, bias=bias, learn_z0=learn_z0)
    model = model.double()
    with torch.no_grad():  # biases and z0 start at zero: give them values so every path is exercised
        for name, p in model.named_parameters():
            if name == "z0" or name.startswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.5)
    B, T = 2, 4
    x = torch.randn(B, T, 2, generator=gen, dtype=F64)
    target = torch.randn(B, T, 2, generator=gen, dtype=F64)
    z0 = None if learn_z0 else torch.randn(B, model.state_size, generator=gen, dtype=F64) * 0.5
    return Case(f"stacked-{cell}", model, x, target, z0)


@pytest.mark.parametrize(("cell", "layers", "bias", "learn_z0", "nonlin"), CASES, ids=IDS)
def test_layered_closed_forms_equal_generic(cell: str, layers: int, bias: bool, learn_z0: bool, nonlin: str) -> None:
    case = _case(cell, layers, bias, learn_z0, nonlin)
    fast = KPFlow(case.model, case.x, case.target, z0=case.z0)
    slow = KPFlow(case.model, case.x, case.target, z0=case.z0, fast=False)
    assert isinstance(fast.P.linearisation, LayeredLinearisation) and isinstance(fast.K, FactoredKernel)
    assert len(fast.P.linearisation.layers) == layers
    assert isinstance(slow.P.linearisation, AutodiffLinearisation)
    gen = torch.Generator().manual_seed(1)
    V = torch.randn(3, *fast.shape, generator=gen, dtype=F64)
    for op in ("K", "P", "G", "ntk"):
        A, R = getattr(fast, op), getattr(slow, op)
        W = V if op != "ntk" else torch.randn(3, *A.shape_in, generator=gen, dtype=F64)
        assert rel(A @ W, R @ W) <= TOL, op
    assert rel(fast.P.T @ V, slow.P.T @ V) <= TOL
    assert rel(fast.adjoint, slow.adjoint) <= TOL
    assert set(fast.K_groups) == set(slow.K_groups) == set(case.model.state_params())
    for name, op in fast.K_groups.items():
        a, b = op @ V, slow.K_groups[name] @ V
        if b.abs().max() == 0:  # z0's group with a constant z0
            assert a.abs().max() == 0, name
        else:
            assert rel(a, b) <= TOL, name
    rows, expected = fast.K.rows(V), slow.jacobian.vjp(V)
    for name in expected:
        assert rows[name].shape == expected[name].shape, name
        if expected[name].abs().max() > 0:
            assert rel(rows[name], expected[name]) <= TOL, name
    J = fast.K.gram_factor  # K = J Jᵀ, the factor the eigensolver may work with
    assert rel(J @ (J.T @ V), slow.K @ V) <= TOL
    F = fast.G.gram_factor  # G = (P J)(P J)ᵀ, with M folded into P for a stack
    assert rel(F @ (F.T @ V), slow.G @ V) <= TOL


@pytest.mark.parametrize(("cell", "layers"), [("rnn", 3), ("gru", 2), ("lstm", 3)])
def test_layered_G_is_the_dense_state_jacobian_gram(cell: str, layers: int) -> None:
    """G = (dz/dθ)(dz/dθ)ᵀ with dz/dθ from jacrev of the whole unrolled stack, and the adjoint
    identities ⟨A q, r⟩ = ⟨q, Aᵀ r⟩ for P, K and G."""
    case = _case(cell, layers, True, True, "tanh")
    kp = KPFlow(case.model, case.x, case.target)
    assert_dense_gram_and_adjoints(kp, case, TOL)


@pytest.mark.parametrize("lr", [1e-3])
def test_layered_step_check(lr: float) -> None:
    """One SGD step of a 2-layer LSTM moves z by −lr·G e to first order."""
    case = _case("lstm", 2, True, True, "tanh")
    kp = KPFlow(case.model, case.x, case.target)
    big, small = kp.step_check(lr), kp.step_check(lr / 10)
    assert small.rel_error < 0.2 * big.rel_error
    assert small.rel_error < 1e-3


@pytest.mark.parametrize(
    "module",
    [
        lambda: torch.nn.RNN(2, 3, num_layers=2, nonlinearity="relu", batch_first=True),
        lambda: torch.nn.GRU(2, 3, num_layers=1),
        lambda: torch.nn.GRU(2, 3, num_layers=3, bias=False, batch_first=True),
        lambda: torch.nn.LSTM(2, 3, num_layers=2, batch_first=True),
    ],
    ids=["rnn-relu-2", "gru-1", "gru-3-nobias", "lstm-2"],
)
def test_everything_from_torch_returns_gets_closed_forms(module) -> None:
    torch.manual_seed(0)
    mod = module().double()
    model = from_torch(mod, readout=torch.nn.Linear(3, 2).double())
    assert closed_form_kind(model) is not None
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 2, generator=gen, dtype=F64)
    target = torch.randn(2, 4, 2, generator=gen, dtype=F64)
    fast, slow = KPFlow(model, x, target), KPFlow(model, x, target, fast=False)
    assert isinstance(fast.K, FactoredKernel)
    V = torch.randn(2, *fast.shape, generator=gen, dtype=F64)
    assert rel(fast.G @ V, slow.G @ V) <= TOL


def test_a_subclass_with_its_own_step_is_not_closed_form() -> None:
    class Damped(StackedRNN):
        def step(self, theta, z_prev, x_t, t):
            return 0.9 * super().step(theta, z_prev, x_t, t)

    model = Damped("gru", 2, 3, 2, num_layers=2)
    assert closed_form_kind(model) is None
    assert closed_form_kind(StackedRNN("gru", 2, 3, 2, num_layers=2)) == "stacked-gru"
