"""The ``StateSpace`` protocol, the pure readout's name ``read``, and the deprecation path for
custom cells that still define it as a method ``readout``."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

import gdlens as gd
from gdlens.models import MLP, RNN, Params, StateSpace, StateSpaceModel

F64 = torch.float64


def test_every_state_space_model_follows_the_protocol() -> None:
    made = [
        gd.models.RNN(2, 3, 2), gd.models.GRU(2, 3, 2), gd.models.LSTM(2, 3, 2), gd.models.NeuralODE(2, 3, 2),
        gd.models.ResidualStack(2, 3, 2, depth=2), gd.models.StackedRNN("gru", 2, 3, 2), gd.models.LRU(2, 3, 2), gd.models.SelectiveLRU(2, 3, 2),
        gd.models.from_torch(nn.RNN(2, 3)),
    ]
    for model in made:
        assert isinstance(model, StateSpace), type(model).__name__
        assert isinstance(model.readout, nn.Linear)
        assert "readout" not in vars(type(model)) and "readout" not in vars(StateSpaceModel)
    assert not isinstance(MLP(2, 3, 2), StateSpace)
    assert gd.models.StateSpace is StateSpace


def test_the_flow_asks_for_read() -> None:
    from gdlens.flow.structure import REQUIRED_ATTRIBUTES

    assert "read" in REQUIRED_ATTRIBUTES and "readout" not in REQUIRED_ATTRIBUTES


def _legacy_cell() -> type[StateSpaceModel]:
    """A custom cell written against the old name: its pure readout is a method ``readout``
    (y = C tanh(z) + d, so that the default affine ``read`` would give other numbers)."""

    class LegacyCell(StateSpaceModel):
        def __init__(self, input_size: int = 2, hidden_size: int = 4, output_size: int = 3) -> None:
            super().__init__()
            self.input_size, self.state_size, self.output_size = input_size, hidden_size, output_size
            self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size**0.5)
            self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size))
            self.readout = nn.Linear(hidden_size, output_size)

        def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
            return torch.tanh(z_prev @ theta["weight_hh"].T + x_t @ theta["weight_ih"].T)

        def readout(self, phi: Params, z: Tensor) -> Tensor:  # the old name
            return torch.nn.functional.linear(torch.tanh(z), phi["readout.weight"], phi["readout.bias"])

    return LegacyCell


def test_a_legacy_readout_method_warns_and_becomes_read() -> None:
    with pytest.warns(DeprecationWarning, match=r"LegacyCell\.readout.*rename the method to 'read'") as record:
        cls = _legacy_cell()
    assert record[0].filename == __file__  # points at the class statement
    assert "readout" not in vars(cls) and "read" in vars(cls)
    torch.manual_seed(0)
    model = cls().to(F64)
    assert isinstance(model.readout, nn.Linear)  # the submodule is reachable again
    assert isinstance(model, StateSpace)
    x = torch.randn(5, 6, 2, dtype=F64)
    y, z = model(x)
    phi = model.readout_params()
    torch.testing.assert_close(y, torch.tanh(z) @ phi["readout.weight"].T + phi["readout.bias"], rtol=0, atol=1e-14)
    torch.testing.assert_close(functional_call(model, dict(model.named_parameters()), (x,))[0], y, rtol=0, atol=0)


def test_the_flow_runs_on_a_legacy_cell() -> None:
    with pytest.warns(DeprecationWarning):
        cls = _legacy_cell()
    torch.manual_seed(0)
    model = cls().to(F64)
    x = torch.randn(3, 5, 2, dtype=F64)
    target = torch.randn(3, 5, 3, dtype=F64)
    flow = gd.flow.KPFlow(model, x, target)
    torch.testing.assert_close(flow.output, model(x)[0], rtol=0, atol=0)
    check = flow.step_check(1e-4)
    assert check.rel_error < 1e-2


def test_a_class_defining_both_keeps_its_read() -> None:
    with pytest.warns(DeprecationWarning, match="Both"):

        class Both(RNN):
            def read(self, phi: Params, z: Tensor) -> Tensor:
                return 2 * super().read(phi, z)

            def readout(self, phi: Params, z: Tensor) -> Tensor:  # pragma: no cover - never called
                raise AssertionError("the old method must not replace read")

    torch.manual_seed(0)
    model = Both(2, 3, 2).to(F64)
    x = torch.randn(2, 4, 2, dtype=F64)
    y, z = model(x)
    torch.testing.assert_close(y, 2 * RNN.read(model, model.readout_params(), z), rtol=0, atol=0)
    assert isinstance(model.readout, nn.Linear)


def test_new_style_cells_and_subclasses_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Scaled(RNN):
            def read(self, phi: Params, z: Tensor) -> Tensor:
                return super().read(phi, z) / 2

        class WithAReadoutModule(StateSpaceModel):  # a class-level nn.Module is not a method
            readout = nn.Identity()

    assert isinstance(vars(WithAReadoutModule)["readout"], nn.Identity)
    torch.manual_seed(0)
    model = Scaled(2, 3, 2)
    assert isinstance(model.readout, nn.Linear)
