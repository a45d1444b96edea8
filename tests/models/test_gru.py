from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gdlens.models import GRU

F64 = torch.float64


def make(**kw: Any) -> GRU:
    """A float64 GRU with non-zero biases (they start at zero)."""
    torch.manual_seed(0)
    model = GRU(3, 5, 2, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_()
    return model


def x_batch(b: int = 4, t: int = 6, i: int = 3) -> torch.Tensor:
    return torch.randn(b, t, i, generator=torch.Generator().manual_seed(3), dtype=F64)


@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_gru(bias: bool) -> None:
    model = make(bias=bias)
    ref = nn.GRU(3, 5, bias=bias, batch_first=True).double()
    with torch.no_grad():
        for name, p in model.state_params().items():
            getattr(ref, name + "_l0").copy_(p)
    x = x_batch()
    _, z = model(x)
    out, h_n = ref(x)
    torch.testing.assert_close(z, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(z[:, -1], h_n[0], rtol=1e-12, atol=1e-12)


def test_step_by_hand() -> None:
    """The gate equations written out with gate blocks (r, z, n) sliced by hand."""
    model = make()
    th = model.state_params()
    gen = torch.Generator().manual_seed(4)
    h = torch.randn(4, 5, generator=gen, dtype=F64)
    x = torch.randn(4, 3, generator=gen, dtype=F64)
    H = 5
    W_i, W_h, b_i, b_h = th["weight_ih"], th["weight_hh"], th["bias_ih"], th["bias_hh"]
    blk = lambda W, k: W[k * H : (k + 1) * H]  # noqa: E731
    r = torch.sigmoid(x @ blk(W_i, 0).T + blk(b_i, 0) + h @ blk(W_h, 0).T + blk(b_h, 0))
    u = torch.sigmoid(x @ blk(W_i, 1).T + blk(b_i, 1) + h @ blk(W_h, 1).T + blk(b_h, 1))
    n = torch.tanh(x @ blk(W_i, 2).T + blk(b_i, 2) + r * (h @ blk(W_h, 2).T + blk(b_h, 2)))
    torch.testing.assert_close(model.step(th, h, x, 1), (1 - u) * n + u * h, rtol=1e-12, atol=1e-12)


def test_functional(functional_checks) -> None:
    functional_checks(make())
    functional_checks(make(bias=False))


def test_float32(float32_check) -> None:
    float32_check(make(), x_batch())


def test_g_scales_recurrent_weights(g_scaling_check) -> None:
    g_scaling_check(lambda g: GRU(3, 128, 2, g=g), "weight_hh", 128**-0.5)


def test_parameter_shapes() -> None:
    model = GRU(3, 5, 2, learn_z0=True)
    shapes = {n: tuple(p.shape) for n, p in model.state_params().items()}
    assert shapes == {"weight_ih": (15, 3), "weight_hh": (15, 5), "bias_ih": (15,), "bias_hh": (15,), "z0": (5,)}
    assert set(model.readout_params()) == {"readout.weight", "readout.bias"}
    assert set(GRU(3, 5, 2, bias=False).state_params()) == {"weight_ih", "weight_hh"}


def test_z0(z0_check) -> None:
    z0_check(make(), x_batch())


def test_learn_z0(learn_z0_check) -> None:
    learn_z0_check(make(learn_z0=True), x_batch())


def test_bad_inputs() -> None:
    model = make()
    with pytest.raises(ValueError, match=r"GRU expects x of shape \(B, T, 3\), got \(4, 5\)"):
        model(torch.zeros(4, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"got \(4, 5, 7\)"):
        model(torch.zeros(4, 5, 7, dtype=F64))
    with pytest.raises(ValueError, match="hidden_size"):
        GRU(3, 0, 2)
