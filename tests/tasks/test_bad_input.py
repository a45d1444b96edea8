"""Bad arguments raise a ValueError that names the argument and what it may be."""

from __future__ import annotations

import pytest
import torch

from gdlens.tasks import (
    context_integration,
    flip_flop,
    flip_flop_targets,
    fourier_1d,
    get,
    low_rank_forecast,
    memory_pro,
    modular_addition,
    sine_generation,
    teacher_student,
)

CASES = [
    (flip_flop, dict(batch_size=4, T=0), r"T must be an int >= 1, got 0"),
    (flip_flop, dict(batch_size=0), r"batch_size must be an int >= 1"),
    (flip_flop, dict(batch_size=4, T=2.5), r"T must be an int >= 1, got 2.5"),
    (flip_flop, dict(batch_size=4, bits=0), r"bits must be an int >= 1"),
    (flip_flop, dict(batch_size=4, pulse_prob=1.5), r"pulse_prob must be a probability in \[0, 1\], got 1.5"),
    (flip_flop, dict(batch_size=4, pulse_prob=-0.1), r"pulse_prob must be a probability in \[0, 1\]"),
    (flip_flop, dict(batch_size=4, noise=-1.0), r"noise must be a number >= 0"),
    (flip_flop, dict(batch_size=4, dtype=torch.int64), r"dtype must be a real floating torch dtype"),
    (flip_flop, dict(batch_size=4, seed=-1), r"seed must be a non-negative int"),
    (flip_flop, dict(batch_size=4, seed=1.5), r"seed must be an int or a torch.Generator"),
    (memory_pro, dict(batch_size=4, variant="go"), r"variant must be one of \('DelayPro', 'DelayAnti', 'MemoryPro', 'MemoryAnti'\)"),
    (memory_pro, dict(batch_size=4, T_resp=0), r"T_resp must be an int >= 1"),
    (memory_pro, dict(batch_size=4, T_stim=0), r"T_stim must be an int >= 1"),
    (memory_pro, dict(batch_size=4, T_delay=-1), r"T_delay must be an int >= 0"),
    (context_integration, dict(batch_size=4, T_stim=0), r"T_stim must be an int >= 1"),
    (context_integration, dict(batch_size=4, coherences=(0.1, -0.2)), r"coherences must be positive numbers"),
    (context_integration, dict(batch_size=4, coherences=()), r"coherences must be a non-empty sequence"),
    (sine_generation, dict(batch_size=4, T=0), r"T must be an int >= 1"),
    (sine_generation, dict(batch_size=4, frequencies=(0.1, 0.0)), r"frequencies must be positive numbers"),
    (low_rank_forecast, dict(batch_size=4, dim=3, rank=4), r"rank must be an int in 1..dim = 1..3, got 4"),
    (low_rank_forecast, dict(batch_size=4, radius=1.2), r"radius must be a number in \(0, 1\]"),
    (low_rank_forecast, dict(batch_size=4, T=0), r"T must be an int >= 1"),
    (modular_addition, dict(p=12, operation="div"), r"operation='div' needs a prime p .* got p = 12"),
    (modular_addition, dict(p=1), r"p must be an int >= 2"),
    (modular_addition, dict(operation="pow"), r"operation must be one of \('add', 'sub', 'mul', 'div'\)"),
    (modular_addition, dict(train_fraction=1.0), r"train_fraction must be a number in \(0, 1\), got 1.0"),
    (modular_addition, dict(train_fraction=0.0), r"train_fraction must be a number in \(0, 1\)"),
    (modular_addition, dict(p=2, train_fraction=0.01), r"each split needs at least one pair"),
    (modular_addition, dict(encoding="onehot"), r"encoding must be one of \('tokens', 'one_hot'\)"),
    (fourier_1d, dict(frequencies=(1, 2.5)), r"frequencies must be positive ints below n_points / 2"),
    (fourier_1d, dict(frequencies=(1, 200), n_points=256), r"below n_points / 2 = 128.0"),
    (fourier_1d, dict(frequencies=(1, 1)), r"frequencies must be distinct"),
    (fourier_1d, dict(amplitudes=(1.0, 2.0)), r"amplitudes must be 3 nonzero numbers"),
    (fourier_1d, dict(domain=(1.0, 0.0)), r"domain must be a pair \(lo, hi\) with lo < hi"),
    (fourier_1d, dict(n_points=0), r"n_points must be an int >= 1"),
    (teacher_student, dict(n_samples=4, activation="gelu"), r"activation must be one of \('relu', 'tanh'\)"),
    (teacher_student, dict(n_samples=0), r"n_samples must be an int >= 1"),
    (teacher_student, dict(n_samples=4, input_dim=0), r"input_dim must be an int >= 1"),
]


@pytest.mark.parametrize("fn,kwargs,message", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_bad_arguments_raise_a_value_error_saying_what_is_allowed(fn, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(**kwargs)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match=r"pulses must have shape \(B, T, C\)"):
        flip_flop_targets(torch.zeros(4, 5, dtype=torch.int8))
    with pytest.raises(ValueError, match="unknown task"):
        get("memorypro")
