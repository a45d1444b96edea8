"""A store that survives damage and misuse: truncated checkpoints and arrays, resume by
prefix, read-only stores, paths that hold no store, deleting runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
import pytest
import torch

from gdlens.store import StoreError, StoreWarning, open_store


def _truncate(path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def _no_unpickling_advice(messages) -> None:
    for message in messages:
        assert "allow_pickle=True" not in message and "weights_only=False" not in message, message


@pytest.mark.parametrize("keep", [None, 10, 0])
def test_a_truncated_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, keep):
    run = open_store(tmp_path).create_run({"a": 1})
    for step in (10, 20, 30):
        run.save_checkpoint(step, {"w": torch.full((50,), float(step))})
    newest = tmp_path / "checkpoints" / run.id / "30.pt"
    _truncate(newest, keep)
    with pytest.warns(StoreWarning, match=rf"checkpoint {newest} .*damaged.*trying the previous one") as caught:
        step, state = run.latest_checkpoint()
    assert step == 20 and torch.equal(state["w"], torch.full((50,), 20.0))
    _no_unpickling_advice(str(w.message) for w in caught)


def test_a_missing_checkpoint_file_is_skipped_and_all_damaged_is_one_clear_error(tmp_path):
    run = open_store(tmp_path).create_run({"a": 1})
    run.save_checkpoint(5, {"w": torch.ones(3)})
    run.save_checkpoint(6, {"w": torch.ones(3)})
    (tmp_path / "checkpoints" / run.id / "6.pt").unlink()
    _truncate(tmp_path / "checkpoints" / run.id / "5.pt")
    with pytest.warns(StoreWarning, match="missing"), pytest.raises(StoreError, match=r"5\.pt.*6\.pt|6\.pt.*5\.pt"):
        run.latest_checkpoint()
    assert open_store(tmp_path).create_run({}).latest_checkpoint() is None


@pytest.mark.parametrize("damage", ["truncate", "header", "empty", "pickled", "missing"])
def test_a_damaged_array_is_skipped_and_the_rest_of_the_run_stays_readable(tmp_path, damage):
    run = open_store(tmp_path).create_run({"a": 1})
    for step in range(3):
        run.log_array(step, "probe/w", np.full((20,), float(step)))
        run.log_array(step, "other", np.arange(4.0) + step)
        run.log(step, loss=1.0 / (step + 1))
    path = tmp_path / "arrays" / run.id / "probe" / "w" / "1.npy"
    if damage == "truncate":
        _truncate(path)
    elif damage == "header":
        _truncate(path, 60)
    elif damage == "empty":
        _truncate(path, 0)
    elif damage == "pickled":
        np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    else:
        path.unlink()
    with pytest.warns(StoreWarning, match=rf"array {path} is skipped") as caught:
        arrays = run.arrays()
    steps, values = arrays["probe/w"]
    assert list(steps) == [0, 2] and [v[0] for v in values] == [0.0, 2.0]
    assert list(arrays["other"][0]) == [0, 1, 2]
    assert len(run.metrics()) == 3
    _no_unpickling_advice(str(w.message) for w in caught)


def test_resume_by_prefix_marks_the_full_run_running_while_it_trains(tmp_path):
    """The prefix is resolved first: during the resumed training the stored run is
    ``running`` (not still ``interrupted``), so no sweep worker resumes it a second time."""
    store = open_store(tmp_path)
    run = store.create_run({"a": 1}, run_id="abcdef123456")
    run.interrupt()
    resumed = store.resume("abcd")
    assert resumed.id == "abcdef123456"
    other = open_store(tmp_path)  # another process' view, mid-run
    assert other.run("abcdef123456").status == "running"
    assert other.runs(status="interrupted", as_frame=False) == []
    with pytest.raises(StoreError, match="running"):
        other.resume("abcdef")
    resumed.finish()
    with pytest.raises(StoreError, match="already completed"):
        store.resume("abc")


def test_read_commands_never_create_a_store(tmp_path):
    with pytest.raises(StoreError, match="no gdlens store at"):
        open_store(tmp_path / "typo", create=False)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no gdlens store at"):
        open_store(tmp_path / "empty", create=False)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_read_only_store_lists_runs_and_refuses_writes(tmp_path):
    store = open_store(tmp_path)
    done = store.create_run({"a": 1}, name="done")
    done.log(0, loss=1.0)
    done.finish()
    with sqlite3.connect(tmp_path / "store.sqlite") as con:  # a run whose writer died
        con.execute("UPDATE runs SET status = 'running', pid = 999999999 WHERE id = ?", (done.id,))
    store.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    reader = open_store(tmp_path, readonly=True)
    (record,) = reader.runs(as_frame=False)
    assert record["status"] == "interrupted" and record["name"] == "done"
    assert len(reader.run(done.id).metrics()) == 1
    with pytest.raises(StoreError, match="read-only"):
        reader.create_run({})
    with pytest.raises(StoreError, match="read-only"):
        reader.run(done.id).log(1, loss=0.5)
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with sqlite3.connect(tmp_path / "store.sqlite") as con:
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "running"


_READ_AS_NOBODY = textwrap.dedent("""
    import os, sys
    from gdlens.store import open_store
    os.setgid(65534); os.setuid(65534)  # user nobody: the store below is not writable by it
    store = open_store(sys.argv[1], create=False)
    print(store.readonly, [r["name"] for r in store.runs(as_frame=False)])
""")


def test_a_store_on_read_only_permissions_is_opened_for_reading():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (as the owner, chmod would be the test)")
    with tempfile.TemporaryDirectory() as parent:
        folder = os.path.join(parent, "ro")
        store = open_store(folder)
        store.create_run({"a": 1}, name="kept").finish()
        store.close()
        os.chmod(parent, 0o755)
        done = subprocess.run([sys.executable, "-c", _READ_AS_NOBODY, folder], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["True", "['kept']"]
        assert sorted(os.listdir(folder)) == ["store.sqlite"]


def test_delete_run_removes_rows_and_files(tmp_path):
    store = open_store(tmp_path)
    keep = store.create_run({"a": 1})
    gone = store.create_run({"a": 2}, run_id="zz9911")
    for run in (keep, gone):
        run.log(0, loss=1.0)
        run.log_array(0, "w", np.ones(2))
        run.save_checkpoint(0, {"w": torch.ones(2)})
    with pytest.raises(StoreError, match="running"):
        store.delete_run("zz99")
    gone.interrupt()
    assert store.delete_run("zz99") == "zz9911"
    assert [r["id"] for r in store.runs(as_frame=False)] == [keep.id]
    assert not (tmp_path / "arrays" / "zz9911").exists() and not (tmp_path / "checkpoints" / "zz9911").exists()
    assert len(keep.metrics()) == 1 and keep.latest_checkpoint()[0] == 0
    with pytest.raises(KeyError, match="no run"):
        store.delete_run("zz99")


def test_runs_filters_by_name_pattern_status_and_sweep(tmp_path):
    store = open_store(tmp_path)
    store.create_run({}, name="demo-g0.5", sweep="demo").finish()
    store.create_run({}, name="demo-g2.0", sweep="demo").interrupt()
    store.create_run({}, name="other").finish()
    names = lambda **kw: [r["name"] for r in store.runs(as_frame=False, **kw)]  # noqa: E731
    assert names(name="demo-*") == ["demo-g0.5", "demo-g2.0"]
    assert names(status="completed") == ["demo-g0.5", "other"]
    assert names(sweep="demo", status="interrupted") == ["demo-g2.0"]
    with pytest.raises(ValueError, match="completed"):
        store.runs(status="complete")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert names(name="nothing*") == []
