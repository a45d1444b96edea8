"""The training loop, the Recorder in a user's loop, resuming, and failure handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.probes import KPProbe, MetricsProbe, ParameterNormProbe, RelativeChangeProbe, Schedule
from gdlens.train import Recorder


def small_rnn(seed: int = 0) -> gd.models.RNN:
    torch.manual_seed(seed)
    return gd.models.RNN(3, 8, 3)


def flip_flop_task():
    return gd.tasks.get("flip_flop", T=12, bits=3, pulse_prob=0.2)


def test_training_lowers_the_loss_and_records_into_the_store(tmp_path):
    result = gd.train(small_rnn(), flip_flop_task(), steps=60, lr=1e-2, batch_size=16, store=tmp_path, progress=False)
    assert np.all(np.isfinite(result.losses)) and result.losses[-5:].mean() < result.losses[:5].mean()
    store = gd.open_store(tmp_path)
    runs = store.runs()
    assert len(runs) == 1 and runs.loc[0, "status"] == "completed"
    assert runs.loc[0, "config.task.name"] == "flip_flop" and runs.loc[0, "config.steps"] == 60
    metrics = store.metrics(result.run.id, wide=True)
    assert {"metrics/train/loss", "metrics/test/loss", "param_norm/total", "rel_change/total",
            "hidden/participation_ratio", "train_step/loss"} <= set(metrics.columns)
    # per-step training losses are all stored, equal to what the loop saw
    assert np.allclose(metrics["train_step/loss"].dropna().to_numpy(), result.losses)
    # the relative change starts at 0 and the final step is recorded
    rc = metrics["rel_change/total"].dropna()
    assert rc.index[0] == 0 and rc.iloc[0] == 0 and rc.index[-1] == 60 and rc.iloc[-1] > 0
    assert result.run.latest_checkpoint()[0] == 60


@pytest.mark.parametrize("batch_size", [None, 16])
def test_batches_follow_the_models_dtype(batch_size):
    """A float64 model trains on a float32 task generator: every batch and the evaluation
    set are cast to float64 (integer targets keep their dtype)."""
    model = small_rnn().double()
    seen = []

    class DtypeProbe:
        name, schedule = "dtype", Schedule(every=1)

        def compute(self, ctx):
            seen.append((ctx.batch.x.dtype, ctx.batch.target.dtype, ctx.eval_data.x.dtype))
            return {}

    result = gd.train(model, flip_flop_task(), steps=3, lr=1e-2, batch_size=batch_size, probes=[DtypeProbe()],
                      progress=False)
    assert np.all(np.isfinite(result.losses))
    assert next(model.parameters()).dtype == torch.float64
    assert len(seen) == 4 and all(x == torch.float64 and e == torch.float64 for x, _, e in seen)


def test_full_batch_split_data_and_log_schedule():
    data = gd.tasks.modular_addition(p=7, train_fraction=0.6, seed=1, encoding="one_hot")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(data.input_size, 32), torch.nn.ReLU(), torch.nn.Linear(32, 7))
    probes = [MetricsProbe(schedule=Schedule(log_points=5))]
    result = gd.train(model, data, steps=100, lr=1e-2, probes=probes, progress=False)
    steps, acc = result.series("metrics/train/accuracy")
    assert steps[0] == 0 and steps[-1] == 100 and len(steps) <= 7
    assert acc[-1] > acc[0]
    assert "metrics/test/accuracy" in result.history


def test_resume_continues_an_interrupted_run_with_the_same_batches(tmp_path):
    task = flip_flop_task()
    reference = gd.train(small_rnn(), task, steps=40, lr=1e-2, batch_size=8, progress=False, probes=[])

    class Stop(Exception):
        pass

    class StopAt:
        name, schedule = "stop", Schedule(every=1)

        def compute(self, ctx):
            if ctx.step == 25:
                raise KeyboardInterrupt
            return {}

    with pytest.raises(KeyboardInterrupt):
        gd.train(small_rnn(), task, steps=40, lr=1e-2, batch_size=8, store=tmp_path, checkpoint_every=10,
                 progress=False, probes=[StopAt()])
    store = gd.open_store(tmp_path)
    (record,) = store.runs(as_frame=False)
    assert record["status"] == "interrupted"
    resumed = gd.train(small_rnn(seed=5), task, steps=40, lr=1e-2, batch_size=8, store=store, resume=record["id"],
                       progress=False, probes=[])
    assert store.run(record["id"]).status == "completed"
    assert np.allclose(resumed.losses, reference.losses, rtol=1e-5, atol=1e-6)
    for p, q in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)


def test_divergence_stops_the_run_and_marks_it_diverged(tmp_path):
    result = gd.train(small_rnn(), flip_flop_task(), optimizer="sgd", lr=1e6, steps=50, batch_size=8, store=tmp_path,
                      progress=False, probes=[ParameterNormProbe(schedule=1)])
    at = result.summary["diverged_at"]
    assert isinstance(at, int) and 0 < at < 50
    assert np.all(np.isfinite(result.losses[:at])) and np.all(np.isnan(result.losses[at:]))
    (record,) = gd.open_store(tmp_path).runs(as_frame=False)
    assert record["status"] == "diverged" and f"at step {at}" in record["error"]
    assert record["summary"]["diverged_at"] == at
    stored = result.run.metrics(wide=True)
    assert stored["train_step/loss"].dropna().index.max() == at - 1  # everything before is kept
    assert stored["param_norm/total"].dropna().index.max() == at


def test_same_seed_gives_identical_metrics():
    runs = [gd.train(small_rnn(), flip_flop_task(), steps=15, lr=1e-2, batch_size=8, seed=3, progress=False) for _ in range(2)]
    assert np.array_equal(runs[0].losses, runs[1].losses)
    for name in runs[0].history:
        a, b = (np.array([v for _, v in r.history[name]], dtype=float) for r in runs)
        assert np.array_equal(a, b, equal_nan=True), name
    other = gd.train(small_rnn(), flip_flop_task(), steps=15, lr=1e-2, batch_size=8, seed=4, progress=False)
    assert not np.array_equal(runs[0].losses, other.losses)


def test_recorder_in_a_users_own_loop(tmp_path):
    model = small_rnn()
    data = flip_flop_task().generate(16, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    run = gd.open_store(tmp_path).create_run({"loop": "mine"})
    recorder = Recorder([ParameterNormProbe(schedule=5), RelativeChangeProbe(schedule="every:10")], run=run, total_steps=20)
    for step in range(21):
        recorder.step(step, model=model, batch=data, optimizer=opt)
        if step < 20:
            opt.zero_grad()
            data.loss_value(model(data.x)[0]).backward()
            opt.step()
    run.finish()
    steps, _ = recorder.series("param_norm/total")
    assert list(steps) == [0, 5, 10, 15, 20]
    stored = run.metrics(wide=True)
    assert list(stored["rel_change/total"].dropna().index) == [0, 10, 20]
    with pytest.raises(ValueError, match="unique"):
        Recorder([ParameterNormProbe(), ParameterNormProbe()])
    with pytest.raises(TypeError, match="Probe protocol"):
        Recorder([object()])


def test_kp_probe_records_ranks_with_errors_and_eigenvalues():
    model = small_rnn()
    data = flip_flop_task().generate(6, seed=0)
    probe = KPProbe(max_trials=4, num_matvecs=12, k=3)
    ctx = gd.probes.ProbeContext(step=0, model=model, batch=data)
    state = probe.init(ctx)
    out, state = probe.compute(ctx, state)
    assert state["x"].shape[0] == 4  # the analysis batch: 4 trials spread over the 6
    for name in ("K", "P", "G"):
        assert out[f"rank_{name}"] >= 1 and out[f"rank_{name}_se"] >= 0
    assert out["eig_G_1"] >= out["eig_G_2"] >= out["eig_G_3"] > 0
    assert 0 <= out["misdirection"] <= 1  # <G, P Pᵀ>_F of two PSD operators is ≥ 0
    # the probe's G is the KPFlow G on the same trials and loss
    kp = gd.KPFlow(model, state["x"], state["target"])
    top = gd.operators.top_eigs(kp.G, 1).values[0]
    assert abs(out["eig_G_1"] - float(top)) <= 1e-3 * float(top)


def test_bad_arguments():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        gd.train(small_rnn(), flip_flop_task(), optimizer="lbfgs", steps=1, progress=False)
    with pytest.raises(TypeError, match="task must be"):
        gd.train(small_rnn(), 42, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        gd.train(small_rnn(), flip_flop_task(), steps=-1, progress=False)
    data = flip_flop_task().generate(8, seed=0)
    with pytest.raises(ValueError, match="batch_size must be between 1 and the dataset size 8"):
        gd.train(small_rnn(), data, batch_size=9, steps=1, progress=False)
    with pytest.raises(ValueError, match="schedule must be"):
        MetricsProbe(schedule="often")


_KILLED_TRAINING = """
import sys, time, torch
import gdlens as gd
from gdlens.probes import ParameterNormProbe, Schedule

class Announce:
    name, schedule = "announce", Schedule(every=1)
    def compute(self, ctx):
        if ctx.step == 33:
            print("ready", flush=True)
            time.sleep(60)
        return {}

torch.manual_seed(0)
model = gd.models.RNN(3, 8, 3)
task = gd.tasks.get("flip_flop", T=12, bits=3, pulse_prob=0.2)
gd.train(model, task, steps=60, lr=1e-2, batch_size=8, store=sys.argv[1], checkpoint_every=10, progress=False,
         probes=[ParameterNormProbe(schedule=Schedule(every=5)), Announce()])
"""


def test_sigkilled_training_keeps_what_it_flushed_and_resumes_to_the_same_result(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _KILLED_TRAINING, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = gd.open_store(tmp_path)
    (record,) = store.runs(as_frame=False)
    assert record["status"] == "interrupted"
    stored = store.metrics(record["id"], wide=True)
    # flushed at every probe step: the norms up to step 30 and every loss before step 30 are there
    assert list(stored["param_norm/total"].dropna().index) == [0, 5, 10, 15, 20, 25, 30]
    assert set(range(30)) <= set(stored["train_step/loss"].dropna().index)
    assert store.run(record["id"]).latest_checkpoint()[0] == 30

    task = flip_flop_task()
    resumed = gd.train(small_rnn(seed=9), task, steps=60, lr=1e-2, batch_size=8, store=store, resume=record["id"],
                       progress=False, probes=[ParameterNormProbe(schedule=Schedule(every=5))])
    reference = gd.train(small_rnn(), task, steps=60, lr=1e-2, batch_size=8, progress=False, probes=[])
    assert store.run(record["id"]).status == "completed"
    assert np.allclose(resumed.losses, reference.losses, rtol=1e-5, atol=1e-6)
    final = store.metrics(record["id"], wide=True)["param_norm/total"].dropna()
    ref_norm = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in reference.model.parameters())))
    assert final.index[-1] == 60 and abs(final.iloc[-1] - ref_norm) < 1e-4 * ref_norm


def test_recorder_stores_arrays_returned_by_probes(tmp_path):
    class Vector:
        name, schedule = "vec", Schedule(every=2)

        def compute(self, ctx):
            return {"weights": ctx.model.weight_hh.detach()[0], "norm": float(ctx.model.weight_hh.detach().norm())}

    model = small_rnn()
    run = gd.open_store(tmp_path).create_run({})
    recorder = Recorder([Vector()], run=run, total_steps=4)
    for step in range(5):
        recorder.step(step, model=model)
    steps, arrays = run.arrays()["vec/weights"]
    assert list(steps) == [0, 2, 4] and np.allclose(arrays[-1], model.weight_hh.detach()[0].numpy())
    assert list(run.metrics(wide=True)["vec/norm"].index) == [0, 2, 4]


def test_result_metrics_match_the_stores_wide_table(tmp_path):
    """TrainResult.metrics() (in memory) holds the same scalars, at the same steps, as the
    store's wide table of the run, including the per-step training loss."""
    result = gd.train(small_rnn(), flip_flop_task(), steps=20, lr=1e-2, batch_size=8, store=tmp_path, progress=False)
    memory = result.metrics()
    stored = gd.open_store(tmp_path).metrics(result.run.id, wide=True)
    assert set(memory.columns) == set(stored.columns)
    for column in stored.columns:
        a, b = memory[column].dropna(), stored[column].dropna()
        assert list(a.index) == list(b.index), column
        assert np.allclose(a.to_numpy(), b.to_numpy()), column
    assert gd.report.figures.loss_accuracy(memory) is not None


def test_teacher_student_batches_and_held_out_set_share_one_teacher():
    """gd.train draws minibatches and the held-out set with their own seeds; every one of them
    must be labelled by the same teacher, or the test loss measures the wrong function."""
    from gdlens.tasks.teacher_student import Teacher

    teachers = []

    class TeacherProbe:
        name, schedule = "teacher", Schedule(every=1)

        def compute(self, ctx):
            teachers.append(ctx.batch.info["teacher"])
            teachers.append(ctx.eval_data.info["teacher"])
            return {}

    torch.manual_seed(0)
    model = gd.models.MLP(3, 8, 1)
    task = gd.tasks.get("teacher_student", input_dim=3, teacher_width=2)
    gd.train(model, task, steps=3, batch_size=16, probes=[TeacherProbe()], progress=False)
    assert len(teachers) == 8 and all(isinstance(t, Teacher) for t in teachers)
    assert all(torch.equal(t.W1, teachers[0].W1) and torch.equal(t.W2, teachers[0].W2) for t in teachers)


def test_a_resumed_run_keeps_its_probes_state_and_history(tmp_path):
    """Stateful probes (the clocks' observation log, NTK/representation references, sharpness
    warm starts) travel in the checkpoint, and the history before the checkpoint is read back:
    an interrupted and resumed run reports what an uninterrupted one does."""
    from gdlens.probes import ClockProbe, NTKProbe, RepresentationProbe

    data = gd.tasks.modular_addition(p=7, train_fraction=0.7, seed=1, encoding="one_hot")

    def model():
        torch.manual_seed(0)
        return gd.models.MLP(data.input_size, 32, 7)

    def probes(stop: int | None = None):
        out = [MetricsProbe(schedule=Schedule(every=5)), ClockProbe(schedule=Schedule(every=5), eps=0.5, threshold=0.3),
               NTKProbe(schedule=Schedule(every=10), n_samples=4), RepresentationProbe(schedule=Schedule(every=10))]
        if stop is not None:
            class StopAt:
                name, schedule = "stop", Schedule(every=1)

                def compute(self, ctx):
                    if ctx.step == stop:
                        raise KeyboardInterrupt
                    return {}

            out.append(StopAt())
        return out

    kwargs = dict(steps=60, lr=1e-2, progress=False)
    reference = gd.train(model(), data, probes=probes(), **kwargs)
    with pytest.raises(KeyboardInterrupt):
        gd.train(model(), data, store=tmp_path, checkpoint_every=20, probes=probes(stop=47), **kwargs)
    store = gd.open_store(tmp_path)
    (record,) = store.runs(as_frame=False)
    state = store.run(record["id"]).latest_checkpoint()[1]
    assert state["probes"]["clocks"]["state"]["observations"]["step"] == [0, 5, 10, 15, 20, 25, 30, 35]
    resumed = gd.train(model(), data, store=store, resume=record["id"], probes=probes(), **kwargs)
    for name in ("clocks/fit", "clocks/representation", "ntk/kernel_distance", "representation/cka_init", "representation/cka_prev",
                 "metrics/train/loss"):
        s_ref, v_ref = reference.series(name)
        s_res, v_res = resumed.series(name)
        assert list(s_res) == list(s_ref), name
        assert np.allclose(v_res, v_ref, rtol=1e-4, atol=1e-6, equal_nan=True), name
