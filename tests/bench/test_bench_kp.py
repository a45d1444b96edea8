"""Smoke runs of bench/kp.py (--quick) and bench/gpu.py (--allow-cpu, and without a GPU):
they run end to end and print their tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
ROWS = [f"{kind} {row}" for kind in ("GRU", "LSTM", "RNN") for row in ("native", "from_torch 1L", "from_torch 2L")]
ROWS += ["LRU native", "SELECTIVE native", "LRU-STACK native"]  # torch has no LRU: native only
ROWS += ["TRANSFORMER from_torch"]  # one row: a 2-layer pre-LN nn.TransformerEncoder, no native row


def run(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # the CPU paths, on any machine
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_kp_quick_prints_every_row_target_and_json(tmp_path):
    path = tmp_path / "kp.json"
    done = run("kp.py", "--quick", "--json", str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for title in ("Costs in fused training steps", "from_torch time / native gdlens time", "Targets (stated for"):
        assert title in out
    for column in ("step ms", "setup", "K·1", "P·1", "Pᵀ·1", "G·1", "ntk·1", "G·20", "hutch++", "eigs(K,5)",
                   "eigs(G,5)", "mem G·1/step", "G·20 ≤ 15 steps", "mem G·1 ≤ 3× step"):
        assert column in out, column
    for name in ROWS:
        assert f"| {name} |" in out, name
    assert " mv)" in out and ("met" in out or "NOT MET" in out)
    data = json.loads(path.read_text())
    results = data["results"]
    assert [r["name"] for r in results] == ROWS
    for r in results:
        assert r["times"]["step"] > 0 and r["times"]["G·20"] > 0 and not r["skipped"]
        assert r["matvecs"]["eigs(K,5)"] > 0 and r["matvecs"]["eigs(G,5)"] > 0
        assert set(r["memory"]) == {"step", "G·1"}
        assert len(r["targets"]) == (4 if r["layers"] == 0 else 5)
        assert bool(r["vs_native"]) == (r["layers"] > 0)


def test_gpu_script_without_a_gpu_says_so_and_exits_cleanly():
    done = run("gpu.py", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "SKIPPED: no CUDA device" in done.stdout and "--allow-cpu" in done.stdout
    assert "Traceback" not in done.stderr


def test_gpu_script_allow_cpu_runs_identities_and_benchmark():
    done = run("gpu.py", "--allow-cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "(a) identities, float64" in out and "(b) KP benchmark, float32" in out
    for name in ("RNN native", "GRU native", "LSTM native", "GRU from_torch 1L", "GRU from_torch 2L",
                 "LSTM from_torch 1L", "LSTM from_torch 2L"):
        assert out.count(f"| {name} |") == 2, name  # one line in each table
    assert "FAIL" not in out and "not run within the budget" not in out
