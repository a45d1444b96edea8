"""The embedded run store: runs, scalar metrics (long form), arrays and checkpoints.

Layout of a store directory::

    store.sqlite                      runs, configs, metrics, array and checkpoint index (WAL)
    arrays/<run>/<name>/<step>.npy    numpy arrays (loaded with allow_pickle=False)
    checkpoints/<run>/<step>.pt       state dicts (torch.save; loaded with weights_only=True)

Nothing is ever unpickled. Files are written to a temporary name and renamed into place
before their index row is committed, so an index row always points at a complete file. A
run whose process died while ``running`` is reported as ``interrupted`` (same host: its pid is
gone; another host: no heartbeat for ``stale_after`` seconds) and can be resumed from its last
checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gdlens.store.database import StoreError, connect, this_process, transaction

__all__ = ["Store", "Run", "open_store", "canonical_config"]

STATUSES = ("running", "completed", "interrupted", "failed", "diverged")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"config value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def canonical_config(config: Mapping[str, Any]) -> str:
    """The config as canonical JSON (sorted keys, tuples as lists): equal configs give equal
    strings, which is how sweeps recognise a configuration that already ran."""
    return json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))


def _check_name(name: str) -> str:
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise ValueError(f"invalid name {name!r}: it must be non-empty and contain no '/', '\\' or NUL")
    return name


def _check_array_name(name: str) -> str:
    """Array names may be hierarchical (``"probe/key"``, stored as nested folders); every part
    must be a valid plain name."""
    for part in name.split("/"):
        try:
            _check_name(part)
        except ValueError:
            raise ValueError(
                f"invalid array name {name!r}: its '/'-separated parts must be non-empty, not '.' or '..', "
                f"and contain no '\\' or NUL"
            ) from None
    return name


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A run store directory (see the module docstring). Use :func:`open_store`.

    Safe to use from several processes at once; a connection opened before a fork is
    replaced in the child on first use.
    """

    def __init__(self, path: str | os.PathLike, stale_after: float = 600.0) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} exists and is not a directory: a store is a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the store directory {self.path}: {err.strerror}") from err
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StoreError(f"the store directory {self.path} is not writable")
        self.stale_after = stale_after
        self._con = None
        self._pid = -1

    @property
    def con(self):
        if self._con is None or self._pid != os.getpid():
            self._con = connect(self.path / "store.sqlite")
            self._pid = os.getpid()
        return self._con

    def close(self) -> None:
        if self._con is not None and self._pid == os.getpid():
            self._con.close()
        self._con = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ runs
    def create_run(
        self, config: Mapping[str, Any], name: str | None = None, run_id: str | None = None, sweep: str | None = None
    ) -> Run:
        """Register a new run with status ``running`` and return its handle."""
        run_id = _check_name(run_id) if run_id else uuid.uuid4().hex[:12]
        now = time.time()
        host, pid = this_process()
        with transaction(self.con) as con:
            con.execute(
                "INSERT INTO runs (id, name, status, config, created_at, updated_at, heartbeat, host, pid, sweep) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, canonical_config(config), now, now, now, host, pid, sweep),
            )
        return Run(self, run_id)

    def run(self, run_id: str) -> Run:
        """The handle of an existing run, by id or by a unique prefix of its id (KeyError if
        there is none or the prefix is ambiguous)."""
        if self.con.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None:
            return Run(self, run_id)
        escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.con.execute("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",)).fetchall()
        if len(rows) == 1:
            return Run(self, rows[0][0])
        if rows:
            raise KeyError(f"run id prefix {run_id!r} is ambiguous in {self.path}: {sorted(r[0] for r in rows)}")
        raise KeyError(f"no run {run_id!r} in {self.path}")

    def resume(self, run_id: str) -> Run:
        """Reopen an interrupted (or failed) run for writing: status back to ``running``,
        owned by this process. Its last checkpoint is :meth:`Run.latest_checkpoint`."""
        run = self.run(run_id)
        host, pid = this_process()
        with transaction(self.con) as con:
            con.execute(
                "UPDATE runs SET status = 'running', host = ?, pid = ?, heartbeat = ?, updated_at = ?, error = NULL "
                "WHERE id = ?",
                (host, pid, time.time(), time.time(), run_id),
            )
        return run

    def mark_stale(self) -> list[str]:
        """Mark runs whose writer is gone as ``interrupted``; returns their ids."""
        host, _ = this_process()
        now = time.time()
        stale = []
        rows = self.con.execute("SELECT id, host, pid, heartbeat FROM runs WHERE status = 'running'").fetchall()
        for run_id, run_host, pid, heartbeat in rows:
            dead = (run_host == host and not _pid_alive(pid)) or (now - heartbeat > self.stale_after)
            if dead:
                stale.append(run_id)
        if stale:
            with transaction(self.con) as con:
                con.executemany(
                    "UPDATE runs SET status = 'interrupted', updated_at = ? WHERE id = ? AND status = 'running'",
                    [(now, r) for r in stale],
                )
        return stale

    def runs(self, status: str | None = None, sweep: str | None = None, as_frame: bool = True):
        """All runs (newest last): id, name, status, created_at, updated_at, sweep, config and
        summary (parsed JSON). A pandas DataFrame (config and summary flattened into
        ``config.<key>`` / ``summary.<key>`` columns), or a list of dicts with
        ``as_frame=False``."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.mark_stale()
        query = "SELECT id, name, status, created_at, updated_at, sweep, config, summary, error FROM runs"
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if sweep:
            clauses.append("sweep = ?")
            params.append(sweep)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self.con.execute(query + " ORDER BY created_at, id", params).fetchall()
        records = [
            {
                "id": r[0], "name": r[1], "status": r[2], "created_at": r[3], "updated_at": r[4],
                "sweep": r[5], "config": json.loads(r[6]), "summary": json.loads(r[7]), "error": r[8],
            }
            for r in rows
        ]
        if not as_frame:
            return records
        pd = _pandas()
        flat = []
        for rec in records:
            row = {k: v for k, v in rec.items() if k not in ("config", "summary")}
            row.update({f"config.{k}": v for k, v in _flatten(rec["config"]).items()})
            row.update({f"summary.{k}": v for k, v in _flatten(rec["summary"]).items()})
            flat.append(row)
        return pd.DataFrame(flat)

    def find(self, config: Mapping[str, Any], status: str | None = "completed") -> list[str]:
        """Ids of runs whose config equals ``config`` (canonical JSON), optionally by status."""
        query, params = "SELECT id FROM runs WHERE config = ?", [canonical_config(config)]
        if status:
            query += " AND status = ?"
            params.append(status)
        return [r[0] for r in self.con.execute(query + " ORDER BY created_at", params).fetchall()]

    # ------------------------------------------------------------------ reading
    def metrics(self, run_id: str, names: Iterable[str] | None = None, wide: bool = False, as_frame: bool = True):
        """Scalar metrics of a run in long form (step, name, value), sorted by name then step;
        ``wide=True`` pivots to one column per name indexed by step. ``as_frame=False`` gives
        ``{name: (steps, values)}`` numpy arrays instead of a DataFrame."""
        query, params = "SELECT step, name, value FROM metrics WHERE run_id = ?", [run_id]
        if names is not None:
            names = list(names)
            query += f" AND name IN ({','.join('?' * len(names))})"
            params += names
        rows = self.con.execute(query + " ORDER BY name, step", params).fetchall()
        if not as_frame:
            out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for name in dict.fromkeys(r[1] for r in rows):
                sel = [(r[0], r[2]) for r in rows if r[1] == name]
                out[name] = (np.array([s for s, _ in sel]), np.array([math.nan if v is None else v for _, v in sel]))
            return out
        pd = _pandas()
        frame = pd.DataFrame(rows, columns=["step", "name", "value"])
        return frame.pivot(index="step", columns="name", values="value") if wide else frame

    def arrays(self, run_id: str, name: str | None = None) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
        """Arrays of a run: ``{name: (steps, [array at each step])}``, loaded without pickle."""
        query, params = "SELECT name, step, path FROM arrays WHERE run_id = ?", [run_id]
        if name is not None:
            query += " AND name = ?"
            params.append(name)
        out: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for arr_name, step, rel in self.con.execute(query + " ORDER BY name, step", params).fetchall():
            steps, values = out.setdefault(arr_name, ([], []))
            steps.append(step)
            values.append(np.load(self.path / rel, allow_pickle=False))
        return {k: (np.array(s), v) for k, (s, v) in out.items()}


class Run:
    """Handle of one run in a :class:`Store`: log metrics and arrays, save checkpoints, finish.

    Used as a context manager, it marks the run ``completed`` on a normal exit, ``interrupted``
    on KeyboardInterrupt and ``failed`` (with the error text) on any other exception.
    """

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.id = store, run_id

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"

    def _row(self, column: str):
        return self.store.con.execute(f"SELECT {column} FROM runs WHERE id = ?", (self.id,)).fetchone()[0]

    @property
    def status(self) -> str:
        return self._row("status")

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self._row("config"))

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self._row("summary"))

    # ------------------------------------------------------------------ writing
    def log(self, step: int, metrics: Mapping[str, float] | None = None, **named: float) -> None:
        """Record scalar metrics at ``step`` (one transaction; a repeated (name, step) is
        replaced). Non-finite values are stored (NaN as NULL)."""
        values = {**(metrics or {}), **named}
        now = time.time()
        rows = []
        for name, value in values.items():
            v = float(value)
            rows.append((self.id, int(step), str(name), None if math.isnan(v) else v))
        with transaction(self.store.con) as con:
            con.executemany("INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)", rows)
            con.execute("UPDATE runs SET heartbeat = ?, updated_at = ? WHERE id = ?", (now, now, self.id))

    def log_series(self, name: str, steps: Iterable[int], values: Iterable[float]) -> None:
        """Record one scalar metric at many steps in one transaction (e.g. the per-step
        training loss, buffered by the training loop)."""
        rows = []
        for step, value in zip(steps, values):
            v = float(value)
            rows.append((self.id, int(step), str(name), None if math.isnan(v) else v))
        now = time.time()
        with transaction(self.store.con) as con:
            con.executemany("INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)", rows)
            con.execute("UPDATE runs SET heartbeat = ?, updated_at = ? WHERE id = ?", (now, now, self.id))

    def log_array(self, step: int, name: str, array: np.ndarray | torch.Tensor) -> None:
        """Save an array (numpy or torch, detached to CPU) at ``step`` as an .npy file; ``name``
        may be hierarchical (``"probe/key"``)."""
        _check_array_name(name)
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; only numeric arrays are stored (no pickle)")
        rel = Path("arrays") / self.id / name / f"{int(step)}.npy"
        _atomic_write(self.store.path / rel, lambda f: np.save(f, array, allow_pickle=False))
        with transaction(self.store.con) as con:
            con.execute(
                "INSERT OR REPLACE INTO arrays (run_id, step, name, path, shape, dtype) VALUES (?, ?, ?, ?, ?, ?)",
                (self.id, int(step), name, str(rel), json.dumps(list(array.shape)), str(array.dtype)),
            )

    def save_checkpoint(self, step: int, state: Mapping[str, Any]) -> None:
        """Save a state dict (tensors, numbers, strings, lists and dicts of them) at ``step``."""
        rel = Path("checkpoints") / self.id / f"{int(step)}.pt"
        _atomic_write(self.store.path / rel, lambda f: torch.save(dict(state), f))
        with transaction(self.store.con) as con:
            con.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, step, path, created_at) VALUES (?, ?, ?, ?)",
                (self.id, int(step), str(rel), time.time()),
            )

    def latest_checkpoint(self) -> tuple[int, dict[str, Any]] | None:
        """(step, state) of the newest checkpoint, loaded with ``weights_only=True``; None if none."""
        row = self.store.con.execute(
            "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1", (self.id,)
        ).fetchone()
        if row is None:
            return None
        return row[0], torch.load(self.store.path / row[1], weights_only=True, map_location="cpu")

    def update_summary(self, values: Mapping[str, Any] | None = None, **named: Any) -> None:
        """Merge values into the run's summary (JSON)."""
        with transaction(self.store.con) as con:
            current = json.loads(con.execute("SELECT summary FROM runs WHERE id = ?", (self.id,)).fetchone()[0])
            current.update(_jsonable({**(values or {}), **named}))
            con.execute(
                "UPDATE runs SET summary = ?, updated_at = ? WHERE id = ?",
                (json.dumps(current, sort_keys=True), time.time(), self.id),
            )

    def _set_status(self, status: str, error: str | None = None) -> None:
        with transaction(self.store.con) as con:
            con.execute(
                "UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?", (status, error, time.time(), self.id)
            )

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Mark the run completed (merging ``summary`` into its summary first)."""
        if summary:
            self.update_summary(summary)
        self._set_status("completed")

    def fail(self, error: str) -> None:
        self._set_status("failed", error)

    def interrupt(self) -> None:
        self._set_status("interrupted")

    def diverge(self, step: int, value: float) -> None:
        """Mark the run diverged: its loss became ``value`` (NaN or infinite) at ``step``."""
        self.update_summary(diverged_at=int(step))
        self._set_status("diverged", f"the training loss became {value} at step {step}")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.interrupt()
        else:
            self.fail(f"{exc_type.__name__}: {exc}")

    # ------------------------------------------------------------------ reading
    def metrics(self, names: Iterable[str] | None = None, wide: bool = False, as_frame: bool = True):
        """See :meth:`Store.metrics`."""
        return self.store.metrics(self.id, names, wide, as_frame)

    def arrays(self, name: str | None = None):
        """See :meth:`Store.arrays`."""
        return self.store.arrays(self.id, name)


def open_store(path: str | os.PathLike, stale_after: float = 600.0) -> Store:
    """Open (creating if needed) the run store at ``path``."""
    return Store(path, stale_after)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _pandas():
    try:
        import pandas as pd
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "pandas is needed for DataFrames: pip install 'gdlens[analysis]', or pass as_frame=False"
        ) from err
    return pd
