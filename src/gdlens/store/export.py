"""Exporters of a run's scalar metrics: CSV and Parquet (long form: step, name, value) and
TensorBoard event files (the ``tensorboard`` extra)."""

from __future__ import annotations

import json
from pathlib import Path

from gdlens.store.store import Run

__all__ = ["export_run", "FORMATS"]

FORMATS = ("csv", "parquet", "tensorboard")


def export_run(run: Run, path: str | Path, format: str = "csv") -> list[Path]:
    """Write ``run``'s metrics to ``path`` and return the files written.

    - ``"csv"`` / ``"parquet"``: one table with columns step, name, value (long form), and
      ``<path stem>.json`` beside it holding the run's id, status, config and summary.
    - ``"tensorboard"``: an event-file directory at ``path`` with one scalar series per
      metric name (needs ``pip install 'gdlens[tensorboard]'``).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; allowed: {', '.join(FORMATS)}")
    path = Path(path)
    frame = run.metrics()
    if format == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("TensorBoard export needs the tensorboard package: pip install 'gdlens[tensorboard]'") from err
        writer = SummaryWriter(log_dir=str(path))
        for step, name, value in frame.itertuples(index=False):
            writer.add_scalar(name, value, int(step))
        writer.close()
        return sorted(path.glob("events.out.tfevents.*"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "csv":
        frame.to_csv(path, index=False)
    else:
        try:
            import pyarrow  # noqa: F401 - pandas' Parquet engine
        except ImportError as err:
            raise ImportError("Parquet export needs the pyarrow package: pip install 'gdlens[analysis]'") from err
        frame.to_parquet(path, index=False)
    meta = path.with_suffix(".json")
    meta.write_text(
        json.dumps({"id": run.id, "status": run.status, "config": run.config, "summary": run.summary}, indent=2, sort_keys=True)
    )
    return [path, meta]
