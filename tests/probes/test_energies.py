"""Weight energies against their closed forms (balanced factorisations, Parseval), and the
EnergyProbe in training runs."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import gdlens as gd
from probe_helpers import assert_declared_keys_recorded
from gdlens.models import DeepLinear, EmbeddingMLP
from gdlens.probes.energies import (
    ENERGIES,
    EnergyProbe,
    embedding_nuclear_norm,
    fourier_power,
    fourier_sparsity,
    l2_energy,
    model_energies,
    model_energy,
    schatten_energy,
)
from gdlens.probes.parameters import end_to_end

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ------------------------------------------------------------------------------ energies
def balanced_factors(W: torch.Tensor, L: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """W = W_L ⋯ W_1 with every ‖W_ℓ‖_F² = Σ σ^{2/L}: W_1 = Q_1 S^{1/L} Vᵀ,
    W_ℓ = Q_ℓ S^{1/L} Q_{ℓ−1}ᵀ, W_L = U S^{1/L} Q_{L−1}ᵀ, the Q_ℓ (width, r) with orthonormal columns."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    r = S.numel()
    root = torch.diag(S ** (1.0 / L))
    Qs = [torch.linalg.qr(randn(width, r, seed=seed + i))[0] for i in range(L - 1)]
    lefts = Qs + [U]
    rights = [Vh.T] + Qs
    return [lefts[i] @ root @ rights[i].T for i in range(L)]


@pytest.mark.parametrize("L", [1, 2, 3, 5])
def test_schatten_energy_is_attained_by_balanced_factors(L):
    W = randn(4, 6, seed=L)
    factors = balanced_factors(W, L, width=7, seed=10 * L)
    torch.testing.assert_close(end_to_end(factors), W, rtol=1e-10, atol=1e-10)
    s = torch.linalg.svdvals(W)
    expected = L * float((s ** (2.0 / L)).sum())
    assert schatten_energy(factors) == pytest.approx(expected, rel=1e-10)
    assert l2_energy(factors) == pytest.approx(expected, rel=1e-10)
    assert schatten_energy(W, depth=L) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_l2_energy_bounds_the_schatten_energy(seed):
    g = torch.Generator().manual_seed(seed)
    L = int(torch.randint(2, 6, (1,), generator=g))
    dims = torch.randint(1, 6, (L + 1,), generator=g).tolist()
    factors = [torch.randn(dims[i + 1], dims[i], generator=g, dtype=F64) * (i + 1.0) for i in range(L)]
    assert l2_energy(factors) >= schatten_energy(factors) * (1 - 1e-12)
    # unbalancing a balanced factorisation (W_2 → c W_2, W_1 → W_1 / c) keeps the map and raises the l2 energy
    W = randn(3, 3, seed=seed)
    f = balanced_factors(W, 2, width=3, seed=seed)
    unbalanced = [f[0] / 3.0, f[1] * 3.0]
    assert l2_energy(unbalanced) > 1.5 * schatten_energy(unbalanced)
    assert schatten_energy(unbalanced) == pytest.approx(schatten_energy(f), rel=1e-10)


def test_schatten_energy_special_depths_and_nuclear_norm():
    W = randn(5, 3, seed=3)
    s = torch.linalg.svdvals(W)
    assert schatten_energy(W) == pytest.approx(float((W**2).sum()))  # L = 1: Frobenius²
    assert schatten_energy(W, depth=2) == pytest.approx(2 * float(s.sum()))  # L = 2: twice the nuclear norm
    assert embedding_nuclear_norm(W) == pytest.approx(float(s.sum()))
    with pytest.raises(ValueError, match="depth"):
        schatten_energy(W, depth=0)
    with pytest.raises(ValueError, match="embedding"):
        embedding_nuclear_norm(randn(2, 3, 4))


@pytest.mark.parametrize("p", [23, 24])
def test_fourier_power_parseval_and_sparsity(p):
    E = randn(p, 6, seed=p)
    P = fourier_power(E)
    assert P.shape == (p // 2 + 1,)
    assert float(P.sum()) == pytest.approx(float((E**2).sum()), rel=1e-10)
    assert float(P[1:].sum()) == pytest.approx(float(((E - E.mean(0)) ** 2).sum()), rel=1e-10)
    # built from the frequencies 2, 5 and 9 (plus a constant): all non-constant power there
    t = torch.arange(p, dtype=F64)[:, None]
    coeffs = randn(6, 6, seed=1)
    cols = [torch.cos(2 * math.pi * k * t / p + phase) for k in (2, 5, 9) for phase in (0.3, 1.1)]
    E3 = torch.cat(cols, 1) @ coeffs + 4.0
    P3 = fourier_power(E3)
    assert set(torch.topk(P3[1:], 3).indices.add(1).tolist()) == {2, 5, 9}
    assert fourier_sparsity(E3, k=3) == pytest.approx(1.0, abs=1e-10)
    assert fourier_sparsity(E3, k=2) < 0.9
    # a random embedding spreads its power: about k/⌊p/2⌋
    assert fourier_sparsity(E, k=3) < 0.5
    assert fourier_sparsity(E, k=p) == pytest.approx(1.0)
    assert math.isnan(fourier_sparsity(torch.ones(p, 3), k=2))
    with pytest.raises(ValueError, match="k"):
        fourier_sparsity(E, k=0)


def test_l2_energy_of_containers_and_model_energies():
    m = EmbeddingMLP(11, embedding=4, width=8).double()
    named = dict(m.named_parameters())
    by_hand = sum(float((p.detach() ** 2).sum()) for p in named.values())
    assert l2_energy(named) == pytest.approx(by_hand, rel=1e-12)
    assert l2_energy(m.named_parameters()) == pytest.approx(by_hand, rel=1e-12)
    assert l2_energy(list(named.values())) == pytest.approx(by_hand, rel=1e-12)
    assert l2_energy(named["head.weight"]) == pytest.approx(float((named["head.weight"].detach() ** 2).sum()), rel=1e-12)
    out = model_energies(m, fourier_k=3)
    for g, members in m.parameter_groups().items():
        assert out[f"l2/{g}"] == pytest.approx(sum(float((named[n].detach() ** 2).sum()) for n in members), rel=1e-12)
    E = m.embedding_matrix().detach()
    assert out["nuclear"] == pytest.approx(float(torch.linalg.svdvals(E).sum()), rel=1e-12)
    assert out["fourier_sparsity"] == fourier_sparsity(E, 3)
    assert "schatten" not in out and "l2/head" not in model_energies(m, groups=False)
    assert model_energy(m, "l2") == out["l2"] and model_energy(m, lambda mm: 2.5) == 2.5
    assert set(ENERGIES) == {"l2", "schatten", "nuclear", "fourier_sparsity"}
    with pytest.raises(ValueError, match="energy must be one of"):
        model_energy(m, "entropy")


class FactoredEmbedding(torch.nn.Module):
    """A model with both factors() and embedding_matrix(): every key of EnergyProbe."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(7, 3)
        self.w1, self.w2 = torch.nn.Linear(6, 5, bias=False), torch.nn.Linear(5, 7, bias=False)

    def forward(self, x):
        return self.w2(self.w1(self.embed(x).flatten(1)))

    def factors(self):
        return [self.w1.weight, self.w2.weight]

    def embedding_matrix(self):
        return self.embed.weight


def test_energy_probe_records_every_panel_key_and_serves_two_runs():
    data = gd.tasks.modular_addition(p=7, train_fraction=0.6, seed=0)
    probe = EnergyProbe(schedule=5, fourier_k=2)
    before = copy.deepcopy(vars(probe))

    models = []

    def run(seed):
        torch.manual_seed(seed)
        models.append(FactoredEmbedding().double())
        return gd.train(models[-1], data, optimizer="adamw", lr=1e-2, steps=10, probes=[probe], progress=False)

    first, second = run(0), run(1)
    recorded = {k.split("/", 1)[1] for k in second.history if k.startswith("energy/")}
    assert_declared_keys_recorded(probe, recorded)
    # the second run's numbers are its own (the probe carries nothing)
    torch.manual_seed(1)
    fresh = gd.train(FactoredEmbedding().double(), data, optimizer="adamw", lr=1e-2, steps=10,
                     probes=[EnergyProbe(schedule=5, fourier_k=2)], progress=False)
    assert second.series("energy/schatten")[1].tolist() == fresh.series("energy/schatten")[1].tolist()
    assert first.series("energy/schatten")[1].tolist() != second.series("energy/schatten")[1].tolist()
    assert vars(probe).keys() == before.keys()
    # values are the pure functions' on the final model
    m = models[-1]
    assert second.recorder.last("energy/schatten") == pytest.approx(schatten_energy(m.factors()), rel=1e-10)
    assert second.recorder.last("energy/nuclear") == pytest.approx(
        float(torch.linalg.svdvals(m.embed.weight.detach()).sum()), rel=1e-10)


def test_energy_probe_checks_its_groups_at_the_first_step():
    m = DeepLinear(3, 3, 2, depth=2).double()
    probe = EnergyProbe(groups={"a": ["nope"]})
    with pytest.raises(ValueError, match="unknown"):
        probe.init(gd.probes.ProbeContext(0, m))
    with pytest.raises(ValueError, match="fourier_k"):
        EnergyProbe(fourier_k=0)
