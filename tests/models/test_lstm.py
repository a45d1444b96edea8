from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gdlens.models import LSTM

F64 = torch.float64
H = 5


def make(**kw: Any) -> LSTM:
    """A float64 LSTM with non-zero biases (they start at zero)."""
    torch.manual_seed(0)
    model = LSTM(3, H, 2, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_()
    return model


def x_batch(b: int = 4, t: int = 6, i: int = 3) -> torch.Tensor:
    return torch.randn(b, t, i, generator=torch.Generator().manual_seed(3), dtype=F64)


@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_lstm(bias: bool) -> None:
    model = make(bias=bias)
    ref = nn.LSTM(3, H, bias=bias, batch_first=True).double()
    with torch.no_grad():
        for name, p in model.state_params().items():
            getattr(ref, name + "_l0").copy_(p)
    x = x_batch()
    _, z = model(x)
    out, (h_n, c_n) = ref(x)
    assert z.shape == (4, 6, 2 * H) and model.state_size == 2 * H
    torch.testing.assert_close(z[..., :H], out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(z[:, -1, H:], c_n[0], rtol=1e-12, atol=1e-12)
    # a torch initial state (h0, c0) is z0 = concat(h0, c0)
    gen = torch.Generator().manual_seed(5)
    h0, c0 = torch.randn(2, 1, 4, H, generator=gen, dtype=F64)
    _, z = model(x, torch.cat([h0[0], c0[0]], dim=-1))
    torch.testing.assert_close(z[..., :H], ref(x, (h0, c0))[0], rtol=1e-12, atol=1e-12)


def test_readout_reads_h_only() -> None:
    model = make()
    phi = model.readout_params()
    z = torch.randn(4, 6, 2 * H, generator=torch.Generator().manual_seed(6), dtype=F64)
    y = model.read(phi, z)
    torch.testing.assert_close(y, z[..., :H] @ phi["readout.weight"].T + phi["readout.bias"])
    z2 = z.clone()
    z2[..., H:] += 1.0
    torch.testing.assert_close(model.read(phi, z2), y, rtol=0, atol=0)
    assert phi["readout.weight"].shape == (2, H)


def test_functional(functional_checks) -> None:
    functional_checks(make())
    functional_checks(make(bias=False))


def test_float32(float32_check) -> None:
    float32_check(make(), x_batch())


def test_g_scales_recurrent_weights(g_scaling_check) -> None:
    g_scaling_check(lambda g: LSTM(3, 128, 2, g=g), "weight_hh", 128**-0.5)


def test_parameter_shapes() -> None:
    model = LSTM(3, H, 2, learn_z0=True)
    shapes = {n: tuple(p.shape) for n, p in model.state_params().items()}
    assert shapes == {"weight_ih": (20, 3), "weight_hh": (20, H), "bias_ih": (20,), "bias_hh": (20,), "z0": (2 * H,)}


def test_z0(z0_check) -> None:
    z0_check(make(), x_batch())


def test_learn_z0(learn_z0_check) -> None:
    learn_z0_check(make(learn_z0=True), x_batch())


def test_bad_inputs() -> None:
    model = make()
    with pytest.raises(ValueError, match=r"LSTM expects x of shape \(B, T, 3\), got \(4, 5\)"):
        model(torch.zeros(4, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"z0 has shape \(4, 5\)"):  # H instead of 2H
        model(x_batch(), torch.zeros(4, H, dtype=F64))
