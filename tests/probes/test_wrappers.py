"""The schedulable probes inside gd.train: recorded keys, and values equal to the pure functions
applied by hand to the same model state (the final step, whose parameters the trained model
keeps; earlier states are kept by a snapshot probe)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import gdlens as gd
from gdlens.operators import DenseOperator
from gdlens.probes import (
    CondensationProbe,
    FrequencyProbe,
    MetricsProbe,
    NTKProbe,
    Probe,
    ProbeContext,
    RepresentationProbe,
    Schedule,
    SharpnessProbe,
)
from gdlens.probes.condensation import count_orientations, orientation_clusters, orientation_similarity
from gdlens.probes.frequency import error_by_frequency
from gdlens.probes.ntk import empirical_ntk, kernel_distance, kernel_target_alignment, ntk_effective_rank
from gdlens.probes.representation import participation_ratio
from gdlens.probes.sharpness import top_hessian_eig
from gdlens.probes.similarity import linear_cka
from gdlens.probes.wrappers import layer_activations, ntk_entries, ntk_matrix, resolve_layer, spread_indices

F64 = torch.float64


class Snapshots:
    """A probe that keeps a copy of the model at its steps (to recompute earlier states)."""

    name = "snap"

    def __init__(self, every: int) -> None:
        self.schedule = Schedule(every=every)
        self.models: dict[int, nn.Module] = {}

    def compute(self, ctx: ProbeContext) -> dict:
        self.models[ctx.step] = copy.deepcopy(ctx.model)
        return {}


def mlp(input_size=1, width=16, output_size=1, seed=0, dtype=F64, **kw) -> gd.models.MLP:
    torch.manual_seed(seed)
    return gd.models.MLP(input_size, width, output_size, **kw).to(dtype)


def call(model: nn.Module):
    """``(params, x) -> model(x)`` with the parameters given, by torch.func.functional_call."""
    return lambda p, x: torch.func.functional_call(model, p, (x,))


def keys(result, probe_name: str) -> set[str]:
    return {k.split("/", 1)[1] for k in result.history if k.startswith(probe_name + "/")}


def test_probes_follow_the_protocol_with_log_schedules_by_default():
    for cls in (CondensationProbe, FrequencyProbe, SharpnessProbe, NTKProbe, RepresentationProbe):
        probe = cls()
        assert gd.probes.base.is_probe(probe)  # stateful Probe once moved to init/compute(ctx, state)
        assert probe.schedule.log_points is not None
    assert CondensationProbe(schedule="every:5").schedule == Schedule(every=5)
    assert gd.probes.SharpnessProbe is SharpnessProbe


# ---------------------------------------------------------------------- condensation
def test_condensation_probe_matches_the_pure_functions():
    model = mlp(width=24, init_scale=0.1, dtype=torch.float32)
    initial = copy.deepcopy(model)
    data = gd.tasks.fourier_1d(n_points=64)
    probe = CondensationProbe(matrix_every=2, schedule=Schedule(every=10))
    result = gd.train(model, data, steps=30, lr=1e-2, probes=[probe], progress=False)
    assert keys(result, "condensation") == {"orientations", "mean_abs_cos", "similarity"}
    steps, counts = result.series("condensation/orientations")
    assert steps.tolist() == [0, 10, 20, 30]
    W, b = model.net[0].weight.detach(), model.net[0].bias.detach()
    assert counts[-1] == count_orientations(W, b)
    S, kept = orientation_similarity(W, b), orientation_clusters(W, b) >= 0
    A = S[kept][:, kept].abs().double()
    k = int(kept.sum())
    expected = float((A.sum() - torch.diagonal(A).sum()) / (k * (k - 1)))
    assert result.recorder.last("condensation/mean_abs_cos") == pytest.approx(expected, rel=1e-6)
    # the matrix at calls 0 and 2 (steps 0 and 20), from the weights of the time
    mats = result.history["condensation/similarity"]
    assert [s for s, _ in mats] == [0, 20] and mats[0][1].shape == (24, 24)
    S0 = orientation_similarity(initial.net[0].weight.detach(), initial.net[0].bias.detach())
    np.testing.assert_allclose(mats[0][1], S0.numpy(), atol=1e-6)


def test_condensation_probe_options_on_a_planted_layer():
    """A layer built on 3 orientations: 3 counted, |cos| near 1 within clusters; the matrix is
    capped at max_neurons; use_bias=False reads W alone."""
    gen = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(3, 5, generator=gen, dtype=F64), dim=1)
    U = dirs[torch.arange(30) % 3] * (0.5 + torch.rand(30, 1, generator=gen, dtype=F64))
    layer = nn.Linear(4, 30).to(F64)
    with torch.no_grad():
        layer.weight.copy_(U[:, :4])
        layer.bias.copy_(U[:, 4])
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(30, 1).to(F64))
    out = CondensationProbe(matrix_every=1, max_neurons=7).compute(ProbeContext(0, model))
    assert out["orientations"] == 3 and out["similarity"].shape == (7, 7)
    assert out["mean_abs_cos"] == pytest.approx(float(orientation_similarity(U).abs().sum() - 30) / (30 * 29))
    no_bias = CondensationProbe(use_bias=False).compute(ProbeContext(0, model))
    assert no_bias["orientations"] == count_orientations(U[:, :4])


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


# ---------------------------------------------------------------------- frequency
def test_frequency_probe_matches_error_by_frequency_and_the_task_metric():
    model = mlp(width=32, dtype=torch.float32)
    data = gd.tasks.fourier_1d(frequencies=(1, 3, 5), n_points=64)
    probe = FrequencyProbe(schedule=Schedule(every=25))
    result = gd.train(model, data, steps=50, lr=1e-2, probes=[probe, MetricsProbe(schedule=Schedule(every=25))],
                      progress=False)
    assert keys(result, "frequency") == {"err_k1", "err_k3", "err_k5"}
    assert probe.peaks.tolist() == [1, 3, 5]
    with torch.no_grad():
        pred = model(data.x)[:, 0]
    res = error_by_frequency(pred, data.target[:, 0])
    for k, e in zip(res.indices.tolist(), res.errors.tolist()):
        assert result.recorder.last(f"frequency/err_k{k}") == pytest.approx(e, rel=1e-6)
        # fourier_1d's own metric computes the same error independently
        assert result.recorder.last(f"metrics/train/rel_error_f{k}") == pytest.approx(e, rel=1e-5)
    err1 = result.series("frequency/err_k1")[1]
    assert err1[-1] < 0.5 * err1[0]  # the lowest frequency is being fitted


def test_frequency_probe_needs_a_fixed_uniform_grid():
    model = mlp(width=8, dtype=torch.float32)
    data = gd.tasks.fourier_1d(frequencies=(2,), n_points=32)
    shuffled = data.subset(torch.randperm(32, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="uniform grid"):
        FrequencyProbe().compute(ProbeContext(0, model, batch=shuffled))
    probe = FrequencyProbe(num_peaks=1)
    assert list(probe.compute(ProbeContext(0, model, batch=data))) == ["err_k2"]
    with pytest.raises(ValueError, match="changed"):
        probe.compute(ProbeContext(1, model, batch=data.subset(slice(0, 16))))
    probe.reset()
    assert probe.peaks is None
    # the held-out data, when asked for
    ctx = ProbeContext(0, model, batch=shuffled, eval_data=data)
    assert list(FrequencyProbe(data="eval").compute(ctx)) == ["err_k2"]
    with pytest.raises(ValueError, match="data must be"):
        FrequencyProbe(data="test")


# ---------------------------------------------------------------------- tied weights
# (the SharpnessProbe's own tests live in test_sharpness.py)
class TiedAutoencoder(nn.Module):
    """``y = W tanh(W x + b) + c``: one weight W held by two modules (``dec.weight`` is ``enc.weight``)."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(d, d), nn.Linear(d, d)
        self.dec.weight = self.enc.weight

    def forward(self, x):
        return self.dec(torch.tanh(self.enc(x)))


def tied_output(p, x):
    """The tied model's output from explicit parameters, W used twice."""
    W = p["enc.weight"]
    return torch.nn.functional.linear(torch.tanh(torch.nn.functional.linear(x, W, p["enc.bias"])), W, p["dec.bias"])


def test_probes_swap_tied_weights_together():
    """Sharpness and NTK of a model with one weight in two modules: both uses of W move (a swap of
    one slot only would give other second derivatives and another kernel)."""
    torch.manual_seed(0)
    model = TiedAutoencoder().to(F64)
    params = dict(model.named_parameters())
    assert set(params) == {"enc.weight", "enc.bias", "dec.bias"}
    data = gd.tasks.teacher_student(20, input_dim=3, output_dim=3, dtype=F64)
    torch.testing.assert_close(tied_output(params, data.x), model(data.x))
    ctx = ProbeContext(0, model, batch=data)
    probe = SharpnessProbe(tol=1e-10)
    sharp = probe.compute(ctx, probe.init(ctx))[0]["lambda_max"]
    ref = float(top_hessian_eig(lambda p: data.loss_value(tied_output(p, data.x)), params, tol=1e-10)[0])
    assert sharp == pytest.approx(ref, rel=1e-8)
    ntk = NTKProbe(n_samples=4).compute(ctx)
    x = data.x[spread_indices(20, 4)]
    K = empirical_ntk(tied_output, params, x).dense()
    assert ntk["trace"] == pytest.approx(float(torch.diagonal(K).sum()), rel=1e-10)
    assert ntk["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(K)[-1]), rel=1e-10)


# ---------------------------------------------------------------------- NTK
def test_ntk_probe_on_a_regression_with_two_outputs():
    model = mlp(input_size=3, width=10, output_size=2)
    initial = copy.deepcopy(model)
    data = gd.tasks.teacher_student(40, input_dim=3, output_dim=2, dtype=F64)
    n = 6
    probes = [NTKProbe(n_samples=n, schedule=Schedule(every=10)),
              NTKProbe(n_samples=n, centered=True, name="ntk_c", schedule=Schedule(every=10))]
    result = gd.train(model, data, optimizer="sgd", lr=0.05, steps=20, probes=probes, progress=False)
    assert keys(result, "ntk") == {"trace", "lambda_max", "effective_rank", "kernel_distance", "target_alignment"}
    idx = spread_indices(40, n)
    assert idx.tolist() == [0, 8, 16, 23, 31, 39]
    x, y = data.x[idx], data.target[idx]

    def kernel(m):
        return empirical_ntk(call(m), dict(m.named_parameters()), x).dense()

    K, K0 = kernel(model), kernel(initial)
    assert K.shape == (2 * n, 2 * n)
    last = result.recorder.last
    assert last("ntk/trace") == pytest.approx(float(torch.trace(K)), rel=1e-10)
    assert last("ntk/lambda_max") == pytest.approx(float(torch.linalg.eigvalsh(K)[-1]), rel=1e-10)
    assert last("ntk/effective_rank") == pytest.approx(ntk_effective_rank(K), rel=1e-10)
    assert last("ntk/kernel_distance") == pytest.approx(kernel_distance(K, K0), rel=1e-8, abs=1e-14)
    assert result.series("ntk/kernel_distance")[1][0] == pytest.approx(0.0, abs=1e-14)
    assert last("ntk/kernel_distance") > 1e-6
    assert last("ntk/target_alignment") == pytest.approx(kernel_target_alignment(K, y.reshape(-1)), rel=1e-10)
    # centred over the samples: the operator form of kernel_target_alignment
    Kop = DenseOperator(K, shape_in=(n, 2), shape_out=(n, 2), is_symmetric=True)
    centred = kernel_target_alignment(Kop, y, centered=True)
    assert last("ntk_c/target_alignment") == pytest.approx(centred, rel=1e-8)


def test_ntk_probe_with_cross_entropy_and_on_a_gru():
    data = gd.tasks.modular_addition(p=5, train_fraction=0.6, encoding="one_hot", seed=1, dtype=F64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 5)).to(F64)
    probe = NTKProbe(n_samples=4)
    out = probe.compute(ProbeContext(0, model, batch=data.train))
    idx = spread_indices(data.train.x.shape[0], 4)
    x = data.train.x[idx]
    K = empirical_ntk(call(model), dict(model.named_parameters()), x).dense()
    onehot = torch.nn.functional.one_hot(data.train.target[idx], 5).to(F64)
    assert out["target_alignment"] == pytest.approx(kernel_target_alignment(K, onehot.reshape(-1)), rel=1e-10)
    assert out["kernel_distance"] == pytest.approx(0.0, abs=1e-14)
    assert torch.allclose(probe.initial_kernel, K, rtol=1e-10, atol=1e-12)
    # a GRU: outputs (n, T, O), the kernel of the model's own pure functions
    gru, seq = gru_setup()
    out = NTKProbe(n_samples=2).compute(ProbeContext(0, gru, batch=seq))
    xs = seq.x[spread_indices(6, 2)]
    Kg = empirical_ntk(lambda p, x: gru_output(gru, p, x), dict(gru.named_parameters()), xs).dense()
    assert Kg.shape == (2 * 5 * 2, 2 * 5 * 2)
    assert out["trace"] == pytest.approx(float(torch.trace(Kg)), rel=1e-10)
    assert out["effective_rank"] == pytest.approx(ntk_effective_rank(Kg), rel=1e-10)
    rows7 = ntk_matrix(lambda p, x: gru_output(gru, p, x), dict(gru.named_parameters()), xs, chunk_size=7)
    assert torch.allclose(rows7, Kg, rtol=1e-10, atol=1e-12)


def test_ntk_probe_keeps_at_most_max_outputs_entries():
    """Past max_outputs, the kernel is the principal submatrix of the full NTK on evenly spread
    entries of every sample; for classification the samples' own classes are among them."""
    gru, seq = gru_setup()
    probe = NTKProbe(n_samples=2, max_outputs=8)
    out = probe.compute(ProbeContext(0, gru, batch=seq))
    xs = seq.x[spread_indices(6, 2)]
    fn = lambda p, x: gru_output(gru, p, x)  # noqa: E731
    full = empirical_ntk(fn, dict(gru.named_parameters()), xs).dense()  # (2·5·2)²
    cols = spread_indices(10, 4)  # 4 of each sample's T·O = 10 entries
    assert probe.entries.tolist() == cols.tolist() + (10 + cols).tolist()
    sub = full[probe.entries][:, probe.entries]
    assert out["trace"] == pytest.approx(float(torch.trace(sub)), rel=1e-10)
    assert out["effective_rank"] == pytest.approx(ntk_effective_rank(sub), rel=1e-10)
    assert torch.allclose(ntk_matrix(fn, dict(gru.named_parameters()), xs, entries=probe.entries), sub, atol=1e-12)

    data = gd.tasks.modular_addition(p=11, train_fraction=0.6, encoding="one_hot", seed=2, dtype=F64)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(22, 8), nn.ReLU(), nn.Linear(8, 11)).to(F64)
    probe = NTKProbe(n_samples=3, max_outputs=12)
    out = probe.compute(ProbeContext(0, model, batch=data.train))
    idx = spread_indices(data.train.x.shape[0], 3)
    classes = data.train.target[idx]
    per_sample = probe.entries.reshape(3, 4) - 11 * torch.arange(3)[:, None]
    assert (per_sample == per_sample[0]).all() and set(classes.tolist()) <= set(per_sample[0].tolist())
    assert per_sample[0].tolist() == ntk_entries(data.train, idx, (3, 11), 12)[:4].tolist()
    x = data.train.x[idx]
    full = empirical_ntk(call(model), dict(model.named_parameters()), x).dense()
    sub = full[probe.entries][:, probe.entries]
    y = torch.nn.functional.one_hot(classes, 11).to(F64).reshape(-1)[probe.entries]
    assert out["target_alignment"] == pytest.approx(kernel_target_alignment(sub, y), rel=1e-10)


# ---------------------------------------------------------------------- representation
def test_representation_probe_matches_participation_ratio_and_cka():
    model = mlp(width=32, dtype=torch.float32)
    data = gd.tasks.fourier_1d(frequencies=(1, 4), n_points=64)
    snaps = Snapshots(every=10)
    probes = [RepresentationProbe(n_samples=16, schedule=Schedule(every=10)),
              RepresentationProbe(layer="net.1", n_samples=16, name="relu", schedule=Schedule(every=10)), snaps]
    result = gd.train(model, data, lr=3e-2, steps=20, probes=probes, progress=False)
    assert keys(result, "representation") == {"participation_ratio", "cka_init", "cka_prev"}
    x = data.x[spread_indices(64, 16)]

    def acts(m):
        with torch.no_grad():
            return m.net[1](m.net[0](x))

    A, A0, A10 = acts(model), acts(snaps.models[0]), acts(snaps.models[10])
    last = result.recorder.last
    assert last("representation/participation_ratio") == pytest.approx(participation_ratio(A), rel=1e-6)
    assert last("representation/cka_init") == pytest.approx(linear_cka(A, A0), rel=1e-6)
    assert last("representation/cka_prev") == pytest.approx(linear_cka(A, A10), rel=1e-6)
    assert result.series("representation/cka_init")[1][0] == pytest.approx(1.0, abs=1e-6)
    assert result.series("representation/cka_prev")[0].tolist() == [10, 20]
    assert last("representation/cka_init") < 1 - 1e-4  # the representation moved
    # the input of the last Linear is the ReLU's output: the same numbers by layer name
    for k in ("participation_ratio", "cka_init", "cka_prev"):
        assert last(f"relu/{k}") == pytest.approx(last(f"representation/{k}"), rel=1e-6)


def test_layer_activations_of_a_state_space_model_and_errors():
    gru, seq = gru_setup()
    with torch.no_grad():
        _, z = gru(seq.x)
    acts = layer_activations(gru, seq.x)
    assert acts.shape == (6 * 5, 4) and torch.equal(acts, z.reshape(-1, 4))
    # gdlens' state-space models compute their readout from the parameters, not by calling the
    # readout submodule: a hook on it never fires, and the probe says so
    with pytest.raises(ValueError, match="'readout' was not called"):
        layer_activations(gru, seq.x, "readout")
    probe = RepresentationProbe(debiased=True)
    out = probe.compute(ProbeContext(0, gru, batch=seq))
    assert out["participation_ratio"] == pytest.approx(participation_ratio(z.reshape(-1, 4)))
    assert out["cka_init"] == pytest.approx(1.0) and probe.inputs.shape == (6, 5, 2)
    with pytest.raises(ValueError, match="no submodule"):
        layer_activations(gru, seq.x, "encoder")
    with pytest.raises(ValueError, match="n_samples"):
        RepresentationProbe(n_samples=1)
