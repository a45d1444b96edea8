"""The Dask backend on a LocalCluster of two worker processes on loopback: every run lands in
the store exactly once, and a rerun through Dask skips them all."""

import pytest

from gdlens.store import open_store
from gdlens.store.store import canonical_config
from gdlens.sweep import SweepSpec, sweep

pytest.importorskip("dask.distributed")


def test_local_cluster_two_workers_each_run_exactly_once(tmp_path, tiny_base):
    from dask.distributed import LocalCluster

    store = open_store(tmp_path / "store")
    spec = SweepSpec(base=tiny_base(steps=8), grid={"model.hidden": [4, 8, 12]}, seeds=2, name="dask")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        result = sweep(spec, store, backend="dask", address=cluster.scheduler_address)
        assert result.errors == {} and result.ran == 6
        runs = store.runs(sweep="dask", as_frame=False)
        assert len(runs) == 6 and all(r["status"] == "completed" for r in runs)
        keys = [canonical_config({"model": r["config"]["model"], "seed": r["config"]["seed"]}) for r in runs]
        assert len(set(keys)) == 6
        assert sorted(result.run_ids) == sorted(r["id"] for r in runs)
        again = sweep(spec, store, backend="dask", address=cluster.scheduler_address)
        assert again.skipped == 6 and again.ran == 0
    assert len(store.runs(as_frame=False)) == 6


def test_dask_without_address_starts_a_loopback_cluster(tmp_path, tiny_base):
    result = sweep([tiny_base(steps=3), dict(tiny_base(steps=3), seed=1)], tmp_path / "store", backend="dask", workers=2)
    assert result.errors == {} and result.ran == 2
    assert len(open_store(tmp_path / "store").runs(status="completed", as_frame=False)) == 2
