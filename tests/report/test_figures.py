import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gdlens.report import figures as F

STEPS = [0, 1, 2, 5, 10, 20, 50, 100]


def frame(**cols):
    return pd.DataFrame(cols, index=pd.Index(STEPS, name="step"))


def curve(scale=1.0):
    return [scale * (1 + 1 / (s + 1)) for s in STEPS]


def images(fig):
    return sum(len(ax.images) for ax in fig.axes)


def test_loss_accuracy_symlog_and_clocks():
    m = frame(**{"metrics/train/loss": curve(), "metrics/test/loss": curve(2), "metrics/test/accuracy": curve(0.3),
                 "param_norm/total": curve()})
    fig = F.loss_accuracy(m, clocks={"grok": 10})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xscale() == "symlog" and loss_ax.get_yscale() == "log"
    # two loss curves + a clock line; step 0 is plotted
    assert len(loss_ax.lines) == 3 and loss_ax.lines[0].get_xdata()[0] == 0
    assert len(acc_ax.lines) == 2


def test_loss_only_and_missing():
    assert len(F.loss_accuracy(frame(**{"train_step/loss": curve()})).axes) == 1
    assert F.loss_accuracy(frame(**{"param_norm/total": curve()})) is None
    assert F.loss_accuracy(pd.DataFrame()) is None


def test_kp_panel_full():
    cols = {f"kp/rank_{n}": curve(k) for k, n in zip((10, 100, 5), "KPG")}
    cols.update({f"kp/rank_{n}_se": [0.1] * len(STEPS) for n in "KPG"})
    cols.update({f"kp/eig_G_{i}": curve(10 / i) for i in range(1, 6)})
    cols["kp/misdirection"] = curve(0.1)
    fig = F.kp_panel(frame(**cols))
    assert len(fig.axes) == 4
    ranks, eigs, spectrum, misdir = fig.axes
    assert len(ranks.lines) == 3 and len(ranks.collections) == 3  # error bands
    assert len(eigs.lines) == 5 and len(spectrum.lines) == 3 and len(misdir.lines) == 1


def test_kp_panel_partial_and_missing():
    fig = F.kp_panel(frame(**{"kp/rank_K": curve(), "kp/rank_G": curve()}))
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2 and not fig.axes[0].collections
    assert F.kp_panel(frame(**{"metrics/train/loss": curve()})) is None


def test_sharpness_panel():
    m = frame(**{"sharpness/lambda_max": curve(100)})
    fig = F.sharpness_panel(m, lr=0.01)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and np.allclose(ax.lines[1].get_ydata(), 200.0)
    m2 = frame(**{"sharpness/lambda_max": curve(100), "sharpness/threshold": [200.0] * len(STEPS),
                  "sharpness/precond_threshold": [300.0] * len(STEPS), "sharpness/spike_warning": [0.0] * len(STEPS)})
    assert len(F.sharpness_panel(m2).axes[0].lines) == 3  # lambda_max + two recorded thresholds
    assert len(F.sharpness_panel(m).axes[0].lines) == 1  # no threshold known
    assert F.sharpness_panel(frame(**{"kp/rank_K": curve()})) is None


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
    fig = F.compare_runs({"g=0.5": a, "g=2": b}, ["train_step/loss", "kp/rank_G", "absent"], log=("train_step/loss",))
    visible = fig.axes
    assert len(visible) == 2  # the absent column gets no panel
    assert len(visible[0].lines) == 2 and len(visible[1].lines) == 1
    assert visible[0].get_yscale() == "log" and visible[1].get_yscale() == "linear"
    assert [t.get_text() for t in visible[0].get_legend().get_texts()] == ["g=0.5", "g=2"]
    assert F.compare_runs({"a": a}, ["absent"]) is None


def test_metric_group():
    fig = F.metric_group(frame(**{"param_norm/a": curve(), "param_norm/total": curve(2), "x/y": curve()}),
                         "param_norm/")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_legend().get_texts()[0].get_text() == "total"
    assert F.metric_group(frame(**{"x/y": curve()}), "param_norm/") is None


def test_figures_from_real_run(tiny_run):
    _, run = tiny_run
    m = run.metrics(wide=True)
    assert isinstance(F.loss_accuracy(m), Figure)
    assert len(F.kp_panel(m).axes) == 4
    assert F.sharpness_panel(m) is None and F.frequency_heatmap(m) is None
