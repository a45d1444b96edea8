"""Sweep reports follow the spec's structure: seeds aggregated, zipped fields one axis, and no
swept axis ever averaged into another's cells (facets instead), on a grid × zip × seeds spec."""

import re

import numpy as np
import pytest

import gdlens as gd
from gdlens.config import ConfigError
from gdlens.report import figures as F
from gdlens.report.html import render_sweep
from gdlens.report.sweep_axes import Dimension, derive_axes, dimension_values, layout, sweep_axes
from gdlens.sweep import SweepSpec
from gdlens.sweep.structure import save_structure

HIDDEN, ZIPPED, SEEDS = (8, 16), ((0.01, 0.5), (0.03, 2.0)), (0, 1)


def _loss(hidden, lr, g, seed):
    return hidden * 100 + lr * 10 + g + seed * 0.001  # every axis leaves its own trace


def _spec(**extra):
    return SweepSpec(base={"task": {"name": "teacher_student"}, "model": {"name": "mlp"}},
                     grid={"model.hidden": list(HIDDEN), **extra}, zip={"lr,model.g": [list(z) for z in ZIPPED]},
                     seeds=len(SEEDS), name="docs")


def _store(tmp_path, activations=None, structure=True):
    """Runs of the docs' example (lr, model.g zipped × model.hidden grid × 2 seeds), written
    directly (no training), with or without the sweep's stored structure."""
    store = gd.open_store(tmp_path / "s")
    for act in activations or [None]:
        for hidden in HIDDEN:
            for lr, g in ZIPPED:
                for seed in SEEDS:
                    model = {"name": "mlp", "hidden": hidden, "g": g, "class": "MLP", "num_params": hidden * 3}
                    if act:
                        model["activation"] = act
                    run = store.create_run({"model": model, "lr": lr, "seed": seed, "steps": 5}, sweep="docs")
                    loss = _loss(hidden, lr, g, seed) * (2 if act == "tanh" else 1)
                    run.log(0, {"train_step/loss": loss})
                    run.finish({"final_train_loss": loss})
    if structure:
        save_structure(store, _spec(**({"model.activation": activations} if activations else {})))
    return store


@pytest.mark.parametrize("structure", [True, False], ids=["stored", "derived"])
def test_axes_of_a_grid_zip_seeds_sweep(tmp_path, structure):
    store = _store(tmp_path, structure=structure)
    axes = sweep_axes(store, "docs", store.runs(sweep="docs"))
    assert {(a.kind, frozenset(a.keys)) for a in axes} == {  # derived axes follow the column order
        ("grid", frozenset({"model.hidden"})), ("zip", frozenset({"lr", "model.g"})), ("seed", frozenset({"seed"}))}
    if structure:
        assert [a.keys for a in axes] == [("model.hidden",), ("lr", "model.g"), ("seed",)]


def test_a_seed_swept_as_a_grid_field_is_still_aggregated(tmp_path):
    store = _store(tmp_path, structure=False)
    spec = _spec()
    save_structure(store, SweepSpec(base=spec.base, grid={**spec.grid, "seed": list(SEEDS)}, zip=spec.zip, name="docs"))
    frame = store.runs(sweep="docs")
    lay = layout(frame, sweep_axes(store, "docs", frame))
    assert lay.seed == "config.seed" and (lay.x.keys, lay.y.keys, lay.facets) == (("model.hidden",), ("lr", "model.g"), [])


def test_no_swept_axis_is_averaged_into_a_phase_diagram_cell(tmp_path):
    store = _store(tmp_path)
    frame = store.runs(sweep="docs")
    lay = layout(frame, sweep_axes(store, "docs", frame))
    assert (lay.x.keys, lay.y.keys, lay.facets, lay.seed) == (("model.hidden",), ("lr", "model.g"), [], "config.seed")
    table = frame.assign(**{d.label: dimension_values(frame, d) for d in (lay.x, lay.y)})
    Z = F.phase_diagram(table, lay.x.label, lay.y.label, "summary.final_train_loss").axes[0].images[0].get_array()
    expected = [[np.mean([_loss(h, lr, g, s) for s in SEEDS]) for h in HIDDEN] for lr, g in ZIPPED]
    np.testing.assert_allclose(Z, expected)  # each cell: one configuration, its two seeds averaged
    text = render_sweep(store, "docs")
    assert "Swept axes: model.hidden, (lr, model.g) zipped; seeds: 2 values of seed, aggregated" in text
    assert "<h2>Phase diagrams</h2>" in text and "seed-table" in text
    seed_rows = text[text.index("seed-table"):].split("</table>")[0].count("<tr>") - 1
    assert seed_rows == len(HIDDEN) * len(ZIPPED)
    assert "<td class='num'>2</td>" in text  # two seeds per configuration
    assert "model.class" not in text.split("Swept axes")[1].split("</p>")[0]  # recorded facts are no axes


def test_a_third_axis_becomes_small_multiples(tmp_path):
    store = _store(tmp_path, activations=["relu", "tanh"])
    frame = store.runs(sweep="docs")
    lay = layout(frame, sweep_axes(store, "docs", frame))
    assert [d.keys for d in lay.facets] == [("lr", "model.g")] and lay.y.keys == ("model.activation",)
    text = render_sweep(store, "docs")
    assert "one panel per lr, model.g" in text
    chosen = layout(frame, sweep_axes(store, "docs", frame), x="lr", y="model.hidden")
    assert (chosen.x.keys, chosen.y.keys, [d.keys for d in chosen.facets]) == (
        ("lr", "model.g"), ("model.hidden",), [("model.activation",)])
    table = frame.assign(**{d.label: dimension_values(frame, d) for d in (chosen.x, chosen.y, *chosen.facets)})
    fig = F.phase_diagram(table, "lr, model.g", "model.hidden", "summary.final_train_loss", facet="model.activation")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["model.activation = relu", "model.activation = tanh"]
    assert np.nanmax(panels[1].images[0].get_array()) == pytest.approx(2 * np.nanmax(panels[0].images[0].get_array()))


def test_x_alone_draws_one_line_per_other_axis_with_seed_bands(tmp_path):
    store = _store(tmp_path)
    path = gd.report(store, tmp_path / "x.html", name="docs", x="model.g")
    text = path.read_text()
    assert "<h2>Over the swept axis</h2>" in text and "one line per model.hidden" in text
    frame = store.runs(sweep="docs")
    lay = layout(frame, sweep_axes(store, "docs", frame), x="model.g")
    table = frame.assign(**{d.label: dimension_values(frame, d) for d in (lay.x, *lay.facets)})
    fig = F.sweep_curve(table, lay.x.label, ["summary.final_train_loss"], group="model.hidden")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 4  # a line per hidden; per hidden, seed points and a band
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["8", "16"]  # one legend for the figure
    assert fig.legends[0].get_title().get_text() == "model.hidden" and ax.get_ylabel() == "final_train_loss"


@pytest.mark.parametrize("x, y, message", [
    ("leraning_rate", None, r"x='leraning_rate' is not a swept axis.*swept axes are model.hidden, lr, model.g"),
    ("lr", "model.g", "the same axis"),
    ("seed", None, "not a swept axis"),
    (None, "lr", "y= needs x="),
])
def test_bad_axis_choices(tmp_path, x, y, message):
    store = _store(tmp_path)
    with pytest.raises(ConfigError, match=message):
        gd.report(store, tmp_path / "bad.html", name="docs", x=x, y=y)


def test_a_run_report_refuses_axes(tmp_path):
    store = _store(tmp_path)
    run_id = store.runs(as_frame=False)[0]["id"]
    with pytest.raises(ValueError, match="a run's report has none"):
        gd.report(store, tmp_path / "r.html", name=run_id, x="lr")


def test_seeds_of_one_configuration_are_one_band_in_runs_compared(tmp_path):
    store = gd.open_store(tmp_path / "s")
    for g in (0.5, 2.0):
        for seed in (0, 1):
            run = store.create_run({"g": g, "seed": seed}, sweep="few")
            run.log_series("train_step/loss", [0, 1, 2], [g, g / 2, g / (3 + seed)])
            run.finish({"final_train_loss": g})
    text = render_sweep(store, "few")
    assert "<h2>Runs compared</h2>" in text and "the seeds of one configuration: their mean ± s.e." in text
    metrics = {f"g={g} (seed {s})": store.metrics(r["id"], wide=True)
               for r, (g, s) in zip(store.runs(as_frame=False), [(0.5, 0), (0.5, 1), (2.0, 0), (2.0, 1)])}
    groups = {label: label.split(" (")[0] for label in metrics}
    fig = F.compare_runs(metrics, ["train_step/loss"], groups=groups)
    ax = fig.axes[0]
    assert [line.get_color() for line in ax.lines] == ["C0", "C1"]  # one mean line per configuration
    assert np.allclose(ax.lines[0].get_ydata(), [0.5, 0.25, (0.5 / 3 + 0.5 / 4) / 2])
    assert len(ax.collections) == 2  # and its band
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["g=0.5 (mean ± s.e. of 2 runs)",
                                                                   "g=2.0 (mean ± s.e. of 2 runs)"]


def test_derived_zips_need_a_one_to_one_correspondence():
    import pandas as pd

    frame = pd.DataFrame({"config.a": [1, 1, 2, 2], "config.b": [5, 5, 6, 6], "config.c": [1, 2, 1, 2],
                          "config.model.num_params": [10, 20, 10, 20]})
    assert derive_axes(frame) == [Dimension("a, b", ("a", "b"), "zip"), Dimension("c", ("c",), "grid")]


def test_the_report_of_a_real_grid_zip_seeds_sweep(tmp_path):
    spec = SweepSpec(base={"task": {"name": "teacher_student", "input_dim": 3, "teacher_width": 2},
                           "model": {"name": "mlp"}, "steps": 3, "probes": ["metrics"]},
                     grid={"model.hidden": [4, 8]}, zip={"lr,model.g": [[0.01, 0.5], [0.03, 2.0]]}, seeds=2,
                     name="real")
    result = gd.sweep(spec, tmp_path / "s", backend="serial")
    assert result.ran == 8 and not result.errors
    text = gd.report(tmp_path / "s", tmp_path / "real.html", name="real").read_text()
    assert "Swept axes: model.hidden, (lr, model.g) zipped; seeds: 2 values of seed" in text
    assert len(re.findall(r"<h2>Phase diagrams</h2>", text)) == 1


def test_gdlens_report_takes_x_and_y(tmp_path, capsys):
    from gdlens.cli import main

    _store(tmp_path)
    out = tmp_path / "cli.html"
    assert main(["report", "docs", "--store", str(tmp_path / "s"), "-o", str(out), "--x", "lr", "--y",
                 "model.hidden"]) == 0
    assert "Layout: x: (lr, model.g) zipped; y: model.hidden." in out.read_text()
    assert main(["report", "docs", "--store", str(tmp_path / "s"), "--x", "leraning_rate"]) == 2
    assert "x='leraning_rate' is not a swept axis" in capsys.readouterr().err
