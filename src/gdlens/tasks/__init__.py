"""Data generators: vectorised, seeded, one small module per task.

Every generator takes an explicit ``seed`` (an int or a torch.Generator; torch's global RNG is
never used) and a floating ``dtype`` (float32 by default), and returns a :class:`TaskData`
(x, target, loss, optional mask / task_ids, ``metric(pred)``) or, for a fixed dataset split
in two, a :class:`SplitData` (train, test). Shapes and conventions: :mod:`gdlens.tasks.base`.

Recurrent tasks (x (B, T, I), target (B, T, O), "mse"):
    flip_flop, memory_pro, multi_task, context_integration, sine_generation, low_rank_forecast
Static tasks (no time axis):
    modular_addition (SplitData, "cross_entropy"), fourier_1d, teacher_student ("mse")

``TASKS`` maps names to generators; ``get(name, **kwargs)`` returns a :class:`Task` whose
``generate(batch_size, seed)`` draws data.
"""

from gdlens.tasks.base import SplitData, Task, TaskData
from gdlens.tasks.context_integration import context_integration
from gdlens.tasks.flip_flop import flip_flop, flip_flop_pulses, flip_flop_targets
from gdlens.tasks.fourier_1d import fourier_1d
from gdlens.tasks.low_rank_forecast import low_rank_forecast
from gdlens.tasks.memory_pro import memory_pro
from gdlens.tasks.modular_addition import modular_addition
from gdlens.tasks.multi_task import multi_task
from gdlens.tasks.registry import TASKS, get
from gdlens.tasks.sine_generation import sine_generation
from gdlens.tasks.teacher_student import Teacher, teacher_student

__all__ = [
    "TaskData",
    "SplitData",
    "Task",
    "TASKS",
    "get",
    "flip_flop",
    "flip_flop_pulses",
    "flip_flop_targets",
    "memory_pro",
    "multi_task",
    "context_integration",
    "sine_generation",
    "low_rank_forecast",
    "modular_addition",
    "fourier_1d",
    "teacher_student",
    "Teacher",
]
