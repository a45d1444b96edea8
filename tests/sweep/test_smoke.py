"""The 16-configuration smoke sweep of bench/sweep.py runs in CI (issue: under 2 minutes on
2 cores)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_smoke_sweep_of_the_benchmark_runs_every_configuration():
    path = Path(__file__).resolve().parents[2] / "bench" / "sweep.py"
    spec = importlib.util.spec_from_file_location("bench_sweep", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.smoke()  # asserts that all 16 configurations ran without error
    print(f"smoke sweep: {result['seconds']:.1f} s")
    assert result["configs"] == 16
    assert result["seconds"] < 120
