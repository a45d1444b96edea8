"""One probe's figure, drawn from what the probe declared about its keys.

The :class:`~gdlens.train.Recorder` writes each probe's declaration (its ``title``,
``metric_specs`` and ``panels``: :mod:`gdlens.probes.spec`, as plain JSON) into the run summary
under ``"probes"``; this module reads that JSON only (it never imports the probes), so the report
of an old run, or of a run whose probes are not installed, still renders.

Planning (:func:`plan_section`, no plotting): each declared :class:`Panel` becomes a
:class:`Plan` whose keys are the declared keys resolved against the recorded names
``"<probe>/<key>"`` (``fnmatch`` patterns, several matches in natural order: ``eig_G_2`` before
``eig_G_10``). A key's standard error (``Metric.stderr``) becomes a ±1 s.e. band and is not drawn
as a curve of its own; a panel's ``bound`` is drawn as a dimension line. Recorded keys that no
panel names go to one generic panel ("other recorded keys") of the same section. A probe that
declares no panels gets the generic fallback: one panel per first path segment of its keys
(``grad_norm/*``, ``ntk_trace/*``), keys without one together, keys ending ``_se`` as the band of
the key they extend. Arrays (2-D) recorded by a probe and named by no panel are drawn as a matrix.

Drawing (:func:`draw_section`): all the plans of a section in one figure, up to three panels a
row, with one legend for the whole figure (a key drawn in two panels keeps its colour):

- ``lines``: each key against step (symlog step axis, step 0 kept), its band when it has one;
- ``spectrum``: the keys' values at the first, middle and last recorded step against their index;
- ``matrix``: the latest value of an array key as an image with a colour bar.

Y axes: ``yscale="auto"`` is log when every finite value is positive and they span more than
:data:`AUTO_LOG_DECADES` decades; a log axis asked for data that is not positive becomes
``symlog``. A linear axis never zooms into less than ±:data:`MIN_HALF_SPAN` of the data's
|centre| (so 0.18–0.20 stays a wiggle; a non-negative quantity's axis then stops at 0), and a
declared ``ylim`` end is kept as declared. A curve with no finite value keeps its legend entry,
marked "no finite values".
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Plan",
    "AUTO_LOG_DECADES",
    "MIN_HALF_SPAN",
    "MAX_LINES",
    "natural_key",
    "match_keys",
    "section_title",
    "plan_section",
    "unmatched_keys",
    "choose_yscale",
    "set_yaxis",
    "shared_legend",
    "draw_section",
    "probe_figure",
]

AUTO_LOG_DECADES = 2.0
MIN_HALF_SPAN = 0.25
MAX_LINES = 12
NO_FINITE = "no finite values"


@dataclass
class Plan:
    """One panel to draw; names are full store names (``"kp/rank_K"``).

    Attributes:
        title, kind, ylabel, yscale, ylim: as the declared :class:`~gdlens.probes.spec.Panel`.
        columns: the scalar columns (``lines``, ``spectrum``) or array names (``matrix``) drawn.
        labels: legend label of each column.
        bands: column -> the column holding its standard error.
        bound: ``(label, steps, values)`` of the dimension line, or None.
        declared: True for a panel the probe declared, False for a generic one.
    """

    title: str
    kind: str
    columns: list[str]
    ylabel: str
    yscale: str = "auto"
    ylim: tuple[float | None, float | None] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    bands: dict[str, str] = field(default_factory=dict)
    bound: tuple[str, np.ndarray, np.ndarray] | None = None
    declared: bool = True


def natural_key(text: str) -> list:
    """Sort key that orders the digits in ``text`` as numbers (``eig_2`` < ``eig_10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def match_keys(patterns: Sequence[str], keys: Sequence[str]) -> list[str]:
    """The ``keys`` matched by ``patterns`` (``fnmatch``, case-sensitive), in the order of the
    patterns, several matches of one pattern in natural order, each key once."""
    out: list[str] = []
    for pattern in patterns:
        hits = [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
        out += [k for k in sorted(hits, key=natural_key) if k not in out]
    return out


def _stderr_of(metric: Mapping[str, Any], key: str) -> str | None:
    """The s.e. key of ``key`` under ``metric`` (a ``*`` in its ``stderr`` takes the text the
    single ``*`` of a pattern ``key`` matched)."""
    se = metric.get("stderr")
    if not se:
        return None
    pattern = metric["key"]
    if "*" in se and pattern.count("*") == 1:
        head, tail = pattern.split("*")
        if key.startswith(head) and key.endswith(tail):
            return se.replace("*", key[len(head): len(key) - len(tail)])
    return se


def _metric_for(metrics: Sequence[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The declared metric of ``key``: an exact key first, else the first pattern matching it."""
    for m in metrics:
        if m.get("key") == key:
            return m
    for m in metrics:
        if fnmatch.fnmatchcase(key, m.get("key", "")):
            return m
    return None


def _label(metric: Mapping[str, Any] | None, key: str) -> str:
    """A curve's legend label: the metric's label for an exact key, else the key (a pattern's
    label would name every match alike)."""
    if metric is not None and metric.get("key") == key and metric.get("label"):
        return str(metric["label"])
    return key


def _bound(name: str, bound: str | None, metrics, settings: Mapping[str, Any],
           specs: Sequence[Mapping[str, Any]]) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The dimension line of key ``bound``: its recorded (steps, values), else a number from the
    probe's settings drawn flat; None when neither exists."""
    if not bound:
        return None
    label = _label(_metric_for(specs, bound), bound)
    col = f"{name}/{bound}"
    if col in getattr(metrics, "columns", ()):
        s = metrics[col]
        keep = np.isfinite(s.to_numpy(dtype=float))
        if keep.any():
            return label, np.asarray(s.index, dtype=float)[keep], s.to_numpy(dtype=float)[keep]
    value = settings.get(bound)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return label, np.array([]), np.array([float(value)])
    return None


_SPLITS = frozenset({"train", "test", "eval", "val", "valid", "validation"})


def _fallback_plans(name: str, keys: Sequence[str], title: str) -> list[Plan]:
    """Generic panels for keys no panel names: grouped by their first path segment
    (``grad_norm/*``), or by their last when the first ones are data splits (``train/loss`` and
    ``test/loss`` in one panel); keys of a one-key group together; at most :data:`MAX_LINES`
    curves a panel; ``<key>_se`` is the band of ``<key>``; a group named ``accuracy`` gets
    ``ylim=(0, 1)``."""
    bands: dict[str, str] = {}
    present = set(keys)
    drawn = []
    for key in sorted(keys, key=natural_key):
        if key.endswith("_se") and key[:-3] in present:
            bands[f"{name}/{key[:-3]}"] = f"{name}/{key}"
        else:
            drawn.append(key)
    heads = {k.split("/", 1)[0] for k in drawn if "/" in k}
    by_leaf = bool(heads) and heads <= _SPLITS
    groups: dict[str, list[tuple[str, str]]] = {}  # group -> (key, its label)
    for key in drawn:
        if "/" not in key:
            groups.setdefault("", []).append((key, key))
        elif by_leaf:
            head, leaf = key.rsplit("/", 1)
            groups.setdefault(leaf, []).append((key, head))
        else:
            head, rest = key.split("/", 1)
            groups.setdefault(head, []).append((key, rest))
    for group in [g for g, ks in groups.items() if g and len(ks) == 1]:
        groups.setdefault("", []).extend((k, k) for k, _ in groups.pop(group))
    if "" in groups:
        groups[""].sort(key=lambda kv: natural_key(kv[0]))
    plans = []
    for group, members in sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0])):
        for i in range(0, len(members), MAX_LINES):
            part = members[i:i + MAX_LINES]
            cols = [f"{name}/{k}" for k, _ in part]
            where = f"{name}: {group}" if group else name
            plans.append(Plan(
                title=f"{title}: {group}" if group else title, kind="lines", columns=cols,
                ylabel=f"{where} (as recorded)", ylim=(0.0, 1.0) if group.endswith("accuracy") else None,
                labels={c: lab for c, (_, lab) in zip(cols, part)},
                bands={c: bands[c] for c in cols if c in bands}, declared=False))
    return plans


def section_title(name: str, decl: Mapping[str, Any] | None) -> str:
    """A probe section's title: the probe's declared title; for a probe that declared nothing
    (its title is then its class name), its name in words and its class."""
    decl = decl or {}
    title, kind = decl.get("title"), decl.get("type")
    if title and (title != kind or decl.get("panels")):
        return str(title)
    words = name.replace("_", " ").capitalize()
    return f"{words} ({kind})" if kind else words


def plan_section(name: str, decl: Mapping[str, Any] | None, metrics, arrays: Mapping[str, Any]) -> list[Plan]:
    """The panels of probe ``name``'s section (see the module docstring). ``decl`` is the
    probe's entry of the summary's ``"probes"`` (None for a run recorded without one),
    ``metrics`` the run's wide metrics frame, ``arrays`` its arrays by name."""
    decl = decl or {}
    prefix = f"{name}/"
    scalars = [c[len(prefix):] for c in getattr(metrics, "columns", ()) if str(c).startswith(prefix)]
    arrs = [a[len(prefix):] for a in arrays if a.startswith(prefix)]
    specs = list(decl.get("metrics") or ())
    settings = decl.get("settings") or {}
    title = section_title(name, decl)
    plans: list[Plan] = []
    used: set[str] = set()
    for p in decl.get("panels") or ():
        kind = p.get("kind", "lines")
        keys = match_keys(p["keys"], arrs if kind == "matrix" else scalars)
        if not keys:
            continue
        labels, bands = {}, {}
        for key in keys:
            metric = _metric_for(specs, key)
            labels[prefix + key] = _label(metric, key)
            se = _stderr_of(metric, key) if metric else None
            if se and se in scalars and kind != "matrix":
                bands[prefix + key] = prefix + se
            if se and (se in scalars or se in arrs):
                used.add(se)
        used.update(keys)
        if p.get("bound"):
            used.add(p["bound"])
        ylim = tuple(p["ylim"]) if p.get("ylim") is not None else None
        plans.append(Plan(p.get("title") or title, kind, [prefix + k for k in keys], p.get("ylabel") or title,
                          p.get("yscale", "auto"), ylim, labels, bands,
                          _bound(name, p.get("bound"), metrics, settings, specs)))
    for m in specs:  # a declared s.e. is never a curve of its own, even when no panel draws its key
        for key in match_keys([m["key"]], scalars):
            se = _stderr_of(m, key)
            if se in scalars and key in used:
                used.add(se)
    rest = [k for k in scalars if k not in used]
    if rest:
        plans += _fallback_plans(name, rest, "other recorded keys" if plans else title)
    for key in arrs:
        if key not in used:
            plans.append(Plan(f"{key} (latest)", "matrix", [prefix + key], f"{prefix}{key} (as recorded)",
                              declared=False))
    _unique_labels(plans)
    return plans


def _unique_labels(plans: Sequence[Plan]) -> None:
    """Two curves of one panel never share a legend label (the key is appended). Curves of
    different panels may: one label is one colour and one legend entry for the whole figure
    (``grad_norm/head`` and ``ntk_share/head`` are both "head")."""
    for plan in plans:
        counts: dict[str, int] = {}
        for label in plan.labels.values():
            counts[label] = counts.get(label, 0) + 1
        for col, label in plan.labels.items():
            if counts[label] > 1:
                plan.labels[col] = f"{label} ({col.split('/', 1)[1]})"


def unmatched_keys(decl: Mapping[str, Any], scalars: Sequence[str], arrays: Sequence[str] = ()) -> list[str]:
    """The keys (or patterns) that a declared panel names, and its ``bound`` keys, matching
    nothing recorded: ``scalars`` and ``arrays`` are the probe's recorded keys without its
    prefix. Empty when the declaration and the records agree."""
    settings = decl.get("settings") or {}
    missing = []
    for p in decl.get("panels") or ():
        pool = list(arrays) if p.get("kind") == "matrix" else list(scalars)
        missing += [k for k in p["keys"] if not match_keys([k], pool)]
        bound = p.get("bound")
        if bound and bound not in scalars and bound not in settings:
            missing.append(bound)
    return missing


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


def _limits(ax, scale: str, values: np.ndarray, ylim) -> None:
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
        ax.set_ylim(bottom=0.0)  # no empty negative half for a quantity that is never negative
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
            _limits(ax, "linear", M, plan.ylim)
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
    _limits(ax, scale, values, ylim)
    return scale


def shared_legend(fig) -> None:
    """One legend for the whole figure, below its panels: every labelled artist of every panel,
    each label once."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=7, frameon=False,
                   ncol=_legend_columns(list(handles), fig.get_figwidth()))


def _legend_columns(labels: Sequence[str], width: float) -> int:
    """Columns of a figure legend that fit ``width`` inches (an entry at fontsize 7 is about
    0.055 in a character plus 0.5 in for its handle)."""
    entry = max(len(lab) for lab in labels) * 0.055 + 0.5
    return max(1, min(len(labels), int(width // entry)))
