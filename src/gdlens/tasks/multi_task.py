"""A batch mixing several recurrent tasks, told apart by a one-hot context input (as in Yang et
al. 2019's rule inputs, doi:10.1038/s41593-018-0310-2).

``tasks`` lists K components, each a registered name (``"flip_flop"``), a pair
``(name, kwargs)`` (``("memory_pro", {"variant": "MemoryAnti"})``) or a :class:`~gdlens.tasks.Task`.
Every component must be a recurrent ``"mse"`` task: x (b, T_k, I_k), target (b, T_k, O_k).

Layout of the mixed batch (T = max T_k, I = max I_k, O = max O_k):

- ``x`` (B, T, I + K): channels 0..I_k−1 carry component k's inputs ("shared" layout: channel
  i means input i of whichever task is running, e.g. the fixation cue of every ring task), the
  other input channels are 0; the last K channels are the one-hot context of the trial's task
  (the task cue): on every step of the trial by default, or, with ``cue_period=n``, only on its
  first n steps — the context period of Driscoll et al. 2024 (doi:10.1038/s41593-024-01668-6)
  and of the KPFlow multi-task experiment (arXiv 2507.06381), where the network must remember
  which task it is doing. ``cue_noise=σ`` adds N(0, σ²) to the K cue channels on every step of
  the trial (not on padding), drawn last from the mix's generator, so everything else is the
  same as without it.
- ``target`` (B, T, O): component k's outputs in channels 0..O_k−1, the rest 0.
- trials shorter than T are padded at the end with zeros (context included); ``mask`` (B, T)
  is the component's own mask on its steps (all True when it has none), False on padding.
- ``task_ids`` (B,): each trial's component index. The B trials are split as evenly as possible
  (counts differ by at most one, the first components getting the extra trials) and shuffled.

With ``layout="separate"`` component k gets its own block of input channels and output
channels instead (I = Σ I_k, O = Σ O_k), at the offsets in ``info["in_slices"]`` and
``info["out_slices"]``.

Component k is generated with its own seed drawn from the mix's generator. ``info``:
``labels`` a label per component (its name, with its kwargs when it has any, and ``#k``
appended when two would share a label), ``lengths`` the T_k, ``in_slices`` / ``out_slices``
its channels, ``metric_fns`` its metric functions, and, for the batch as generated, ``parts``
the unpadded component batches and ``rows`` their rows in the mix. ``metric`` reports each
component's metrics under ``"<label>/<key>"``, computed on the padded arrays (so it also holds
on a subset of the trials).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from gdlens.tasks.base import Task, TaskData, check_choice, check_dtype, check_int, check_nonneg, make_generator
from gdlens.tasks.base import gaussian

__all__ = ["multi_task", "multi_task_metric", "LAYOUTS"]

LAYOUTS = ("shared", "separate")

TaskSpec = str | tuple[str, Mapping[str, Any]] | Task


def _as_task(spec: TaskSpec) -> Task:
    from gdlens.tasks.registry import get  # the registry imports this module

    if isinstance(spec, Task):
        return spec
    if isinstance(spec, str):
        return get(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
        return get(spec[0], **spec[1])
    raise ValueError(f"each task must be a name, a (name, kwargs) pair or a Task, got {spec!r}")


def _label(task: Task) -> str:
    if not task.kwargs:
        return task.name
    return task.name + "(" + ", ".join(f"{k}={v}" for k, v in sorted(task.kwargs.items())) + ")"


def multi_task_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """Each component's own metric on its trials, steps and channels: ``"<label>/<key>"``
    (components with no trial in ``data`` are left out)."""
    info = data.info
    out: dict[str, float] = {}
    for k, label in enumerate(info["labels"]):
        rows = (data.task_ids == k).nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        T_k, cin, cout = info["lengths"][k], info["in_slices"][k], info["out_slices"][k]
        part = TaskData(
            x=data.x[rows, :T_k, cin], target=data.target[rows, :T_k, cout], mask=data.mask[rows, :T_k],
            name=label, metric_fn=info["metric_fns"][k],
        )
        for key, value in part.metric(pred[rows, :T_k, cout]).items():
            out[f"{label}/{key}"] = value
    return out


def multi_task(
    tasks: Sequence[TaskSpec],
    batch_size: int,
    layout: str = "shared",
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
    cue_period: int | None = None,
    cue_noise: float = 0.0,
) -> TaskData:
    """A shuffled, padded mix of the component tasks with a one-hot context input (see the
    module docstring for the layout). ``batch_size`` must be at least the number of tasks.
    ``dtype`` overrides the components' own. ``cue_period``: None (the cue stays on for the
    whole trial) or n ≥ 1 (on for the first n steps only); ``cue_noise``: std ≥ 0 of the
    Gaussian noise on the cue channels."""
    if isinstance(tasks, (str, Task)) or not isinstance(tasks, Sequence) or len(tasks) == 0:
        raise ValueError(f"tasks must be a non-empty list of task names, (name, kwargs) pairs or Tasks, got {tasks!r}")
    check_int("batch_size", batch_size, len(tasks))
    check_choice("layout", layout, LAYOUTS)
    if cue_period is not None:
        check_int("cue_period", cue_period, 1)
    cue_noise = check_nonneg("cue_noise", cue_noise)
    dtype = check_dtype(dtype)
    gen = make_generator(seed)
    components = [_as_task(spec) for spec in tasks]
    if any(t.size_arg != "batch_size" for t in components):
        raise ValueError("multi_task mixes recurrent tasks that take a batch_size; got a fixed-dataset task")
    K = len(components)

    counts = [batch_size // K + (k < batch_size % K) for k in range(K)]
    task_ids = torch.repeat_interleave(torch.arange(K), torch.tensor(counts))
    task_ids = task_ids[torch.randperm(batch_size, generator=gen)]
    seeds = torch.randint(0, 2**62, (K,), generator=gen).tolist()

    parts = []
    for task, n, s in zip(components, counts, seeds):
        part = task.fn(**{**task.kwargs, "batch_size": n, "seed": s, "dtype": dtype})
        if not isinstance(part, TaskData) or part.x.dim() != 3 or part.loss != "mse":
            raise ValueError(
                f"multi_task needs recurrent mse tasks with x of shape (B, T, I); {task.name!r} is not one"
            )
        parts.append(part)

    sizes_in = [p.x.shape[2] for p in parts]
    sizes_out = [p.target.shape[2] for p in parts]
    if layout == "shared":
        in_slices = [slice(0, i) for i in sizes_in]
        out_slices = [slice(0, o) for o in sizes_out]
        n_in, n_out = max(sizes_in), max(sizes_out)
    else:
        starts_in = [sum(sizes_in[:k]) for k in range(K)]
        starts_out = [sum(sizes_out[:k]) for k in range(K)]
        in_slices = [slice(a, a + i) for a, i in zip(starts_in, sizes_in)]
        out_slices = [slice(a, a + o) for a, o in zip(starts_out, sizes_out)]
        n_in, n_out = sum(sizes_in), sum(sizes_out)
    T = max(p.x.shape[1] for p in parts)

    x = torch.zeros(batch_size, T, n_in + K, dtype=dtype)
    target = torch.zeros(batch_size, T, n_out, dtype=dtype)
    mask = torch.zeros(batch_size, T, dtype=torch.bool)
    on_trial = torch.zeros(batch_size, T, 1, dtype=dtype)
    rows = []
    for k, part in enumerate(parts):
        idx = (task_ids == k).nonzero().squeeze(1)
        T_k = part.x.shape[1]
        x[idx, :T_k, in_slices[k]] = part.x
        x[idx, : T_k if cue_period is None else min(T_k, cue_period), n_in + k] = 1.0
        on_trial[idx, :T_k] = 1.0
        target[idx, :T_k, out_slices[k]] = part.target
        mask[idx, :T_k] = True if part.mask is None else part.mask
        rows.append(idx)

    if cue_noise > 0:
        x[..., n_in:] += gaussian((batch_size, T, K), gen, dtype, cue_noise) * on_trial

    labels = [_label(t) for t in components]
    labels = [f"{lab}#{k}" if labels.count(lab) > 1 else lab for k, lab in enumerate(labels)]
    info = {
        "parts": parts,
        "rows": rows,
        "labels": labels,
        "in_slices": in_slices,
        "out_slices": out_slices,
        "lengths": [p.x.shape[1] for p in parts],
        "metric_fns": [p.metric_fn for p in parts],
        "cue_period": cue_period,
        "cue_noise": cue_noise,
    }
    return TaskData(
        x=x, target=target, loss="mse", mask=mask, task_ids=task_ids, name="multi_task", info=info,
        metric_fn=multi_task_metric,
    )
