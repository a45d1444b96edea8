"""Dimensionality and PCA on data with known spectra; the representation probe against the
pure functions applied by hand to the same model states."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import gdlens as gd
from gdlens.probes import ProbeContext, RepresentationProbe, Schedule
from gdlens.probes.plumbing import layer_activations, spread_indices
from gdlens.probes.representation import participation_ratio, pca
from gdlens.probes.similarity import linear_cka

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def data_on_r_directions(n: int, p: int, r: int, seed: int = 0, scales=None) -> torch.Tensor:
    """n points in R^p spread over r orthonormal directions with chosen variances (equal by
    default), plus an offset: the centred covariance has exactly those r eigenvalues."""
    Z = randn(n, r, seed=seed)
    Z = Z - Z.mean(0)
    Qn, _ = torch.linalg.qr(Z)  # orthonormal, centred columns
    Qp, _ = torch.linalg.qr(randn(p, r, seed=seed + 1))
    s = torch.ones(r, dtype=F64) if scales is None else torch.as_tensor(scales, dtype=F64)
    return (Qn * s) @ Qp.T + randn(p, seed=seed + 2)


@pytest.mark.parametrize("n,p,r", [(100, 20, 5), (15, 40, 3), (50, 8, 8)])
def test_participation_ratio_of_r_equal_directions(n, p, r):
    assert participation_ratio(data_on_r_directions(n, p, r)) == pytest.approx(r, rel=1e-10)


def test_participation_ratio_formula():
    lam = torch.tensor([4.0, 1.0, 0.25], dtype=F64)
    X = data_on_r_directions(60, 10, 3, seed=3, scales=lam.sqrt())
    assert participation_ratio(X) == pytest.approx(float(lam.sum() ** 2 / (lam**2).sum()), rel=1e-10)
    assert participation_ratio(X.reshape(60, 2, 5)) == pytest.approx(participation_ratio(X))  # trailing axes flattened


def test_pca_matches_covariance_eigendecomposition():
    X = randn(40, 6, seed=4) @ randn(6, 6, seed=5)
    res = pca(X)
    C = torch.cov(X.T)
    evals, evecs = torch.linalg.eigh(C)
    assert torch.allclose(res.explained_variance, evals.flip(0), rtol=1e-10)
    assert res.explained_variance_ratio.sum() == pytest.approx(1.0)
    assert torch.allclose(res.components @ res.components.T, torch.eye(6, dtype=F64), atol=1e-12)
    # components are the eigenvectors up to sign, with the largest entry positive
    for i in range(6):
        v = evecs[:, 5 - i]
        assert abs(float(res.components[i] @ v)) == pytest.approx(1.0, rel=1e-9)
        assert res.components[i][res.components[i].abs().argmax()] > 0
    assert torch.allclose(res.mean, X.mean(0))
    top2 = pca(X, k=2)
    assert top2.components.shape == (2, 6) and torch.allclose(top2.explained_variance, res.explained_variance[:2])


def test_pca_of_r_equal_directions():
    res = pca(data_on_r_directions(50, 10, 4, seed=6), k=5)
    assert torch.allclose(res.explained_variance_ratio[:4], torch.full((4,), 0.25, dtype=F64), atol=1e-12)
    assert float(res.explained_variance_ratio[4]) == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(5,\)"):
        participation_ratio(randn(5))
    with pytest.raises(ValueError, match="k must be"):
        pca(randn(10, 3), k=4)


def test_participation_ratio_is_one_implementation_with_nan_on_data_that_does_not_vary():
    assert participation_ratio is gd.operators.participation_ratio
    X = randn(40, 6, seed=11) @ randn(6, 6, seed=12)
    lam = torch.linalg.eigvalsh(torch.cov(X.T))
    assert participation_ratio(X) == pytest.approx(float(lam.sum() ** 2 / (lam**2).sum()), rel=1e-10)
    second = torch.linalg.eigvalsh(X.T @ X)  # about the origin
    assert participation_ratio(X, centre=False) == pytest.approx(float(second.sum() ** 2 / (second**2).sum()), rel=1e-10)
    assert participation_ratio(X.float()) == pytest.approx(participation_ratio(X.float().double()), rel=1e-12)
    assert math.isnan(participation_ratio(torch.zeros(5, 3)))
    assert math.isnan(participation_ratio(torch.ones(5, 3) * 2.5))  # constant rows: no variance
    assert math.isnan(participation_ratio(torch.zeros(5, 3), centre=False))
    assert participation_ratio(torch.ones(5, 3), centre=False) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        participation_ratio(randn(1, 3))


# ---------------------------------------------------------------------- the probe
class Snapshots:
    """A probe that keeps a copy of the model at its steps (to recompute earlier states)."""

    name = "snap"

    def __init__(self, every: int) -> None:
        self.schedule = Schedule(every=every)
        self.models: dict[int, nn.Module] = {}

    def compute(self, ctx: ProbeContext) -> dict:
        self.models[ctx.step] = copy.deepcopy(ctx.model)
        return {}


def mlp(width=32, seed=0, dtype=torch.float32) -> gd.models.MLP:
    torch.manual_seed(seed)
    return gd.models.MLP(1, width, 1).to(dtype)


def keys(result, probe_name: str) -> set[str]:
    return {k.split("/", 1)[1] for k in result.history if k.startswith(probe_name + "/")}


def test_representation_probe_matches_participation_ratio_and_cka():
    model = mlp()
    data = gd.tasks.fourier_1d(frequencies=(1, 4), n_points=64)
    snaps = Snapshots(every=10)
    probes = [RepresentationProbe(n_samples=16, schedule=Schedule(every=10)),
              RepresentationProbe(layer="net.1", n_samples=16, name="relu", schedule=Schedule(every=10)), snaps]
    result = gd.train(model, data, lr=3e-2, steps=20, probes=probes, progress=False)
    assert keys(result, "representation") == {"participation_ratio", "max_rank", "cka_init", "cka_prev"}
    x = data.x[spread_indices(64, 16)]

    def acts(m):
        with torch.no_grad():
            return m.net[1](m.net[0](x))

    A, A0, A10 = acts(model), acts(snaps.models[0]), acts(snaps.models[10])
    last = result.recorder.last
    lam = torch.linalg.eigvalsh(torch.cov(A.double().T))
    assert last("representation/participation_ratio") == pytest.approx(float(lam.sum() ** 2 / (lam**2).sum()), rel=1e-6)
    assert last("representation/max_rank") == 15  # min(16 − 1, 32)
    assert last("representation/cka_init") == pytest.approx(linear_cka(A, A0), rel=1e-6)
    assert last("representation/cka_prev") == pytest.approx(linear_cka(A, A10), rel=1e-6)
    assert result.series("representation/cka_init")[1][0] == pytest.approx(1.0, abs=1e-6)
    assert result.series("representation/cka_prev")[0].tolist() == [10, 20]
    assert last("representation/cka_init") < 1 - 1e-4  # the representation moved
    # the input of the last Linear is the ReLU's output: the same numbers by layer name
    for k in ("participation_ratio", "cka_init", "cka_prev"):
        assert last(f"relu/{k}") == pytest.approx(last(f"representation/{k}"), rel=1e-6)
    for panel in RepresentationProbe.panels:  # every key a panel draws is recorded
        assert set(panel.keys) | {panel.bound} - {None} <= keys(result, "representation")


def test_one_representation_probe_serves_two_runs_each_against_its_own_first_step():
    data = gd.tasks.fourier_1d(frequencies=(1, 4), n_points=64)
    probe = RepresentationProbe(n_samples=16, schedule=Schedule(every=10))
    x = data.x[spread_indices(64, 16)]
    for seed in (0, 1):
        model = mlp(seed=seed)
        first = layer_activations(model, x)
        result = gd.train(model, data, lr=3e-2, steps=20, probes=[probe], progress=False)
        cka = result.series("representation/cka_init")[1]
        assert cka[0] == pytest.approx(1.0, abs=1e-6)  # run 2 is not compared with run 1's activations
        assert cka[-1] == pytest.approx(linear_cka(layer_activations(model, x), first), rel=1e-6)
        assert result.recorder.states["representation"]["x"].shape == (16, 1)


def test_representation_probe_on_a_state_space_model_and_errors():
    torch.manual_seed(0)
    gru = gd.models.GRU(2, 4, 2).to(F64)
    seq = gd.tasks.flip_flop(batch_size=6, T=5, bits=2, pulse_prob=0.3, dtype=F64)
    with torch.no_grad():
        _, z = gru(seq.x)
    acts = layer_activations(gru, seq.x)
    assert acts.shape == (6 * 5, 4) and torch.equal(acts, z.reshape(-1, 4))
    # gdlens' state-space models compute their readout from the parameters, not by calling the
    # readout submodule: a hook on it never fires, and the probe says so at its first step
    with pytest.raises(ValueError, match="'readout' was not called"):
        RepresentationProbe(layer="readout").init(ProbeContext(0, gru, batch=seq))
    probe = RepresentationProbe(debiased=True)
    ctx = ProbeContext(0, gru, batch=seq)
    state = probe.init(ctx)
    out, state = probe.compute(ctx, state)
    assert out["participation_ratio"] == pytest.approx(participation_ratio(z.reshape(-1, 4)), rel=1e-12)
    assert out["max_rank"] == 4 and "cka_prev" not in out
    assert out["cka_init"] == pytest.approx(1.0) and state["x"].shape == (6, 5, 2)
    out, state = probe.compute(ctx, state)
    assert out["cka_prev"] == pytest.approx(1.0)
    with pytest.warns(DeprecationWarning, match="Recorder"):
        probe.reset()
    with pytest.warns(DeprecationWarning, match="state"):
        assert probe.inputs is None
    with pytest.raises(ValueError, match="no submodule"):
        RepresentationProbe(layer="encoder").init(ctx)
    with pytest.raises(ValueError, match="pass eval_data="):
        RepresentationProbe(data="eval").init(ctx)
    with pytest.raises(ValueError, match="n_samples"):
        RepresentationProbe(n_samples=1)
