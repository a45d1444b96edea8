"""The embedded run store: SQLite (WAL) for runs, configs and scalar metrics, .npy files for
arrays, state-dict checkpoints; pandas loaders. See :mod:`gdlens.store.store`."""

from gdlens.store.database import StoreError
from gdlens.store.export import FORMATS, export_run
from gdlens.store.store import STATUSES, Run, Store, StoreWarning, canonical_config, open_store

__all__ = ["Store", "Run", "StoreError", "StoreWarning", "open_store", "canonical_config", "export_run", "FORMATS", "STATUSES"]
