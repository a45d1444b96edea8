"""A random two-layer teacher network labels Gaussian inputs (the teacher-student setting, e.g.
Saad & Solla 1995, doi:10.1103/PhysRevE.52.4225; used in studies of condensation, e.g. Luo et
al. 2021, arXiv 2007.07497).

    teacher   f*(x) = W2 σ(W1 x + b1)
              W1 (m, d) ~ N(0, 1/d), b1 (m,) ~ N(0, 1) (0 with bias=False), W2 (O, m) ~ N(0, 1/m)
    x         (N, d) ~ N(0, I_d)
    target    (N, O) = f*(x) + noise · N(0, 1)
    loss      "mse" (L = mean over samples of ‖y − y*‖²)

No time axis. The teacher is drawn from ``teacher_seed`` and the samples from ``seed``, so every
seed labels its inputs with the same teacher: a training set, a held-out set and fresh
minibatches drawn by ``gd.train`` (each with its own seed) all come from one function.
``info["teacher"]`` is the :class:`Teacher`; ``teacher=`` reuses one directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gdlens.tasks.base import (
    TaskData,
    check_choice,
    check_dtype,
    check_int,
    check_nonneg,
    gaussian,
    make_generator,
)

__all__ = ["teacher_student", "teacher_student_metric", "Teacher", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "tanh")


@dataclass
class Teacher:
    """``f*(x) = W2 σ(W1 x + b1)`` with σ = ``activation``; float64 weights."""

    W1: Tensor  # (m, d)
    b1: Tensor  # (m,)
    W2: Tensor  # (O, m)
    activation: str

    def __call__(self, x: Tensor) -> Tensor:
        """x (N, d) -> (N, O), computed in x's dtype."""
        h = x @ self.W1.T.to(x.dtype) + self.b1.to(x.dtype)
        h = torch.relu(h) if self.activation == "relu" else torch.tanh(h)
        return h @ self.W2.T.to(x.dtype)


def teacher_student_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``mse``: mean squared error per entry."""
    return {"mse": float((pred - data.target).pow(2).mean())}


def teacher_student(
    n_samples: int,
    input_dim: int = 10,
    teacher_width: int = 4,
    activation: str = "relu",
    output_dim: int = 1,
    noise: float = 0.0,
    bias: bool = True,
    teacher: Teacher | None = None,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
    teacher_seed: int = 0,
) -> TaskData:
    """Samples labelled by a random teacher (module docstring for the definition).

    Args:
        n_samples: N ≥ 1.  input_dim: d ≥ 1.  teacher_width: m ≥ 1.  output_dim: O ≥ 1.
        activation: "relu" or "tanh".  noise: label-noise std ≥ 0.
        bias: draw the hidden biases b1 (else 0).
        teacher: reuse this teacher (input_dim, teacher_width, activation, output_dim and bias
            are then taken from it); otherwise one is drawn from ``teacher_seed``.
        seed: int or torch.Generator for the inputs and the label noise.
        dtype: floating dtype of x and target.
        teacher_seed: int seed of the teacher's weights (independent of ``seed``).
    """
    check_int("n_samples", n_samples, 1)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    gen = make_generator(seed)
    if teacher is None:
        check_int("input_dim", input_dim, 1)
        check_int("teacher_width", teacher_width, 1)
        check_int("output_dim", output_dim, 1)
        check_choice("activation", activation, ACTIVATIONS)
        check_int("teacher_seed", teacher_seed, 0)
        tgen = make_generator(teacher_seed)
        W1 = torch.randn(teacher_width, input_dim, generator=tgen, dtype=torch.float64) / input_dim**0.5
        b1 = torch.randn(teacher_width, generator=tgen, dtype=torch.float64)
        if not bias:
            b1 = torch.zeros_like(b1)
        W2 = torch.randn(output_dim, teacher_width, generator=tgen, dtype=torch.float64) / teacher_width**0.5
        teacher = Teacher(W1=W1, b1=b1, W2=W2, activation=activation)
    elif not isinstance(teacher, Teacher):
        raise ValueError(
            f"teacher must be a Teacher (from a previous call's info['teacher']), got {type(teacher).__name__}"
        )

    x = torch.randn(n_samples, teacher.W1.shape[1], generator=gen, dtype=torch.float64)
    y = teacher(x)
    if noise > 0:
        y = y + gaussian(tuple(y.shape), gen, torch.float64, noise)
    return TaskData(
        x=x.to(dtype), target=y.to(dtype), loss="mse", name="teacher_student", info={"teacher": teacher},
        metric_fn=teacher_student_metric,
    )
