"""The reproduction registry: the rules that decide "holds" (checked by hand-computed cases),
the registry's errors, gd.reproduce's result.json schema and report, and the CLI's --list and
error paths."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

import gdlens as gd
from gdlens.reproduce import Above, Below, Citation, Claim, Entry, Measured, Measurements, Near, Within

SIZES = {"tiny": "t", "small": "s", "paper": "p"}
SEEDS = {"tiny": 2, "small": 3, "paper": 5}


@pytest.mark.parametrize("rule, value, stderr, holds", [
    (Above(1.0), 1.3, 0.1, True),          # 1.3 − 2·0.1 = 1.1 > 1
    (Above(1.0), 1.3, 0.2, False),         # 1.3 − 0.4 = 0.9
    (Above(1.0), 1.0, 0.0, False),         # strict
    (Above(1.0, z=1.0), 1.3, 0.2, True),   # 1.3 − 0.2 = 1.1
    (Below(0.0), -0.5, 0.2, True),
    (Below(0.0), -0.3, 0.2, False),
    (Within(0.0, 1.0), 0.5, 0.2, True),
    (Within(0.0, 1.0), 0.5, 0.3, False),
    (Near(1.0, 0.1), 1.15, 0.02, False),   # |0.15| > 0.1 + 0.04
    (Near(1.0, 0.1), 1.13, 0.02, True),    # 0.13 ≤ 0.14
    (Above(0.0), math.nan, 0.1, False),    # NaN never holds
    (Below(5.0), 4.0, math.nan, True),     # one seed: no s.e., read as 0
])
def test_rules(rule, value, stderr, holds):
    assert rule.holds(value, stderr) is holds


def test_rule_texts_and_published_values():
    assert Above(2).text() == "> 2" and Above(2).published() == 2.0
    assert Within(0, 1).text() == "in [0, 1]" and Within(0, 1).published() == [0.0, 1.0]
    assert Near(1, 0.1).text() == "≈ 1 (± 0.1)"


def test_measured_from_samples_is_mean_and_standard_error():
    m = Measured.from_samples([1.0, 2.0, 3.0, 6.0])
    assert m.value == pytest.approx(3.0)
    assert m.stderr == pytest.approx(math.sqrt(((4 + 1 + 0 + 9) / 3) / 4))
    assert math.isnan(Measured.from_samples([2.0]).stderr)


def _entry(name="test-dummy", value=(1.5, 1.7, 1.6), **kw):
    def run(size, seeds, store, progress):
        progress("running")
        return Measurements({"a": Measured.from_samples(value[:len(seeds)]), "b": Measured(0.2, 0.05)},
                            data={"x": [1, 2]}, settings={"n": len(seeds)})

    def figure(m):
        from matplotlib.figure import Figure

        fig = Figure()
        fig.subplots().plot(m.data["x"])
        return fig

    return Entry(name, "A dummy", Citation("0000.00000", "Fig. 9", "Nobody"),
                 (Claim("a", Above(1.0), "Fig. 9a", "a thing"), Claim("b", Below(0.1), "Fig. 9b", "b thing")),
                 run, figure, SIZES, SEEDS, 1.0, **kw)


def test_entry_checks_its_fields():
    with pytest.raises(ValueError, match="missing paper"):
        Entry("x", "x", Citation("1", "2"), (), None, None, {"tiny": "", "small": ""}, SEEDS, 1.0)
    with pytest.raises(ValueError, match="unique"):
        Entry("x", "x", Citation("1", "2"), (Claim("a", Above(0), ""), Claim("a", Above(0), "")), None, None,
              SIZES, SEEDS, 1.0)
    with pytest.raises(ValueError, match="unknown claims"):
        _entry(caveats={"zzz": "no"})


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown reproduction 'no-such'.*frequency-principle"):
        gd.reproduce.get("no-such")
    with pytest.raises(TypeError, match="Entry"):
        gd.reproduce.register("frequency-principle")
    gd.reproduce.register(_entry("test-dup"))
    with pytest.raises(ValueError, match="already registered"):
        gd.reproduce.register(_entry("test-dup"))


def test_reproduce_writes_result_json_and_report(tmp_path):
    gd.reproduce.register(_entry(caveats={"b": "holds from size paper"}), replace=True)
    messages = []
    r = gd.reproduce("test-dummy", size="small", store=tmp_path / "store", out=tmp_path / "out" / "r.html",
                     progress=messages.append)
    assert messages[0].startswith("test-dummy: size small") and "running" in messages
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert set(data) >= {"name", "title", "citation", "size", "seeds", "claims", "runs", "wall_seconds"}
    assert data["seeds"] == [0, 1, 2] and data["size"] == "small"
    a, b = data["claims"]
    assert set(a) >= {"name", "published", "measured", "stderr", "holds"}
    assert a["name"] == "a" and a["published"] == 1.0 and a["measured"] == pytest.approx(1.6)
    assert a["stderr"] == pytest.approx(0.1 / math.sqrt(3)) and a["holds"] is True
    assert b["holds"] is False and b["caveat"] == "holds from size paper"
    page = (tmp_path / "out" / "r.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page
    assert "does not hold" in page and "holds from size paper" in page and "1 of 2 claims hold" in page
    # one seed: no standard error, written as null
    r1 = gd.reproduce("test-dummy", seeds=1, store=tmp_path / "store", out=tmp_path / "one")
    assert json.loads((tmp_path / "one" / "result.json").read_text())["claims"][0]["stderr"] is None
    assert r1.claim("a")["holds"] is True and r.all_hold is False


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(size="huge"), ValueError, "size must be one of"),
    (dict(seeds=0), ValueError, "at least 1"),
    (dict(seeds=[1.5]), TypeError, "seeds"),
    (dict(store=None), ValueError, "store"),
    (dict(progress=3), TypeError, "progress"),
])
def test_reproduce_bad_arguments(tmp_path, kwargs, error, match):
    gd.reproduce.register(_entry(), replace=True)
    kwargs.setdefault("store", tmp_path / "s")
    with pytest.raises(error, match=match):
        gd.reproduce("test-dummy", **kwargs)


def _cli(*args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "gdlens.cli", "reproduce", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_list_shows_every_entry():
    out = _cli("--list")
    assert out.returncode == 0, out.stderr
    for name in ("frequency-principle", "condensation-phase", "adam-spike", "edge-of-stability",
                 "convergent-learning", "grokking-clocks"):
        line = next(li for li in out.stdout.splitlines() if li.startswith(name))
        entry = gd.reproduce.get(name)
        assert f"arXiv:{entry.citation.arxiv}" in line and entry.title in line
    assert out.stdout.splitlines()[0].split() == ["name", "paper", "reproduces", "claims", "small", "size"]


def test_cli_errors_name_the_registry():
    out = _cli("no-such-paper")
    assert out.returncode == 2 and "unknown reproduction 'no-such-paper'" in out.stderr
    assert "frequency-principle" in out.stderr and "Traceback" not in out.stderr
    out = _cli()
    assert out.returncode == 2 and "gdlens reproduce --list" in out.stderr
    out = _cli("frequency-principle", "--size", "huge")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_cli_without_matplotlib_names_the_extra_but_lists(tmp_path):
    """The report needs matplotlib (the cli extra): said in one line before any work; --list
    needs nothing."""
    (tmp_path / "matplotlib.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\", "
                                            "name='matplotlib')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    out = _cli("frequency-principle", "--store", str(tmp_path / "store"), env_extra=env)
    assert out.returncode == 2 and "gdlens[cli]" in out.stderr and not (tmp_path / "store").exists()
    assert _cli("--list", env_extra=env).returncode == 0
