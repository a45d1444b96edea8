"""The vectorised ensemble gives the same per-run metrics as separate gd.train runs with the
same seeds, and records each member as its own run."""

import numpy as np
import pytest

import gdlens as gd
from gdlens.config import config_key
from gdlens.store import open_store
from gdlens.sweep import ensemble_groups, normalize_config, pending, sweep, train_ensemble
from gdlens.sweep.runner import build_model, build_probes


def _separate(config):
    config = normalize_config(config)
    task = gd.tasks.get(**config["task"])
    model = build_model(config, task)
    return gd.train(
        model, task, optimizer=config["optimizer"], lr=config["lr"], steps=config["steps"],
        batch_size=config["batch_size"], weight_decay=config["weight_decay"], seed=config["seed"],
        probes=build_probes(config["probes"], isinstance(model, gd.models.StateSpaceModel)), progress=False,
    )


@pytest.mark.parametrize("optimizer,weight_decay,batch_size", [("adam", 0.0, None), ("sgd", 1e-3, 32), ("adamw", 1e-2, None)])
def test_ensemble_matches_separate_runs(tiny_base, optimizer, weight_decay, batch_size):
    base = dict(tiny_base(steps=25), optimizer=optimizer, weight_decay=weight_decay, batch_size=batch_size,
                probes="default")
    configs = [
        dict(base, seed=s, lr=lr, model=dict(base["model"], g=g))
        for s, lr, g in [(0, 1e-2, 1.0), (1, 5e-3, 0.5), (2, 2e-2, 2.0), (3, 1e-2, 0.1)]
    ]
    ens = train_ensemble(configs)
    assert ens.losses.shape == (4, 25)
    for i, config in enumerate(configs):
        ref = _separate(config)
        np.testing.assert_allclose(ens.losses[i], ref.losses, rtol=1e-5, atol=1e-7)
        for key in ("final_train_loss", "metrics/test/loss", "rel_change/total", "param_norm/total"):
            np.testing.assert_allclose(ens.summaries[i][key], ref.summary[key], rtol=1e-5, atol=1e-7)
        assert set(ens.recorders[i].history) == set(ref.recorder.history)


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm"])
def test_recurrent_ensemble_matches_separate_runs(model):
    """gdlens' recurrent models train as one ensemble through functional_call (their readout
    submodule is reachable), with fresh minibatches per member seed and the recurrent default
    probes."""
    base = {"task": {"name": "flip_flop", "T": 12, "bits": 2, "pulse_prob": 0.2},
            "model": {"name": model, "hidden": 8}, "optimizer": "adam", "steps": 15, "batch_size": 8,
            "probes": "default"}
    configs = [dict(base, seed=s, lr=lr, model=dict(base["model"], g=g))
               for s, lr, g in [(0, 1e-2, 1.0), (1, 3e-3, 0.5), (2, 2e-2, 1.5)]]
    assert ensemble_groups(configs) == ([[0, 1, 2]], [])
    ens = train_ensemble(configs)
    for i, config in enumerate(configs):
        ref = _separate(config)
        np.testing.assert_allclose(ens.losses[i], ref.losses, rtol=1e-4, atol=1e-6)
        for key in ("metrics/test/loss", "hidden/participation_ratio", "rel_change/total"):
            np.testing.assert_allclose(ens.summaries[i][key], ref.summary[key], rtol=1e-4, atol=1e-6)
        assert set(ens.recorders[i].history) == set(ref.recorder.history)


def test_ensemble_runs_land_in_the_store_and_are_skipped(tmp_path, tiny_base):
    store = open_store(tmp_path / "store")
    spec = {"base": tiny_base(steps=10), "grid": {"model.g": [0.5, 1.0], "lr": [1e-2, 1e-3]}, "seeds": 2, "name": "e"}
    result = sweep(spec, store, backend="serial", ensemble=True)
    assert result.errors == {} and result.ran == 8 and None not in result.run_ids
    runs = store.runs(sweep="e", as_frame=False)
    assert len(runs) == 8 and all(r["status"] == "completed" and r["summary"]["ensemble_size"] == 8 for r in runs)
    # an ensemble member records the config a separate run of it records: the same identity, class and size
    assert all(config_key(r["config"]) == config_key(c) for r, c in zip(runs, result.configs))
    assert runs[0]["config"]["model"]["class"] == "MLP" and runs[0]["config"]["model"]["num_params"] > 0
    losses = store.run(runs[0]["id"]).metrics(names=["train_step/loss"], as_frame=False)["train_step/loss"]
    assert losses[0].tolist() == list(range(10))
    assert sweep(spec, store, backend="serial", ensemble=True).skipped == 8
    assert pending(result.configs, store)[0] == []


def test_groups_and_divergence(tiny_base):
    mlp = [dict(tiny_base(), seed=s) for s in range(3)]
    transformer = dict(tiny_base(), model={"name": "transformer", "hidden": 4})
    other = dict(tiny_base(), steps=99)
    groups, rest = ensemble_groups(mlp + [transformer, other])
    assert groups == [[0, 1, 2]] and rest == [3, 4]
    with pytest.raises(ValueError):
        train_ensemble([mlp[0], other])
    boom = [dict(tiny_base(steps=30), optimizer="sgd", lr=lr, seed=0) for lr in (1e-2, 1e4)]
    ens = train_ensemble(boom)
    assert ens.summaries[0]["diverged_at"] is None and ens.summaries[1]["diverged_at"] is not None
    np.testing.assert_allclose(ens.losses[0], _separate(boom[0]).losses, rtol=1e-5, atol=1e-7)


def test_the_loop_and_the_ensemble_end_runs_the_same_way(tmp_path, tiny_base):
    """One run lifecycle (gdlens.train.lifecycle): a converging and a diverging config end with
    the same status, summary keys, diverged_at and stored losses whether trained by gd.train
    (run_config) or as members of one vectorised ensemble."""
    from gdlens.sweep import run_config

    boom = [dict(tiny_base(steps=30), optimizer="sgd", lr=lr, seed=0) for lr in (1e-2, 1e4)]
    alone = open_store(tmp_path / "alone")
    ids = [run_config(c, alone) for c in boom]
    together = open_store(tmp_path / "together")
    ens = train_ensemble(boom, together)
    for a, b in zip((alone.run(i) for i in ids), (together.run(i) for i in ens.run_ids)):
        assert a.status == b.status and set(a.summary) | {"ensemble_size"} == set(b.summary)
        assert a.summary["diverged_at"] == b.summary["diverged_at"]
        la = a.metrics(names=["train_step/loss"], as_frame=False)["train_step/loss"]
        lb = b.metrics(names=["train_step/loss"], as_frame=False)["train_step/loss"]
        assert la[0].tolist() == lb[0].tolist()
    assert [alone.run(i).status for i in ids] == ["completed", "diverged"]
