"""Bad input fails loudly, naming the shapes, dtypes or attributes at fault."""

from __future__ import annotations

import re

import pytest
import torch
from flow_helpers import F64, make_case

from gdlens.flow import KPFlow
from gdlens.models import RNN, StateSpaceModel


def _shape(s: tuple[int, ...]) -> str:
    return re.escape(str(s))


def test_wrong_input_width() -> None:
    case = make_case("rnn-tanh")
    x = torch.randn(2, 4, 5, dtype=F64)
    with pytest.raises(ValueError, match=_shape((2, 4, 5))):
        KPFlow(case.model, x, case.target)


def test_wrong_target_shape_mse() -> None:
    case = make_case("rnn-tanh")
    target = torch.randn(2, 4, 7, dtype=F64)
    with pytest.raises(ValueError, match=_shape((2, 4, 7))) as info:
        KPFlow(case.model, case.x, target, z0=case.z0)
    assert str((2, 4, 2)) in str(info.value)  # the output y's shape is named too


def test_wrong_target_cross_entropy() -> None:
    case = make_case("rnn-tanh")
    with pytest.raises(ValueError, match=_shape((2, 3))):
        KPFlow(case.model, case.x, torch.zeros(2, 3, dtype=torch.long), loss="cross_entropy", z0=case.z0)
    with pytest.raises(ValueError, match="0..1"):
        KPFlow(case.model, case.x, torch.full((2, 4), 5, dtype=torch.long), loss="cross_entropy", z0=case.z0)


def test_wrong_z0_shape() -> None:
    case = make_case("rnn-tanh")
    with pytest.raises(ValueError, match=_shape((3, 3))):
        KPFlow(case.model, case.x, case.target, z0=torch.zeros(3, 3, dtype=F64))


def test_dtype_mismatch() -> None:
    case = make_case("rnn-tanh")
    with pytest.raises(ValueError, match="float32"):
        KPFlow(case.model, case.x.float(), case.target, z0=case.z0)


def test_unknown_loss_and_non_scalar_loss() -> None:
    case = make_case("rnn-tanh")
    with pytest.raises(ValueError, match="huber"):
        KPFlow(case.model, case.x, case.target, loss="huber")
    with pytest.raises(ValueError, match="scalar"):
        KPFlow(case.model, case.x, case.target, loss=lambda y, t: (y - t) ** 2)


def test_not_a_model() -> None:
    case = make_case("rnn-tanh")
    with pytest.raises(TypeError, match="'step'"):
        KPFlow(torch.nn.Linear(2, 2), case.x, case.target)
    with pytest.raises(TypeError, match="'state_params'"):
        KPFlow(object(), case.x, case.target)


def test_model_without_step() -> None:
    class NoStep(StateSpaceModel):
        def __init__(self) -> None:
            super().__init__()
            self.state_size, self.input_size, self.output_size = 3, 2, 2
            self.w = torch.nn.Parameter(torch.zeros(3, 3, dtype=F64))
            self.readout = torch.nn.Linear(3, 2).double()

    case = make_case("rnn-tanh")
    with pytest.raises(TypeError, match="'step'"):
        KPFlow(NoStep(), case.x, case.target)


class _RoundRNN(RNN):
    def step(self, theta, z_prev, x_t, t):
        return torch.round(super().step(theta, z_prev, x_t, t) * 4)


class _ArgmaxRNN(RNN):
    def step(self, theta, z_prev, x_t, t):
        pre = super().step(theta, z_prev.to(theta["weight_hh"].dtype), x_t, t)
        return pre.argmax(-1, keepdim=True).expand_as(z_prev)  # an integer state


class _OneHotRNN(RNN):
    def step(self, theta, z_prev, x_t, t):
        pre = super().step(theta, z_prev, x_t, t)
        return torch.nn.functional.one_hot(pre.argmax(-1), pre.shape[-1]).to(pre.dtype)


class _InputOnlyRNN(RNN):
    """Reads no parameter: its output does not depend on θ."""

    def step(self, theta, z_prev, x_t, t):
        return torch.tanh(0.5 * z_prev + x_t.sum(-1, keepdim=True))


def _same_weights(cls: type[RNN]) -> RNN:
    base = make_case("rnn-tanh").model
    model = cls(2, 3, 2).double()
    model.load_state_dict(base.state_dict())
    return model


@pytest.mark.parametrize("cls", [_RoundRNN, _OneHotRNN, _InputOnlyRNN], ids=["round", "argmax-one-hot", "no-theta"])
def test_zero_jacobian_raises_or_warns(cls: type[RNN]) -> None:
    case = make_case("rnn-tanh")
    model = _same_weights(cls)
    with pytest.raises(ValueError, match="Jacobian") as info:
        KPFlow(model, case.x, case.target, z0=case.z0)
    assert "weight_hh" in str(info.value)
    with pytest.warns(UserWarning, match="Jacobian"):
        kp = KPFlow(model, case.x, case.target, z0=case.z0, strict=False)
    assert (kp.K @ kp.error).abs().max() == 0


def test_integer_state_raises() -> None:
    case = make_case("rnn-tanh")
    model = _same_weights(_ArgmaxRNN)
    with pytest.raises(ValueError, match="int64"):
        KPFlow(model, case.x, case.target, z0=case.z0)


@pytest.mark.parametrize("where", ["x", "target", "z0", "weight_hh", "readout.weight"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_input_is_named_with_its_first_index(where: str, bad: float) -> None:
    case = make_case("gru")
    x, target, z0 = case.x.clone(), case.target.clone(), case.z0.clone()
    model = case.model
    if where == "x":
        x[1, 2, 0] = bad
    elif where == "target":
        target[1, 2, 0] = bad
    elif where == "z0":
        z0[1, 2] = bad
    else:
        with torch.no_grad():
            dict(model.named_parameters())[where][1, 2] = bad
    index = "(1, 2, 0)" if where in ("x", "target") else "(1, 2)"
    with pytest.raises(ValueError, match=re.escape(where) + r".*non-finite.*" + re.escape(index)):
        KPFlow(model, x, target, z0=z0)


def test_states_that_overflow_are_refused() -> None:
    """A linear RNN with a huge recurrent weight overflows to inf: refused, naming the states."""
    model = RNN(2, 3, 2, nonlinearity="linear").double()
    with torch.no_grad():
        model.weight_hh.copy_(torch.eye(3, dtype=F64) * 1e200)
    x = torch.ones(1, 5, 2, dtype=F64)
    with pytest.raises(ValueError, match="states z.*non-finite"):
        KPFlow(model, x, torch.zeros(1, 5, 2, dtype=F64))
