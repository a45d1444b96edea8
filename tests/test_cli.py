"""The gdlens command, through a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from gdlens.cli import build_parser, main


def gdlens(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "gdlens.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_train_runs_show_and_export(tmp_path):
    store = str(tmp_path / "runs")
    done = gdlens("train", "flip_flop", "--model", "rnn", "--hidden", "8", "--steps", "20", "--batch-size", "8",
                  "--task-arg", "T=10", "--task-arg", "bits=2", "--kp", "--store", store, "--no-progress")
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"run (\w+) completed", done.stdout).group(1)
    listed = gdlens("runs", "--store", store)
    assert listed.returncode == 0 and run_id in listed.stdout and "flip_flop" in listed.stdout
    shown = gdlens("show", run_id[:6], "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert '"T": 10' in shown.stdout and "kp/rank_G" in shown.stdout
    page = tmp_path / "run.html"
    reported = gdlens("report", run_id, "--store", store, "-o", str(page))
    assert reported.returncode == 0, reported.stderr
    assert page.exists() and "<img" in page.read_text()
    out = tmp_path / "m.csv"
    exported = gdlens("export", run_id, "--format", "csv", "-o", str(out), "--store", store)
    assert exported.returncode == 0 and out.exists()
    assert json.loads(out.with_suffix(".json").read_text())["config"]["task"]["bits"] == 2


def test_demo_main_job_prints_a_side_by_side_summary(tmp_path):
    done = gdlens("demo", "--steps", "3", "--store", str(tmp_path / "demo-runs"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "g = 0.5" in done.stdout and "g = 2.0" in done.stdout
    for row in ("effective rank of K", "effective rank of P", "effective rank of G", "test accuracy"):
        assert row in done.stdout
    assert (tmp_path / "demo-runs" / "store.sqlite").exists()
    report = re.search(r"report: (\S+\.html)", done.stdout).group(1)
    html = open(report).read()
    assert "<img" in html and "http://" not in html and "https://" not in html


def test_operator_demo_prints_estimates_next_to_the_truth(capsys):
    assert main(["demo", "--operators", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    pairs = re.findall(r"λ_\d: ([\d.]+)\s+truth ([\d.]+)", out)
    assert len(pairs) == 5 and all(abs(float(a) - float(b)) < 1e-9 for a, b in pairs)


def test_bad_input_lists_what_is_allowed(tmp_path):
    unknown = gdlens("train", "flipflop")
    assert unknown.returncode == 2 and "flip_flop" in unknown.stderr and "modular_addition" in unknown.stderr
    model = gdlens("train", "flip_flop", "--model", "resnet50")
    assert model.returncode == 2 and "gru" in model.stderr and "lstm" in model.stderr
    opt = gdlens("train", "flip_flop", "--optimizer", "lbfgs")
    assert opt.returncode == 2 and "adamw" in opt.stderr
    (tmp_path / "afile").write_text("x")
    store_file = gdlens("runs", "--store", str(tmp_path / "afile"))
    assert store_file.returncode == 2 and "not a directory" in store_file.stderr and "Traceback" not in store_file.stderr
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "store.sqlite").write_bytes(b"not sqlite " * 200)
    foreign = gdlens("runs", "--store", str(tmp_path / "foreign"))
    assert foreign.returncode == 2 and "cannot be used as a gdlens store" in foreign.stderr
    assert "Traceback" not in foreign.stderr
    missing = gdlens("show", "nope", "--store", str(tmp_path / "foreign2"))
    assert missing.returncode == 2 and "no gdlens store at" in missing.stderr
    assert not (tmp_path / "foreign2").exists()
    bad_arg = gdlens("train", "flip_flop", "--task-arg", "T=0", "--store", str(tmp_path / "s"), "--no-progress")
    assert bad_arg.returncode == 2 and "T must be" in bad_arg.stderr


def test_every_command_has_help_ending_with_an_example(capsys):
    parser = build_parser()
    for command in ("demo", "train", "resume", "runs", "show", "compare", "rm", "export", "report", "sweep", "bench"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        out = capsys.readouterr().out.rstrip()
        assert "example:" in out and out.splitlines()[-1].strip().startswith("gdlens ")


def test_sweep_from_a_yaml_spec_skips_what_is_done(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\n"
        "base:\n"
        "  task: {name: teacher_student, input_dim: 2, teacher_width: 3}\n"
        "  model: {name: mlp, hidden: 8}\n"
        "  steps: 5\n"
        "  probes: none\n"
        "grid:\n"
        "  lr: [0.01, 0.001]\n"
        "seeds: 2\n"
    )
    store = str(tmp_path / "runs")
    first = gdlens("sweep", str(spec), "--store", store, "--backend", "serial")
    assert first.returncode == 0, first.stderr
    assert "4 ran, 0 skipped" in first.stdout
    again = gdlens("sweep", str(spec), "--store", store, "--backend", "serial")
    assert again.returncode == 0 and "0 ran, 4 skipped" in again.stdout


def test_train_grokking_runs_the_experiment_with_its_clocks(tmp_path):
    done = gdlens("train", "grokking", "--steps", "30", "--hidden", "32", "--store", str(tmp_path / "runs"),
                  "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "clocks/" in done.stdout and "completed" in done.stdout


def test_train_grokking_refuses_options_that_do_not_apply(tmp_path):
    for args, word in ((["--g", "2"], "--g"), (["--kp"], "--kp"), (["--model", "gru"], "--model"),
                       (["--task-arg", "T=5"], "unknown --task-arg T")):
        done = gdlens("train", "grokking", "--steps", "1", "--store", str(tmp_path / "runs"), *args)
        assert done.returncode != 0 and word in done.stderr, (args, done.stderr)
    ok = gdlens("train", "grokking", "--steps", "20", "--hidden", "16", "--task-arg", "p=11", "--name", "small",
                "--store", str(tmp_path / "runs"), "--no-progress")
    assert ok.returncode == 0, ok.stderr
    from gdlens.store import open_store

    runs = open_store(tmp_path / "runs").runs()
    assert list(runs["name"]) == ["small"] and int(runs.loc[0, "config.grokking.p"]) == 11


def test_bench_lists_and_refuses_unknown_names(capsys):
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"operators", "kp", "tasks", "recording"} <= set(listed)
    assert main(["bench", "no_such_bench"]) == 2
    assert "available: " in capsys.readouterr().err
