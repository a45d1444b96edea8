"""Frequency-principle probes on signals whose spectra are known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.probes.frequency import (
    error_by_frequency,
    filtered_error,
    gaussian_filter,
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
