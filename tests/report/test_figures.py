import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gdlens.report import figures as F
from gdlens.report.panels import probe_figure

STEPS = [0, 1, 2, 5, 10, 20, 50, 100]


def frame(**cols):
    return pd.DataFrame(cols, index=pd.Index(STEPS, name="step"))


def curve(scale=1.0):
    return [scale * (1 + 1 / (s + 1)) for s in STEPS]


def images(fig):
    return sum(len(ax.images) for ax in fig.axes)


def test_loss_accuracy_symlog_and_clocks():
    m = frame(**{"metrics/train/loss": curve(), "metrics/test/loss": curve(2), "metrics/test/accuracy": curve(0.3),
                 "metrics/train/accuracy": [np.nan] * len(STEPS), "param_norm/total": curve()})
    fig = F.loss_accuracy(m, clocks={"grok": 10})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xscale() == "symlog" and loss_ax.get_yscale() == "log"
    # two loss curves + a clock line; step 0 is plotted
    assert len(loss_ax.lines) == 3 and loss_ax.lines[0].get_xdata()[0] == 0
    assert len(acc_ax.lines) == 3  # two accuracies (one without finite values) and the clock
    lo, hi = acc_ax.get_ylim()
    assert lo <= 0 and hi >= 1  # accuracy on [0, 1]
    assert loss_ax.get_ylabel() and acc_ax.get_ylabel()
    # one legend for the figure, the all-NaN column named in it
    assert len(fig.legends) == 1 and loss_ax.get_legend() is None and acc_ax.get_legend() is None
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "metrics/train/accuracy: no finite values" in texts and "clock grok" in texts


def test_loss_only_and_missing():
    assert len(F.loss_accuracy(frame(**{"train_step/loss": curve()})).axes) == 1
    assert F.loss_accuracy(frame(**{"param_norm/total": curve()})) is None
    assert F.loss_accuracy(pd.DataFrame()) is None


@pytest.mark.parametrize("old, args, prefix", [("kp_panel", (), "kp"), ("sharpness_panel", (), "sharpness"),
                                               ("metric_group", ("param_norm/",), "param_norm")])
def test_name_bound_figures_are_deprecated(old, args, prefix):
    """kp_panel, sharpness_panel and metric_group read hard-coded names: they warn and draw the
    generic panels of their prefix."""
    m = frame(**{f"{prefix}/a": curve(), f"{prefix}/b": curve(2), "metrics/train/loss": curve()})
    with pytest.warns(DeprecationWarning, match="probe_figure"):
        fig = getattr(F, old)(m, *args)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    with pytest.warns(DeprecationWarning):
        assert getattr(F, old)(frame(**{"x/y": curve()}), *args) is None


def test_frequency_heatmap_sorted():
    m = frame(**{f"frequency/err_k{k}": curve(k) for k in (10, 2, 5)}, **{"frequency/other": curve()})
    fig = F.frequency_heatmap(m)
    assert images(fig) == 1
    data = fig.axes[0].images[0].get_array()
    assert data.shape == (3, len(STEPS))
    assert np.allclose(data[:, 0], [4, 10, 20])  # rows sorted by k: 2, 5, 10
    assert F.frequency_heatmap(frame(**{"frequency/other": curve()})) is None


def test_condensation_matrix_orders_by_orientation():
    rng = np.random.default_rng(0)
    theta = rng.uniform(-np.pi, np.pi, 12)
    W = np.stack([np.cos(theta), np.sin(theta)], 1)
    S = W @ W.T
    fig = F.condensation_matrix(S, angles=theta)
    shown = fig.axes[0].images[0].get_array()
    order = np.argsort(theta)
    assert np.allclose(shown, S[np.ix_(order, order)])
    # without angles: the spectral order is a cyclic rotation (or reversal) of the angular order
    spec = F.spectral_order(S)
    ranks = np.argsort(np.argsort(theta))[spec]
    steps = np.diff(np.r_[ranks, ranks[0]]) % 12
    assert set(steps) <= {1} or set(steps) <= {11}
    with pytest.raises(ValueError, match="square"):
        F.condensation_matrix(np.ones((2, 3)))
    assert F.condensation_matrix(None) is None


def test_orientation_scatter():
    fig = F.orientation_scatter({0: ([0, 1], [1, 2]), 10: ([0, 1], [3, 4])})
    assert len(fig.axes) == 2 and all(len(ax.collections) == 1 for ax in fig.axes)
    assert F.orientation_scatter({}) is None


def test_cka_matrix():
    fig = F.cka_matrix(np.eye(3), labels=["a", "b", "c"])
    assert images(fig) == 1 and len(fig.axes[0].texts) == 9
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c"]


def test_phase_diagram_averages_seeds_and_leaves_holes():
    runs = pd.DataFrame({"config.lr": [0.1, 0.1, 0.01, 0.01, 0.1], "config.width": [8, 8, 8, 16, 16],
                         "summary.loss": [1.0, 3.0, 5.0, 7.0, 9.0]})
    fig = F.phase_diagram(runs, "config.lr", "config.width", "summary.loss")
    Z = fig.axes[0].images[0].get_array()
    assert Z.shape == (2, 2)
    assert Z[0, 1] == 2.0  # width 8, lr 0.1: mean of two seeds
    assert F.phase_diagram(runs, "config.lr", "config.depth", "summary.loss") is None


def test_sweep_curve_means_seeds_and_picks_scales():
    runs = pd.DataFrame({"config.g": [0.1, 0.1, 1.0, 10.0], "summary.loss": [1.0, 3.0, 50.0, 400.0],
                         "summary.acc": [0.5, 0.7, 0.9, 1.0]})
    fig = F.sweep_curve(runs, "config.g", ["summary.loss", "summary.acc"], log=[True, False])
    loss_ax, acc_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [2.0, 50.0, 400.0]  # mean of the two seeds at g = 0.1
    assert loss_ax.get_xscale() == "log" and loss_ax.get_yscale() == "log" and acc_ax.get_yscale() == "linear"
    assert loss_ax.get_title() == "loss" and loss_ax.get_xlabel() == "g"
    cats = pd.DataFrame({"config.model": ["gru", "rnn", "gru"], "summary.loss": [1.0, 2.0, 3.0]})
    ax = F.sweep_curve(cats, "config.model", ["summary.loss"]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["gru", "rnn"]
    assert F.sweep_curve(runs, "config.depth", ["summary.loss"]) is None


def test_compare_runs_overlays_each_run_per_metric():
    a = frame(**{"train_step/loss": curve(100), "kp/rank_G": curve()})
    b = frame(**{"train_step/loss": curve(1)})
    fig = F.compare_runs({"g=0.5": a, "g=2": b}, ["train_step/loss", "kp/rank_G", "absent"], log=("train_step/loss",),
                         ylabels={"kp/rank_G": "effective rank of G"})
    visible = fig.axes
    assert len(visible) == 2  # the absent column gets no panel
    assert len(visible[0].lines) == 2 and len(visible[1].lines) == 1
    assert visible[0].get_yscale() == "log" and visible[1].get_yscale() == "linear"
    assert visible[1].get_ylabel() == "effective rank of G" and visible[0].get_ylabel() == "train_step/loss"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["g=0.5", "g=2"]
    assert F.compare_runs({"a": a}, ["absent"]) is None


def test_compare_runs_groups_seeds_as_mean_and_band():
    runs = {"s0": frame(x=[1.0] * len(STEPS)), "s1": frame(x=[3.0] * len(STEPS)), "other": frame(x=[10.0] * len(STEPS))}
    fig = F.compare_runs(runs, ["x"], groups={"s0": "cfg", "s1": "cfg", "other": "other"})
    ax = fig.axes[0]
    assert len(ax.lines) == 2  # one line per configuration
    assert np.allclose(ax.lines[0].get_ydata(), 2.0)  # the mean of the two seeds
    band = ax.collections[0]
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    assert ys.min() == pytest.approx(1.0) and ys.max() == pytest.approx(3.0)  # ± s.e. = std(ddof=1)/√2 = 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["cfg (mean ± s.e. of 2 runs)", "other"]


def test_figures_from_real_run(tiny_run):
    _, run = tiny_run
    m = run.metrics(wide=True)
    assert isinstance(F.loss_accuracy(m), Figure)
    assert isinstance(probe_figure(run, "kp"), Figure)
    assert probe_figure(run, "sharpness") is None and F.frequency_heatmap(m) is None
