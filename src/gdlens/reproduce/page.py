"""The reproduction report: one self-contained HTML page (the redrawn figure embedded as a PNG
``data:`` URI, the claims table: published, measured ± s.e., holds), written from a
:class:`~gdlens.reproduce.run.ReproduceResult`. Figures are embedded with the run report's
``figure_to_data_uri`` (gdlens.report.html)."""

from __future__ import annotations

import html
import math
from typing import Any

from gdlens.report.html import figure_to_data_uri, format_value

__all__ = ["render_result"]

_STYLE = ("body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;"
          "text-align:left}th{background:#f4f4f4}td.num{font-family:monospace;text-align:right}"
          "td.yes{background:#e6f4e6}td.no{background:#fbe3e3}img{max-width:100%}.meta{color:#555}")


def _measured(value: float, stderr: float, seeds: int) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isnan(stderr):
        return f"{value:.4g} ({seeds} seed{'s' if seeds != 1 else ''}, no s.e.)"
    return f"{value:.4g} ± {stderr:.2g}"


def render_result(result: Any, figure: Any | None) -> str:
    """The page of ``result`` (a ReproduceResult) with ``figure`` (a Figure or None)."""
    e = result.entry
    esc = html.escape
    rows = []
    for c in result.claims:
        cls = "yes" if c["holds"] else "no"
        caveat = e.caveats.get(c["name"], "")
        rows.append(
            f"<tr><th>{esc(c['name'])}</th><td>{esc(c['description'])}</td><td>{esc(c['source'])}</td>"
            f"<td class='num'>{esc(c['published_text'])}</td>"
            f"<td class='num'>{esc(_measured(c['measured'], c['stderr'], len(result.seeds)))}</td>"
            f"<td class='{cls}'>{'holds' if c['holds'] else 'does not hold'}</td><td>{esc(caveat)}</td></tr>")
    table = ("<table id='claims'><thead><tr><th>claim</th><th>measured quantity</th><th>source</th>"
             "<th>published</th><th>measured ± s.e.</th><th>verdict</th><th>note</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>")
    fig = ""
    if figure is not None:
        fig = (f"<figure><img id='figure' alt='{esc(e.title)}' src='{figure_to_data_uri(figure)}'>"
               f"<figcaption>Redrawn from this run ({esc(e.citation.where)} of the paper).</figcaption></figure>")
    settings = "".join(f"<tr><th>{esc(str(k))}</th><td class='num'>{esc(format_value(v))}</td></tr>"
                       for k, v in result.measurements.settings.items())
    runs = ", ".join(esc(r) for r in result.measurements.run_ids) or "(none)"
    held = sum(c["holds"] for c in result.claims)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(e.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(e.title)}</h1>"
        f"<p class='meta'>{esc(str(e.citation))} · gdlens reproduce {esc(e.name)} --size {esc(result.size)}"
        f" · seeds {esc(', '.join(map(str, result.seeds)))} · {result.wall_seconds:.1f} s</p>"
        f"<p>{held} of {len(result.claims)} claims hold at size {esc(result.size)} "
        f"({esc(e.sizes[result.size])}).</p>"
        f"<h2>Claims</h2>{table}"
        f"<h2>Figure</h2>{fig or '<p>(no figure)</p>'}"
        + (f"<h2>Notes</h2><p>{esc(e.notes)}</p>" if e.notes else "")
        + (f"<h2>Settings</h2><table id='settings'><tbody>{settings}</tbody></table>" if settings else "")
        + f"<h2>Runs</h2><p class='meta'>in the store: {runs}</p></body></html>\n"
    )
