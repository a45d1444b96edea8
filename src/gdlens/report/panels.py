"""One probe's report section as one figure, drawn from its plans (:mod:`gdlens.report.plans`).

:func:`draw_section` draws all the plans of a section in one figure, up to three panels a row,
with one legend for the whole figure below the panels (one label, one colour: ``grad_norm/head``
and ``ntk_share/head`` are both "head"):

- ``lines``: each key against step (symlog step axis, step 0 kept), its ±1 s.e. band when it has
  one, the dimension line of its ``bound``;
- ``spectrum``: the keys' values at the first, middle and last recorded step against their index;
- ``matrix``: the latest value of an array key as an image with a colour bar (colour limits from
  ``ylim``; symmetric around 0 for signed data); a vector against its index.

Y axes (:func:`set_yaxis`): ``yscale="auto"`` is log when no value is negative and the positive
ones span more than :data:`AUTO_LOG_DECADES` decades (symlog, starting at 0, when some are 0); a
log axis asked for data that is not positive becomes ``symlog``; a log axis inside one decade
gets evenly spaced plain ticks. A linear axis never zooms into less than ±:data:`MIN_HALF_SPAN` of
the data's |centre| (so 0.18–0.20 stays a wiggle; a non-negative quantity's axis then stops at
0), and a declared ``ylim`` end is kept. A curve with no finite value keeps its legend entry,
marked "no finite values". Every axis is labelled (long labels wrapped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gdlens.report.plans import (  # re-exported: planning and drawing are used together
    MAX_LINES,
    Plan,
    constant_leftovers,
    match_keys,
    natural_key,
    plan_section,
    section_title,
    unmatched_keys,
)

__all__ = [
    "Plan",
    "AUTO_LOG_DECADES",
    "MIN_HALF_SPAN",
    "MAX_LINES",
    "NO_FINITE",
    "natural_key",
    "match_keys",
    "section_title",
    "plan_section",
    "constant_leftovers",
    "unmatched_keys",
    "choose_yscale",
    "set_yaxis",
    "shared_legend",
    "fit_limits",
    "wrap",
    "draw_section",
    "probe_figure",
]

AUTO_LOG_DECADES = 2.0
MIN_HALF_SPAN = 0.25
NO_FINITE = "no finite values"


def choose_yscale(yscale: str, values: np.ndarray) -> str:
    """The y scale to use for ``values`` (finite values only). ``"auto"``: when no value is
    negative and the positive ones span more than ``AUTO_LOG_DECADES`` decades (max/min >
    10**AUTO_LOG_DECADES), ``"log"``, or ``"symlog"`` if some are 0 (a zero-initialised bias);
    otherwise ``"linear"``. ``"log"`` with a value ≤ 0 is ``"symlog"``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    if yscale == "auto":
        if v.size and not np.any(v < 0) and pos.size and pos.max() > 10 ** AUTO_LOG_DECADES * pos.min():
            return "log" if pos.size == v.size else "symlog"
        return "linear"
    if yscale == "log" and not (v.size and pos.size == v.size):
        return "symlog"
    return yscale


def fit_limits(ax, scale: str, values: np.ndarray, ylim) -> None:
    """Apply the declared ``ylim`` ends and, on a linear axis, the minimum span ±MIN_HALF_SPAN
    ·|centre| (stopping at 0 for data that is non-negative)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo_set, hi_set = (ylim if ylim is not None else (None, None))
    if scale == "linear" and v.size:
        lo, hi = float(v.min()), float(v.max())
        centre = (lo + hi) / 2
        half = MIN_HALF_SPAN * abs(centre)
        if (hi - lo) / 2 < half:
            new_lo, new_hi = centre - half, centre + half
            if lo >= 0 > new_lo:
                new_lo = 0.0
            ax.set_ylim(new_lo, new_hi)
    if lo_set is not None or hi_set is not None:
        cur_lo, cur_hi = ax.get_ylim()
        lo = cur_lo if lo_set is None else float(lo_set)
        hi = cur_hi if hi_set is None else float(hi_set)
        pad = 0.02 * (hi - lo) if scale == "linear" else 0.0
        ax.set_ylim(lo - (pad if lo_set is not None else 0.0), hi + (pad if hi_set is not None else 0.0))
    if scale == "log" and v.size and v.max() < 2 * v.min():  # a flat curve on a log axis: a factor 2 around it
        g = math.sqrt(v.min() * v.max())
        ax.set_ylim(g / math.sqrt(2), g * math.sqrt(2))
    if scale == "symlog" and v.size and v.min() >= 0 and lo_set is None:
        # no empty negative half for a quantity that is never negative; the top a factor 1.3 above the data
        ax.set_ylim(0.0, float(v.max()) * 1.3 if hi_set is None else ax.get_ylim()[1])
    if scale == "log" and v.size and v.max() < 10 * v.min():
        from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

        # within a decade a log axis has one labelled tick or none: evenly spaced ticks, plain numbers
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))


class _Colors:
    """One colour per curve name for a whole figure (its legend is shared by the panels)."""

    def __init__(self) -> None:
        self.colors: dict[str, Any] = {}

    def __call__(self, key: str):
        if key not in self.colors:
            i = len(self.colors)
            self.colors[key] = f"C{i}" if i < 10 else _tab20(i - 10)
        return self.colors[key]


def _tab20(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def _finite(metrics, col: str) -> tuple[np.ndarray, np.ndarray]:
    if col not in getattr(metrics, "columns", ()):
        return np.array([]), np.array([])
    s = metrics[col]
    steps = np.asarray(s.index, dtype=float)
    values = s.to_numpy(dtype=float)
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def _draw_bound(ax, bound) -> np.ndarray:
    label, steps, values = bound
    text = f"{label} (largest possible)"
    if steps.size == 0 or np.ptp(values) == 0:
        ax.axhline(float(values[-1]), color="0.35", ls=":", lw=1.5, label=f"{text} = {values[-1]:.4g}")
    else:
        ax.plot(steps, values, color="0.35", ls=":", lw=1.5, drawstyle="steps-post", label=text)
    return values


def _draw_lines(ax, plan: Plan, metrics, color: _Colors) -> np.ndarray:
    from gdlens.report.figures import _step_axis

    seen: list[np.ndarray] = []
    for col in plan.columns:
        s, v = _finite(metrics, col)
        label = plan.labels.get(col, col)
        if not v.size:
            ax.plot([], [], color=color(label), label=f"{label}: {NO_FINITE}")
            continue
        ax.plot(s, v, color=color(label), lw=1.5, marker="o" if len(s) < 30 else None, ms=3, label=label)
        seen.append(v)
        if col in plan.bands:
            se = metrics[plan.bands[col]].reindex(s).to_numpy(dtype=float)
            ok = np.isfinite(se)
            if ok.any():
                ax.fill_between(s[ok], (v - se)[ok], (v + se)[ok], color=color(label), alpha=0.25, lw=0)
                seen += [(v - se)[ok], (v + se)[ok]]
    if plan.bound is not None:
        seen.append(_draw_bound(ax, plan.bound))
    _step_axis(ax)
    if not seen:  # nothing to draw: say so, over the run's steps
        ax.text(0.5, 0.5, NO_FINITE, transform=ax.transAxes, ha="center", va="center", color="0.4")
        steps = np.asarray(getattr(metrics, "index", [0]), dtype=float)
        ax.set_xlim(0, max(float(steps.max()) if steps.size else 1.0, 1.0))
    return np.concatenate(seen) if seen else np.array([])


def _draw_spectrum(ax, plan: Plan, metrics, color: _Colors) -> np.ndarray:
    cols = [c for c in plan.columns if c in metrics.columns]
    table = metrics[cols].dropna(how="all") if cols else None
    if table is None or table.empty:
        ax.plot([], [], color="0.5", label=f"{plan.title}: {NO_FINITE}")
        ax.set_xlabel("index i")
        return np.array([])
    rows = sorted({0, len(table) // 2, len(table) - 1})
    idx = np.arange(1, len(cols) + 1)
    seen = []
    for r in rows:
        step = table.index[r]
        values = table.iloc[r].to_numpy(dtype=float)
        ax.plot(idx, values, marker="o", ms=3, color=color(f"step {step}"), label=f"step {step}")
        seen.append(values)
    if plan.bound is not None:
        seen.append(_draw_bound(ax, plan.bound))
    short = [c.split("/", 1)[1] for c in cols]
    ax.set_xlabel(f"i: {short[0]} … {short[-1]}" if len(short) > 1 else f"i: {short[0]}")
    if len(cols) <= 12:
        ax.set_xticks(idx)
    return np.concatenate(seen)


def wrap(text: str, width: int = 40) -> str:
    """``text`` broken into lines of at most ``width`` characters (axis labels of declared
    definitions are long)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _draw_matrix(fig, ax, plan: Plan, arrays: Mapping[str, Any]) -> None:
    name = plan.columns[0]
    steps, values = arrays[name]
    M = np.asarray(values[-1], dtype=float)
    if M.ndim == 1:  # a vector: its entries against their index
        ax.plot(np.arange(M.size), M, marker="o" if M.size <= 64 else None, ms=3, color="0.2")
        ax.set_title(f"{plan.title}, step {steps[-1]}", fontsize=9)
        ax.set_xlabel("index i")
        ax.set_ylabel(wrap(plan.ylabel), fontsize=8)
        if plan.ylim is not None:
            fit_limits(ax, "linear", M, plan.ylim)
        return
    if M.ndim > 2:
        M = M.reshape(M.shape[0], -1)
    finite = M[np.isfinite(M)]
    lo, hi = (plan.ylim if plan.ylim is not None else (None, None))
    if lo is None and hi is None and finite.size and finite.min() < 0 < finite.max():
        m = float(np.abs(finite).max())
        lo, hi = -m, m
    cmap = "RdBu_r" if (lo is not None and hi is not None and lo < 0 < hi) else "viridis"
    im = ax.imshow(M, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax).set_label(wrap(plan.ylabel), fontsize=8)
    ax.set_title(f"{plan.title}, step {steps[-1]}", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("column j")
    ax.set_ylabel("row i")


def draw_section(plans: Sequence[Plan], metrics, arrays: Mapping[str, Any], clocks: Mapping[str, float] | None = None,
                 max_cols: int = 3):
    """All ``plans`` in one :class:`~matplotlib.figure.Figure` (None when there are none), with
    one legend for the figure; ``clocks`` ({label: step}) are marked on the step axes."""
    from gdlens.report.figures import _mark_clocks, _panel_grid

    if not plans:
        return None
    fig, axes = _panel_grid(len(plans), max_cols, (4.4, 3.3))
    color = _Colors()
    for ax, plan in zip(axes, plans):
        if plan.kind == "matrix":
            _draw_matrix(fig, ax, plan, arrays)
            continue
        values = (_draw_spectrum if plan.kind == "spectrum" else _draw_lines)(ax, plan, metrics, color)
        set_yaxis(ax, plan.yscale, values, plan.ylim)
        if plan.kind == "lines" and clocks:
            _mark_clocks(ax, clocks, label=True)
        ax.set_ylabel(wrap(plan.ylabel), fontsize=8)
        ax.set_title(wrap(plan.title, 60), fontsize=9)
    shared_legend(fig)
    return fig


def probe_figure(source, name: str, decl: Mapping[str, Any] | None = None,
                 arrays: Mapping[str, Any] | None = None):
    """The figure of probe ``name``'s section, for a notebook: ``source`` is a
    :class:`~gdlens.store.store.Run` (its metrics, arrays and declarations are read from the
    store) or a wide metrics frame (``TrainResult.metrics()``; then ``decl`` is the probe's
    declaration, e.g. ``gdlens.probes.spec.describe(probe)``, or None for the generic panels,
    and ``arrays`` its arrays by name). None when the probe recorded nothing."""
    if hasattr(source, "summary") and hasattr(source, "arrays"):
        decls = source.summary.get("probes") or {}
        decl = decl if decl is not None else decls.get(name)
        arrays = source.arrays() if arrays is None else arrays
        source = source.metrics(wide=True)
    arrays = arrays or {}
    return draw_section(plan_section(name, decl, source, arrays), source, arrays)


def set_yaxis(ax, yscale: str, values: np.ndarray, ylim=None) -> str:
    """Give ``ax`` the y scale :func:`choose_yscale` picks for the drawn ``values`` (symlog's
    linear range: the smallest non-zero |value|) and its limits (declared ``ylim`` ends, the
    minimum span); returns the scale."""
    scale = choose_yscale(yscale, values)
    if scale == "symlog":
        v = np.abs(values[np.isfinite(values) & (values != 0)])
        ax.set_yscale("symlog", linthresh=float(v.min()) if v.size else 1.0)
    else:
        ax.set_yscale(scale)
    fit_limits(ax, scale, values, ylim)
    return scale


def shared_legend(fig, title: str | None = None) -> None:
    """One legend for the whole figure, below its panels: every labelled artist of every panel,
    each label once (``title``: the legend's title)."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=7, frameon=False,
                   ncol=_legend_columns(list(handles), fig.get_figwidth()), title=title, title_fontsize=7)


def _legend_columns(labels: Sequence[str], width: float) -> int:
    """Columns of a figure legend that fit ``width`` inches (an entry at fontsize 7 is about
    0.055 in a character plus 0.5 in for its handle)."""
    entry = max(len(lab) for lab in labels) * 0.055 + 0.5
    return max(1, min(len(labels), int(width // entry)))
