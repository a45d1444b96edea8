"""The tables of a run's report: values written one way, the Summary grouped by probe.

The Summary is one table with a header row per group: the run itself (``steps``, ``seconds``,
``final_train_loss`` ...: the summary's keys without a ``/``), then each probe in the order the
run declared them (the summary's ``"probes"``: title, settings such as the KP probe's B, T, H and
trials), then any other ``<prefix>/`` group. A probe's row gives the key, the declared label and
definition, the value (``value ± s.e.`` when the probe declares the key's standard error, whose
own row is then left out) and the declared unit.
"""

from __future__ import annotations

import fnmatch
import html
from collections.abc import Mapping
from typing import Any

import numpy as np

from gdlens.report.plans import _stderr_of, section_title

__all__ = ["format_value", "flatten", "key_value_table", "probe_order", "summary_table", "RUN_UNITS"]

RUN_UNITS = {
    "steps": ("training steps", ""), "seconds": ("wall time of training", "s"),
    "probe_seconds": ("wall time inside probes", "s"),
    "recording_overhead": ("probe time / (training time − probe time)", ""),
    "final_train_loss": ("training loss before the last update", ""),
    "diverged_at": ("step at which the loss diverged (None: it did not)", "step"),
}


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


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _num(value: Any) -> str:
    """The class of a value's cell: numbers right-aligned in monospace, text as text."""
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return " class='num'" if numeric or value is None else ""


def key_value_table(rows: Mapping[str, Any], id_: str, headers=("name", "value")) -> str:
    """A two-column table, values written by :func:`format_value`."""
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td{_num(v)}>{html.escape(format_value(v))}</td></tr>"
        for k, v in rows.items()
    )
    return (f"<table id='{id_}'><thead><tr><th>{headers[0]}</th><th>{headers[1]}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _spec(specs, key: str) -> Mapping[str, Any] | None:
    exact = [m for m in specs if m.get("key") == key]
    return (exact or [m for m in specs if fnmatch.fnmatchcase(key, m.get("key", ""))] or [None])[0]


def _row(name: str, label: str, value: str, unit: str) -> str:
    return (f"<tr><th>{html.escape(name)}</th><td>{html.escape(label)}</td>"
            f"<td class='num'>{html.escape(value)}</td><td>{html.escape(unit)}</td></tr>")


def _group(title: str, note: str = "") -> str:
    note = f" <span class='settings'>{html.escape(note)}</span>" if note else ""
    return f"<tr class='group'><th colspan='4'>{html.escape(title)}{note}</th></tr>"


def probe_order(decls: Mapping[str, Any], order: Any = None) -> list[str]:
    """The names of the declared probes ``decls`` in the order of ``order`` (a config's
    ``"probes"``: a list of ``{"name": ...}``; the store keeps a summary's keys sorted), the
    ones it does not list after."""
    listed = [p.get("name") for p in order if isinstance(p, Mapping)] if isinstance(order, list) else []
    return [n for n in listed if n in decls] + [n for n in decls if n not in listed]


def summary_table(summary: Mapping[str, Any], order: Any = None, id_: str = "summary-table") -> str:
    """The Summary of a run, grouped by probe (see the module docstring); ``order`` as in
    :func:`probe_order`."""
    decls: Mapping[str, Any] = summary.get("probes") if isinstance(summary.get("probes"), Mapping) else {}
    flat = flatten({k: v for k, v in summary.items() if k != "probes"})
    rows = ["<thead><tr><th>key</th><th>quantity</th><th>value</th><th>unit</th></tr></thead><tbody>"]
    run_keys = [k for k in flat if "/" not in k]
    if run_keys:
        rows.append(_group("Run"))
        for k in run_keys:
            label, unit = RUN_UNITS.get(k, ("", ""))
            rows.append(_row(k, label, format_value(flat[k]), unit))
    prefixes = probe_order(decls, order) + [p for p in dict.fromkeys(k.split("/", 1)[0] for k in flat if "/" in k)
                              if p not in decls]
    for prefix in prefixes:
        keys = [k for k in flat if k.startswith(prefix + "/")]
        decl = decls.get(prefix) or {}
        settings = decl.get("settings") or {}
        if not keys and not settings:
            continue
        title = section_title(prefix, decls.get(prefix))
        note = ", ".join(f"{k} = {format_value(v)}" for k, v in settings.items())
        rows.append(_group(title, f"settings: {note}" if note else ""))
        specs = decl.get("metrics") or ()
        stderr = {}
        for k in keys:
            m = _spec(specs, k[len(prefix) + 1:])
            if m is not None and m.get("stderr"):
                se = f"{prefix}/{_stderr_of(m, k[len(prefix) + 1:])}"
                if se in flat:
                    stderr[k] = se
        for k in keys:
            if k in stderr.values():
                continue
            m = _spec(specs, k[len(prefix) + 1:]) or {}
            label = m.get("label", "") + (f": {m['definition']}" if m.get("definition") else "")
            value = format_value(flat[k]) + (f" ± {format_value(flat[stderr[k]])}" if k in stderr else "")
            rows.append(_row(k, label, value, m.get("unit", "")))
    rows.append("</tbody>")
    return f"<table id='{id_}'>{''.join(rows)}</table>"
