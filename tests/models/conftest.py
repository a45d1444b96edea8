"""Shared checks for every StateSpaceModel (exposed as fixtures returning functions)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.func import jacrev, jvp, vjp, vmap

from gdlens.models import ResidualStack, StateSpaceModel

F64 = torch.float64


def _inputs(model: StateSpaceModel, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """A state z (B, H) and a step input x_t (B, I) in float64."""
    z = torch.randn(batch, model.state_size, generator=gen, dtype=F64)
    x_t = torch.randn(batch, model.input_size, generator=gen, dtype=F64)
    return z, x_t


def check_functional(model: StateSpaceModel, t: int = 1, batch: int = 3, k: int = 4) -> None:
    """``step`` is pure in θ and works under vmap / jvp / vjp / jacrev (float64 model)."""
    gen = torch.Generator().manual_seed(1)
    theta = {n: p.detach() for n, p in model.state_params().items()}
    z, x_t = _inputs(model, batch, gen)
    z_copy = z.clone()

    def f(zz: Tensor) -> Tensor:
        return model.step(theta, zz, x_t, t)

    out = f(z)
    assert out.shape == z.shape and out.dtype == F64
    assert torch.equal(z, z_copy), "step modified z_prev in place"

    # vmap over jvp tangents == loop
    V = torch.randn(k, *z.shape, generator=gen, dtype=F64)
    batched = vmap(lambda v: jvp(f, (z,), (v,))[1])(V)
    looped = torch.stack([jvp(f, (z,), (v,))[1] for v in V])
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)
    assert batched.abs().max() > 0

    # jacrev agrees with the jvp columns
    jac = jacrev(f)(z).reshape(z.numel(), z.numel())
    torch.testing.assert_close(jac @ V.reshape(k, -1).T, looped.reshape(k, -1).T, rtol=1e-10, atol=1e-12)

    # vmap over z_prev itself == loop
    Z = torch.randn(k, *z.shape, generator=gen, dtype=F64)
    torch.testing.assert_close(vmap(f)(Z), torch.stack([f(zz) for zz in Z]), rtol=1e-12, atol=1e-12)

    # vmap over vjp cotangents w.r.t. θ == loop
    _, pull = vjp(lambda th: model.step(th, z, x_t, t), theta)
    U = torch.randn(k, *z.shape, generator=gen, dtype=F64)
    batched_g = vmap(pull)(U)[0]
    for i, u in enumerate(U):
        for name, grad in pull(u)[0].items():
            torch.testing.assert_close(batched_g[name][i], grad, rtol=1e-12, atol=1e-12)

    # the whole unroll (initial_state included) under vmap over jvp tangents in θ == loop
    shape = (batch, model.input_size) if isinstance(model, ResidualStack) else (batch, 3, model.input_size)
    x = torch.randn(*shape, generator=gen, dtype=F64)
    tangents = [{n: torch.randn(p.shape, generator=gen, dtype=F64) for n, p in theta.items()} for _ in range(k)]
    stacked = {n: torch.stack([tg[n] for tg in tangents]) for n in theta}
    run = lambda tg: jvp(lambda th: model.unroll(th, x), (theta,), (tg,))[1]  # noqa: E731
    torch.testing.assert_close(vmap(run)(stacked), torch.stack([run(tg) for tg in tangents]), rtol=1e-12, atol=1e-12)

    # step reads θ, not the module's own parameters
    theta2 = {n: p + 0.1 * torch.randn(p.shape, generator=gen, dtype=F64) for n, p in theta.items()}
    out2 = model.step(theta2, z, x_t, t)
    assert not torch.allclose(out, out2)
    with torch.no_grad():
        for name, p in model.state_params().items():
            p.copy_(theta2[name])
    torch.testing.assert_close(model.step(model.state_params(), z, x_t, t), out2, rtol=0, atol=0)


def check_float32(model: StateSpaceModel, x: Tensor) -> None:
    """The model runs in float32 and its outputs are float32."""
    model = model.float()
    y, z = model(x.float())
    assert y.dtype == torch.float32 and z.dtype == torch.float32
    assert torch.isfinite(y).all()


def check_g_scaling(make: Callable[[float], StateSpaceModel], name: str, std_over_g: float) -> None:
    """``make(g)`` builds a model whose parameter ``name`` has empirical std ≈ g·std_over_g."""
    for g in (0.5, 2.0):
        torch.manual_seed(0)
        w = make(g).state_params()[name].detach()
        assert abs(w.mean().item()) < 0.05 * g * std_over_g
        assert w.std().item() == pytest.approx(g * std_over_g, rel=0.05)


def check_z0(model: StateSpaceModel, x: Tensor) -> None:
    """forward(x, z0) starts from z0 and a wrong z0 shape raises a ValueError with the shape."""
    gen = torch.Generator().manual_seed(2)
    z0 = torch.randn(x.shape[0], model.state_size, generator=gen, dtype=F64)
    theta = model.state_params()
    _, z = model(x, z0)
    inputs = model.step_inputs(x)
    expected = model.step(theta, z0, inputs[0], 1)
    torch.testing.assert_close(z[:, 0], expected, rtol=0, atol=0)
    _, z_default = model(x)
    assert not torch.allclose(z[:, 0], z_default[:, 0])
    bad = torch.zeros(x.shape[0], model.state_size + 1, dtype=F64)
    with pytest.raises(ValueError, match=str(tuple(bad.shape)).replace("(", r"\(").replace(")", r"\)")):
        model(x, bad)
    with pytest.raises(ValueError, match=r"\(%d,\)" % model.state_size):
        model(x, torch.zeros(model.state_size, dtype=F64))


def check_learn_z0(model: StateSpaceModel, x: Tensor) -> None:
    """learn_z0 puts ``z0`` into θ, z_0 equals it, and the loss has a gradient w.r.t. it."""
    assert "z0" in model.state_params() and "z0" not in model.readout_params()
    assert model.state_params()["z0"].shape == (model.state_size,)
    with torch.no_grad():
        model.state_params()["z0"].normal_()
    z0 = model.initial_state(model.state_params(), x)
    torch.testing.assert_close(z0, model.state_params()["z0"].expand(x.shape[0], -1))
    y, _ = model(x)
    y.square().sum().backward()
    assert model.state_params()["z0"].grad.abs().max() > 0


@pytest.fixture
def functional_checks() -> Callable[..., None]:
    return check_functional


@pytest.fixture
def float32_check() -> Callable[..., None]:
    return check_float32


@pytest.fixture
def g_scaling_check() -> Callable[..., None]:
    return check_g_scaling


@pytest.fixture
def z0_check() -> Callable[..., None]:
    return check_z0


@pytest.fixture
def learn_z0_check() -> Callable[..., None]:
    return check_learn_z0
