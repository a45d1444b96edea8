"""Recorder semantics: a horizon is required by log schedules; steps past it warn once."""

from __future__ import annotations

import warnings

import pytest
import torch

import gdlens as gd
from gdlens.probes import MetricsProbe, ParameterNormProbe, Schedule
from gdlens.train.recorder import ProbeError


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


class _CountingProbe:
    """A stateful probe: its state counts its calls and remembers the first parameter norm."""

    name = "counting"
    schedule = Schedule(every=1)

    def init(self, ctx):
        return {"calls": 0, "first": float(ctx.model.weight.detach().norm())}

    def compute(self, ctx, state):
        state = {**state, "calls": state["calls"] + 1}
        return {"calls": state["calls"], "drift": float(ctx.model.weight.detach().norm()) - state["first"]}, state


class _FailingProbe:
    name = "failing"
    schedule = Schedule(every=1)

    def compute(self, ctx):
        raise RuntimeError("boom")


def test_the_recorder_owns_probe_states_so_one_probe_serves_two_runs():
    probe = _CountingProbe()
    a, b = gd.Recorder([probe]), gd.Recorder([probe])
    m1, m2 = _model(), torch.nn.Linear(2, 2)
    for step in range(3):
        a.step(step, model=m1)
    b.step(0, model=m2)
    assert a.last("counting/calls") == 3 and b.last("counting/calls") == 1
    assert b.last("counting/drift") == 0.0  # measured against run 2's own first step, not run 1's
    c = gd.Recorder([probe])
    c.load_state(a.state())
    c.step(3, model=m1)
    assert c.last("counting/calls") == 4


def test_a_failing_probe_keeps_the_other_values_and_names_itself():
    recorder = gd.Recorder([ParameterNormProbe(schedule=1), _FailingProbe()])
    with pytest.raises(ProbeError, match=r"probe 'failing' failed at step 0: RuntimeError: boom"):
        recorder.step(0, model=_model())
    assert "param_norm/total" in recorder.history


def test_a_failing_probe_in_train_marks_the_run_failed_with_the_others_recorded(tmp_path):
    store = gd.open_store(tmp_path / "s.db")
    with pytest.raises(ProbeError):
        gd.train(_model(), "teacher_student", steps=3, store=store,
                 probes=[ParameterNormProbe(schedule=1), _FailingProbe()])
    runs = store.runs()
    run = store.run(runs["id"].iloc[0])
    assert run.status == "failed"
    assert "param_norm/total" in run.metrics(as_frame=False)


def test_probe_declarations_reach_the_run_summary(tmp_path):
    store = gd.open_store(tmp_path / "s.db")
    result = gd.train(torch.nn.Linear(10, 1), "teacher_student", steps=2, store=store, probes=[ParameterNormProbe(schedule=1)])
    declared = result.run.summary["probes"]
    assert set(declared) == {"param_norm"} and declared["param_norm"]["type"] == "ParameterNormProbe"


def test_a_checkpoint_from_before_the_state_split_reaches_the_probe_through_upgrade_state():
    class Upgraded(_CountingProbe):
        def upgrade_state(self, legacy):
            return {"calls": legacy["_calls"], "first": 0.0}

    recorder = gd.Recorder([Upgraded()])
    recorder.load_state({"counting": {"_calls": 7}})  # the old format: the probe's own fields
    recorder.step(0, model=_model())
    assert recorder.last("counting/calls") == 8
    plain = gd.Recorder([_CountingProbe()])
    plain.load_state({"counting": {"_calls": 7}})  # no upgrade_state: the probe starts afresh
    plain.step(0, model=_model())
    assert plain.last("counting/calls") == 1
