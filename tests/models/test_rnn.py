from __future__ import annotations

from typing import Any

import pytest
import torch

from gdlens.models import RNN

F64 = torch.float64


def make(**kw: Any) -> RNN:
    """A float64 RNN with non-zero biases (they start at zero)."""
    torch.manual_seed(0)
    model = RNN(3, 5, 2, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_()
    return model


def x_batch(b: int = 4, t: int = 6, i: int = 3) -> torch.Tensor:
    return torch.randn(b, t, i, generator=torch.Generator().manual_seed(3), dtype=F64)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "linear"])
def test_step_by_hand(nonlinearity: str) -> None:
    model = make(nonlinearity=nonlinearity)
    th = model.state_params()
    x = x_batch()
    _, z = model(x)
    act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda a: a}[nonlinearity]
    h = torch.zeros(4, 5, dtype=F64)
    for t in range(x.shape[1]):
        pre = torch.einsum("ij,bj->bi", th["weight_hh"], h) + torch.einsum("ij,bj->bi", th["weight_ih"], x[:, t])
        h = act(pre + th["bias"])
        torch.testing.assert_close(z[:, t], h, rtol=1e-12, atol=1e-12)
    y, _ = model(x)
    torch.testing.assert_close(y, z @ model.readout_params()["readout.weight"].T + model.readout_params()["readout.bias"])


def test_functional(functional_checks) -> None:
    functional_checks(make())
    functional_checks(make(bias=False, nonlinearity="relu"))


def test_float32(float32_check) -> None:
    float32_check(make(), x_batch())


def test_g_scales_recurrent_weights(g_scaling_check) -> None:
    g_scaling_check(lambda g: RNN(3, 200, 2, g=g), "weight_hh", 200**-0.5)


def test_z0(z0_check) -> None:
    z0_check(make(), x_batch())


def test_learn_z0(learn_z0_check) -> None:
    learn_z0_check(make(learn_z0=True), x_batch())
    assert "z0" not in make().state_params()


def test_bad_inputs() -> None:
    model = make()
    with pytest.raises(ValueError, match=r"RNN expects x of shape \(B, T, 3\), got \(4, 5\)"):
        model(torch.zeros(4, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"\(4, 5, 2\)"):
        model(torch.zeros(4, 5, 2, dtype=F64))
    with pytest.raises(ValueError, match="tanh"):
        RNN(3, 5, 2, nonlinearity="softsign")


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="output_size"):
        RNN(2, 4, 0)
    with pytest.raises(ValueError, match="hidden_size"):
        RNN(2, 0, 1)
