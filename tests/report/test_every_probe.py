"""Every built-in probe, trained for real, gets its report section with a figure, and every key
its declared panels name is one it records (so names cannot drift between a probe and the
report). A probe that declares no panels yet gets the generic fallback section, so this holds
before and after the probes declare theirs."""

import html
import re

import gdlens as gd
from gdlens.report.html import probe_sections, write_report
from gdlens.report.panels import section_title, unmatched_keys


def sections(text):
    """{section title: its HTML} of a report."""
    return {html.unescape(t): body for t, body in re.findall(r"<section id='[^']+'><h2>(.*?)</h2>(.*?)</section>",
                                                              text, re.S)}


def recorded(run, name):
    prefix = name + "/"
    scalars = [c[len(prefix):] for c in run.metrics(wide=True).columns if c.startswith(prefix)]
    arrays = [a[len(prefix):] for a in run.arrays() if a.startswith(prefix)]
    return scalars, arrays


def test_every_built_in_probe_is_used(every_probe_runs):
    """The runs use every probe class gd.probes exports (a new one must join them)."""
    _, runs = every_probe_runs
    used = {d["type"] for run in runs.values() for d in run.summary["probes"].values()}
    built_in = {n for n in gd.probes.__all__ if n.endswith("Probe") and n != "Probe"}
    assert len(built_in) >= 13 and used == built_in


def test_each_probe_gets_its_section_with_a_figure(every_probe_runs, tmp_path):
    _, runs = every_probe_runs
    for label, run in runs.items():
        text = write_report(run, tmp_path / f"{label}.html").read_text()
        found = sections(text)
        decls = run.summary["probes"]
        for name, decl in decls.items():
            title = section_title(name, decl)
            assert title in found, (label, name, list(found))
            assert "<img" in found[title], (label, name)
            assert "Nothing was recorded" not in found[title], (label, name)
        # one section per probe, none for the training loop's own train_step/
        names = [n for n, _ in probe_sections(run.summary, run.metrics(wide=True), run.arrays())]
        assert sorted(names) == sorted(decls)


def test_declared_keys_are_recorded(every_probe_runs):
    """Every key (or pattern) a probe's declared panels name, and each bound and declared
    standard error, matches a key the probe recorded in at least one of the runs (a regression
    task records no accuracy, so a key may be absent from one run)."""
    _, runs = every_probe_runs
    decls, scalars, arrays = {}, {}, {}
    for run in runs.values():
        for name, decl in run.summary["probes"].items():
            s, a = recorded(run, name)
            assert s or a, (run.name, name)
            decls.setdefault(decl["type"], decl)
            scalars.setdefault(decl["type"], set()).update(s)
            arrays.setdefault(decl["type"], set()).update(a)
    for kind, decl in decls.items():
        assert unmatched_keys(decl, sorted(scalars[kind]), sorted(arrays[kind])) == [], kind
        for metric in decl["metrics"]:
            if metric.get("stderr") and "*" not in metric["key"]:
                assert metric["stderr"] in scalars[kind] | arrays[kind], (kind, metric)
