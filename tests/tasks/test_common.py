"""Properties every generator has: determinism per seed, different data per seed, no use of
torch's global RNG, dtype handling, metric of the target, and the Task / registry API."""

from __future__ import annotations

import math

import pytest
import torch

import gdlens.tasks as tasks
from gdlens.tasks import TASKS, SplitData, Task, TaskData, get

# small settings for each registered task; noise on so that every seed matters
SMALL = {
    "flip_flop": dict(batch_size=6, T=20, pulse_prob=0.2, noise=0.1),
    "memory_pro": dict(batch_size=6, T_delay=3, noise=0.1),
    "multi_task": dict(tasks=["flip_flop", ("memory_pro", {"variant": "DelayAnti", "noise": 0.1})], batch_size=6),
    "context_integration": dict(batch_size=6, T_stim=10, T_resp=3),
    "sine_generation": dict(batch_size=6, T=15, noise=0.1),
    "low_rank_forecast": dict(batch_size=6, T=10, dim=5, rank=2),
    "modular_addition": dict(p=7),
    "fourier_1d": dict(n_points=32, noise=0.1),
    "teacher_student": dict(n_samples=12, input_dim=3, teacher_width=2),
}


def test_every_task_has_small_settings():
    assert set(SMALL) == set(TASKS)


def tensors(data: TaskData | SplitData) -> list[torch.Tensor]:
    if isinstance(data, SplitData):
        return tensors(data.train) + tensors(data.test)
    out = [data.x, data.target]
    out += [t for t in (data.mask, data.task_ids) if t is not None]
    return out


def perfect_prediction(data: TaskData) -> torch.Tensor:
    if data.loss == "cross_entropy":
        return 30.0 * torch.nn.functional.one_hot(data.target, data.output_size).to(torch.float64)
    return data.target


@pytest.mark.parametrize("name", sorted(TASKS))
def test_seeds(name):
    fn = TASKS[name]
    state = torch.random.get_rng_state()
    a, b, c = fn(**SMALL[name], seed=11), fn(**SMALL[name], seed=11), fn(**SMALL[name], seed=12)
    assert torch.equal(torch.random.get_rng_state(), state), "the generator touched torch's global RNG"
    for u, v in zip(tensors(a), tensors(b)):
        assert torch.equal(u, v)
    assert any(not torch.equal(u, v) for u, v in zip(tensors(a), tensors(c)))
    # the global RNG's state does not influence the data either
    torch.manual_seed(123)
    d = fn(**SMALL[name], seed=11)
    for u, v in zip(tensors(a), tensors(d)):
        assert torch.equal(u, v)
    # a torch.Generator is accepted in place of an int
    e = fn(**SMALL[name], seed=torch.Generator().manual_seed(11))
    for u, v in zip(tensors(a), tensors(e)):
        assert torch.equal(u, v)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_dtypes_and_metric_of_the_target(name):
    fn = TASKS[name]
    d32, d64 = fn(**SMALL[name], seed=3), fn(**SMALL[name], seed=3, dtype=torch.float64)
    for u, v in zip(tensors(d32), tensors(d64)):
        if v.is_floating_point():
            assert u.dtype == torch.float32 and v.dtype == torch.float64
            torch.testing.assert_close(u, v.float(), rtol=1e-6, atol=1e-6)  # float32 = rounded float64
        else:
            assert torch.equal(u, v)
    for data in (d64.train, d64.test) if isinstance(d64, SplitData) else (d64,):
        m = data.metric(perfect_prediction(data))
        assert m["loss"] == pytest.approx(0.0, abs=1e-10)
        for key, value in m.items():
            assert isinstance(value, float)
            if key.endswith("accuracy"):
                assert value == 1.0
            if key.endswith(("mse", "angle_error")) or "rel_error" in key:
                assert value == pytest.approx(0.0, abs=1e-10)
        if data.mask is not None:
            assert data.mask.dtype == torch.bool and data.mask.shape == data.x.shape[:2]
        if data.x.dim() == 3:
            assert data.target.shape[:2] == data.x.shape[:2]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_metric_on_a_subset_of_the_trials(name):
    data = TASKS[name](**SMALL[name], seed=5, dtype=torch.float64)
    data = data.train if isinstance(data, SplitData) else data
    idx = torch.tensor([4, 1, 3])
    sub = data.subset(idx)
    assert torch.equal(sub.x, data.x[idx]) and torch.equal(sub.target, data.target[idx])
    if data.mask is not None:
        assert torch.equal(sub.mask, data.mask[idx])
    m = sub.metric(perfect_prediction(data)[idx])
    assert m["loss"] == pytest.approx(0.0, abs=1e-10)
    assert all(v == 1.0 for k, v in m.items() if k.endswith("accuracy"))
    # a wrong prediction is scored on the subset's own trials
    wrong = perfect_prediction(data).clone()
    wrong[idx[0]] = wrong[idx[0]].roll(1, dims=-1) if data.loss == "cross_entropy" else wrong[idx[0]] + 1.0
    assert sub.metric(wrong[idx])["loss"] > 0.1
    assert data.subset(slice(0, 2)).x.shape[0] == 2


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_objects(name):
    kwargs = dict(SMALL[name])
    size = kwargs.pop({"teacher_student": "n_samples", "fourier_1d": "n_points"}.get(name, "batch_size"), None)
    task = get(name, **kwargs)
    assert isinstance(task, Task) and task.name == name
    data = task.generate(size, seed=4)
    reference = TASKS[name](**SMALL[name], seed=4)
    for u, v in zip(tensors(data), tensors(reference)):
        assert torch.equal(u, v)
    assert task.loss == data.loss
    assert task.input_size == data.input_size and task.output_size == data.output_size
    if task.size_arg is None:
        with pytest.raises(ValueError, match="fixed dataset"):
            task.generate(10, seed=0)
    # the settings are copied: changing the caller's dict later changes nothing
    kwargs["bogus"] = 1
    assert "bogus" not in task.kwargs


def test_registry_and_package_names():
    assert set(TASKS) == {
        "flip_flop", "memory_pro", "multi_task", "context_integration", "sine_generation",
        "low_rank_forecast", "modular_addition", "fourier_1d", "teacher_student",
    }
    for name, fn in TASKS.items():
        assert getattr(tasks, name) is fn
    with pytest.raises(ValueError, match="unknown task 'flipflop'.*flip_flop"):
        get("flipflop")
    with pytest.raises(ValueError, match="generate"):
        get("flip_flop", seed=3)
    with pytest.raises(ValueError, match="generate"):
        get("flip_flop", batch_size=3)
    assert get("flip_flop", bits=5).input_size == 5


def test_task_data_helpers():
    data = tasks.context_integration(4, T_stim=5, T_resp=2, seed=0)
    assert data.batch_size == 4 and data.input_size == 4 and data.output_size == 1
    moved = data.to(dtype=torch.float64)
    assert moved.x.dtype == torch.float64 and moved.mask.dtype == torch.bool
    assert moved.info["context"].dtype == torch.long and data.x.dtype == torch.float32
    # the loss counts only the masked steps: L = (1/B) Σ_{b,t} m_bt ‖y − y*‖²
    pred = torch.ones_like(data.target)
    expected = ((pred - data.target).pow(2).sum(-1) * data.mask).sum() / 4
    assert math.isclose(data.metric(pred)["loss"], expected.item(), rel_tol=1e-6)
    with pytest.raises(ValueError, match="loss must be one of"):
        TaskData(x=data.x, target=data.target, loss="l1")
    with pytest.raises(ValueError, match="shape"):
        data.loss_value(torch.zeros(4, 6, 1))
