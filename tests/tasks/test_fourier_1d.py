"""fourier_1d: the DFT of y on the grid peaks exactly at the requested frequencies."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.tasks import fourier_1d


@pytest.mark.parametrize("domain", [(-math.pi, math.pi), (0.0, 1.0), (2.0, 5.5)])
@pytest.mark.parametrize("freqs,amps", [((1, 3, 5), None), ((2, 7, 20), (1.0, -0.5, 0.25))])
def test_dft_peaks_exactly_at_the_frequencies(domain, freqs, amps):
    N = 128
    data = fourier_1d(freqs, amps, n_points=N, domain=domain, dtype=torch.float64)
    assert data.x.shape == data.target.shape == (N, 1)
    mag = torch.fft.rfft(data.target[:, 0]).abs()
    amps = amps or (1.0,) * len(freqs)
    expected = torch.zeros(N // 2 + 1, dtype=torch.float64)
    for f, a in zip(freqs, amps):
        expected[f] = N * abs(a) / 2
    torch.testing.assert_close(mag, expected, rtol=0, atol=1e-10)
    assert set((mag > 1e-8).nonzero().view(-1).tolist()) == set(freqs)


def test_grid_and_closed_forms():
    N = 64
    data = fourier_1d((1, 3), n_points=N, dtype=torch.float64)
    x = data.x[:, 0]
    assert x[0] == -math.pi and torch.allclose(x.diff(), torch.full((N - 1,), 2 * math.pi / N, dtype=torch.float64))
    assert x[-1] < math.pi  # one period: the right end is excluded
    # on (−π, π): Σ sin(f (x + π)) = Σ (−1)^f sin(f x)
    torch.testing.assert_close(data.target[:, 0], -torch.sin(x) - torch.sin(3 * x), rtol=0, atol=1e-12)
    unit = fourier_1d((2, 5), (1.0, 0.5), n_points=N, domain=(0.0, 1.0), dtype=torch.float64)
    u = unit.x[:, 0]
    expected = torch.sin(2 * math.pi * 2 * u) + 0.5 * torch.sin(2 * math.pi * 5 * u)
    torch.testing.assert_close(unit.target[:, 0], expected, rtol=0, atol=1e-12)


def test_noise_and_frequency_metric():
    clean = fourier_1d(n_points=256, dtype=torch.float64)
    noisy = fourier_1d(n_points=256, noise=0.1, seed=3, dtype=torch.float64)
    assert torch.equal(fourier_1d(n_points=256, seed=9, dtype=torch.float64).target, clean.target)
    assert 0.08 < (noisy.target - clean.target).std().item() < 0.12
    torch.testing.assert_close(noisy.info["clean"], clean.target, rtol=0, atol=0)
    # a prediction that has learned only the lowest frequency
    x = clean.x[:, 0]
    pred = (-torch.sin(x)).unsqueeze(1)
    m = clean.metric(pred)
    assert m["rel_error_f1"] == pytest.approx(0.0, abs=1e-12)
    assert m["rel_error_f3"] == pytest.approx(1.0) and m["rel_error_f5"] == pytest.approx(1.0)
