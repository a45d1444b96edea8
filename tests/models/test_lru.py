"""The diagonal recurrences LRU and SelectiveLRU: their steps against the papers' equations
written with complex numbers, stability by construction, and clear errors for bad arguments."""

from __future__ import annotations

import pytest
import torch

from gdlens.models import LRU, SelectiveLRU, StackedLRU

F64 = torch.float64


def test_lru_is_the_complex_recurrence() -> None:
    """x_t = λ x_{t−1} + exp(γ) (B u_t) in complex arithmetic (arXiv 2303.06349), z = (Re x, Im x)."""
    torch.manual_seed(0)
    model = LRU(3, 4, 2, r_min=0.4).double()
    u = torch.randn(2, 6, 3, dtype=F64)
    y, z = model(u)
    lam = torch.exp(-torch.exp(model.nu_log) + 1j * torch.exp(model.theta_log))
    Bc = torch.complex(model.B_re, model.B_im)
    x = torch.zeros(2, 4, dtype=torch.complex128)
    states = []
    for t in range(6):
        x = lam * x + torch.exp(model.gamma_log) * (u[:, t].to(torch.complex128) @ Bc.T)
        states.append(torch.cat([x.real, x.imag], dim=-1))
    expected = torch.stack(states, dim=1)
    assert torch.allclose(z, expected, atol=1e-12)
    assert torch.allclose(y, model.readout(z), atol=1e-12)
    assert torch.allclose(model.eigenvalues(), lam, atol=1e-14)


def test_lru_init_follows_the_ring_and_normalisation() -> None:
    torch.manual_seed(1)
    model = LRU(2, 2000, 1, r_min=0.5, r_max=0.9, max_phase=1.0).double()
    radius = model.eigenvalues().detach().abs()
    assert 0.5 - 1e-9 <= float(radius.min()) and float(radius.max()) <= 0.9 + 1e-9
    phase = model.eigenvalues().detach().angle()
    assert float(phase.min()) >= 0 and float(phase.max()) <= 1.0 + 1e-9
    gain = torch.exp(model.gamma_log)
    assert torch.allclose(gain, torch.sqrt(1 - radius**2), atol=1e-12)  # γ = √(1 − |λ|²)


def test_lru_eigenvalues_stay_inside_the_unit_disc_for_any_parameters() -> None:
    model = LRU(2, 5, 1).double()
    with torch.no_grad():
        model.nu_log.copy_(torch.tensor([-30.0, -5.0, 0.0, 3.0, 30.0], dtype=F64))
    assert float(model.eigenvalues().detach().abs().max()) <= 1.0


def test_real_lru_and_selective_shapes() -> None:
    torch.manual_seed(2)
    real = LRU(3, 4, 2, real=True).double()
    y, z = real(torch.randn(2, 5, 3, dtype=F64))
    assert z.shape == (2, 5, 4) and y.shape == (2, 5, 2) and real.eigenvalues().dtype == F64


def test_selective_recurrence_by_hand() -> None:
    """Δ = softplus(W_Δ u + b_Δ), λ = exp(−Δ e^a), x_t = λ x_{t−1} + Δ (B u_t) (arXiv 2312.00752)."""
    torch.manual_seed(3)
    model = SelectiveLRU(3, 4, 2).double()
    u = torch.randn(2, 5, 3, dtype=F64)
    _, z = model(u)
    x = torch.zeros(2, 4, dtype=F64)
    for t in range(5):
        dt = torch.nn.functional.softplus(u[:, t] @ model.W_dt.T + model.b_dt)
        x = torch.exp(-dt * torch.exp(model.a_log)) * x + dt * (u[:, t] @ model.B.T)
        assert torch.allclose(z[:, t], x, atol=1e-12)
    dt0 = torch.nn.functional.softplus(model.b_dt.detach())
    assert float(dt0.min()) >= 0.01 - 1e-9 and float(dt0.max()) <= 0.3 + 1e-9  # the initial Δ range


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"r_max": 1.0}, "r_max"),
        ({"r_min": 0.9, "r_max": 0.5}, "r_min"),
        ({"max_phase": 0.0}, "max_phase"),
        ({"modes": 0}, "modes"),
    ],
)
def test_lru_bad_arguments_are_named(kwargs: dict, name: str) -> None:
    args = {"input_size": 2, "modes": 3, "output_size": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        LRU(**args)


def test_selective_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="a_min"):
        SelectiveLRU(2, 3, 1, a_min=0.0)
    with pytest.raises(ValueError, match="dt_min <= dt_max"):
        SelectiveLRU(2, 3, 1, dt_min=0.5, dt_max=0.1)


def test_stacked_lru_is_the_deep_lru_of_the_paper() -> None:
    """v¹ = W_e u + b_e; per layer x = λ x + e^γ (B v) (complex), o = v + W₂ GELU(W₁ (C z + c) + b₁) + b₂,
    v ← o; y = W_r o^L + b_r (arXiv 2303.06349, Fig. 1 without normalisation), written out here
    with complex numbers and nn modules, against the model's state-space recursion."""
    torch.manual_seed(4)
    model = StackedLRU(3, 4, 2, 2, layers=2, mlp=5, r_min=0.3).double()
    u = torch.randn(2, 6, 3, dtype=F64)
    y, z = model(u)
    xs = [torch.zeros(2, 2, dtype=torch.complex128) for _ in model.cells]
    for t in range(6):
        v = model.encoder(u[:, t])
        for k, (cell, mlp) in enumerate(zip(model.cells, model.mlps)):
            lam = cell.eigenvalues()
            Bc = torch.complex(cell.B_re, cell.B_im)
            xs[k] = lam * xs[k] + torch.exp(cell.gamma_log) * (v.to(torch.complex128) @ Bc.T)
            real = torch.cat([xs[k].real, xs[k].imag], dim=-1)
            o = v + mlp.out(torch.nn.functional.gelu(mlp.inp(cell.readout(real))))
            assert torch.allclose(z[:, t, model.layer_slice(k)], torch.cat([o, real], dim=-1), atol=1e-12)
            v = o
        assert torch.allclose(y[:, t], model.readout(v), atol=1e-12)
    assert z.shape == (2, 6, model.state_size) == (2, 6, 2 * (4 + 4))


def test_stacked_lru_without_mlp_is_linear_and_functional_call_matches() -> None:
    torch.manual_seed(5)
    model = StackedLRU(2, 3, 2, 1, layers=3, cell="selective").double()
    u = torch.randn(2, 4, 2, dtype=F64)
    params = {n: p.detach() for n, p in model.named_parameters()}
    y_fc, z_fc = torch.func.functional_call(model, params, (u,))
    y, z = model(u)
    assert torch.equal(y, y_fc) and torch.equal(z, z_fc)
    assert model.state_size == 3 * (3 + 2)
    from gdlens.models import StateSpace

    assert isinstance(model, StateSpace)
    members = [StackedLRU(2, 3, 2, 1, layers=2, mlp=4).double() for _ in range(3)]
    params, buffers = torch.func.stack_module_state(members)
    base = members[0]
    ys, zs = torch.func.vmap(lambda p, b: torch.func.functional_call(base, (p, b), (u,)))(params, buffers)
    for i, m in enumerate(members):
        y_i, z_i = m(u)
        assert torch.allclose(ys[i], y_i, atol=1e-12) and torch.allclose(zs[i], z_i, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cell": "gru"}, "cell"),
        ({"layers": 0}, "layers"),
        ({"mlp": 0}, "mlp"),
        ({"d_model": 0}, "d_model"),
        ({"input_size": 0}, "input_size"),
        ({"r_max": 1.5}, "r_max"),
    ],
)
def test_stacked_lru_bad_arguments_are_named(kwargs: dict, name: str) -> None:
    args = {"input_size": 2, "d_model": 3, "modes": 2, "output_size": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        StackedLRU(**args)


def test_registry_and_config_build_the_diagonal_recurrences() -> None:
    from gdlens.config import normalize
    from gdlens.config.build import build_model
    from gdlens.models import build

    assert isinstance(build("lru", 3, 4, 2, real=True), LRU) and build("lru", 3, 4, 2).modes == 4
    assert build("selective_lru", 3, 5, 2).state_size == 5
    stack = build("stacked_lru", 3, 6, 2, modes=2, layers=3, mlp=8, cell="selective")
    assert isinstance(stack, StackedLRU) and (stack.d_model, stack.num_layers, stack.mlp_width) == (6, 3, 8)
    with pytest.raises(ValueError, match="modes"):
        build("stacked_lru", 3, 6, 2)
    with pytest.raises(ValueError, match="g"):
        build("lru", 3, 4, 2, g=2.0)
    config = normalize({"task": {"name": "flip_flop"}, "model": {"name": "stacked_lru", "hidden": 8, "modes": 3}})
    assert config["model"]["layers"] == 2 and config["model"]["mlp"] is None  # the constructor's defaults
    model = build_model(config)
    assert isinstance(model, StackedLRU) and model.d_model == 8 and model.cells[0].modes == 3
