"""The panel renderer on synthetic declarations: scales, limits, bands, dimension lines,
patterns, the generic fallback and the summary table (checked on the matplotlib objects)."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from gdlens.probes.spec import Metric, Panel, describe
from gdlens.report import panels as R
from gdlens.report.tables import summary_table

STEPS = [0, 1, 2, 5, 10, 20, 50, 100]
N = len(STEPS)


class Fake:
    """A probe as the report sees it: only its declaration (describe() gives the JSON)."""

    name = "fake"
    title = "A fake probe"
    metric_specs = (
        Metric("acc", "accuracy", "fraction correct"),
        Metric("rank", "effective rank", "(tr A)² / ‖A‖_F²", stderr="rank_se"),
        Metric("dim", "dimension"),
        Metric("eig_*", "eigenvalue", unit="loss"),
        Metric("flat", "a flat quantity", unit="nat"),
    )
    panels = (
        Panel("accuracy", ("acc",), "accuracy (fraction correct)", yscale="linear", ylim=(0, 1)),
        Panel("rank", ("rank",), "effective rank", bound="dim"),
        Panel("spectrum", ("eig_*",), "eigenvalue", kind="spectrum"),
        Panel("eigenvalues over training", ("eig_*",), "eigenvalue"),
        Panel("flat", ("flat", "missing"), "flat quantity (nat)"),
        Panel("similarity", ("sim",), "cosine similarity", kind="matrix", ylim=(-1, 1)),
    )

    def settings(self):
        return {"B": 4, "T": 10}


def frame(**cols):
    return pd.DataFrame({f"fake/{k}": v for k, v in cols.items()}, index=pd.Index(STEPS, name="step"))


def data():
    m = frame(acc=np.linspace(0.999, 1.0, N), rank=np.linspace(3.0, 5.0, N), rank_se=[0.5] * N, dim=[40.0] * N,
              eig_1=np.linspace(100, 200, N), eig_2=np.linspace(1, 2, N), eig_10=np.linspace(0.01, 0.02, N),
              flat=0.19 + 0.01 * np.sin(np.arange(N)), extra=np.arange(N, dtype=float), nan_key=[np.nan] * N,
              B=[4.0] * N)
    arrays = {"fake/sim": ([0, 10], [np.eye(3), 0.5 * np.eye(3)]), "fake/other": ([10], [np.ones((2, 2))])}
    return m, arrays


def axes_by_title(fig):
    return {ax.get_title().replace("\n", " "): ax for ax in fig.axes if ax.get_title()}


@pytest.fixture(scope="module")
def drawn():
    m, arrays = data()
    plans = R.plan_section("fake", describe(Fake()), m, arrays)
    return plans, R.draw_section(plans, m, arrays)


def test_plans_follow_the_declaration(drawn):
    plans, _ = drawn
    by_title = {p.title: p for p in plans}
    # patterns resolve in natural order; the s.e. is a band, not a curve; the bound is a line
    assert by_title["spectrum"].columns == ["fake/eig_1", "fake/eig_2", "fake/eig_10"]
    assert by_title["rank"].bands == {"fake/rank": "fake/rank_se"}
    assert by_title["rank"].bound[0] == "dimension"
    assert by_title["flat"].columns == ["fake/flat"]  # "missing" matched nothing: not drawn
    # keys no panel names go to one generic panel of the section; rank_se and dim are used
    other = [p for p in plans if p.title.startswith("other recorded keys")]
    assert [c for p in other for c in p.columns] == ["fake/extra", "fake/nan_key"]
    # ... except a constant one (a size recorded beside the curves): stated, not drawn
    assert R.constant_leftovers("fake", describe(Fake()), data()[0]) == {"B": 4.0}
    assert R.constant_leftovers("fake", None, data()[0]) == {}  # a generic section draws everything
    # an array no panel names is drawn as a matrix
    assert [p.columns for p in plans if p.kind == "matrix"] == [["fake/sim"], ["fake/other"]]
    assert R.unmatched_keys(describe(Fake()), ["acc", "rank", "dim", "eig_1", "flat"], ["sim"]) == ["missing"]
    assert R.unmatched_keys(describe(Fake()), ["acc", "rank", "eig_1", "flat"], ["sim"]) == ["dim", "missing"]


def test_one_legend_per_figure(drawn):
    _, fig = drawn
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(texts) == len(set(texts))
    assert "accuracy" in texts and "effective rank" in texts
    assert "nan_key: no finite values" in texts  # an all-NaN curve keeps its legend entry
    assert not any("rank_se" in t for t in texts)


def test_every_axis_is_labelled(drawn):
    _, fig = drawn
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel()
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()


def test_declared_ylim_and_no_zoom(drawn):
    _, fig = drawn
    ax = axes_by_title(fig)
    lo, hi = ax["accuracy"].get_ylim()
    assert lo <= 0 and hi >= 1 and hi - lo < 1.1  # [0, 1], not 0.999-1.000
    lo, hi = ax["flat"].get_ylim()
    flat = data()[0]["fake/flat"]
    centre = (flat.min() + flat.max()) / 2
    # 0.18-0.20 stays a wiggle: at least ±25 % of the centre (matplotlib alone would give ≈ 0.179-0.201)
    assert hi - lo >= 2 * R.MIN_HALF_SPAN * centre - 1e-12 and lo <= 0.18 and hi >= 0.20


def test_yscale_auto(drawn):
    _, fig = drawn
    ax = axes_by_title(fig)
    assert ax["spectrum"].get_yscale() == "log"  # 0.01..200: four decades
    assert ax["eigenvalues over training"].get_yscale() == "log"
    assert ax["rank"].get_yscale() == "linear"  # 2.5..40: under two decades
    assert ax["accuracy"].get_yscale() == "linear"
    assert R.choose_yscale("auto", np.array([1.0, 50.0])) == "linear"
    assert R.choose_yscale("auto", np.array([1.0, 101.0, np.nan])) == "log"
    assert R.choose_yscale("auto", np.array([0.0, 1e-3, 1.0])) == "symlog"  # a zero-initialised bias
    assert R.choose_yscale("auto", np.array([-1.0, 1e-3, 1.0])) == "linear"
    assert R.choose_yscale("log", np.array([-1.0, 1.0])) == "symlog"
    assert R.choose_yscale("linear", np.array([1.0, 1e6])) == "linear"


def test_bands_and_bound_line(drawn):
    _, fig = drawn
    ax = axes_by_title(fig)["rank"]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    ys = np.concatenate([p.vertices[:, 1] for p in bands[0].get_paths()])
    rank = np.linspace(3.0, 5.0, N)
    assert ys.min() == pytest.approx(rank.min() - 0.5) and ys.max() == pytest.approx(rank.max() + 0.5)
    bound = [ln for ln in ax.lines if "largest possible" in ln.get_label()]
    assert len(bound) == 1 and np.allclose(bound[0].get_ydata(), 40.0)
    assert ax.get_ylim()[1] >= 40  # the dimension line is inside the axis


def test_spectrum_at_three_steps(drawn):
    _, fig = drawn
    ax = axes_by_title(fig)["spectrum"]
    assert [ln.get_label() for ln in ax.lines] == ["step 0", "step 10", "step 100"]
    assert list(ax.lines[-1].get_xdata()) == [1, 2, 3] and list(ax.lines[-1].get_ydata()) == [200, 2, 0.02]


def test_matrix_panel(drawn):
    _, fig = drawn
    ax = axes_by_title(fig)["similarity, step 10"]
    img = ax.images[0]
    assert np.allclose(img.get_array(), 0.5 * np.eye(3)) and img.get_clim() == (-1, 1)


def test_an_unclaimed_vector_is_drawn_against_its_index():
    m = pd.DataFrame({"v/x": [1.0]}, index=[0])
    arrays = {"v/angles": ([0, 5], [np.zeros(4), np.arange(4.0)])}
    plans = R.plan_section("v", None, m, arrays)
    assert [p.kind for p in plans] == ["lines", "matrix"]
    ax = R.draw_section(plans, m, arrays).axes[1]
    assert list(ax.lines[0].get_ydata()) == [0, 1, 2, 3] and ax.get_title() == "angles (latest), step 5"


def test_bound_from_settings_and_pattern_stderr():
    decl = {"title": "t", "type": "T", "settings": {"H": 8},
            "metrics": [{"key": "rank_*", "label": "rank", "stderr": "rank_*_se"}],
            "panels": [{"title": "ranks", "keys": ["rank_*"], "ylabel": "effective rank", "bound": "H"}]}
    m = pd.DataFrame({"p/rank_K": [1.0, 2.0], "p/rank_K_se": [0.1, 0.1], "p/rank_G": [3.0, 4.0]}, index=[0, 1])
    plans = R.plan_section("p", decl, m, {})
    assert len(plans) == 1 and plans[0].bands == {"p/rank_K": "p/rank_K_se"}
    assert plans[0].bound[0] == "H" and plans[0].bound[2].tolist() == [8.0]
    ax = R.draw_section(plans, m, {}).axes[0]
    assert any(ln.get_label() == "H (largest possible) = 8" for ln in ax.lines)


def test_fallback_without_declarations():
    m = pd.DataFrame({"p/train/loss": [1.0, 0.5], "p/test/loss": [1.2, 0.7], "p/train/accuracy": [0.5, 0.6],
                      "p/test/accuracy": [0.4, 0.5]}, index=[0, 1])
    plans = R.plan_section("p", None, m, {})
    # data splits: one panel per quantity, the accuracy on [0, 1]
    assert {p.title: p.columns for p in plans} == {"P: accuracy": ["p/test/accuracy", "p/train/accuracy"],
                                                   "P: loss": ["p/test/loss", "p/train/loss"]}
    assert [p.ylim for p in plans] == [(0.0, 1.0), None]
    g = pd.DataFrame({"g/grad_norm/a": [1.0], "g/grad_norm/b": [2.0], "g/share/a": [0.5], "g/share/b": [0.5],
                      "g/x": [1.0], "g/x_se": [0.1], "g/lonely/one": [3.0]}, index=[0])
    plans = R.plan_section("g", {"title": "GProbe", "type": "GProbe", "metrics": [], "panels": []}, g, {})
    assert R.section_title("g", {"title": "GProbe", "type": "GProbe", "panels": []}) == "G (GProbe)"
    by = {p.title: p for p in plans}
    assert by["G (GProbe)"].columns == ["g/lonely/one", "g/x"]  # a one-key segment joins the plain keys
    assert by["G (GProbe)"].bands == {"g/x": "g/x_se"}
    assert by["G (GProbe): grad_norm"].labels == {"g/grad_norm/a": "a", "g/grad_norm/b": "b"}
    fig = R.draw_section(plans, g, {})
    assert len(fig.legends) == 1 and all(ax.get_ylabel() for ax in fig.axes)
    assert R.plan_section("absent", None, g, {}) == [] and R.draw_section([], g, {}) is None


def test_summary_table_grouped_with_units_and_settings():
    summary = {"steps": 3, "seconds": 1.5, "fake/rank": 4.0, "fake/rank_se": 0.25, "fake/acc": 1.0,
               "fake/flat": 0.19, "other/x": 2.0, "probes": {"fake": describe(Fake())}}
    text = summary_table(summary)
    run, fake, other = text.index(">Run<"), text.index(">A fake probe"), text.index(">Other<")
    assert run < fake < other
    assert "settings: B = 4, T = 10" in text
    assert "<td class='num'>4 ± 0.25</td>" in text and "<th>fake/rank_se</th>" not in text
    assert "effective rank: (tr A)² / ‖A‖_F²" in text
    assert "<td class='num'>0.19</td><td>nat</td>" in text
    assert "<td class='num'>1.5</td><td>s</td>" in text
    assert math.isclose(float(text.split("<th>other/x</th><td></td><td class='num'>")[1].split("<")[0]), 2.0)


def test_probe_figure_from_a_frame_and_a_declaration():
    m, arrays = data()
    fig = R.probe_figure(m, "fake", describe(Fake()), arrays)
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_title()]
    assert titles[:5] == ["accuracy", "rank", "spectrum", "eigenvalues over training", "flat"]
    assert R.probe_figure(m, "absent") is None


def test_a_family_across_panels_shares_labels_and_colours():
    """grad_norm/* and ntk_trace/* of the same groups: one label, one colour, one legend entry
    per group; a key only one panel draws keeps its name."""
    decl = {"title": "groups", "type": "G", "settings": {}, "metrics": [],
            "panels": [{"title": "gradient", "keys": ["grad_norm/*"], "ylabel": "‖∂L/∂θ_g‖"},
                       {"title": "trace", "keys": ["ntk_trace/*"], "ylabel": "tr K_g"}]}
    m = pd.DataFrame({"g/grad_norm/head": [1.0, 2.0], "g/grad_norm/body": [3.0, 4.0], "g/grad_norm/total": [5.0, 6.0],
                      "g/ntk_trace/head": [1.0, 1.5], "g/ntk_trace/body": [2.0, 2.5]}, index=[0, 1])
    plans = R.plan_section("g", decl, m, {})
    assert plans[0].labels == {"g/grad_norm/body": "body", "g/grad_norm/head": "head",
                               "g/grad_norm/total": "grad_norm/total"}
    fig = R.draw_section(plans, m, {})
    a, b = fig.axes
    colour = {ln.get_label(): ln.get_color() for ln in a.lines}
    assert all(colour[ln.get_label()] == ln.get_color() for ln in b.lines)
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["body", "grad_norm/total", "head"]


def test_sweep_curves_draw_accuracy_on_the_unit_interval_and_never_zoom_a_flat_loss():
    import pandas as pd

    from gdlens.report.figures import sweep_curve

    frame = pd.DataFrame({"g": [0.5, 2.0], "metrics/test/accuracy": [1.0, 0.999], "loss": [0.190, 0.200]})
    fig = sweep_curve(frame, "g", ["metrics/test/accuracy", "loss"])
    acc, loss = fig.axes[:2]
    assert acc.get_ylim()[0] <= 0.0 and acc.get_ylim()[1] >= 1.0
    lo, hi = loss.get_ylim()
    assert hi - lo >= 0.5 * 0.195  # at least ±25 % of the centre, not the 0.19–0.20 of the data
