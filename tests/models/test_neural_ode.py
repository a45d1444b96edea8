from __future__ import annotations

from typing import Any

import pytest
import torch

from gdlens.models import NeuralODE

F64 = torch.float64


def make(**kw: Any) -> NeuralODE:
    """A float64 NeuralODE with non-zero biases (they start at zero)."""
    torch.manual_seed(0)
    model = NeuralODE(3, 4, 2, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_(0.0, 0.5)
    return model


def x_batch(b: int = 4, t: int = 5, i: int = 3) -> torch.Tensor:
    return torch.randn(b, t, i, generator=torch.Generator().manual_seed(3), dtype=F64)


def v_by_hand(th: dict[str, torch.Tensor], z: torch.Tensor, x: torch.Tensor, act=torch.tanh) -> torch.Tensor:
    """The MLP on [z, x], written with one concatenated first-layer weight."""
    W1 = torch.cat([th["weight_z"], th["weight_x"]], dim=1)
    a = act(torch.cat([z, x], dim=-1) @ W1.T + th["bias_in"])
    if "weight_hidden" in th:
        for W, b in zip(th["weight_hidden"], th["bias_hidden"]):
            a = act(a @ W.T + b)
    return a @ th["weight_out"].T + th["bias_out"]


def test_euler_one_substep_by_hand() -> None:
    model = make(method="euler", dt=0.3)
    th = model.state_params()
    x = x_batch()
    _, z = model(x)
    h = torch.zeros(4, 4, dtype=F64)
    for t in range(x.shape[1]):
        h = h + 0.3 * v_by_hand(th, h, x[:, t])
        torch.testing.assert_close(z[:, t], h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2])
def test_rk4_substeps_by_hand_with_x_held_constant(depth: int) -> None:
    dt, substeps = 0.2, 3
    model = make(method="rk4", dt=dt, substeps=substeps, depth=depth, width=6)
    th = model.state_params()
    x = x_batch()
    z0 = torch.randn(4, 4, generator=torch.Generator().manual_seed(7), dtype=F64)
    _, z = model(x, z0)
    h = z0
    for t in range(x.shape[1]):
        xt = x[:, t]
        for _ in range(substeps):
            k1 = v_by_hand(th, h, xt)
            k2 = v_by_hand(th, h + dt / 2 * k1, xt)
            k3 = v_by_hand(th, h + dt / 2 * k2, xt)
            k4 = v_by_hand(th, h + dt * k3, xt)
            h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        torch.testing.assert_close(z[:, t], h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.vector_field(th, z0, x[:, 0]), v_by_hand(th, z0, x[:, 0]))


def linear_field_model(A: torch.Tensor, method: str, dt: float, substeps: int = 1) -> NeuralODE:
    """A NeuralODE whose vector field is v(z, x) = A z (linear activation, W_z = I, W_out = A)."""
    n = A.shape[0]
    model = NeuralODE(3, n, 1, width=n, activation="linear", method=method, dt=dt, substeps=substeps).double()
    with torch.no_grad():
        th = model.state_params()
        th["weight_z"].copy_(torch.eye(n))
        th["weight_x"].zero_()
        th["bias_in"].zero_()
        th["weight_out"].copy_(A)
        th["bias_out"].zero_()
    return model


def one_step_error(A: torch.Tensor, z0: torch.Tensor, method: str, dt: float, substeps: int = 1) -> float:
    model = linear_field_model(A, method, dt, substeps)
    x = torch.zeros(z0.shape[0], 1, 3, dtype=F64)
    _, z = model(x, z0)
    exact = z0 @ torch.linalg.matrix_exp(A * dt * substeps).T
    return (z[:, 0] - exact).norm().item()


@pytest.fixture
def linear_system() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(8)
    A = torch.randn(4, 4, generator=gen, dtype=F64) / 2
    z0 = torch.randn(3, 4, generator=gen, dtype=F64)
    return A, z0


def test_rk4_local_error_is_fifth_order(linear_system) -> None:
    A, z0 = linear_system
    e1, e2 = one_step_error(A, z0, "rk4", 0.1), one_step_error(A, z0, "rk4", 0.05)
    assert e1 / e2 == pytest.approx(32, rel=0.1)


def test_rk4_global_error_is_fourth_order(linear_system) -> None:
    A, z0 = linear_system
    e1, e2 = one_step_error(A, z0, "rk4", 0.1, 4), one_step_error(A, z0, "rk4", 0.05, 8)
    assert e1 / e2 == pytest.approx(16, rel=0.1)


def test_euler_local_error_is_second_order(linear_system) -> None:
    A, z0 = linear_system
    e1, e2 = one_step_error(A, z0, "euler", 0.01), one_step_error(A, z0, "euler", 0.005)
    assert e1 / e2 == pytest.approx(4, rel=0.1)


def test_parameter_names() -> None:
    assert set(NeuralODE(3, 4, 2, width=6).state_params()) == {
        "weight_z", "weight_x", "bias_in", "weight_out", "bias_out"
    }
    shapes = {n: tuple(p.shape) for n, p in NeuralODE(3, 4, 2, width=6, depth=3, learn_z0=True).state_params().items()}
    assert shapes == {
        "weight_z": (6, 4), "weight_x": (6, 3), "bias_in": (6,), "weight_hidden": (2, 6, 6),
        "bias_hidden": (2, 6), "weight_out": (4, 6), "bias_out": (4,), "z0": (4,),
    }


@pytest.mark.parametrize("kw", [{}, {"method": "euler", "substeps": 2}, {"depth": 2, "activation": "softplus"}])
def test_functional(functional_checks, kw) -> None:
    functional_checks(make(**kw))


def test_float32(float32_check) -> None:
    float32_check(make(), x_batch())


def test_g_scales_first_layer_z_block(g_scaling_check) -> None:
    g_scaling_check(lambda g: NeuralODE(3, 128, 2, width=128, g=g), "weight_z", 128**-0.5)
    torch.manual_seed(0)
    a = NeuralODE(3, 16, 2, g=0.5).state_params()
    torch.manual_seed(0)
    b = NeuralODE(3, 16, 2, g=2.0).state_params()
    torch.testing.assert_close(b["weight_z"], 4 * a["weight_z"])
    for name in ("weight_x", "weight_out"):  # g scales the z-block only
        torch.testing.assert_close(b[name], a[name])


def test_z0(z0_check) -> None:
    z0_check(make(), x_batch())


def test_learn_z0(learn_z0_check) -> None:
    learn_z0_check(make(learn_z0=True), x_batch())


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"NeuralODE expects x of shape \(B, T, 3\), got \(4, 5\)"):
        make()(torch.zeros(4, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"'euler', 'rk4'"):
        NeuralODE(3, 4, 2, method="dopri5")
    with pytest.raises(ValueError, match=r"'relu'.*'tanh'"):
        NeuralODE(3, 4, 2, activation="swish")
    with pytest.raises(ValueError, match="dt"):
        NeuralODE(3, 4, 2, dt=0.0)
    with pytest.raises(ValueError, match="substeps"):
        NeuralODE(3, 4, 2, substeps=0)
