"""The run store: round trips, crash safety, concurrent writers, no pickle."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import json

from gdlens.store import StoreError, StoreWarning, canonical_config, export_run, open_store


def test_round_trip_of_metrics_arrays_checkpoints_and_summary(tmp_path):
    store = open_store(tmp_path / "runs")
    run = store.create_run({"lr": 0.1, "widths": (4, 8), "task": {"name": "flip_flop", "T": 90}}, name="first")
    for step in range(5):
        run.log(step, loss=1.0 / (step + 1), acc=step / 4)
    run.log(5, {"loss": float("nan")})
    run.log_array(0, "weights", torch.arange(6.0).reshape(2, 3))
    run.log_array(3, "weights", np.ones((2, 3)))
    run.save_checkpoint(3, {"model": {"w": torch.ones(2)}, "step": 3})
    run.save_checkpoint(4, {"model": {"w": torch.zeros(2)}, "step": 4})
    run.finish({"final_loss": 0.2})

    assert run.status == "completed"
    assert run.config == {"lr": 0.1, "widths": [4, 8], "task": {"name": "flip_flop", "T": 90}}
    assert run.summary == {"final_loss": 0.2}
    long = run.metrics()
    assert list(long.columns) == ["step", "name", "value"] and len(long) == 11
    wide = run.metrics(wide=True)
    assert wide.loc[2, "loss"] == pytest.approx(1 / 3) and np.isnan(wide.loc[5, "loss"])
    raw = run.metrics(names=["acc"], as_frame=False)
    assert list(raw) == ["acc"] and np.allclose(raw["acc"][1], np.arange(5) / 4)
    steps, arrays = run.arrays()["weights"]
    assert list(steps) == [0, 3] and np.array_equal(arrays[0], np.arange(6.0).reshape(2, 3))
    step, state = run.latest_checkpoint()
    assert step == 4 and torch.equal(state["model"]["w"], torch.zeros(2))
    frame = store.runs()
    assert frame.loc[0, "config.task.name"] == "flip_flop" and frame.loc[0, "summary.final_loss"] == 0.2
    assert store.runs(as_frame=False)[0]["name"] == "first"


def test_find_by_canonical_config(tmp_path):
    store = open_store(tmp_path)
    a = store.create_run({"b": 1, "a": [1, 2]})
    a.finish()
    store.create_run({"a": (1, 2), "b": 1})  # same config, still running
    assert canonical_config({"a": (1, 2), "b": 1}) == canonical_config({"b": 1, "a": [1, 2]})
    assert store.find({"a": (1, 2), "b": 1}) == [a.id]
    assert len(store.find({"a": [1, 2], "b": 1}, status=None)) == 2
    assert store.find({"a": [1, 2], "b": 2}) == []


def test_context_manager_marks_failures_and_interrupts(tmp_path):
    store = open_store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.create_run({"x": 1}) as run:
            run.log(0, loss=1.0)
            raise RuntimeError("diverged")
    assert run.status == "failed"
    assert "diverged" in store.runs(as_frame=False)[0]["error"]
    with pytest.raises(KeyboardInterrupt):
        with store.create_run({"x": 2}) as run2:
            raise KeyboardInterrupt
    assert run2.status == "interrupted"


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, torch
    from gdlens.store import open_store
    store = open_store(sys.argv[1])
    run = store.create_run({"kind": "killed"}, run_id="victim")
    for step in range(1000000):
        run.log(step, loss=float(step))
        if step % 10 == 0:
            run.save_checkpoint(step, {"step": step, "w": torch.full((3,), float(step))})
        if step == 50:
            print("ready", flush=True)
        time.sleep(0.001)
    """
)


def test_a_killed_run_keeps_what_it_logged_and_is_marked_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = open_store(tmp_path)
    run = store.run("victim")
    steps, values = run.metrics(as_frame=False)["loss"]
    assert steps[-1] >= 50 and np.array_equal(steps, np.arange(len(steps))) and np.array_equal(values, steps)
    assert store.runs(as_frame=False)[0]["status"] == "interrupted"
    step, state = run.latest_checkpoint()
    assert step % 10 == 0 and step <= steps[-1] and torch.equal(state["w"], torch.full((3,), float(step)))
    resumed = store.resume("victim")
    assert resumed.status == "running"
    resumed.log(int(steps[-1]) + 1, loss=-1.0)
    resumed.finish()
    assert store.run("victim").status == "completed"


def _write_many(path: str, worker: int, n: int) -> None:
    store = open_store(path)
    run = store.create_run({"worker": worker}, run_id=f"w{worker}")
    for step in range(n):
        run.log(step, value=float(worker * 1000 + step))
    run.log_array(0, "final", np.full(3, worker))
    run.finish()


def test_several_processes_write_one_store(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 60)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = open_store(tmp_path)
    runs = store.runs(as_frame=False)
    assert sorted(r["id"] for r in runs) == ["w0", "w1", "w2", "w3"]
    assert all(r["status"] == "completed" for r in runs)
    for w in range(4):
        steps, values = store.metrics(f"w{w}", as_frame=False)["value"]
        assert np.array_equal(values, w * 1000 + np.arange(60))


def test_bad_input(tmp_path):
    store = open_store(tmp_path)
    run = store.create_run({"a": 1})
    with pytest.raises(ValueError, match="invalid array name"):
        run.log_array(0, "../escape", np.zeros(2))
    with pytest.raises(ValueError, match="invalid array name"):
        run.log_array(0, "probe//key", np.zeros(2))
    run.log_array(0, "probe/key", np.arange(3))
    assert np.array_equal(run.arrays("probe/key")["probe/key"][1][0], np.arange(3))
    with pytest.raises(TypeError, match="object"):
        run.log_array(0, "objs", np.array([object()]))
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.create_run({"f": object()})
    with pytest.raises(KeyError, match="no run"):
        store.run("missing")
    with pytest.raises(ValueError, match="status must be one of"):
        store.runs(status="done")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        open_store(tmp_path / "file")


def test_foreign_or_corrupt_database_gives_a_clear_error(tmp_path):
    (tmp_path / "store.sqlite").write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="cannot be used as a gdlens store"):
        open_store(tmp_path).runs()


def test_a_store_path_that_cannot_be_created(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(StoreError, match="cannot create the store directory"):
        open_store(tmp_path / "plain" / "runs")


def test_run_lookup_by_unique_prefix(tmp_path):
    store = open_store(tmp_path)
    store.create_run({}, run_id="abc123")
    store.create_run({}, run_id="abd456")
    assert store.run("abc").id == "abc123"
    with pytest.raises(KeyError, match="ambiguous"):
        store.run("ab")
    with pytest.raises(KeyError, match="no run"):
        store.run("x_%")


def test_exporters(tmp_path):
    import pandas as pd

    store = open_store(tmp_path / "store")
    run = store.create_run({"lr": 0.5})
    for step in range(3):
        run.log(step, loss=3.0 - step, acc=step / 2)
    run.finish({"best": 1.0})
    written = export_run(run, tmp_path / "out" / "m.csv", "csv")
    frame = pd.read_csv(written[0])
    assert list(frame.columns) == ["step", "name", "value"] and len(frame) == 6
    assert json.loads(written[1].read_text())["config"] == {"lr": 0.5}
    parquet = export_run(run, tmp_path / "out" / "m.parquet", "parquet")[0]
    assert pd.read_parquet(parquet).equals(frame)
    events = export_run(run, tmp_path / "tb", "tensorboard")
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("loss")] == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="allowed: csv, parquet, tensorboard"):
        export_run(run, tmp_path / "x", "hdf5")


def test_checkpoints_are_never_unpickled(tmp_path):
    """A checkpoint file holding an arbitrary pickled object is refused by weights_only."""
    store = open_store(tmp_path)
    run = store.create_run({"a": 1})
    run.save_checkpoint(0, {"w": torch.ones(1)})
    path = tmp_path / "checkpoints" / run.id / "0.pt"
    torch.save({"evil": _Evil()}, path)
    with pytest.warns(StoreWarning, match=f"{path}.*never unpickles") as caught, \
            pytest.raises(StoreError, match="every checkpoint .* is damaged") as refused:
        run.latest_checkpoint()
    messages = [str(w.message) for w in caught] + [str(refused.value)]
    assert not any("weights_only=False" in m or "allow_pickle=True" in m for m in messages)


class _Evil:
    pass
