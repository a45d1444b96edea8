"""Every script in examples/ runs as a newcomer would run it (``python examples/NAME.py`` in a
fresh directory), finishes well under its 2-minute budget, passes its own asserts, and writes
the files its docstring promises ("Writes a.png and b.html")."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
BUDGET_S = 120.0


def promised_files(script: Path) -> list[str]:
    """File names after "Writes" in the module docstring."""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    names: list[str] = []
    for sentence in re.findall(r"Writes ([^\n]*)", doc):
        names += re.findall(r"[\w.-]+\.(?:png|html|csv|parquet)", sentence)
    return names


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6
    for script in EXAMPLES:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
        assert doc and "python examples/" in doc, f"{script.name}: the docstring says what it shows and how to run it"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=3 * BUDGET_S)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    assert out.stdout.strip(), f"{script.name} printed nothing"
    for name in promised_files(script):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, f"{script.name} did not write {name}"
    assert seconds < BUDGET_S, f"{script.name} took {seconds:.0f} s (budget {BUDGET_S:.0f} s)"
