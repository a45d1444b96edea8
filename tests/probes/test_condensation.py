"""Condensation measurements on layers whose orientations are known by construction; the
condensation probe inside gd.train against those functions applied by hand."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import gdlens as gd
from probe_helpers import assert_declared_keys_recorded
from gdlens.probes import ProbeContext, Schedule
from gdlens.probes.condensation import (
    CondensationProbe,
    count_orientations,
    mean_abs_cosine,
    neuron_vectors,
    orientation_amplitude,
    orientation_clusters,
    orientation_similarity,
    ordered_similarity,
    relative_change,
)
from gdlens.probes.plumbing import resolve_layer

F64 = torch.float64


def condensed_layer(m: int, d: int, k: int, noise: float, seed: int = 0):
    """m neurons (W (m, d), b (m,)) on k random orientations of R^{d+1}, positive scales,
    plus small isotropic noise; returns W, b and the orientation index of each neuron."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(k, d + 1, generator=gen, dtype=F64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    which = torch.arange(m) % k
    scale = 0.5 + torch.rand(m, 1, generator=gen, dtype=F64)
    U = scale * dirs[which] + noise * torch.randn(m, d + 1, generator=gen, dtype=F64)
    return U[:, :d], U[:, d], which


@pytest.mark.parametrize("method", ["greedy", "single", "complete"])
def test_three_orientations_are_counted(method):
    W, b, which = condensed_layer(m=60, d=5, k=3, noise=1e-3)
    assert count_orientations(W, b, threshold=0.95, method=method) == 3
    labels = orientation_clusters(W, b, method=method)
    # neurons built on the same orientation share a label, and different ones do not
    for c in range(3):
        assert labels[which == c].unique().numel() == 1
    assert labels.unique().numel() == 3


def test_random_isotropic_layer_has_many_orientations():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(200, 50, generator=gen, dtype=F64)
    b = torch.randn(200, generator=gen, dtype=F64)
    # in 51 dimensions random cosines are ~ N(0, 1/51): no pair reaches 0.95
    assert count_orientations(W, b, min_norm_fraction=0.0) == 200
    assert count_orientations(W, b) >= 195


def test_antipodal_directions():
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(4, generator=gen, dtype=F64)
    W = torch.stack([u, 2 * u, -u, -3 * u])
    assert count_orientations(W) == 2  # ReLU convention: u and -u differ
    assert count_orientations(W, antipodal=True) == 1


def test_small_neurons_are_left_out():
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(5, 8, generator=gen, dtype=F64)
    W = W / W.norm(dim=1, keepdim=True)
    W[3:] *= 1e-4  # two tiny neurons on their own orientations
    assert count_orientations(W, min_norm_fraction=0.01) == 3
    assert count_orientations(W, min_norm_fraction=0.0) == 5
    labels = orientation_clusters(W, min_norm_fraction=0.01)
    assert labels[3:].tolist() == [-1, -1]


def test_greedy_does_not_chain_but_single_linkage_does():
    # 72 unit vectors every 5 degrees round a circle: neighbours have cos 0.996 >= 0.95
    angles = torch.arange(72, dtype=F64) * (2 * math.pi / 72)
    W = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert count_orientations(W, method="single") == 1
    n_greedy = count_orientations(W, method="greedy")
    # leader clusters cover an arc of at most 2·arccos(0.95) ≈ 36.4 degrees: at least 10 of them
    assert n_greedy >= 10
    assert count_orientations(W, method="complete") >= 10


def test_similarity_symmetric_unit_diagonal_and_values():
    gen = torch.Generator().manual_seed(4)
    W = torch.randn(7, 3, generator=gen, dtype=F64)
    b = torch.randn(7, generator=gen, dtype=F64)
    S = orientation_similarity(W, b)
    assert S.shape == (7, 7)
    assert torch.allclose(S, S.T)
    assert torch.allclose(torch.diagonal(S), torch.ones(7, dtype=F64))
    U = torch.cat([W, b[:, None]], dim=1)
    expected = torch.nn.functional.cosine_similarity(U[:, None, :], U[None, :, :], dim=-1)
    assert torch.allclose(S, expected, atol=1e-12)


def test_zero_neuron_similarity_is_zero():
    W = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]], dtype=F64)
    S = orientation_similarity(W)
    assert S[1].abs().sum() == 0 and S[:, 1].abs().sum() == 0
    assert S[0, 2] == pytest.approx(1.0)
    assert count_orientations(W, min_norm_fraction=0.0) == 1
    assert count_orientations(torch.zeros(3, 2, dtype=F64)) == 0


def test_conv_kernels_are_flattened():
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(3, 2, 3, 3, generator=gen, dtype=F64)
    W = torch.cat([base, 2.0 * base, 0.5 * base])  # 9 output channels on 3 orientations
    assert neuron_vectors(W).shape == (9, 18)
    assert count_orientations(W) == 3
    S = orientation_similarity(W)
    assert S[0, 3] == pytest.approx(1.0) and S[0, 6] == pytest.approx(1.0)


def test_orientation_amplitude():
    w = torch.tensor([1.0, 0.0, -1.0, 3.0], dtype=F64)
    b = torch.tensor([1.0, 2.0, 0.0, -3.0], dtype=F64)
    a = torch.tensor([2.0, -1.0, 0.5, 1.0], dtype=F64)
    angle, amp = orientation_amplitude(w[:, None], b, a)
    assert torch.allclose(angle, torch.tensor([math.pi / 4, math.pi / 2, math.pi, -math.pi / 4], dtype=F64))
    expected = a.abs() * torch.sqrt(w**2 + b**2)
    assert torch.allclose(amp, expected)
    # the next layer's weight (o, m): column norms
    A = torch.stack([a, a])
    assert torch.allclose(orientation_amplitude(w, b, A).amplitude, math.sqrt(2) * expected)
    assert torch.allclose(orientation_amplitude(w, b).amplitude, torch.sqrt(w**2 + b**2))


def test_relative_change_is_the_parameters_module_s_total():
    """Deprecated here: the one implementation is gdlens.probes.parameters.relative_change."""
    t0 = {"w": torch.tensor([3.0, 0.0], dtype=F64), "b": torch.tensor([4.0], dtype=F64)}  # ‖θ0‖ = 5
    t1 = {"b": torch.tensor([4.0], dtype=F64), "w": torch.tensor([3.0, 1.0], dtype=F64)}  # Δ = (0, 1, 0)
    with pytest.warns(DeprecationWarning, match="parameters.relative_change"):
        assert relative_change(t1, t0) == pytest.approx(0.2)
    with pytest.warns(DeprecationWarning):
        assert relative_change([t1["w"], t1["b"]], [t0["w"], t0["b"]]) == pytest.approx(0.2)
    x = torch.tensor([1.0, 2.0, 2.0], dtype=F64)
    with pytest.warns(DeprecationWarning):
        assert relative_change(2 * x, x) == pytest.approx(1.0)
    with pytest.warns(DeprecationWarning):
        assert math.isnan(relative_change(x, torch.zeros(3, dtype=F64)))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"\(2, 2\)"):
        relative_change({"w": torch.zeros(2, 2)}, {"w": torch.zeros(4)})
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="names"):
        relative_change({"w": torch.zeros(2)}, {"v": torch.zeros(2)})


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        orientation_similarity(torch.randn(3, 2, dtype=F64), torch.randn(4, dtype=F64))
    with pytest.raises(ValueError, match="threshold"):
        count_orientations(torch.randn(3, 2), threshold=1.5)
    with pytest.raises(ValueError, match="method"):
        count_orientations(torch.randn(3, 2), method="ward")
    with pytest.raises(ValueError, match="scalar input"):
        orientation_amplitude(torch.randn(3, 2))


def test_parameters_passed_directly_give_plain_tensors():
    layer = torch.nn.Linear(3, 5)
    S = orientation_similarity(layer.weight, layer.bias)
    assert not S.requires_grad
    oa = orientation_amplitude(torch.nn.Parameter(torch.randn(4, 1)), torch.nn.Parameter(torch.randn(4)),
                               torch.nn.Parameter(torch.randn(2, 4)))
    assert not oa.angle.requires_grad and not oa.amplitude.requires_grad


def test_mean_abs_cosine_known_values():
    W, b, which = condensed_layer(m=30, d=4, k=3, noise=0.0)
    dirs = torch.nn.functional.normalize(torch.cat([W, b[:, None]], dim=1), dim=1)
    # by hand, over ordered pairs i ≠ j: |cos| = 1 inside a cluster, |d_a·d_b| across clusters
    C = (dirs @ dirs.T).abs()
    expected = sum(float(C[i, j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    assert mean_abs_cosine(W, b) == pytest.approx(expected, rel=1e-12)
    same = which[:, None] == which[None, :]
    assert torch.allclose(C[same], torch.ones_like(C[same]))
    # random directions in D dimensions: E|cos| ≈ sqrt(2 / (π D))
    gen = torch.Generator().manual_seed(7)
    R = torch.randn(300, 200, generator=gen, dtype=F64)
    assert mean_abs_cosine(R) == pytest.approx(math.sqrt(2 / (math.pi * 200)), rel=0.05)
    # small neurons are left out; fewer than two kept: nan
    U = torch.tensor([[1.0, 0.0], [0.0, 1e-5], [1.0, 1.0]], dtype=F64)
    assert mean_abs_cosine(U) == pytest.approx(1 / math.sqrt(2))
    # all three: |cos| = 0, 1/√2, 1/√2 over the pairs, each counted twice
    assert mean_abs_cosine(U, min_norm_fraction=0.0) == pytest.approx(2 * (0 + 2 / math.sqrt(2)) / 6)
    assert math.isnan(mean_abs_cosine(U[:2]))
    with pytest.raises(ValueError, match="min_norm_fraction"):
        mean_abs_cosine(U, min_norm_fraction=2.0)


def test_ordered_similarity_shows_the_clusters_as_blocks():
    W, b, which = condensed_layer(m=30, d=4, k=3, noise=0.0)  # neuron i on orientation i % 3
    S = ordered_similarity(W, b)
    labels = orientation_clusters(W, b)
    # by cluster: 10 neurons of cluster 0, then 10 of cluster 1, then 10 of cluster 2
    order = torch.cat([torch.nonzero(labels == c).flatten() for c in range(3)])
    torch.testing.assert_close(S, orientation_similarity(W, b)[order][:, order])
    block = torch.block_diag(*[torch.ones(10, 10, dtype=F64)] * 3).bool()
    torch.testing.assert_close(S[block], torch.ones(300, dtype=F64))
    assert (S[~block] < 0.95).all()
    # the first 7 neurons only, still ordered by the layer's clusters; left-out neurons last
    S7 = ordered_similarity(W, b, max_neurons=7)
    lab7 = labels[:7]
    order7 = torch.cat([torch.nonzero(lab7 == c).flatten() for c in range(3)])
    torch.testing.assert_close(S7, orientation_similarity(W, b)[:7, :7][order7][:, order7])
    W2 = torch.cat([W[:4], 1e-6 * W[4:5], W[5:7]])
    lab2 = orientation_clusters(W2)
    assert lab2.tolist().index(-1) == 4  # the tiny neuron is left out ...
    order2 = torch.cat([torch.nonzero(lab2 == c).flatten() for c in range(int(lab2.max()) + 1)] + [torch.tensor([4])])
    torch.testing.assert_close(ordered_similarity(W2), orientation_similarity(W2)[order2][:, order2])  # ... and last
    with pytest.raises(ValueError, match="max_neurons"):
        ordered_similarity(W, max_neurons=0)


# ---------------------------------------------------------------------- the probe
def mlp(input_size=1, width=16, output_size=1, seed=0, dtype=F64, **kw) -> gd.models.MLP:
    torch.manual_seed(seed)
    return gd.models.MLP(input_size, width, output_size, **kw).to(dtype)


def keys(result, probe_name: str) -> set[str]:
    return {k.split("/", 1)[1] for k in result.history if k.startswith(probe_name + "/")}


def test_resolve_layer():
    model = mlp(input_size=2, width=8, output_size=1, depth=2)
    assert resolve_layer(model) == ("net.0.weight", "net.0.bias")
    assert resolve_layer(model, "net.2") == ("net.2.weight", "net.2.bias")
    assert resolve_layer(model, "net.4.weight") == ("net.4.weight", "net.4.bias")
    gru = gd.models.GRU(2, 4, 1)
    with pytest.raises(ValueError, match="layer='weight_ih'"):  # its only nn.Linear is the readout: ask
        resolve_layer(gru)
    assert resolve_layer(gru, "weight_ih") == ("weight_ih", "bias_ih")  # weight_* -> bias_*
    assert resolve_layer(gru, "readout") == ("readout.weight", "readout.bias")

    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.v = nn.Parameter(torch.zeros(3))
            self.W = nn.Parameter(torch.zeros(5, 3))

    assert resolve_layer(Bare()) == ("W", None)
    with pytest.raises(ValueError, match="no submodule 'nope'"):
        resolve_layer(model, "nope")
    with pytest.raises(ValueError, match="has no 'weight'"):
        resolve_layer(model, "net.1")


def test_condensation_probe_matches_the_pure_functions():
    model = mlp(width=24, init_scale=0.1, dtype=torch.float32)
    initial = copy.deepcopy(model)
    data = gd.tasks.fourier_1d(n_points=64)
    probe = CondensationProbe(matrix_every=2, schedule=Schedule(every=10))
    result = gd.train(model, data, steps=30, lr=1e-2, probes=[probe], progress=False)
    assert keys(result, "condensation") == {"orientations", "neurons", "mean_abs_cos", "similarity"}
    steps, counts = result.series("condensation/orientations")
    assert steps.tolist() == [0, 10, 20, 30]
    W, b = model.net[0].weight.detach(), model.net[0].bias.detach()
    assert counts[-1] == count_orientations(W, b)
    assert result.recorder.last("condensation/neurons") == 24
    # mean |cos| by hand over the neurons kept by the clustering
    kept = orientation_clusters(W, b) >= 0
    U = torch.cat([W, b[:, None]], dim=1)[kept].double()
    C = torch.nn.functional.cosine_similarity(U[:, None], U[None], dim=-1).abs()
    k = int(kept.sum())
    expected = float((C.sum() - k) / (k * (k - 1)))
    assert result.recorder.last("condensation/mean_abs_cos") == pytest.approx(expected, rel=1e-6)
    # the matrix at calls 0 and 2 (steps 0 and 20), from the weights of the time
    mats = result.history["condensation/similarity"]
    assert [s for s, _ in mats] == [0, 20] and mats[0][1].shape == (24, 24) and mats[0][1].dtype == np.float32
    S0 = ordered_similarity(initial.net[0].weight.detach(), initial.net[0].bias.detach())
    np.testing.assert_allclose(mats[0][1], S0.numpy(), atol=1e-6)


def test_condensation_probe_options_on_a_planted_layer():
    """A layer built on 3 orientations: 3 counted, |cos| = 1 within clusters; the matrix is
    capped at max_neurons; use_bias=False reads W alone."""
    W, b, _ = condensed_layer(m=30, d=4, k=3, noise=0.0)
    layer = nn.Linear(4, 30).to(F64)
    with torch.no_grad():
        layer.weight.copy_(W)
        layer.bias.copy_(b)
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(30, 1).to(F64))
    probe = CondensationProbe(matrix_every=1, max_neurons=7)
    ctx = ProbeContext(0, model)
    out, state = probe.compute(ctx, probe.init(ctx))
    assert out["orientations"] == 3 and out["neurons"] == 30 and out["similarity"].shape == (7, 7)
    assert state == {"calls": 1}
    U = torch.cat([W, b[:, None]], dim=1)
    C = torch.nn.functional.cosine_similarity(U[:, None], U[None], dim=-1).abs()
    assert out["mean_abs_cos"] == pytest.approx(float(C.sum() - 30) / (30 * 29))
    no_bias = CondensationProbe(use_bias=False)
    assert no_bias.compute(ctx, no_bias.init(ctx))[0]["orientations"] == count_orientations(W)


def test_condensation_probe_on_layernorm_embedding_and_dropout():
    """The first nn.Linear after an embedding and a LayerNorm by default; any named layer (the
    embedding's rows); a model without such a layer fails at init, naming layer=."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 4), nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, 6), nn.Tanh(),
                          nn.Dropout(0.5), nn.Linear(6, 3)).to(F64)
    ctx = ProbeContext(0, model)
    probe = CondensationProbe()
    out, _ = probe.compute(ctx, probe.init(ctx))
    W, b = model[3].weight.detach(), model[3].bias.detach()
    assert out["orientations"] == count_orientations(W, b) and out["neurons"] == 6
    assert out["mean_abs_cos"] == pytest.approx(mean_abs_cosine(W, b))
    torch.testing.assert_close(out["similarity"], ordered_similarity(W, b).float())
    emb = CondensationProbe(layer="0")
    out, _ = emb.compute(ctx, emb.init(ctx))
    assert out["neurons"] == 7 and out["orientations"] == count_orientations(model[0].weight.detach())
    with pytest.raises(ValueError, match="layer='weight_ih'"):
        CondensationProbe().init(ProbeContext(0, gd.models.GRU(2, 4, 1)))
    with pytest.raises(ValueError, match="no submodule"):
        CondensationProbe(layer="encoder").init(ctx)


def test_one_probe_list_serves_two_runs():
    """The call count (which calls record the matrix) restarts with each run."""
    data = gd.tasks.fourier_1d(n_points=32)
    probes = [CondensationProbe(matrix_every=2, schedule=Schedule(every=5))]
    for seed in (0, 1):
        model = mlp(width=8, seed=seed, dtype=torch.float32)
        initial = copy.deepcopy(model)
        result = gd.train(model, data, steps=15, lr=1e-2, probes=probes, progress=False)
        mats = result.history["condensation/similarity"]
        assert [s for s, _ in mats] == [0, 10]
        S0 = ordered_similarity(initial.net[0].weight.detach(), initial.net[0].bias.detach())
        np.testing.assert_allclose(mats[0][1], S0.numpy(), atol=1e-6)


def test_condensation_probe_declares_what_it_records():
    probe = CondensationProbe(schedule=Schedule(every=5))
    result = gd.train(mlp(width=8, dtype=torch.float32), gd.tasks.fourier_1d(n_points=32), steps=5, lr=1e-2,
                      probes=[probe], progress=False)
    recorded = keys(result, "condensation")
    assert_declared_keys_recorded(probe, recorded, specs=False)
    assert {m.key for m in probe.metric_specs} == recorded
    assert gd.probes.base.is_probe(probe) and CondensationProbe().schedule.log_points is not None
    assert CondensationProbe(schedule="every:5").schedule == Schedule(every=5)
    with pytest.warns(DeprecationWarning, match="Recorder"):
        probe.reset()
    with pytest.raises(ValueError, match="matrix_every"):
        CondensationProbe(matrix_every=0)
    with pytest.raises(ValueError, match="method"):
        CondensationProbe(method="ward")
