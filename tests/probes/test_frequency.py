"""Frequency-principle measurements on signals whose spectra are known exactly; the frequency
probe inside gd.train against them and against numpy's FFT."""

from __future__ import annotations

import fnmatch
import math

import numpy as np
import pytest
import torch
from torch import nn

import gdlens as gd
from probe_helpers import assert_declared_keys_recorded
from gdlens.probes import MetricsProbe, ProbeContext, Schedule
from gdlens.probes.frequency import (
    FrequencyProbe,
    error_by_frequency,
    filtered_error,
    gaussian_filter,
    grid_spacing,
    spectral_peaks,
    split_frequencies,
)

F64 = torch.float64
N = 128
x = torch.arange(N, dtype=F64) / N  # uniform grid on [0, 1): frequency k has k whole cycles

COMPONENTS = {3: (1.0, "sin"), 7: (0.5, "sin"), 12: (0.3, "cos")}


def component(k: int) -> torch.Tensor:
    amp, kind = COMPONENTS[k]
    f = torch.sin if kind == "sin" else torch.cos
    return amp * f(2 * math.pi * k * x)


def target() -> torch.Tensor:
    return sum(component(k) for k in COMPONENTS)


def test_peaks_are_the_known_frequencies():
    y = target()
    assert spectral_peaks(y).tolist() == [3, 7, 12]
    assert spectral_peaks(y, num_peaks=2).tolist() == [3, 7]  # the two largest, ascending
    assert spectral_peaks(y, rel_height=0.4).tolist() == [3, 7]


def test_peaks_survive_small_noise_and_mean():
    gen = torch.Generator().manual_seed(0)
    y = target() + 0.01 * torch.randn(N, generator=gen, dtype=F64) + 5.0
    assert spectral_peaks(y).tolist() == [3, 7, 12]
    assert spectral_peaks(y, include_zero=True).tolist() == [0]  # the mean dominates: 5·N vs N/2


def test_exact_prediction_has_zero_error():
    y = target()
    res = error_by_frequency(y.clone(), y)
    assert res.indices.tolist() == [3, 7, 12]
    assert torch.allclose(res.errors, torch.zeros(3, dtype=F64), atol=1e-12)
    assert torch.allclose(res.target_magnitude, torch.tensor([0.5 * N, 0.25 * N, 0.15 * N], dtype=F64))
    # default spacing 1: cycles per sample, k / N
    assert torch.allclose(res.frequencies, torch.tensor([3.0, 7.0, 12.0], dtype=F64) / N)


def test_missing_component_has_error_one():
    y = target()
    pred = y - component(7)
    res = error_by_frequency(pred, y)
    assert torch.allclose(res.errors, torch.tensor([0.0, 1.0, 0.0], dtype=F64), atol=1e-12)


def test_stack_of_predictions_over_training():
    y = target()
    steps = torch.stack([torch.zeros(N, dtype=F64), component(3), component(3) + component(7), y])
    res = error_by_frequency(steps, y)
    expected = torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=F64)
    assert res.errors.shape == (4, 3)
    assert torch.allclose(res.errors, expected, atol=1e-12)
    # a half-learned component: error 1/2 at that peak
    half = error_by_frequency(y - 0.5 * component(12), y, peaks=[12])
    assert half.errors.tolist() == pytest.approx([0.5])


def test_spacing_sets_physical_frequencies():
    y = target()
    res = error_by_frequency(y, y, spacing=2.0 / N)  # grid on [0, 2): 3 cycles = 1.5 per unit
    assert torch.allclose(res.frequencies, torch.tensor([1.5, 3.5, 6.0], dtype=F64))


def dense_low(y: torch.Tensor, X: torch.Tensor, delta: float) -> torch.Tensor:
    G = torch.exp(-torch.cdist(X, X) ** 2 / (2 * delta))
    return (G @ y.reshape(len(X), -1) / G.sum(1, keepdim=True)).reshape(y.shape)


def test_gaussian_filter_chunked_equals_unchunked_and_dense():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(53, 4, generator=gen, dtype=F64)
    y = torch.randn(53, 3, generator=gen, dtype=F64)
    full = gaussian_filter(y, X, delta=0.7, chunk_size=1000)
    chunked = gaussian_filter(y, X, delta=0.7, chunk_size=7)
    assert torch.allclose(full, chunked, atol=1e-13)
    assert torch.allclose(full, dense_low(y, X, 0.7), atol=1e-12)


def test_filter_limits_and_split():
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(40, 3, generator=gen, dtype=F64)
    y = torch.randn(40, generator=gen, dtype=F64)
    assert torch.allclose(gaussian_filter(y, X, delta=1e-6), y, atol=1e-10)  # no smoothing
    assert torch.allclose(gaussian_filter(y, X, delta=1e8), y.mean().expand(40), atol=1e-6)  # all smoothing
    assert torch.allclose(gaussian_filter(torch.full((40,), 3.0, dtype=F64), X, 0.5), torch.full((40,), 3.0, dtype=F64))
    low, high = split_frequencies(y, X, delta=0.5, chunk_size=9)
    assert torch.allclose(low + high, y, atol=1e-14)
    assert torch.allclose(low, dense_low(y, X, 0.5), atol=1e-12)


def test_filtered_error_known_answers():
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(60, 5, generator=gen, dtype=F64)
    y = torch.randn(60, 2, generator=gen, dtype=F64) + 1.0
    delta = 0.8
    res = filtered_error(y.clone(), y, X, delta)
    assert float(res.low) == pytest.approx(0.0, abs=1e-12) and float(res.high) == pytest.approx(0.0, abs=1e-12)
    # a constant offset is pure low frequency: it leaves the high part exact
    c = torch.tensor([0.3, -0.2], dtype=F64)
    res = filtered_error(y + c, y, X, delta, chunk_size=11)
    y_low = dense_low(y, X, delta)
    assert float(res.high) == pytest.approx(0.0, abs=1e-12)
    assert float(res.low) == pytest.approx(float(c.norm() * math.sqrt(60) / y_low.norm()), rel=1e-10)
    # a stack of predictions: (S,) results, chunking does not matter
    preds = torch.stack([y, y + c, torch.zeros_like(y)])
    a = filtered_error(preds, y, X, delta, chunk_size=1000)
    b = filtered_error(preds, y, X, delta, chunk_size=13)
    assert a.low.shape == (3,) and torch.allclose(a.low, b.low) and torch.allclose(a.high, b.high)
    assert torch.allclose(a.low[2:], torch.ones(1, dtype=F64)) and torch.allclose(a.high[2:], torch.ones(1, dtype=F64))


def test_bad_inputs():
    y = target()
    with pytest.raises(ValueError, match=r"\(2, 64\)"):
        error_by_frequency(torch.zeros(2, 64, dtype=F64), y)
    with pytest.raises(ValueError, match="1-D"):
        spectral_peaks(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"\[0, 64\]"):
        error_by_frequency(y, y, peaks=[70])
    X = torch.randn(10, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"\(9,\)"):
        gaussian_filter(torch.zeros(9, dtype=F64), X, 1.0)
    with pytest.raises(ValueError, match="delta"):
        gaussian_filter(torch.zeros(10, dtype=F64), X, 0.0)
    with pytest.raises(ValueError, match=r"\(10, 3\)"):
        filtered_error(torch.zeros(10, 3, dtype=F64), torch.zeros(10, dtype=F64), X, 1.0)


def test_grid_spacing():
    assert grid_spacing(x) == pytest.approx(1 / N)
    assert grid_spacing(torch.linspace(-1, 1, 11, dtype=torch.float32)[:, None]) == pytest.approx(0.2, rel=1e-6)
    with pytest.raises(ValueError, match="uniform grid"):
        grid_spacing(x.flip(0))  # in order
    with pytest.raises(ValueError, match="uniform grid"):
        grid_spacing(torch.cat([x[:10], x[11:]]))  # a point missing
    with pytest.raises(ValueError, match=r"\(8, 2\)"):
        grid_spacing(torch.zeros(8, 2))
    with pytest.raises(ValueError, match="N >= 4"):
        grid_spacing(torch.arange(3.0))
    with pytest.raises(ValueError, match="floating"):
        grid_spacing(torch.arange(8))


# ---------------------------------------------------------------------- the probe
def mlp(width=16, seed=0, dtype=torch.float32) -> gd.models.MLP:
    torch.manual_seed(seed)
    return gd.models.MLP(1, width, 1).to(dtype)


def keys(result, probe_name: str) -> set[str]:
    return {k.split("/", 1)[1] for k in result.history if k.startswith(probe_name + "/")}


def numpy_errors(pred: torch.Tensor, target: torch.Tensor, peaks) -> list[float]:
    """|ĥ_k − ŷ_k| / |ŷ_k| at the peaks k, from numpy's FFT (independent of the package)."""
    H, Y = np.fft.rfft(pred.double().numpy()), np.fft.rfft(target.double().numpy())
    return [float(abs(H[k] - Y[k]) / abs(Y[k])) for k in peaks]


def test_frequency_probe_matches_error_by_frequency_and_the_task_metric():
    model = mlp(width=32)
    data = gd.tasks.fourier_1d(frequencies=(1, 3, 5), n_points=64)
    probe = FrequencyProbe(schedule=Schedule(every=25))
    result = gd.train(model, data, steps=50, lr=1e-2, probes=[probe, MetricsProbe(schedule=Schedule(every=25))],
                      progress=False)
    assert keys(result, "frequency") == {"err_k1", "err_k3", "err_k5"}
    assert result.recorder.states["frequency"]["peaks"].tolist() == [1, 3, 5]
    with torch.no_grad():
        pred = model(data.x)[:, 0]
    for k, e in zip((1, 3, 5), numpy_errors(pred, data.target[:, 0], (1, 3, 5))):
        assert result.recorder.last(f"frequency/err_k{k}") == pytest.approx(e, rel=1e-5)
        # fourier_1d's own metric computes the same error independently
        assert result.recorder.last(f"metrics/train/rel_error_f{k}") == pytest.approx(e, rel=1e-5)
    err1 = result.series("frequency/err_k1")[1]
    assert err1[-1] < 0.5 * err1[0]  # the lowest frequency is being fitted


def test_frequency_probe_needs_a_fixed_uniform_grid():
    model = mlp(width=8)
    data = gd.tasks.fourier_1d(frequencies=(2,), n_points=32)
    shuffled = data.subset(torch.randperm(32, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="uniform grid"):  # at init: before any update
        FrequencyProbe().init(ProbeContext(0, model, batch=shuffled))
    probe = FrequencyProbe(num_peaks=1)
    state = probe.init(ProbeContext(0, model, batch=data))
    assert state["peaks"].tolist() == [2] and state["spacing"] == pytest.approx(grid_spacing(data.x))
    out, state = probe.compute(ProbeContext(0, model, batch=data), state)
    assert list(out) == ["err_k2"]
    with pytest.raises(ValueError, match="changed"):
        probe.compute(ProbeContext(1, model, batch=data.subset(slice(0, 16))), state)
    # the held-out data, when asked for; no data yet: nothing
    ctx = ProbeContext(0, model, batch=shuffled, eval_data=data)
    held_out = FrequencyProbe(data="eval")
    assert list(held_out.compute(ctx, held_out.init(ctx))[0]) == ["err_k2"]
    assert held_out.compute(ProbeContext(0, model, batch=data), None) == ({}, None)
    with pytest.raises(ValueError, match="data must be"):
        FrequencyProbe(data="test")
    with pytest.raises(ValueError, match="output=3"):
        FrequencyProbe(output=3).init(ProbeContext(0, model, batch=data))


def test_frequency_probe_on_layernorm_and_dropout():
    """nn.LayerNorm and nn.Dropout in float64: the probe reads the model in eval mode (dropout
    off) and leaves its mode as it was, also inside gd.train, which trains in train mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 16), nn.LayerNorm(16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 2)).to(F64)
    data = gd.tasks.fourier_1d(frequencies=(1, 4), n_points=64, dtype=F64)
    data.target = torch.cat([data.target, -data.target], dim=1)  # a second output column
    probe = FrequencyProbe(output=1, schedule=Schedule(every=5))
    result = gd.train(model, data, optimizer="sgd", lr=0.05, steps=10, probes=[probe], progress=False)
    assert model.training
    model.eval()
    with torch.no_grad():
        pred = model(data.x)[:, 1]
    for k, e in zip((1, 4), numpy_errors(pred, data.target[:, 1], (1, 4))):
        assert result.recorder.last(f"frequency/err_k{k}") == pytest.approx(e, rel=1e-10)


def test_one_probe_list_serves_two_runs():
    """Each run fixes its own grid and peaks (with the state on the probe, the second run was
    refused: its grid 'changed')."""
    probes = [FrequencyProbe(schedule=Schedule(every=5))]
    for freqs, n in (((1, 3), 32), ((2, 5), 48)):
        data = gd.tasks.fourier_1d(frequencies=freqs, n_points=n)
        result = gd.train(mlp(width=8), data, steps=5, lr=1e-2, probes=probes, progress=False)
        assert keys(result, "frequency") == {f"err_k{k}" for k in freqs}


def test_frequency_probe_declares_what_it_records():
    probe = FrequencyProbe(schedule=Schedule(every=5))
    result = gd.train(mlp(width=8), gd.tasks.fourier_1d(frequencies=(1, 3), n_points=32), steps=5, lr=1e-2,
                      probes=[probe], progress=False)
    recorded = keys(result, "frequency")
    assert_declared_keys_recorded(probe, recorded, specs=False)
    assert all(fnmatch.filter(recorded, m.key) for m in probe.metric_specs)
    assert gd.probes.base.is_probe(probe) and FrequencyProbe().schedule.log_points is not None
    with pytest.warns(DeprecationWarning, match="Recorder"):
        probe.reset()
    with pytest.warns(DeprecationWarning, match="peaks"):
        assert probe.peaks is None
