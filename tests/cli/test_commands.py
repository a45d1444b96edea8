"""The commands a researcher runs on a store: runs (columns, filters, JSON), show --json,
compare, rm, resume after Ctrl-C, --version, a read-only store, and a closed pipe."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gdlens.cli import main

from cli_helpers import fill_store, gdlens


def test_version_is_the_package_version():
    import gdlens as gd

    done = gdlens("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"gdlens {gd.__version__}"


def test_runs_shows_name_sweep_status_and_the_swept_values(filled, capsys):
    store, ids = filled
    assert main(["runs", "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:7] == ["id", "name", "sweep", "status", "task", "model", "steps"]
    assert "lr" in header and "model.g" in header and "seed" not in header
    row = next(line.split() for line in lines if line.startswith(ids["s1-1"]))
    assert row[1:4] == ["s1-1", "s1", "completed"] and row[header.index("model.g")] == "2"
    assert row[header.index("lr")] == "0.01"
    interrupted = next(line.split() for line in lines if line.startswith(ids["s1-2"]))
    assert interrupted[3] == "interrupted"


@pytest.mark.parametrize("flags, expected", [
    (["--sweep", "s1"], {"s1-0", "s1-1", "s1-2"}),
    (["--sweep", "s1", "--status", "completed"], {"s1-0", "s1-1"}),
    (["--name", "s1-*"], {"s1-0", "s1-1", "s1-2"}),
    (["--name", "lone"], {"lone"}),
    (["--status", "interrupted"], {"s1-2"}),
    (["--sweep", "nothing"], set()),
])
def test_runs_filters_and_json(filled, capsys, flags, expected):
    store, ids = filled
    assert main(["runs", "--store", store, "--json", *flags]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in records} == expected
    assert all({"id", "config", "summary", "status", "sweep"} <= set(r) for r in records)


def test_runs_json_is_strict_json_even_with_a_nan(filled, capsys):
    store, ids = filled
    assert main(["runs", "--store", store, "--json", "--name", "lone"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and json.loads(out)[0]["summary"]["final_train_loss"] is None


def test_show_json(filled, capsys):
    store, ids = filled
    assert main(["show", ids["s1-0"][:6], "--store", store, "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["id"] == ids["s1-0"] and view["sweep"] == "s1" and view["config"]["lr"] == 0.01
    assert view["metrics"]["kp/rank_G"] == {"points": 3, "last_step": 2, "last": 4.0}
    assert view["arrays"]["kp/eig_G"] == {"steps": 1, "shape": [3]}


def test_compare_shows_configs_side_by_side_with_their_differences_and_final_metrics(filled, capsys):
    store, ids = filled
    assert main(["compare", ids["s1-0"], ids["s1-1"], ids["s1-2"], "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", ids["s1-0"], ids["s1-1"], ids["s1-2"]]
    rows = {line[:2].strip() + line[2:].split()[0]: line.split()[-3:] for line in lines[1:]}
    assert rows["*lr"] == ["0.01", "0.01", "0.1"] and rows["*model.g"] == ["0.5", "2", "0.5"]
    assert rows["status"] == ["completed", "completed", "interrupted"]
    assert rows["final_train_loss"] == ["0.1", "0.2", "-"]
    assert "steps" not in rows and "*steps" not in rows
    assert main(["compare", ids["s1-0"], ids["s1-1"], "--store", store, "--json", "--all"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["differ"] == ["model.g"] and table["rows"]["steps"] == {ids["s1-0"]: 20, ids["s1-1"]: 20}


def test_rm_deletes_a_run_and_nothing_else(tmp_path, capsys):
    ids = fill_store(tmp_path / "runs")
    assert main(["rm", ids["s1-0"][:6], ids["lone"], "--store", str(tmp_path / "runs")]) == 0
    assert capsys.readouterr().out.split() == ["removed", "run", ids["s1-0"], "removed", "run", ids["lone"]]
    assert main(["runs", "--store", str(tmp_path / "runs"), "--json"]) == 0
    left = {r["id"] for r in json.loads(capsys.readouterr().out)}
    assert ids["s1-0"] not in left and ids["lone"] not in left and ids["s1-1"] in left
    assert not (tmp_path / "runs" / "arrays" / ids["s1-0"]).exists()
    assert (tmp_path / "runs" / "arrays" / ids["s1-1"]).exists()


def test_read_commands_work_on_a_store_that_cannot_be_written(tmp_path, monkeypatch, capsys):
    ids = fill_store(tmp_path / "runs")
    database = tmp_path / "runs" / "store.sqlite"
    before = database.stat().st_mtime_ns, database.read_bytes()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode & os.W_OK else real_access(path, mode))
    assert main(["runs", "--store", str(tmp_path / "runs")]) == 0
    assert ids["s1-1"] in capsys.readouterr().out
    assert main(["show", ids["s1-1"], "--store", str(tmp_path / "runs")]) == 0
    assert main(["rm", ids["s1-1"], "--store", str(tmp_path / "runs")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert (database.stat().st_mtime_ns, database.read_bytes()) == before  # nothing written


def test_a_damaged_array_leaves_show_working_with_a_one_line_warning(tmp_path):
    ids = fill_store(tmp_path / "runs")
    path = tmp_path / "runs" / "arrays" / ids["s1-0"] / "kp" / "eig_G" / "0.npy"
    path.write_bytes(path.read_bytes()[:40])
    done = gdlens("show", ids["s1-0"], "--store", str(tmp_path / "runs"))
    assert done.returncode == 0 and "kp/rank_G" in done.stdout
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("gdlens: warning: array") and str(path) in line and "allow_pickle" not in line


def test_a_closed_pipe_is_not_an_error(filled):
    store, _ = filled
    proc = subprocess.Popen([sys.executable, "-m", "gdlens.cli", "runs", "--json", "--store", store],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # `gdlens runs --json | head -0`: the reader is gone before anything is written
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert err.strip() == "" and proc.returncode != 0


def test_ctrl_c_prints_one_line_naming_the_resume_command_which_finishes_the_run(tmp_path):
    store = tmp_path / "runs"
    argv = [sys.executable, "-m", "gdlens.cli", "train", "flip_flop", "--model", "gru", "--hidden", "16", "--steps",
            "200", "--batch-size", "8", "--task-arg", "T=30", "--store", str(store), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 300
    while not list(store.glob("checkpoints/*/*.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.skip("training finished before the interrupt arrived")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err
    command = re.search(r"continue with: (gdlens resume \w+ --store \S+)$", lines[0])
    assert command, lines[0]
    run_id = command.group(1).split()[2]
    done = gdlens(*command.group(1).split()[1:], "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"run {run_id} completed" in done.stdout
    from gdlens.store import open_store

    (record,) = open_store(store).runs(as_frame=False)
    assert record["status"] == "completed" and record["summary"]["steps"] == 200
    steps = open_store(store).metrics(run_id, names=["train_step/loss"], as_frame=False)["train_step/loss"][0]
    assert list(steps) == list(range(200))
