"""Resume that cannot go wrong quietly: no store, another configuration, a prefix, a
damaged checkpoint, and ``gd.resume`` rebuilding everything from the stored config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.probes import ParameterNormProbe, Schedule
from gdlens.store import StoreError, StoreWarning

CONFIG = {"task": {"name": "flip_flop", "T": 10, "bits": 2, "pulse_prob": 0.2}, "model": {"name": "rnn", "hidden": 8},
          "steps": 30, "batch_size": 8, "lr": 1e-2, "seed": 0, "probes": [{"name": "param_norm", "schedule": 5}]}


def small_rnn(seed: int = 0) -> gd.models.RNN:
    torch.manual_seed(seed)
    return gd.models.RNN(3, 8, 3)


def task():
    return gd.tasks.get("flip_flop", T=12, bits=3, pulse_prob=0.2)


class StopAt:
    """Raises KeyboardInterrupt at ``step``: a Ctrl-C in the middle of training."""

    name, schedule = "stop", Schedule(every=1)

    def __init__(self, step: int) -> None:
        self.at = step

    def compute(self, ctx):
        if ctx.step == self.at:
            raise KeyboardInterrupt
        return {}


def interrupted_run(store, stop: int = 25, **kwargs) -> str:
    settings = dict(steps=40, lr=1e-2, batch_size=8, checkpoint_every=10, progress=False, seed=0)
    settings.update(kwargs)
    with pytest.raises(KeyboardInterrupt):
        gd.train(small_rnn(), task(), store=store, probes=[StopAt(stop)], **settings)
    (record,) = gd.open_store(store).runs(as_frame=False)
    assert record["status"] == "interrupted"
    return record["id"]


def test_resume_without_a_store_is_refused_before_any_training():
    with pytest.raises(ValueError, match="needs store="):
        gd.train(small_rnn(), task(), steps=5, resume="abc123", progress=False)


@pytest.mark.parametrize("change, key", [
    (dict(steps=60), "steps"),
    (dict(batch_size=4), "batch_size"),
    (dict(seed=1), "seed"),
    (dict(optimizer="sgd"), "optimizer"),
    (dict(lr=0.1), "lr"),
    (dict(model=gd.models.GRU), "model.class"),
    (dict(model=lambda: gd.models.RNN(3, 16, 3)), "model.num_params"),
])
def test_resume_with_another_configuration_is_refused_naming_the_keys(tmp_path, change, key):
    run_id = interrupted_run(tmp_path)
    settings = dict(steps=40, lr=1e-2, batch_size=8, progress=False, seed=0, probes=[])
    factory = change.pop("model", None)
    settings.update(change)
    torch.manual_seed(0)
    model = factory(3, 8, 3) if factory is gd.models.GRU else factory() if factory else small_rnn()
    with pytest.raises(ValueError, match=rf"run {run_id} was stored with another configuration.*{key} \(stored"):
        gd.train(model, task(), store=tmp_path, resume=run_id, **settings)
    assert gd.open_store(tmp_path).run(run_id).status == "interrupted"


def test_resume_by_prefix_keeps_the_run_running_while_it_trains(tmp_path):
    """Checked mid-run, from another handle on the store (as a sweep worker sees it)."""
    run_id = interrupted_run(tmp_path)
    seen = []

    class Watch:
        name, schedule = "watch", Schedule(every=7)

        def compute(self, ctx):
            other = gd.open_store(tmp_path)
            seen.append((ctx.step, other.run(run_id).status, [r["id"] for r in other.runs(status="interrupted",
                                                                                        as_frame=False)]))
            with pytest.raises(StoreError, match="running"):
                other.resume(run_id[:5])
            return {}

    result = gd.train(small_rnn(), task(), steps=40, lr=1e-2, batch_size=8, seed=0, store=tmp_path,
                      resume=run_id[:4], probes=[Watch()], progress=False)
    assert result.run.id == run_id and result.run.status == "completed"
    assert seen and all(status == "running" and interrupted == [] for _, status, interrupted in seen)


def test_a_truncated_checkpoint_resumes_from_the_newest_intact_one(tmp_path):
    reference = gd.train(small_rnn(), task(), steps=40, lr=1e-2, batch_size=8, seed=0, progress=False, probes=[])
    run_id = interrupted_run(tmp_path)
    newest = tmp_path / "checkpoints" / run_id / "20.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(StoreWarning, match=rf"checkpoint {newest} .*damaged"):
        resumed = gd.train(small_rnn(seed=3), task(), steps=40, lr=1e-2, batch_size=8, seed=0, store=tmp_path,
                           resume=run_id, probes=[], progress=False)
    assert resumed.run.status == "completed"
    assert np.allclose(resumed.losses, reference.losses, rtol=1e-5, atol=1e-6)


def _config_run(store, stop: int | None):
    from gdlens.config.build import build_model, build_task, train_kwargs

    kwargs = train_kwargs(CONFIG)
    model = build_model(CONFIG)
    probes = [ParameterNormProbe(schedule=5)] + ([StopAt(stop)] if stop is not None else [])
    return gd.train(model, build_task(CONFIG), probes=probes, store=store, name="cfg", sweep="s1", progress=False,
                    checkpoint_every=10, **kwargs)


def test_gd_resume_rebuilds_task_model_optimizer_and_probes_from_the_stored_config(tmp_path):
    reference = _config_run(None, stop=None)
    with pytest.raises(KeyboardInterrupt):
        _config_run(tmp_path, stop=17)
    (record,) = gd.open_store(tmp_path).runs(as_frame=False)
    resumed = gd.resume(record["id"][:6], tmp_path, progress=False)
    assert resumed.run.id == record["id"] and resumed.run.status == "completed"
    assert np.allclose(resumed.losses, reference.losses, rtol=1e-5, atol=1e-6)
    steps, norms = resumed.series("param_norm/total")
    ref_steps, ref_norms = reference.series("param_norm/total")
    assert list(steps) == list(ref_steps) and np.allclose(norms, ref_norms, rtol=1e-5)
    (after,) = gd.open_store(tmp_path).runs(as_frame=False)
    assert after["name"] == "cfg" and after["sweep"] == "s1"
    with pytest.raises(StoreError, match="already completed"):
        gd.resume(record["id"], tmp_path, progress=False)


def test_gd_resume_refuses_what_it_cannot_rebuild_or_find(tmp_path):
    run_id = interrupted_run(tmp_path)
    with pytest.raises(ValueError, match=rf"built in Python \(RNN\).*resume={run_id!r}"):
        gd.resume(run_id, tmp_path, progress=False)
    with pytest.raises(KeyError, match="no run"):
        gd.resume("nope", tmp_path, progress=False)
    with pytest.raises(StoreError, match="no gdlens store"):
        gd.resume(run_id, tmp_path / "typo", progress=False)
    assert not (tmp_path / "typo").exists()
