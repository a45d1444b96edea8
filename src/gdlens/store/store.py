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

import fnmatch
import json
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pickle

import numpy as np
import torch

from gdlens.store.database import StoreError, connect, this_process, transaction

__all__ = ["Store", "Run", "open_store", "canonical_config", "StoreWarning"]


class StoreWarning(UserWarning):
    """Something in the store is damaged and was skipped (a checkpoint, an array file); the
    message names the file."""

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

    def __init__(
        self, path: str | os.PathLike, stale_after: float = 600.0, *, create: bool = True, readonly: bool | None = None
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} exists and is not a directory: a store is a directory")
        if not create or readonly:
            if not (self.path / "store.sqlite").is_file():
                raise StoreError(f"no gdlens store at {self.path} (no store.sqlite there); check the store path")
        else:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the store directory {self.path}: {err.strerror}") from err
        database = self.path / "store.sqlite"
        writable = os.access(self.path, os.W_OK | os.X_OK) and (not database.exists() or os.access(database, os.W_OK))
        if readonly is None:
            readonly = not create and not writable
        if not readonly and not writable:
            raise StoreError(f"the store directory {self.path} is not writable")
        self.readonly = bool(readonly)
        self.stale_after = stale_after
        self._con = None
        self._pid = -1

    @property
    def con(self):
        if self._con is None or self._pid != os.getpid():
            self._con = connect(self.path / "store.sqlite", readonly=self.readonly)
            self._pid = os.getpid()
        return self._con

    def _writable(self, action: str) -> None:
        if self.readonly:
            raise StoreError(f"the store {self.path} is open read-only: cannot {action}")

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
        self._writable("create a run")
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
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"a run id is a non-empty string (an id or a unique prefix), got {run_id!r}")
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
        owned by this process. Its last checkpoint is :meth:`Run.latest_checkpoint`.

        ``run_id`` may be a unique prefix: it is resolved to the full id first, so the run is
        ``running`` while it trains and no other process resumes it a second time. A run that
        is running (its writer alive), completed or diverged is refused with a
        :class:`StoreError` saying why."""
        run = self.resumable(run_id)
        host, pid = this_process()
        now = time.time()
        with transaction(self.con) as con:
            updated = con.execute(
                "UPDATE runs SET status = 'running', host = ?, pid = ?, heartbeat = ?, updated_at = ?, error = NULL "
                "WHERE id = ? AND status IN ('interrupted', 'failed')",
                (host, pid, now, now, run.id),
            ).rowcount
        if updated != 1:  # another process took it between the check and the update
            self.resumable(run.id)
            raise StoreError(f"run {run.id} cannot be resumed: another process resumed it first")
        return run

    def resumable(self, run_id: str) -> Run:
        """The run (by id or unique prefix) if it can be resumed (``interrupted`` or
        ``failed``), else a :class:`StoreError` saying why; changes nothing but the
        ``interrupted`` mark of dead runs."""
        self._writable("resume a run")
        self.mark_stale()
        run = self.run(run_id)
        status = run.status
        if status not in ("interrupted", "failed"):
            why = {"running": "it is running (its process is alive); stop it first",
                   "completed": "it is already completed", "diverged": "it diverged (its loss became non-finite)"}
            raise StoreError(f"run {run.id} cannot be resumed: {why.get(status, f'its status is {status}')}")
        return run

    def _stale_ids(self) -> list[str]:
        """Ids of the runs marked ``running`` whose writer is gone (same host: its pid is not
        alive; another host: no heartbeat for ``stale_after`` seconds)."""
        host, _ = this_process()
        now = time.time()
        rows = self.con.execute("SELECT id, host, pid, heartbeat FROM runs WHERE status = 'running'").fetchall()
        return [run_id for run_id, run_host, pid, heartbeat in rows
                if (run_host == host and not _pid_alive(pid)) or (now - heartbeat > self.stale_after)]

    def mark_stale(self) -> list[str]:
        """Mark runs whose writer is gone as ``interrupted``; returns their ids (a read-only
        store writes nothing: :meth:`runs` reports them as interrupted all the same)."""
        stale = self._stale_ids()
        if stale and not self.readonly:
            now = time.time()
            with transaction(self.con) as con:
                con.executemany(
                    "UPDATE runs SET status = 'interrupted', updated_at = ? WHERE id = ? AND status = 'running'",
                    [(now, r) for r in stale],
                )
        return stale

    def last_run_of_this_process(self) -> str | None:
        """The id of the run this process wrote last (None if none): what a Ctrl-C interrupted."""
        host, pid = this_process()
        row = self.con.execute("SELECT id FROM runs WHERE host = ? AND pid = ? ORDER BY updated_at DESC LIMIT 1",
                               (host, pid)).fetchone()
        return None if row is None else row[0]

    def delete_run(self, run_id: str, force: bool = False) -> str:
        """Delete a run (by id or unique prefix): its rows, arrays and checkpoints. A run that
        is running (its writer alive) is refused unless ``force``. Returns the full id."""
        self._writable("delete a run")
        self.mark_stale()
        run = self.run(run_id)
        if run.status == "running" and not force:
            raise StoreError(f"run {run.id} is running (its process is alive); stop it first")
        with transaction(self.con) as con:
            for table in ("metrics", "arrays", "checkpoints"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (run.id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        for folder in ("arrays", "checkpoints"):
            shutil.rmtree(self.path / folder / run.id, ignore_errors=True)
        return run.id

    def runs(self, status: str | None = None, sweep: str | None = None, as_frame: bool = True, name: str | None = None):
        """All runs (newest last): id, name, status, created_at, updated_at, sweep, config and
        summary (parsed JSON). A pandas DataFrame (config and summary flattened into
        ``config.<key>`` / ``summary.<key>`` columns), or a list of dicts with
        ``as_frame=False``. ``status`` and ``sweep`` select exactly; ``name`` is a shell-style
        pattern (``"demo-*"``)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        for key, value in (("sweep", sweep), ("name", name)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a string or None, got {value!r}")
        stale = set(self.mark_stale())
        query = "SELECT id, name, status, created_at, updated_at, sweep, config, summary, error FROM runs"
        clauses, params = [], []
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
        for rec in records:
            if rec["id"] in stale:
                rec["status"] = "interrupted"
        records = [rec for rec in records if (status is None or rec["status"] == status)
                   and (name is None or fnmatch.fnmatchcase(rec["name"] or "", name))]
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
            value = _load_array(self.path / rel)
            if value is None:
                continue
            steps, values = out.setdefault(arr_name, ([], []))
            steps.append(step)
            values.append(value)
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
    def name(self) -> str | None:
        return self._row("name")

    @property
    def sweep(self) -> str | None:
        return self._row("sweep")

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
        self.store._writable(f"write to run {self.id}")
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
        self.store._writable(f"write to run {self.id}")
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
        self.store._writable(f"write to run {self.id}")
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
        self.store._writable(f"write to run {self.id}")
        rel = Path("checkpoints") / self.id / f"{int(step)}.pt"
        _atomic_write(self.store.path / rel, lambda f: torch.save(dict(state), f))
        with transaction(self.store.con) as con:
            con.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, step, path, created_at) VALUES (?, ?, ?, ?)",
                (self.id, int(step), str(rel), time.time()),
            )

    def latest_checkpoint(self) -> tuple[int, dict[str, Any]] | None:
        """(step, state) of the newest intact checkpoint, loaded with ``weights_only=True``;
        None if the run has none. A damaged checkpoint (truncated, corrupt, missing, or holding
        objects other than tensors and plain containers) is skipped with a
        :class:`StoreWarning` naming its file, and the next older one is tried; if every one is
        damaged, a :class:`StoreError` lists them."""
        rows = self.store.con.execute(
            "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step DESC", (self.id,)
        ).fetchall()
        damaged = []
        for step, rel in rows:
            path = self.store.path / rel
            try:
                return step, torch.load(path, weights_only=True, map_location="cpu")
            except Exception as err:  # noqa: BLE001 - every failure to load is reported the same way
                reason = _load_failure(err)
            damaged.append(str(path))
            older = "trying the previous one" if len(damaged) < len(rows) else "no older checkpoint is left"
            warnings.warn(f"checkpoint {path} of run {self.id} is skipped: {reason}; {older}", StoreWarning,
                          stacklevel=2)
        if damaged:
            raise StoreError(f"every checkpoint of run {self.id} is damaged ({', '.join(damaged)}): delete them to "
                             f"restart the run from step 0")
        return None

    def update_summary(self, values: Mapping[str, Any] | None = None, **named: Any) -> None:
        """Merge values into the run's summary (JSON)."""
        self.store._writable(f"write to run {self.id}")
        with transaction(self.store.con) as con:
            current = json.loads(con.execute("SELECT summary FROM runs WHERE id = ?", (self.id,)).fetchone()[0])
            current.update(_jsonable({**(values or {}), **named}))
            con.execute(
                "UPDATE runs SET summary = ?, updated_at = ? WHERE id = ?",
                (json.dumps(current, sort_keys=True), time.time(), self.id),
            )

    def _set_status(self, status: str, error: str | None = None) -> None:
        self.store._writable(f"mark run {self.id} {status}")
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


def open_store(
    path: str | os.PathLike, stale_after: float = 600.0, *, create: bool = True, readonly: bool | None = None
) -> Store:
    """Open the run store at ``path``.

    Args:
        create: create the store when there is none (the default, for writers); with
            ``create=False`` a path holding no store is a :class:`StoreError` (readers: a typo
            in a path never leaves an empty store behind).
        readonly: open for reading only (nothing is written, not even the ``interrupted``
            mark of dead runs, which :meth:`Store.runs` reports all the same). None: read-only
            exactly when ``create=False`` and the store cannot be written.
    """
    return Store(path, stale_after, create=create, readonly=readonly)


def _load_failure(err: Exception) -> str:
    """Why a checkpoint did not load, in words that never suggest unpickling it."""
    if isinstance(err, FileNotFoundError):
        return "the file is missing"
    if isinstance(err, pickle.UnpicklingError):
        return "it holds objects other than tensors and plain containers (gdlens never unpickles)"
    return f"the file is damaged (truncated or corrupt: {type(err).__name__})"


def _load_array(path: Path) -> np.ndarray | None:
    """An .npy file loaded without pickle, or None (with a :class:`StoreWarning` naming the
    file) when it is missing, truncated or not a plain numeric array."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        reason = "the file is missing"
    except ValueError as err:
        reason = ("it holds Python objects, not a numeric array (gdlens never unpickles)"
                  if "pickle" in str(err) else "the file is damaged (truncated or corrupt)")
    except (OSError, EOFError):
        reason = "the file is damaged (truncated or corrupt)"
    warnings.warn(f"array {path} is skipped: {reason}", StoreWarning, stacklevel=3)
    return None


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
