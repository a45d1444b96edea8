"""Figures of recorded training dynamics, one matplotlib :class:`~matplotlib.figure.Figure` each.

Every function takes plain data (a wide metrics DataFrame indexed by step, as
``Run.metrics(wide=True)`` returns, or numpy arrays), never the store, and returns a Figure
usable in a notebook, or ``None`` when the data it needs is absent (optional columns that are
missing are skipped). Figures are built with :class:`matplotlib.figure.Figure` directly, not
through ``pyplot``: nothing is registered with a GUI backend, nothing is shown, and a figure
that is dropped is garbage-collected.

Step axes: training steps span decades, so curves use a log-like step axis. Step 0 (the
initial state) is kept on the axis with a *symlog* scale that is linear on ``[0, 1]`` and
logarithmic beyond (``linthresh=1``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "loss_accuracy",
    "kp_panel",
    "sharpness_panel",
    "frequency_heatmap",
    "condensation_matrix",
    "orientation_scatter",
    "cka_matrix",
    "phase_diagram",
    "sweep_curve",
    "compare_runs",
    "metric_group",
    "spectral_order",
]

def _columns(metrics, pattern: str) -> list[str]:
    if metrics is None or len(getattr(metrics, "columns", ())) == 0:
        return []
    rx = re.compile(pattern)
    return [c for c in metrics.columns if rx.fullmatch(str(c))]


def _series(metrics, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite (step, value) points of one column."""
    s = metrics[column]
    steps = np.asarray(s.index, dtype=float)
    values = np.asarray(s.to_numpy(), dtype=float)
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def _panel_grid(n: int, max_cols: int, size: tuple[float, float]) -> tuple[Figure, list]:
    """A figure with n panels in rows of at most ``max_cols`` (each ``size`` inches); the
    unused cells of the last row are removed."""
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _step_axis(ax) -> None:
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("step")


def _mark_clocks(ax, clocks: Mapping[str, float] | None, label: bool) -> None:
    for i, (name, step) in enumerate((clocks or {}).items()):
        if step is None or not math.isfinite(float(step)):
            continue
        ax.axvline(float(step), color=f"C{(i + 5) % 10}", ls="--", lw=1, label=f"clock {name}" if label else None)


def loss_accuracy(metrics, clocks: Mapping[str, float] | None = None) -> Figure | None:
    """Loss and, when recorded, accuracy against step (symlog x, step 0 kept).

    Loss columns are those ending in ``/loss`` (``metrics/train/loss``, ``metrics/test/loss``,
    ``train_step/loss``: the loss of every step's batch, drawn thin); the loss axis is log when
    the values allow it (symlog with zeros). Accuracy columns end in ``/accuracy`` and are drawn
    on [0, 1]. ``clocks`` maps a label to a step (e.g. a grokking or phase-transition step)
    marked by a dashed vertical line on every panel. One legend for the figure; a column without
    a finite value keeps its entry ("no finite values"). ``None`` when no loss or accuracy
    column exists."""
    from gdlens.report.panels import NO_FINITE, set_yaxis, shared_legend

    loss = _columns(metrics, r".*/loss")
    acc = _columns(metrics, r".*/accuracy")
    if not loss and not acc:
        return None
    panels = [p for p in ((loss, "loss"), (acc, "accuracy")) if p[0]]
    fig = Figure(figsize=(5.0 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (cols, what) in zip(axes, panels):
        drawn = []
        for col in cols:
            steps, values = _series(metrics, col)
            every = col.startswith("train_step/")
            label = "training loss of each step's batch" if col == "train_step/loss" else col
            if not len(steps):
                ax.plot([], [], label=f"{label}: {NO_FINITE}")
                continue
            ax.plot(steps, values, lw=1.0 if every else 1.6, alpha=0.5 if every else 1.0, label=label)
            drawn.append(values)
        _step_axis(ax)
        values = np.concatenate(drawn) if drawn else np.array([])
        if what == "loss":
            set_yaxis(ax, "log", values)
            ax.set_ylabel("loss (the task's objective)")
        else:
            set_yaxis(ax, "linear", values, (0.0, 1.0))
            ax.set_ylabel("accuracy (fraction correct)")
        _mark_clocks(ax, clocks, label=ax is axes[0])
        ax.set_title(what)
    shared_legend(fig)
    return fig


def _deprecated(old: str, name: str) -> None:
    warnings.warn(f"gdlens.report.figures.{old} is deprecated: the probes declare their panels; use "
                  f"gdlens.report.panels.probe_figure(run, {name!r}) (a Run, or a metrics frame with the "
                  "probe's declaration)", DeprecationWarning, stacklevel=3)


def _prefix_figure(metrics, name: str) -> Figure | None:
    from gdlens.report.panels import probe_figure

    if not any(str(c).startswith(name + "/") for c in getattr(metrics, "columns", ())):
        return None
    return probe_figure(metrics, name)


def kp_panel(metrics, steps: Sequence[int] | None = None) -> Figure | None:
    """Deprecated: the ``kp/`` columns drawn by the generic panels of
    :func:`gdlens.report.panels.probe_figure` (which draws the KP probe's declared panels when
    given a Run or the declaration). ``steps`` is ignored. ``None`` without ``kp/`` columns."""
    _deprecated("kp_panel", "kp")
    return _prefix_figure(metrics, "kp")


def sharpness_panel(metrics, lr: float | None = None, threshold: float | None = None) -> Figure | None:
    """Deprecated: the ``sharpness/`` columns (its recorded thresholds among them) drawn by
    :func:`gdlens.report.panels.probe_figure`; ``lr`` and ``threshold`` are ignored. ``None``
    without sharpness columns."""
    _deprecated("sharpness_panel", "sharpness")
    return _prefix_figure(metrics, "sharpness")


def frequency_heatmap(metrics) -> Figure | None:
    """Frequency principle: relative error per frequency (``frequency/err_k<idx>``) over steps
    as a heat map (log colour scale when all errors are positive); frequencies sorted by
    index, recorded steps evenly spaced on the x axis. ``None`` without such columns."""
    cols = _columns(metrics, r"frequency/err_k(\d+)")
    if not cols:
        return None
    cols.sort(key=lambda c: int(re.search(r"(\d+)$", c).group(1)))
    table = metrics[cols].dropna(how="all")
    if table.empty:
        return None
    data = table.to_numpy(dtype=float).T
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    norm = None
    finite = data[np.isfinite(data)]
    if finite.size and np.all(finite > 0):
        from matplotlib.colors import LogNorm

        norm = LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.0001))
    im = ax.imshow(data, aspect="auto", origin="lower", cmap="viridis", norm=norm, interpolation="nearest")
    ks = [re.search(r"(\d+)$", c).group(1) for c in cols]
    ax.set_yticks(range(len(cols)), ks)
    ticks = np.unique(np.linspace(0, len(table) - 1, min(len(table), 8)).round().astype(int))
    ax.set_xticks(ticks, [str(table.index[t]) for t in ticks])
    ax.set_xlabel("step")
    ax.set_ylabel("frequency index k")
    ax.set_title("relative error per frequency")
    fig.colorbar(im, ax=ax, label="relative error")
    return fig


def spectral_order(similarity: np.ndarray) -> np.ndarray:
    """Order of neurons by orientation estimated from a cosine-similarity matrix alone: the
    angle ``atan2(v2, v1)`` of each neuron in the plane of the matrix's top two eigenvectors
    (for neurons on a circle of input directions this recovers their angular order)."""
    S = np.nan_to_num(np.asarray(similarity, dtype=float))
    if S.shape[0] < 2:
        return np.arange(S.shape[0])
    vals, vecs = np.linalg.eigh((S + S.T) / 2)
    top = vecs[:, np.argsort(vals)[::-1][:2]]
    return np.argsort(np.arctan2(top[:, 1], top[:, 0]), kind="stable")


def condensation_matrix(similarity, angles=None, title: str = "cosine similarity of neurons") -> Figure | None:
    """Cosine-similarity matrix of neurons (``(m, m)``, values in [-1, 1]) with neurons
    ordered by orientation: by ``angles`` (one per neuron, e.g. input-weight angles) when
    given, else by :func:`spectral_order`. Condensed neurons show as constant blocks."""
    if similarity is None:
        return None
    S = np.asarray(similarity, dtype=float)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise ValueError(f"similarity must be a square (m, m) matrix, got shape {S.shape}")
    order = np.argsort(np.asarray(angles, dtype=float), kind="stable") if angles is not None else spectral_order(S)
    fig = Figure(figsize=(5.0, 4.2), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(S[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel("neuron (ordered by orientation)")
    ax.set_ylabel("neuron (ordered by orientation)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="cosine similarity")
    return fig


def orientation_scatter(snapshots: Mapping[int, tuple[Any, Any]]) -> Figure | None:
    """Orientation/amplitude scatter at chosen steps: ``snapshots`` maps a step to
    ``(orientation, amplitude)`` arrays (one entry per neuron; orientation in radians). One
    panel per step, sharing axes. ``None`` when empty."""
    if not snapshots:
        return None
    n = len(snapshots)
    fig = Figure(figsize=(min(3.6 * n, 14), 3.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False, sharex=True, sharey=True)[0]
    for ax, (step, (theta, amp)) in zip(axes, snapshots.items()):
        ax.scatter(np.asarray(theta, dtype=float), np.asarray(amp, dtype=float), s=8)
        ax.set_title(f"step {step}")
        ax.set_xlabel("orientation (rad)")
    axes[0].set_ylabel("amplitude")
    return fig


def cka_matrix(matrix, labels: Sequence[str] | None = None, title: str = "CKA") -> Figure | None:
    """A CKA (or any similarity in [0, 1]) matrix between layers or checkpoints, annotated
    with its values when small enough to read."""
    if matrix is None:
        return None
    M = np.asarray(matrix, dtype=float)
    if M.ndim != 2 or M.size == 0:
        raise ValueError(f"matrix must be 2-D and non-empty, got shape {M.shape}")
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(M, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(M.shape[1]))
    ax.set_yticks(range(M.shape[0]))
    if labels is not None:
        labels = [str(lab) for lab in labels]
        if len(labels) == M.shape[0]:
            ax.set_yticks(range(M.shape[0]), labels)
        if len(labels) == M.shape[1]:
            ax.set_xticks(range(M.shape[1]), labels, rotation=45, ha="right")
    if M.shape[0] * M.shape[1] <= 100:
        for (i, j), v in np.ndenumerate(M):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="CKA")
    return fig


def _tick(value: Any) -> str:
    """A swept value as a tick label: numbers with 3 significant digits, a zipped tuple as
    its values joined by ", "."""
    if isinstance(value, tuple):
        return ", ".join(_tick(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _sorted(values) -> list:
    """Distinct values in their natural order (by their text where types do not compare)."""
    distinct = list(dict.fromkeys(values))
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


def _cell_stats(values: np.ndarray) -> tuple[float, float, int]:
    """(mean, standard error of the mean, n) of the finite values; s.e. = std(ddof=1)/√n, NaN
    for a single value."""
    v = values[np.isfinite(values)]
    if not v.size:
        return float("nan"), float("nan"), 0
    se = float(np.std(v, ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), se, int(v.size)


def phase_diagram(frame, x: str, y: str, value: str, log: bool = False, facet: str | None = None) -> Figure | None:
    """Phase diagram of a sweep: a colour map of ``value`` over the swept axes ``x`` and ``y``
    (columns of ``frame``, e.g. ``Store.runs()``'s ``config.lr`` and ``summary.final_train_loss``).
    Repeated (x, y) cells (seeds) are averaged; cells without runs stay blank. Axes are
    categorical (one cell per swept value, sorted; a zipped axis' values are tuples). With
    ``facet`` (a column), one panel per facet value, sharing one colour scale: small multiples,
    so no other swept axis is averaged into a cell. Cells are annotated with the mean and, over
    several seeds, its standard error, when a panel has at most 36 cells. ``log`` colours on a
    log scale."""
    for col in (x, y, value) + ((facet,) if facet else ()):
        if col not in frame.columns:
            return None
    data = frame.copy()
    data[value] = data[value].astype(float)
    data = data.dropna(subset=[x, y])
    if data.empty:
        return None
    xs, ys = _sorted(data[x]), _sorted(data[y])
    groups = [(None, data)] if facet is None else [(f, data[data[facet] == f]) for f in _sorted(data[facet])]
    grids = []
    for label, part in groups:
        Z, S, N = (np.full((len(ys), len(xs)), np.nan) for _ in range(3))
        for (xv, yv), cell in part.groupby([x, y], sort=False)[value]:
            Z[ys.index(yv), xs.index(xv)], S[ys.index(yv), xs.index(xv)], N[ys.index(yv), xs.index(xv)] = \
                _cell_stats(cell.to_numpy(dtype=float))
        grids.append((label, Z, S, N))
    finite = np.concatenate([g[1][np.isfinite(g[1])] for g in grids])
    norm = None
    if finite.size:
        from matplotlib.colors import LogNorm, Normalize

        if log and np.all(finite > 0):
            norm = LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.0001))
        else:
            norm = Normalize(vmin=finite.min(), vmax=finite.max())
    width, height = max(4.5, 0.7 * len(xs) + 2.5), max(3.5, 0.5 * len(ys) + 2)
    if facet is None:
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = [fig.subplots()]
    else:
        fig, axes = _panel_grid(len(grids), 3, (width * 0.8, height * 0.9))
    for ax, (label, Z, S, N) in zip(axes, grids):
        im = ax.imshow(np.ma.masked_invalid(Z), origin="lower", aspect="auto", cmap="viridis", norm=norm,
                       interpolation="nearest")
        ax.set_xticks(range(len(xs)), [_tick(v) for v in xs], rotation=45, ha="right")
        ax.set_yticks(range(len(ys)), [_tick(v) for v in ys])
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(y))
        ax.set_title(_label(value) if label is None else f"{_label(facet)} = {_tick(label)}", fontsize=9)
        if Z.size <= 36:
            for (i, j), m in np.ndenumerate(Z):
                if np.isfinite(m):
                    text = f"{m:.3g}" + (f"\n±{S[i, j]:.2g}" if N[i, j] > 1 and np.isfinite(S[i, j]) else "")
                    light = norm is not None and norm(m) > 0.6  # viridis is light at its top
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="black" if light else "white")
    fig.colorbar(im, ax=axes, label=_label(value))
    if facet is not None:
        fig.suptitle(_label(value), fontsize=10)
    return fig


def _label(column: str) -> str:
    """A column name without its table prefix (``summary.final_train_loss`` -> ``final_train_loss``)."""
    return column.split(".", 1)[1] if column.startswith(("summary.", "config.")) else column


def sweep_curve(frame, x: str, values: Sequence[str], log: Sequence[bool] | bool = False,
                group: str | None = None) -> Figure | None:
    """A one-axis sweep: each column of ``values`` against the swept column ``x`` (one panel
    per value). Seeds are aggregated: every run is a point, and their mean is a line with a
    ±1 standard-error band. With ``group`` (a column: the other swept axes), each group value
    is its own line, points and band in one colour, labelled in a legend; seeds of one
    configuration always share its colour. x is on a log scale when it is positive and spans
    more than a decade, categorical when not numeric (zipped values are tuples); y on a log
    scale where ``log`` says so and the values span more than a factor 20; accuracies on [0, 1]
    and no y range narrower than ±25 % of the values' centre (:func:`~gdlens.report.panels.fit_limits`).
    ``None`` without data."""
    from gdlens.report.panels import fit_limits, shared_legend

    values = [v for v in values if v in getattr(frame, "columns", ())]
    if x not in getattr(frame, "columns", ()) or not values or (group is not None and group not in frame.columns):
        return None
    logs = [log] * len(values) if isinstance(log, bool) else list(log)
    fig = Figure(figsize=(min(3.6 * len(values), 14) + (1.5 if group else 0), 3.3), layout="constrained")
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    xs_raw = frame[x]
    numeric = xs_raw.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all()
    if numeric:
        categories, xs = None, xs_raw.astype(float).to_numpy()
    else:
        categories = _sorted(xs_raw)
        xs = np.array([categories.index(v) for v in xs_raw], dtype=float)
    labels = frame[group].tolist() if group else [None] * len(frame)
    order = _sorted(labels) if group else [None]
    for ax, value, lg in zip(axes, values, logs):
        ys = frame[value].astype(float).to_numpy()
        keep = np.isfinite(xs) & np.isfinite(ys)
        for k, g in enumerate(order):
            mine = keep & np.array([lab == g for lab in labels])
            color = f"C{k % 10}"
            ax.scatter(xs[mine], ys[mine], s=14, color=color, alpha=0.6)
            grid = np.unique(xs[mine])
            stats = np.array([_cell_stats(ys[mine][xs[mine] == p])[:2] for p in grid]).reshape(-1, 2)
            ax.plot(grid, stats[:, 0], color=color, label=None if g is None else _tick(g))
            band = np.isfinite(stats[:, 1])
            if band.any():
                ax.fill_between(grid[band], (stats[:, 0] - stats[:, 1])[band], (stats[:, 0] + stats[:, 1])[band],
                                color=color, alpha=0.2, lw=0)
        grid = np.unique(xs[keep])
        if numeric and grid.size and grid.min() > 0 and grid.max() > 10 * grid.min():
            ax.set_xscale("log")
        if categories is not None:
            ax.set_xticks(range(len(categories)), [_tick(c) for c in categories], rotation=30, ha="right")
        scale = "linear"
        if lg and np.all(ys[keep] > 0) and ys[keep].max() > 20 * ys[keep].min():
            ax.set_yscale("log")
            scale = "log"
        # accuracies on [0, 1]; no zoom that turns a flat 0.9995-1.0 into a slope
        fit_limits(ax, scale, ys[keep], (0.0, 1.0) if value.endswith("accuracy") else None)
        ax.set_xlabel(_label(x))
        ax.set_title(_label(value), fontsize=9)
        ax.set_ylabel(_label(value), fontsize=8)
    if group:
        shared_legend(fig, title=_label(group))
    return fig


def _seed_band(runs: Sequence[Any], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, s.e.) of ``column`` over ``runs`` (wide metrics frames) at each step any of
    them recorded: the mean of the finite values, s.e. = std(ddof=1)/√n (NaN where n < 2)."""
    import pandas as pd

    table = pd.concat([m[column] for m in runs], axis=1)
    stats = np.array([_cell_stats(row) for row in table.to_numpy(dtype=float)]).reshape(-1, 3)
    keep = stats[:, 2] > 0
    return np.asarray(table.index, dtype=float)[keep], stats[keep, 0], stats[keep, 1]


def compare_runs(metrics: Mapping[str, Any], columns: Sequence[str], titles: Mapping[str, str] | None = None,
                 log: Sequence[str] = (), groups: Mapping[str, str] | None = None,
                 ylabels: Mapping[str, str] | None = None) -> Figure | None:
    """Several runs side by side: one panel per column (present in at least one run) against
    step (symlog axis). ``metrics`` maps a run's label to its wide metrics frame; ``groups`` maps
    a run's label to its configuration's: the runs of one configuration (its seeds) are drawn as
    their mean with a ±1 standard-error band, one colour and one legend entry per configuration.
    Columns in ``log`` get a log y axis when positive and spanning more than two decades
    (:func:`gdlens.report.panels.choose_yscale`). ``titles`` and ``ylabels`` name each column's panel title and y axis (default: the column).
    One legend for the figure. ``None`` when no column has data."""
    from gdlens.report.panels import set_yaxis, shared_legend, wrap

    present = [c for c in columns if any(c in getattr(m, "columns", ()) and len(_series(m, c)[0])
                                         for m in metrics.values())]
    if not present:
        return None
    members: dict[str, list[Any]] = {}
    for label, m in metrics.items():
        members.setdefault((groups or {}).get(label, label), []).append(m)
    fig, axes = _panel_grid(len(present), 3, (4.2, 3.2))
    for ax, col in zip(axes, present):
        drawn = []
        for k, (name, runs) in enumerate(members.items()):
            runs = [m for m in runs if col in getattr(m, "columns", ())]
            if not runs:
                continue
            s, v, se = _seed_band(runs, col)
            text = name if len(members[name]) == 1 else f"{name} (mean ± s.e. of {len(members[name])} runs)"
            ax.plot(s, v, color=f"C{k % 10}", lw=1.2, marker="o" if len(s) < 30 else None, ms=2, label=text)
            band = np.isfinite(se)
            if band.any():
                ax.fill_between(s[band], (v - se)[band], (v + se)[band], color=f"C{k % 10}", alpha=0.2, lw=0)
            drawn += [v, (v - se)[band], (v + se)[band]]
        values = np.concatenate(drawn) if drawn else np.array([])
        set_yaxis(ax, "auto" if col in log else "linear", values)
        _step_axis(ax)
        ax.set_title(wrap((titles or {}).get(col, col), 50), fontsize=9)
        ax.set_ylabel(wrap((ylabels or {}).get(col, col)), fontsize=8)
    shared_legend(fig)
    return fig


def metric_group(metrics, prefix: str, title: str | None = None, max_lines: int = 12) -> Figure | None:
    """Deprecated: every column under ``prefix`` (e.g. ``"param_norm/"``) drawn by the generic
    panels of :func:`gdlens.report.panels.probe_figure` (``title`` and ``max_lines`` are
    ignored). ``None`` when no column has data."""
    _deprecated("metric_group", prefix.rstrip("/"))
    return _prefix_figure(metrics, prefix.rstrip("/"))
