"""Every page in docs/ is a test: its ```python blocks, concatenated in order, run as one script.

Run one page by hand:  python tests/docs/test_docs.py docs/operators.md
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def page_script(page: Path) -> str:
    """The ```python blocks of ``page`` joined into one script (other fences are prose)."""
    return "\n".join(PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")))


def run_page(page: Path, cwd: Path, timeout: float = 300.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    prelude = "import torch\ntorch.set_num_threads(1)\n"
    return subprocess.run([sys.executable, "-c", prelude + page_script(page)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_docs_exist() -> None:
    assert (DOCS / "README.md").exists(), "docs/README.md indexes the pages"
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        if page.name != "README.md":
            assert page.name in index, f"docs/README.md does not link {page.name}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "README.md"], ids=lambda p: p.stem)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    script = page_script(page)
    assert script.strip(), f"{page.name} has no runnable ```python example"
    result = run_page(page, tmp_path)
    assert result.returncode == 0, f"{page.name} example failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def test_readme_python_example_runs(tmp_path: Path) -> None:
    """The README's 20-line example is what a newcomer copies first: it must run as printed."""
    readme = ROOT / "README.md"
    assert page_script(readme).strip(), "the README has a ```python example"
    result = run_page(readme, tmp_path)
    assert result.returncode == 0, f"README example failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert (tmp_path / "gdlens-runs" / "store.sqlite").exists()


if __name__ == "__main__":
    import tempfile
    import time

    for name in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out = run_page(Path(name).resolve(), Path(tmp))
            print(out.stdout, end="")
            print(out.stderr, end="", file=sys.stderr)
            print(f"[{name}: exit {out.returncode}, {time.perf_counter() - t0:.1f} s]")
