"""Views of stored runs as plain data, for the command line and for scripts (no pandas): the
runs table with the swept values as columns, one run in full, and runs compared side by side.

Every value is JSON-ready: non-finite floats become None (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gdlens.store.store import Run, _flatten

__all__ = ["swept_keys", "runs_table", "run_view", "compare_table", "jsonable", "format_table"]

# config keys that describe a run rather than set it: never shown as swept columns
_NOT_SETTINGS = ("meta", "probes", "model.class", "model.num_params", "ensemble")
SUMMARY_COLUMNS = ("final_train_loss", "metrics/test/accuracy")


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None, recursively (for strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _setting(key: str) -> bool:
    return not any(key == k or key.startswith(k + ".") for k in _NOT_SETTINGS)


def swept_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The dotted config keys that take more than one value among the runs of one sweep (runs
    grouped by their ``sweep``; runs of no sweep do not count), in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("sweep"):
            groups.setdefault(rec["sweep"], []).append(_flatten(rec["config"]))
    keys: dict[str, None] = {}
    for flats in groups.values():
        for key in dict.fromkeys(k for flat in flats for k in flat):
            values = {json.dumps(flat.get(key), sort_keys=True) for flat in flats}
            if len(values) > 1 and _setting(key):
                keys[key] = None
    return list(keys)


def _model_label(config: Mapping[str, Any]) -> Any:
    model = config.get("model")
    if isinstance(model, Mapping):
        return model.get("name") or model.get("class")
    return model


def runs_table(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the runs table: id, name, sweep, status, task, model, steps, every
    swept key (:func:`swept_keys`), the final training loss and the test accuracy."""
    swept = swept_keys(records)
    columns = ["id", "name", "sweep", "status", "task", "model", "steps", *swept, *SUMMARY_COLUMNS]
    rows = []
    for rec in records:
        config, flat = rec["config"], _flatten(rec["config"])
        task = config.get("task")
        rows.append([
            rec["id"], rec.get("name"), rec.get("sweep"), rec["status"],
            task.get("name") if isinstance(task, Mapping) else task, _model_label(config), config.get("steps"),
            *(flat.get(key) if rec.get("sweep") else None for key in swept),
            *(rec["summary"].get(key) for key in SUMMARY_COLUMNS),
        ])
    return columns, rows


def run_view(run: Run) -> dict[str, Any]:
    """One run in full: id, name, sweep, status, error, config, summary, each metric's number
    of points, last step and last value, and each array's number of steps and shape (damaged
    array files are skipped with a warning, see :meth:`gdlens.store.Store.arrays`)."""
    row = run.store.con.execute("SELECT name, sweep, status, error FROM runs WHERE id = ?", (run.id,)).fetchone()
    metrics = {}
    for name, (steps, values) in run.metrics(as_frame=False).items():
        metrics[name] = {"points": len(steps), "last_step": int(steps[-1]), "last": float(values[-1])}
    arrays = {name: {"steps": len(steps), "shape": list(values[0].shape)}
              for name, (steps, values) in run.arrays().items()}
    view = {"id": run.id, "name": row[0], "sweep": row[1], "status": row[2], "error": row[3], "config": run.config,
            "summary": run.summary, "metrics": metrics, "arrays": arrays}
    return jsonable(view)


def compare_table(records: Sequence[Mapping[str, Any]], everything: bool = False) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) comparing runs side by side: one column per run, one row per config key
    (only the keys that differ unless ``everything``), then the status and every summary value
    the runs report. The first column is the key; differing rows start with ``*``."""
    flats = [_flatten(r["config"]) for r in records]
    rows = []
    for key in dict.fromkeys(k for flat in flats for k in flat):
        values = [flat.get(key) for flat in flats]
        differs = len({json.dumps(v, sort_keys=True) for v in values}) > 1
        if differs or everything:
            rows.append([("* " if differs else "  ") + key, *values])
    rows.append(["  status", *(r["status"] for r in records)])
    summaries = [r["summary"] for r in records]
    for key in dict.fromkeys(k for s in summaries for k in s):
        rows.append([f"  {key}", *(s.get(key) for s in summaries)])
    return ["key", *(r["id"] for r in records)], rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: a header, then one line per row, columns padded to their width."""
    cells = [[str(c) for c in columns]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)
