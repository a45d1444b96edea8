"""gd.sweep with the local backends: every config runs once, reruns skip, interrupted sweeps resume."""

import pytest

import gdlens as gd
from gdlens.store import open_store
from gdlens.sweep import SweepSpec, normalize_config, pending, run_config, sweep
from gdlens.sweep.runner import build_model, build_probes


def _spec(tiny_base, name="s", seeds=2, **grid):
    return SweepSpec(base=tiny_base(), grid=grid or {"model.g": [0.5, 1.0]}, seeds=seeds, name=name)


def test_process_pool_runs_each_config_once_and_rerun_skips(tmp_path, tiny_base):
    store = open_store(tmp_path / "store")
    spec = _spec(tiny_base)
    result = sweep(spec, store, backend="local", workers=2)
    assert result.errors == {} and result.skipped == 0 and result.ran == 4
    runs = store.runs(sweep="s", as_frame=False)
    assert len(runs) == 4 and all(r["status"] == "completed" for r in runs)
    assert sorted(r["id"] for r in runs) == sorted(result.run_ids)
    assert {(r["config"]["model"]["g"], r["config"]["seed"]) for r in runs} == {(g, s) for g in (0.5, 1.0) for s in (0, 1)}
    assert all("rel_change/total" in r["summary"] for r in runs)
    again = sweep(spec, store, backend="local", workers=2)
    assert again.skipped == 4 and again.ran == 0 and again.run_ids == result.run_ids
    assert len(store.runs(as_frame=False)) == 4
    frame = again.frame()
    assert len(frame) == 4 and "summary.final_train_loss" in frame


def test_resume_after_a_partial_sweep(tmp_path, tiny_base):
    store = open_store(tmp_path / "store")
    spec = _spec(tiny_base, seeds=3)
    configs = spec.expand()
    first = sweep(configs[:2], store, backend="serial", name="s")  # the sweep "stopped" after two configs
    assert first.ran == 2
    todo, _ = pending([normalize_config(c) for c in configs], store)
    assert todo == [2, 3, 4, 5]
    rest = sweep(spec, store, backend="serial")
    assert rest.skipped == 2 and rest.ran == 4 and rest.run_ids[:2] == first.run_ids
    assert len(store.runs(status="completed", as_frame=False)) == 6


class _Stop:
    name, schedule = "stop", gd.probes.Schedule(every=1)

    def compute(self, ctx):
        if ctx.step == 7:
            raise KeyboardInterrupt
        return {}


def test_interrupted_run_is_resumed_from_its_checkpoint(tmp_path, tiny_base):
    store = open_store(tmp_path / "store")
    config = normalize_config(tiny_base(steps=20))
    task = gd.tasks.get(**config["task"])
    model = build_model(config, task)
    with pytest.raises(KeyboardInterrupt):
        gd.train(model, task, optimizer="adam", lr=config["lr"], steps=20, probes=build_probes(config["probes"], False)
                 + [_Stop()], store=store, config=config, seed=0, sweep="s", progress=False, checkpoint_every=5)
    (run,) = store.runs(as_frame=False)
    assert run["status"] == "interrupted"
    result = sweep([config], store, backend="serial", name="s")
    assert result.run_ids == [run["id"]]
    (after,) = store.runs(as_frame=False)
    assert after["status"] == "completed"
    steps, _ = store.run(run["id"]).metrics(names=["train_step/loss"], as_frame=False)["train_step/loss"]
    assert sorted(steps.tolist()) == list(range(20))


def test_run_config_returns_the_completed_run(tmp_path, tiny_base):
    config = tiny_base(steps=3)
    a = run_config(config, str(tmp_path / "store"))
    assert run_config(config, str(tmp_path / "store")) == a


@pytest.mark.parametrize("extra", [{"optimizer": "sgd", "momentum": 0.9}, {"optimizer": "adam", "betas": [0.5, 0.9]}])
def test_run_config_passes_momentum_and_betas_to_the_optimizer(tmp_path, tiny_base, extra):
    """A config's momentum / betas reach the optimizer: the losses equal a direct gd.train with
    them, and differ from the defaults."""
    import numpy as np
    import torch

    config = normalize_config({**tiny_base(steps=8), **extra})
    store = open_store(tmp_path / "store")
    losses = store.metrics(run_config(config, store), names=["train_step/loss"])["value"].to_numpy()

    def direct(**kw):
        task = gd.tasks.get(**config["task"])
        torch.manual_seed(config["seed"])
        model = build_model(config, task)
        return gd.train(model, task, optimizer=config["optimizer"], lr=config["lr"], steps=8, seed=config["seed"],
                        probes=[], progress=False, **kw).losses

    kw = {"momentum": 0.9} if "momentum" in extra else {"betas": (0.5, 0.9)}
    assert np.allclose(losses, direct(**kw), rtol=1e-6, atol=0)
    assert not np.allclose(losses, direct(), rtol=1e-6, atol=0)


def test_failures_are_reported_not_raised(tmp_path, tiny_base):
    """A config the schema accepts but training rejects (an activation the MLP does not know)
    is reported; the other configs run."""
    bad = dict(tiny_base(), model={"name": "mlp", "hidden": 4, "activation": "nope"})
    result = sweep([tiny_base(steps=3), bad], tmp_path / "store", backend="serial")
    assert list(result.errors) == [1] and "nope" in result.errors[1] and result.run_ids[0] is not None


def test_an_invalid_config_stops_the_sweep_before_anything_trains(tmp_path, tiny_base):
    bad = dict(tiny_base(), model={"name": "nope", "hidden": 4})
    with pytest.raises(ValueError, match=r"config 1: unknown model 'nope'"):
        sweep([tiny_base(steps=3), bad], tmp_path / "store", backend="serial")
    assert gd.open_store(tmp_path / "store").runs().empty


def test_bad_backend(tmp_path, tiny_base):
    with pytest.raises(ValueError):
        sweep([tiny_base()], tmp_path / "store", backend="slurm")


def test_unguarded_script_gets_a_clear_error(tmp_path):
    """A script that calls gd.sweep at import time breaks the spawn pool (each worker re-imports
    it); the error names the ``if __name__ == "__main__":`` fix instead of BrokenProcessPool."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import gdlens as gd\n"
        "spec = gd.sweep.SweepSpec(base={'task': {'name': 'teacher_student', 'input_dim': 3},"
        " 'model': {'name': 'mlp', 'hidden': 4}, 'steps': 2, 'probes': ['metrics']}, seeds=2)\n"
        "gd.sweep(spec, store='store', workers=2)\n"
    )
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert 'if __name__ == "__main__":' in out.stderr
    assert "RuntimeError: a sweep worker process died" in out.stderr
