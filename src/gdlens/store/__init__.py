"""The embedded run store: SQLite (WAL) for runs, configs and scalar metrics, .npy files for
arrays, state-dict checkpoints; pandas loaders. See :mod:`gdlens.store.store`."""

from gdlens.store.store import Run, Store, canonical_config, open_store

__all__ = ["Store", "Run", "open_store", "canonical_config"]
