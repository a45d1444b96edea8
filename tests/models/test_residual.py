from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.func import jvp

from gdlens.models import ResidualStack

F64 = torch.float64


def make(depth: int = 2, **kw: Any) -> ResidualStack:
    """A float64 ResidualStack (I=2, H=3, O=2) with non-zero biases (they start at zero)."""
    torch.manual_seed(0)
    model = ResidualStack(2, 3, 2, depth, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_()
    return model


def x_batch(b: int = 4, i: int = 2) -> torch.Tensor:
    return torch.randn(b, i, generator=torch.Generator().manual_seed(3), dtype=F64)


def test_two_layers_by_hand() -> None:
    model = make(depth=2)
    th, phi = model.state_params(), model.readout_params()
    x = x_batch()
    y, z = model(x)
    z0 = x @ th["embed.weight"].T + th["embed.bias"]
    z1 = z0 + torch.tanh(z0 @ th["weight"][0].T + th["bias"][0])
    z2 = z1 + torch.tanh(z1 @ th["weight"][1].T + th["bias"][1])
    assert z.shape == (4, 2, 3) and y.shape == (4, 1, 2)
    torch.testing.assert_close(z[:, 0], z1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(z[:, 1], z2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y[:, 0], z2 @ phi["readout.weight"].T + phi["readout.bias"], rtol=1e-12, atol=1e-12)


def test_two_layers_by_hand_two_layer_branch() -> None:
    model = make(depth=2, width=5, activation="relu")
    th = model.state_params()
    x = x_batch()
    _, z = model(x)
    h = x @ th["embed.weight"].T + th["embed.bias"]
    for layer in range(2):
        W, b, V = th["weight_in"][layer], th["bias_in"][layer], th["weight_out"][layer]
        h = h + torch.relu(h @ W.T + b) @ V.T
        torch.testing.assert_close(z[:, layer], h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("width", [None, 5])
def test_untied_weights(width: int | None) -> None:
    model = make(depth=3, width=width)
    name = "weight" if width is None else "weight_in"
    W = model.state_params()[name]
    assert W.shape[0] == 3
    assert not torch.allclose(W[0], W[1]) and not torch.allclose(W[1], W[2])
    x = x_batch()
    _, z = model(x)
    with torch.no_grad():
        W[1].add_(0.5)  # touch layer 2 only
    _, z_new = model(x)
    torch.testing.assert_close(z_new[:, 0], z[:, 0], rtol=0, atol=0)  # layer 1 does not read W[1]
    assert not torch.allclose(z_new[:, 1], z[:, 1])


def test_readout_reads_last_layer_only() -> None:
    model = make(depth=4)
    phi = model.readout_params()
    z = torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    y = model.read(phi, z)
    z2 = z.clone()
    z2[:, :-1] += 1.0
    torch.testing.assert_close(model.read(phi, z2), y, rtol=0, atol=0)
    assert y.shape == (4, 1, 2)


def test_initial_state_depends_on_theta() -> None:
    model = make(depth=2)
    theta = {n: p.detach() for n, p in model.state_params().items()}
    assert "embed.weight" in theta and "embed.bias" in theta
    x = x_batch()
    tangent = {n: torch.zeros_like(p) for n, p in theta.items()}
    tangent["embed.weight"] = torch.ones_like(theta["embed.weight"])
    _, dz0 = jvp(lambda th: model.initial_state(th, x), (theta,), (tangent,))
    torch.testing.assert_close(dz0, x.sum(dim=1, keepdim=True).expand(-1, 3))


def test_steps_take_no_input() -> None:
    model = make(depth=5)
    x = x_batch()
    assert model.num_steps(x) == 5
    assert model.step_inputs(x).shape == (5, 4, 0)
    with pytest.raises(ValueError, match="1..5"):
        model.step(model.state_params(), torch.zeros(4, 3, dtype=F64), torch.zeros(4, 0, dtype=F64), 6)


@pytest.mark.parametrize("width", [None, 5])
@pytest.mark.parametrize("t", [1, 3])
def test_functional(functional_checks, width: int | None, t: int) -> None:
    functional_checks(make(depth=3, width=width), t=t)


def test_float32(float32_check) -> None:
    float32_check(make(), x_batch())


def test_g_scaling(g_scaling_check) -> None:
    check_g_scaling = g_scaling_check
    check_g_scaling(lambda g: ResidualStack(2, 64, 1, 4, g=g), "weight", (64 * 4) ** -0.5)
    check_g_scaling(lambda g: ResidualStack(2, 64, 1, 4, width=96, g=g), "weight_in", 64**-0.5)
    torch.manual_seed(0)
    w_out = ResidualStack(2, 64, 1, 4, width=96, g=3.0).state_params()["weight_out"]
    assert w_out.std().item() == pytest.approx((96 * 4) ** -0.5, rel=0.05)  # g-independent


@pytest.mark.parametrize(("activation", "width"), [("tanh", None), ("tanh", 48), ("relu", 48)])
def test_deep_stack_does_not_explode(activation: str, width: int | None) -> None:
    """With the 1/sqrt(depth) init, ||z_depth|| / ||z_0|| stays O(1) at depth 200."""
    torch.manual_seed(0)
    model = ResidualStack(8, 64, 1, depth=200, width=width, activation=activation).double()
    x = torch.randn(16, 8, dtype=F64)
    _, z = model(x)
    z0 = model.initial_state(model.state_params(), x)
    ratio = z[:, -1].norm(dim=-1) / z0.norm(dim=-1)
    assert ratio.min().item() > 0.5 and ratio.max().item() < 3.0


def test_z0(z0_check) -> None:
    z0_check(make(), x_batch())


def test_bad_inputs() -> None:
    model = make()
    with pytest.raises(ValueError, match=r"ResidualStack expects x of shape \(B, 2\), got \(4, 5, 2\)"):
        model(torch.zeros(4, 5, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"got \(4, 3\)"):
        model(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"'relu'.*'tanh'"):
        ResidualStack(2, 3, 2, 2, activation="elu")
    with pytest.raises(ValueError, match="depth"):
        ResidualStack(2, 3, 2, 0)
