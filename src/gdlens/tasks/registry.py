"""Task names for the CLI and the training loop: ``TASKS`` maps each name to its generator,
``get(name, **kwargs)`` binds settings into a :class:`~gdlens.tasks.Task`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gdlens.tasks.base import SplitData, Task, TaskData
from gdlens.tasks.context_integration import context_integration
from gdlens.tasks.flip_flop import flip_flop
from gdlens.tasks.fourier_1d import fourier_1d
from gdlens.tasks.low_rank_forecast import low_rank_forecast
from gdlens.tasks.memory_pro import memory_pro
from gdlens.tasks.modular_addition import modular_addition
from gdlens.tasks.multi_task import multi_task
from gdlens.tasks.sine_generation import sine_generation
from gdlens.tasks.teacher_student import teacher_student

__all__ = ["TASKS", "SIZE_ARGS", "get"]

TASKS: dict[str, Callable[..., TaskData | SplitData]] = {
    "flip_flop": flip_flop,
    "memory_pro": memory_pro,
    "multi_task": multi_task,
    "context_integration": context_integration,
    "sine_generation": sine_generation,
    "low_rank_forecast": low_rank_forecast,
    "modular_addition": modular_addition,
    "fourier_1d": fourier_1d,
    "teacher_student": teacher_student,
}

# the parameter each generator takes its size from (None: a fixed dataset)
SIZE_ARGS: dict[str, str | None] = {
    "flip_flop": "batch_size",
    "memory_pro": "batch_size",
    "multi_task": "batch_size",
    "context_integration": "batch_size",
    "sine_generation": "batch_size",
    "low_rank_forecast": "batch_size",
    "modular_addition": None,
    "fourier_1d": "n_points",
    "teacher_student": "n_samples",
}


def get(name: str, **kwargs: Any) -> Task:
    """The task ``name`` with ``kwargs`` bound (everything but the size and the seed, which
    :meth:`Task.generate` takes). Example: ``get("flip_flop", T=50, bits=2).generate(64, seed=1)``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are {sorted(TASKS)}")
    size_arg = SIZE_ARGS[name]
    for bad in ("seed", size_arg):
        if bad is not None and bad in kwargs:
            raise ValueError(f"pass {bad!r} to Task.generate, not to get()")
    return Task(name=name, fn=TASKS[name], kwargs=dict(kwargs), size_arg=size_arg)
