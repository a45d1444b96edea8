"""Recorder semantics: a horizon is required by log schedules; steps past it warn once."""

from __future__ import annotations

import warnings

import pytest
import torch

import gdlens as gd
from gdlens.probes import MetricsProbe, ParameterNormProbe, Schedule


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 2)


def test_log_schedules_without_a_horizon_are_an_error_at_construction():
    with pytest.raises(ValueError, match=r"param_norm.*log-spaced.*total_steps=N"):
        gd.Recorder([ParameterNormProbe()])
    with pytest.raises(ValueError, match=r"metrics, param_norm"):
        gd.Recorder([MetricsProbe(), ParameterNormProbe(schedule="log:5")])
    with pytest.raises(ValueError, match="rel_change"):
        gd.Recorder(gd.probes.default_probes(recurrent=False))


def test_every_n_schedules_run_without_a_horizon():
    recorder = gd.Recorder([ParameterNormProbe(schedule=3)])
    model = _model()
    for step in range(10):
        recorder.step(step, model=model)
    assert [s for s, _ in recorder.history["param_norm/total"]] == [0, 3, 6, 9]


@pytest.mark.parametrize("total_steps", [-1, 2.5, "10", True])
def test_a_bad_horizon_is_refused(total_steps):
    with pytest.raises(ValueError, match="total_steps must be a non-negative int"):
        gd.Recorder([ParameterNormProbe(schedule=1)], total_steps=total_steps)


def test_steps_past_the_horizon_warn_once_and_record_nothing():
    recorder = gd.Recorder([ParameterNormProbe(schedule=Schedule(every=1))], total_steps=3)
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(4):
            recorder.step(step, model=model)
    with pytest.warns(RuntimeWarning, match=r"step 4 is past total_steps=3") as caught:
        for step in range(4, 8):
            recorder.step(step, model=model)
    assert len(caught) == 1
    assert [s for s, _ in recorder.history["param_norm/total"]] == [0, 1, 2, 3]
    recorder.step(9, model=model, force=True)
    assert recorder.history["param_norm/total"][-1][0] == 9
