"""One self-contained HTML report per run or sweep.

The report reads the store only. Figures are rendered with matplotlib's Agg renderer and
embedded as base64 PNG ``data:`` URIs; styles are inline; the page has no scripts and no
links, so it opens in any browser, offline, without gdlens installed. Only the sections
whose data was recorded appear.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gdlens.report import figures as F

__all__ = ["write_report", "render_run", "render_sweep", "format_value", "figure_to_data_uri"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-family:monospace}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.meta{color:#555;font-size:.9em}nav a{margin-right:.8em}
"""

# Sections, in page order: (prefix of the metric names, section title).
_KNOWN = [
    ("kp/", "KP decomposition"),
    ("sharpness/", "Sharpness"),
    ("frequency/", "Frequency principle"),
    ("condensation/", "Condensation"),
    ("cka/", "CKA"),
    ("clocks/", "Clocks"),
]
_TRAINING_PREFIXES = ("metrics/", "train_step/")


def format_value(value: Any) -> str:
    """How a configuration or summary value is written in the page (numbers with 6
    significant digits, as ``f"{v:.6g}"``)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def figure_to_data_uri(fig, dpi: int = 90) -> str:
    """A figure as a base64 PNG ``data:`` URI (rendered with Agg; no metadata)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _table(rows: Mapping[str, Any], id_: str, headers=("name", "value")) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td class='num'>{html.escape(format_value(v))}</td></tr>"
        for k, v in rows.items()
    )
    return (f"<table id='{id_}'><thead><tr><th>{headers[0]}</th><th>{headers[1]}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


class _Page:
    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []
        self.figure_ids: list[str] = []

    def section(self, title: str) -> None:
        sid = "sec-" + _slug(title)
        self.sections.append((sid, title))
        self.parts.append(f"<section id='{sid}'><h2>{html.escape(title)}</h2>")

    def end(self) -> None:
        self.parts.append("</section>")

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, fig, caption: str) -> bool:
        """Embed ``fig`` (a Figure, or None for nothing) with its caption; True when embedded."""
        if fig is None:
            return False
        fid = f"fig-{len(self.figure_ids) + 1}-{_slug(caption)[:40]}"
        self.figure_ids.append(fid)
        uri = figure_to_data_uri(fig)
        fig.clear()
        cap = html.escape(caption)
        self.parts.append(f"<figure><img id='{fid}' class='figure' alt='{cap}' src='{uri}'>"
                          f"<figcaption>{cap}</figcaption></figure>")
        return True

    def render(self, meta: str = "") -> str:
        nav = " ".join(f"<a href='#{sid}'>{html.escape(t)}</a>" for sid, t in self.sections)
        now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class='meta'>{meta} generated {now} by gdlens</p>"
            f"<nav>{nav}</nav>" + "".join(self.parts) + "</body></html>\n"
        )


_CLOCK_STEP = re.compile(r"(fit|generalization|representation)([@/].*)?")


def _clocks(metrics, summary: Mapping[str, Any]) -> dict[str, float]:
    """Clock steps to mark on step axes (the clocks probe records ``clocks/fit``,
    ``clocks/generalization``, ``clocks/representation``: the step each clock struck, NaN
    before): summary entries named ``clocks/<clock>`` and the last finite value of each such
    metric, where <clock> is fit, generalization or representation (with an ``@eps`` or
    ``/<series>`` suffix). Other ``clocks/*`` entries (eps, threshold, rep_over_fit,
    energy_drift) are not steps and stay in the summary table only."""
    out: dict[str, float] = {}
    for k, v in summary.items():
        if not (k.startswith("clocks/") and _CLOCK_STEP.fullmatch(k[len("clocks/"):])):
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k[len("clocks/"):]] = float(v)
    for col in getattr(metrics, "columns", ()):
        name = col[len("clocks/"):] if col.startswith("clocks/") else None
        if name is not None and _CLOCK_STEP.fullmatch(name) and name not in out:
            vals = metrics[col].dropna()
            if len(vals):
                out[col[len("clocks/"):]] = float(vals.iloc[-1])
    return out


def _array_group(name: str) -> str:
    """The probe group of an array name (``"<probe>/<key>"`` as the Recorder writes it, or
    ``"<probe>.<key>"`` / ``"<probe>__<key>"`` from a user's own logging): the part before the
    first ``/``, ``.`` or ``__``."""
    return re.split(r"/|\.|__", name, maxsplit=1)[0]


def _arrays_with(arrays: Mapping[str, Any], *words: str) -> list[str]:
    return [n for n in arrays if any(w in n.lower() for w in words)]


def render_run(run) -> str:
    """The HTML text of a run's report (see :func:`write_report`)."""
    config, summary = run.config, run.summary
    metrics = run.metrics(wide=True)
    arrays = run.arrays()
    page = _Page(f"gdlens run {run.id}")

    page.section("Configuration")
    page.add(_table(_flatten(config), "config-table", ("key", "value")))
    page.end()
    if summary:
        page.section("Summary")
        page.add(_table(_flatten(summary), "summary-table", ("metric", "value")))
        page.end()

    clocks = _clocks(metrics, summary)
    fig = F.loss_accuracy(metrics, clocks=clocks)
    if fig is not None:
        page.section("Loss and accuracy")
        page.figure(fig, "Loss and accuracy against step")
        page.end()

    lr = config.get("lr") if isinstance(config.get("lr"), (int, float)) else None
    used: set[str] = set()
    for prefix, title in _KNOWN:
        cols = [c for c in metrics.columns if c.startswith(prefix)]
        group = prefix.rstrip("/")
        arr_names = [n for n in arrays if _array_group(n) == group]
        if not cols and not arr_names and not (prefix == "clocks/" and clocks):
            continue
        used.update(cols)
        used.update(arr_names)
        page.section(title)
        shown = 0
        if prefix == "kp/":
            fig = F.kp_panel(metrics)
            shown += page.figure(fig, "KP decomposition: effective ranks, spectrum of G, misdirection")
        elif prefix == "sharpness/":
            fig = F.sharpness_panel(metrics, lr=lr)
            shown += page.figure(fig, "Sharpness against its stability threshold")
        elif prefix == "frequency/":
            fig = F.frequency_heatmap(metrics)
            shown += page.figure(fig, "Relative error per frequency over training")
            rest = [c for c in cols if not re.fullmatch(r"frequency/err_k\d+", c)]
            if rest:
                fig = F.metric_group(metrics[rest], prefix, "frequency probe scalars")
                shown += page.figure(fig, "Frequency probe scalars")
        elif prefix == "condensation/":
            for name in _arrays_with({n: 0 for n in arr_names}, "similar", "cosine"):
                steps, values = arrays[name]
                if values and values[-1].ndim == 2 and values[-1].shape[0] == values[-1].shape[1]:
                    fig = F.condensation_matrix(values[-1], title=f"{name} at step {steps[-1]}")
                    shown += page.figure(fig, f"{name} at step {steps[-1]}, neurons ordered by orientation")
            ori = _arrays_with({n: 0 for n in arr_names}, "orientation", "angle")
            amp = _arrays_with({n: 0 for n in arr_names}, "amplitude")
            if ori and amp:
                (so, vo), (sa, va) = arrays[ori[0]], arrays[amp[0]]
                common = [s for s in so if s in set(sa)]
                pick = sorted({common[0], common[len(common) // 2], common[-1]}) if common else []
                snaps = {int(s): (vo[list(so).index(s)], va[list(sa).index(s)]) for s in pick}
                fig = F.orientation_scatter(snaps)
                shown += page.figure(fig, "Orientation and amplitude of neurons at chosen steps")
            if cols:
                fig = F.metric_group(metrics, prefix, "condensation scalars")
                shown += page.figure(fig, "Condensation scalars over training")
        elif prefix == "cka/":
            for name in arr_names:
                steps, values = arrays[name]
                if values and values[-1].ndim == 2:
                    fig = F.cka_matrix(values[-1], title=f"{name} at step {steps[-1]}")
                    shown += page.figure(fig, f"{name} at step {steps[-1]}")
            if cols:
                fig = F.metric_group(metrics, prefix, "CKA over training")
                shown += page.figure(fig, "CKA over training")
        elif prefix == "clocks/":
            if clocks:
                page.add(_table(clocks, "clocks-table", ("clock", "step")))
            if cols:
                fig = F.metric_group(metrics, prefix, "clocks")
                shown += page.figure(fig, "Clocks over training")
        if not shown and cols:
            page.figure(F.metric_group(metrics, prefix, title), f"{title} over training")
        page.end()

    # Any other probe group recorded as scalars: one line panel each.
    others: dict[str, list[str]] = {}
    for col in metrics.columns:
        if col in used or col.startswith(_TRAINING_PREFIXES) or "/" not in col:
            continue
        others.setdefault(col.split("/", 1)[0] + "/", []).append(col)
    for prefix, cols in others.items():
        fig = F.metric_group(metrics, prefix)
        if fig is None:
            continue
        title = prefix.rstrip("/").replace("_", " ")
        page.section(title.capitalize())
        page.figure(fig, f"{title} over training")
        page.end()

    rest = {n: v for n, v in arrays.items() if n not in used}
    if rest:
        page.section("Other arrays")
        rows = {n: f"{len(s)} steps, shape {tuple(v[0].shape)}" for n, (s, v) in rest.items()}
        page.add(_table(rows, "arrays-table", ("array", "recorded")))
        for name, (steps, values) in rest.items():
            last = values[-1]
            if last.ndim == 2 and last.shape[0] == last.shape[1] and last.shape[0] <= 512:
                fig = F.cka_matrix(np.clip(last, 0, 1), title=f"{name} at step {steps[-1]}") \
                    if np.nanmin(last) >= 0 and np.nanmax(last) <= 1 else None
                page.figure(fig, f"{name} at step {steps[-1]}")
        page.end()

    meta = f"status <b>{html.escape(str(run.status))}</b>;"
    return page.render(meta)


MAX_COMPARED_RUNS = 8
_COMPARED = {
    "train_step/loss": "training loss (every step)", "metrics/test/loss": "test loss",
    "metrics/test/accuracy": "test accuracy", "kp/rank_K": "effective rank of K", "kp/rank_P": "effective rank of P",
    "kp/rank_G": "effective rank of G", "kp/misdirection": "misdirection alignment(G, PPᵀ)",
    "hidden/participation_ratio": "hidden participation ratio", "sharpness/lambda_max": "sharpness λ_max",
    "clocks/fit": "fit clock", "rel_change/total": "relative change of θ",
}


def _compare_section(page: _Page, store, frame, configs: list[str]) -> None:
    """Small sweeps: the runs' curves overlaid; the seeds of one configuration share its colour
    (``configs``: each run's configuration label)."""
    metrics, groups = {}, {}
    for (_, row), config in zip(frame.iterrows(), configs):
        label = config or str(row["id"])[:8]
        if "config.seed" in frame.columns and len(set(configs)) < len(configs):
            label = f"{label} (seed {format_value(row['config.seed'])})"
        metrics[label] = store.metrics(row["id"], wide=True)
        groups[label] = config or label
    fig = F.compare_runs(metrics, list(_COMPARED), _COMPARED, log=("train_step/loss", "metrics/test/loss",
                                                                   "kp/rank_K", "kp/rank_P", "kp/rank_G"),
                         groups=groups)
    if fig is not None:
        page.section("Runs compared")
        page.figure(fig, "The runs of the sweep over training, overlaid (seeds of one configuration share a colour)")
        page.end()


def _axes_text(dims, lay, seeds: int) -> str:
    """The sentence that says how the sweep is laid out."""
    def name(d):
        return f"({html.escape(d.label)}) zipped" if len(d.keys) > 1 else html.escape(d.label)

    text = "<p>Swept axes: " + (", ".join(name(d) for d in dims) or "none")
    if lay.seed is not None:
        text += f"; seeds: {seeds} values of {html.escape(lay.seed[len('config.'):])}, aggregated (mean ± s.e.)"
    text += ".</p>"
    parts = []
    if lay.x is not None:
        parts.append(f"x: {name(lay.x)}")
    if lay.y is not None:
        parts.append(f"y: {name(lay.y)}")
    if lay.facets:
        parts.append("one panel or line per value of " + ", ".join(name(d) for d in lay.facets))
    if lay.determined:
        parts.append("determined by x and y: " + ", ".join(name(d) for d in lay.determined))
    return text + (f"<p>Layout: {'; '.join(parts)}.</p>" if parts else "")


def _seed_table(table, cols: list[str], shown: list[str]) -> str:
    """One row per configuration: its swept values, the number of seeds, mean ± s.e. of each value."""
    groups = table.groupby(cols, sort=True, dropna=False) if cols else [((), table)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "<th>seeds</th>" + "".join(
        f"<th>{html.escape(v.split('.', 1)[-1])} (mean ± s.e.)</th>" for v in shown)
    rows = []
    for key, part in groups:
        key = key if isinstance(key, tuple) and len(cols) > 1 else (key,)
        cells = "".join(f"<td class='num'>{html.escape(F._tick(k))}</td>" for k in key[:len(cols)])
        cells += f"<td class='num'>{len(part)}</td>"
        for v in shown:
            mean, se, n = F._cell_stats(part[v].to_numpy(dtype=float))
            cells += f"<td class='num'>{format_value(mean)}" + (f" ± {format_value(se)}" if n > 1 else "") + "</td>"
        rows.append(f"<tr>{cells}</tr>")
    return (f"<table id='seed-table'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def render_sweep(store, sweep: str, x: str | None = None, y: str | None = None) -> str:
    """The HTML text of a sweep's report (see :func:`write_report`). ``x``/``y`` choose the
    axes of the figures (a swept field or axis label); the other swept axes become small
    multiples, and seeds are always aggregated (:mod:`gdlens.report.sweep_axes`)."""
    from gdlens.report.sweep_axes import dimension_values, layout, sweep_axes

    frame = store.runs(sweep=sweep)
    page = _Page(f"gdlens sweep {sweep}")
    axes = sweep_axes(store, sweep, frame)
    lay = layout(frame, axes, x, y)
    dims = [d for d in axes if d.kind != "seed"]
    table = frame.copy()
    for d in dims:
        table[d.label] = dimension_values(frame, d)
    facet = None
    if lay.facets:
        facet = "; ".join(d.label for d in lay.facets)
        values = list(zip(*(table[d.label] for d in lay.facets)))
        table[facet] = [v[0] if len(v) == 1 else v for v in values]
    values = [c for c in frame.columns if c.startswith("summary.") and frame[c].dtype.kind in "fi"
              and frame[c].notna().any()]
    preferred = ["summary.final_train_loss", "summary.metrics/test/loss", "summary.metrics/test/accuracy",
                 "summary.metrics/train/accuracy"]
    shown = [c for c in preferred if c in values] or values[:3]
    swept = {c for d in axes for c in d.columns}

    page.section("Configuration")
    common = {c[len("config."):]: frame[c].iloc[0] for c in frame.columns
              if c.startswith("config.") and c not in swept and len(frame) and len({repr(v) for v in frame[c]}) == 1}
    page.add(_table(common, "config-table", ("key (same for all runs)", "value")))
    seeds = len({repr(v) for v in frame[lay.seed]}) if lay.seed else 0
    page.add(_axes_text(dims, lay, seeds))
    page.end()

    page.section("Summary")
    cols = ["id", "status"] + [d.label for d in dims] + ([lay.seed] if lay.seed else []) + shown
    head = "".join(f"<th>{html.escape(c.split('.', 1)[-1] if c.startswith(('config.', 'summary.')) else c)}</th>"
                   for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{html.escape(F._tick(row[c]) if isinstance(row[c], tuple) else format_value(row[c]))}</td>"
                         for c in cols) + "</tr>"
        for _, row in table.iterrows()
    )
    page.add(f"<table id='summary-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if lay.seed and shown:
        page.add("<p>Over seeds (one row per configuration):</p>" + _seed_table(table, [d.label for d in dims], shown))
    page.end()

    if shown and lay.y is not None:
        page.section("Phase diagrams")
        for v in shown:
            fig = F.phase_diagram(table, lay.x.label, lay.y.label, v, log="loss" in v, facet=facet)
            where = f", one panel per {facet}" if facet else ""
            page.figure(fig, f"Phase diagram of {v.split('.', 1)[1]} over {lay.x.label} and {lay.y.label}{where}")
        page.end()
    elif shown and lay.x is not None:
        page.section("Over the swept axis")
        fig = F.sweep_curve(table, lay.x.label, shown, log=["loss" in v for v in shown], group=facet)
        where = f", one line per {facet}" if facet else ""
        page.figure(fig, f"{', '.join(v.split('.', 1)[1] for v in shown)} against {lay.x.label}{where} "
                         "(points: runs; line and band: mean ± s.e. over seeds)")
        page.end()
    if 1 < len(frame) <= MAX_COMPARED_RUNS:
        configs = [", ".join(f"{d.label}={F._tick(v)}" for d, v in zip(dims, row))
                   for row in zip(*(table[d.label] for d in dims))] if dims else [""] * len(frame)
        _compare_section(page, store, frame, configs)
    meta = f"{len(frame)} runs;"
    return page.render(meta)


def write_report(source, path: str | os.PathLike, name: str | None = None, x: str | None = None,
                 y: str | None = None) -> Path:
    """Write one self-contained HTML report and return its path.

    ``source`` is a :class:`~gdlens.store.store.Run`, or a :class:`~gdlens.store.store.Store`
    (or a store directory) together with ``name``: a sweep name when the store has runs of that
    sweep, otherwise a run id (or unique prefix). The report has a configuration table, a
    summary table and one section per recorded probe group; figures are embedded PNGs. For a
    sweep, ``x`` and ``y`` choose the figures' axes (see :func:`render_sweep`); for a run they
    must be None."""
    from gdlens.store import Store, open_store

    if isinstance(source, (str, os.PathLike)):
        source = open_store(source, create=False)
    if isinstance(source, Store):
        if name is None:
            raise ValueError("a report from a store needs name=: a run id (or unique prefix) or a sweep name")
        is_sweep = bool(source.runs(sweep=name, as_frame=False))
    elif name is not None:
        raise ValueError("name= is for a store; a Run is reported as it is")
    else:
        is_sweep = False
    if not is_sweep and (x is not None or y is not None):
        raise ValueError("x= and y= choose the axes of a sweep's figures; a run's report has none")
    if is_sweep:
        text = render_sweep(source, name, x=x, y=y)
    else:
        text = render_run(source.run(name) if isinstance(source, Store) else source)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
