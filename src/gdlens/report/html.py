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

from gdlens.report import figures as F
from gdlens.report.tables import flatten, format_value, key_value_table, probe_order, summary_table

__all__ = ["write_report", "render_run", "render_sweep", "probe_sections", "format_value", "figure_to_data_uri"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-family:monospace}
tr.group th{background:#e4e9f0;font-size:1.05em}.settings{font-weight:normal;color:#444;margin-left:1em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.meta{color:#555;font-size:.9em}nav a{margin-right:.8em}p.note{color:#7a4b00;font-size:.9em}
"""

_TRAINING_PREFIXES = ("train_step",)  # written by the training loop, drawn in "Loss and accuracy"


def figure_to_data_uri(fig, dpi: int = 90) -> str:
    """A figure as a base64 PNG ``data:`` URI (rendered with Agg; no metadata)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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


def probe_sections(summary: Mapping[str, Any], metrics, arrays: Mapping[str, Any],
                   order: Any = None) -> list[tuple[str, dict | None]]:
    """The probe sections of a run, in page order: ``(probe name, declaration or None)`` for
    each probe of the summary's ``"probes"`` (in the order of ``order``, the config's
    ``"probes"`` list of ``{"name": ...}``, when given; the store keeps the summary's keys
    sorted), then each other
    prefix of a recorded metric or array name (``"<prefix>/..."``), which gets the generic
    panels. The training loop's own ``train_step/`` is not a probe."""
    decls = summary.get("probes") if isinstance(summary.get("probes"), Mapping) else {}
    out: list[tuple[str, dict | None]] = [(n, dict(decls[n])) for n in probe_order(decls, order)]
    names = [str(c) for c in getattr(metrics, "columns", ())] + list(arrays)
    for prefix in dict.fromkeys(n.split("/", 1)[0] for n in names if "/" in n):
        if prefix not in decls and prefix not in _TRAINING_PREFIXES:
            out.append((prefix, None))
    return out


def render_run(run) -> str:
    """The HTML text of a run's report (see :func:`write_report`)."""
    from gdlens.report.panels import draw_section, plan_section, section_title
    from gdlens.report.plans import constant_leftovers

    config, summary = run.config, run.summary
    metrics = run.metrics(wide=True)
    arrays = run.arrays()
    page = _Page(f"gdlens run {run.id}")

    page.section("Configuration")
    page.add(key_value_table(flatten(config), "config-table", ("key", "value")))
    page.end()
    if summary:
        page.section("Summary")
        page.add(summary_table(summary, config.get("probes")))
        page.end()

    sections = [(name, decl, plan_section(name, decl, metrics, arrays))
                for name, decl in probe_sections(summary, metrics, arrays, config.get("probes"))]
    # the overview draws what no probe's declared panel draws (the loop's own loss every step)
    declared = {c for _, _, plans in sections for p in plans if p.declared for c in p.columns}
    overview = metrics[[c for c in metrics.columns if c not in declared]]
    clocks = _clocks(metrics, summary)
    fig = F.loss_accuracy(overview, clocks=clocks)
    if fig is not None or clocks:
        what = "Loss and accuracy" if any(str(c).endswith("/accuracy") for c in overview.columns) else "Loss"
        page.section(what)
        page.figure(fig, f"{what} against step" + (" (dashed: clock steps)" if clocks else ""))
        if clocks:
            page.add(key_value_table(clocks, "clocks-table", ("clock", "step")))
        page.end()

    titles = [section_title(name, decl) for name, decl, _ in sections]
    for (name, decl, plans), title in zip(sections, titles):
        if titles.count(title) > 1:  # two probes of one class: their names tell them apart
            title = f"{title} ({name})"
        page.section(title)
        generic = decl is None or not decl.get("panels")
        if generic:
            page.add("<p class='note'>This probe declares no panels: its keys are drawn by the generic panels.</p>")
        constant = constant_leftovers(name, decl, metrics)
        if constant:
            text = ", ".join(f"{k} = {format_value(v)}" for k, v in constant.items())
            page.add(f"<p class='meta'>Recorded, constant over the run: {html.escape(text)}.</p>")
        caption = f"{title}: the keys {name}/*" + (" in generic panels" if generic else ", drawn as the probe declares")
        if not page.figure(draw_section(plans, metrics, arrays), caption):
            page.add("<p class='note'>Nothing was recorded by this probe.</p>")
        page.end()

    meta = f"status <b>{html.escape(str(run.status))}</b>;"
    return page.render(meta)


MAX_COMPARED_RUNS = 8
MAX_COMPARED_PANELS = 9


def _compared_columns(metrics: Mapping[str, Any], summary: Mapping[str, Any], config: Mapping[str, Any]):
    """What "Runs compared" draws: the losses and accuracies (``*/loss``, ``*/accuracy``), then
    one curve of each declared probe (in the config's order): the first key of its first curve
    panel that the probe declares by name (not by a pattern), else its ``total``, else that
    panel's first key, with its label and y label (planned on the first run). ``(columns, titles, ylabels, log)``, at
    most :data:`MAX_COMPARED_PANELS` columns."""
    from gdlens.report.plans import plan_section

    names = list(dict.fromkeys(str(c) for m in metrics.values() for c in m.columns))
    columns = [c for c in names if c == "train_step/loss"] + [c for c in names if c.endswith("/loss")
                                                             and c != "train_step/loss"]
    columns += [c for c in names if c.endswith("/accuracy")]
    titles = {"train_step/loss": "training loss (each step's batch)"}
    ylabels = {c: "loss (the task's objective)" for c in columns if c.endswith("/loss")}
    ylabels.update({c: "accuracy (fraction correct)" for c in columns if c.endswith("/accuracy")})
    log = [c for c in columns if c.endswith("/loss")]
    first = next(iter(metrics.values()))
    decls = summary.get("probes") if isinstance(summary.get("probes"), Mapping) else {}
    for name in probe_order(decls, config.get("probes")):
        plans = [p for p in plan_section(name, decls[name], first, {}) if p.declared and p.kind == "lines"]
        fresh = [c for c in plans[0].columns if c not in columns] if plans else []
        if not fresh:
            continue
        exact = {f"{name}/{k}" for p in decls[name].get("panels", ()) for k in p["keys"] if "*" not in k}
        total = [c for c in fresh if c.endswith("/total")]  # a per-tensor family's sum over all tensors
        col = next((c for c in fresh if c in exact), total[0] if total else fresh[0])
        columns.append(col)
        titles[col] = f"{plans[0].labels.get(col, col)} ({col})"
        ylabels[col] = plans[0].ylabel
        if plans[0].yscale in ("auto", "log"):
            log.append(col)
    return columns[:MAX_COMPARED_PANELS], titles, ylabels, log


def _compare_section(page: _Page, store, frame, configs: list[str]) -> None:
    """Small sweeps: the runs' curves overlaid; the seeds of one configuration are drawn as
    their mean ± s.e. (``configs``: each run's configuration label)."""
    metrics, groups = {}, {}
    for (_, row), config in zip(frame.iterrows(), configs):
        label = config or str(row["id"])[:8]
        if "config.seed" in frame.columns and len(set(configs)) < len(configs):
            label = f"{label} (seed {format_value(row['config.seed'])})"
        metrics[label] = store.metrics(row["id"], wide=True)
        groups[label] = config or label
    first = store.run(frame["id"].iloc[0])
    columns, titles, ylabels, log = _compared_columns(metrics, first.summary, first.config)
    fig = F.compare_runs(metrics, columns, titles, log=log, groups=groups, ylabels=ylabels)
    if fig is not None:
        page.section("Runs compared")
        page.figure(fig, "The runs of the sweep over training (the seeds of one configuration: their mean ± s.e.)")
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
    page.add(key_value_table(common, "config-table", ("key (same for all runs)", "value")))
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
