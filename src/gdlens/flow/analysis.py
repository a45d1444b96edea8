"""Analyses of one KP snapshot (KPFlow, arXiv 2507.06381).

Every function takes operators on hidden-state tensors (B, T, H) (or a :class:`KPFlow`) and
returns numbers with error bars:

- effective rank (participation ratio) of K, G and P Pᵀ, in full and reduced to one or more
  of the trial, time and hidden axes ("effective dimension"), with gdlens' definition (the
  partial trace) or the KPFlow authors' (``definition="reference"``);
- top eigenfunctions of G or K, shaped (k, B, T, H);
- misdirection: the Frobenius alignment of G with P Pᵀ, i.e. how much the parameter
  operator K bends the flow away from the direction the propagator alone would take;
- task interference: normalised cross-blocks of G between the trials of two tasks;
- the participation ratio of the hidden states themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gdlens.operators import (
    Eigs,
    Estimate,
    LinearOperator,
    alignment,
    effective_rank,
    partial_effective_rank,
    participation_ratio,
    top_eigs,
)
from gdlens.operators._common import make_generator, rademacher

if TYPE_CHECKING:  # pragma: no cover
    from gdlens.flow.kpflow import KPFlow

__all__ = [
    "AXES",
    "DEFINITIONS",
    "keep_axes",
    "effective_ranks",
    "partial_effective_ranks",
    "top_eigenfunctions",
    "misdirection",
    "task_interference",
    "Interference",
    "hidden_participation_ratio",
]

AXES = {"trials": 0, "batch": 0, "time": 1, "hidden": 2}
DEFINITIONS = ("gdlens", "reference")


def keep_axes(keep: str | int | Sequence[str | int]) -> tuple[int, ...]:
    """The axes of (B, T, H) named by ``keep``: a name of :data:`AXES` (``"trials"`` or its
    alias ``"batch"``, ``"time"``, ``"hidden"``), an axis index, or a tuple of them
    (``("batch", "time")`` → ``(0, 1)``), sorted and checked (one to two distinct axes)."""
    items = (keep,) if isinstance(keep, (str, int)) else tuple(keep)
    axes = []
    for item in items:
        if isinstance(item, str):
            if item not in AXES:
                raise ValueError(f"keep must be one of {sorted(AXES)} or a tuple of them, got {item!r}")
            axes.append(AXES[item])
        elif isinstance(item, int) and not isinstance(item, bool) and -3 <= item < 3:
            axes.append(item % 3)
        else:
            raise ValueError(f"keep must be one of {sorted(AXES)}, an axis 0..2, or a tuple of them; got {item!r}")
    if not axes or len(set(axes)) != len(axes) or len(axes) == 3:
        raise ValueError(f"keep must name one or two distinct axes of (B, T, H), got {keep!r}")
    return tuple(sorted(axes))


def _symmetric_operators(kp: KPFlow) -> dict[str, LinearOperator]:
    """K, G and P Pᵀ: P is not symmetric, so its rank is measured through P Pᵀ, whose
    participation ratio is (Σσ²)²/Σσ⁴ in P's singular values σ."""
    return {"K": kp.K, "P": kp.P @ kp.P.T, "G": kp.G}


def effective_ranks(
    kp: KPFlow, method: str = "hutch++", num_matvecs: int = 30, seed: int = 0
) -> dict[str, Estimate]:
    """Participation ratios ``(tr A)²/‖A‖_F²`` of K, P Pᵀ (reported as "P") and G, over all
    B·T·H dimensions (at most B·T·H). Warns (RuntimeWarning, naming float64) when one is not
    finite."""
    return {name: effective_rank(op, method, num_matvecs, seed) for name, op in _symmetric_operators(kp).items()}


def partial_effective_ranks(
    kp: KPFlow,
    keep: str | int | Sequence[str | int] = "time",
    method: str = "auto",
    num_samples: int = 32,
    seed: int = 0,
    *,
    definition: str = "gdlens",
    chunk_size: int | None = None,
) -> dict[str, Estimate]:
    """Effective dimension of K, P and G over some axes only (``"K"``, ``"P"``, ``"G"``).

    Args:
        kp: the snapshot; its operators act on (B, T, H).
        keep: the axes kept (:func:`keep_axes`): ``"time"``, ``"trials"`` (alias ``"batch"``),
            ``"hidden"``, or a tuple such as ``("batch", "time")``. The others are reduced.
        method, num_samples, seed, chunk_size: as in
            :func:`gdlens.operators.partial_effective_rank` (``"hutchinson"``: ``num_samples · n_κ``
            matvecs; ``"exact"``: B·T·H matvecs, memory bounded by ``chunk_size``; ``"auto"``,
            the default: the cheaper of the two).
        definition: ``"gdlens"``: the participation ratio of ``R = Tr_τ A`` for A = K, P Pᵀ, G
            (the partial trace over the other axes). ``"reference"``: the KPFlow authors' code
            (arXiv 2507.06381), the participation ratio of ``(I_κ ⊗ 1)ᵀ (A Aᵀ) (I_κ ⊗ 1)`` for
            A = K, P, G — inputs constant along the reduced axes, outputs summed over them, and
            the Gram A Aᵀ of each operator (K², P Pᵀ, G²). Deterministic (n_κ products with
            A Aᵀ); use it to compare numbers one to one with that code. The two agree only in
            special cases; the paper plots K over trials × time and P over time.

    Warns (RuntimeWarning, naming float64) when a value is not finite.
    """
    if definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
    axes = keep_axes(keep)
    if definition == "reference":
        ops = {"K": kp.K, "P": kp.P, "G": kp.G}
        return {
            name: partial_effective_rank(op, axes, chunk_size=chunk_size, contraction="ones", gram=True)
            for name, op in ops.items()
        }
    return {
        name: partial_effective_rank(op, axes, method, num_samples, seed, chunk_size)
        for name, op in _symmetric_operators(kp).items()
    }


def top_eigenfunctions(op: LinearOperator, k: int = 5, seed: int = 0, **kwargs) -> Eigs:
    """The k leading eigenpairs of a symmetric operator on (B, T, H) (G or K): values
    descending, eigenfunctions shaped (k, B, T, H) — the hidden-state patterns that gradient
    flow moves fastest."""
    return top_eigs(op, k, seed=seed, **kwargs)


def misdirection(kp: KPFlow, method: str = "hutch++", num_matvecs: int = 30, seed: int = 0) -> Estimate:
    """``alignment(G, P Pᵀ) = ⟨P K Pᵀ, P Pᵀ⟩_F / (‖G‖_F ‖P Pᵀ‖_F)``: 1 when K acts as a
    multiple of the identity (the flow goes where the propagator alone sends it), smaller the
    more the parameter operator redirects it."""
    return alignment(kp.G, kp.P @ kp.P.T, method, num_matvecs, seed)


@dataclass(frozen=True)
class Interference:
    """Task interference matrix ``I[i, j] = ‖G_ij‖_F² / (‖G_ii‖_F ‖G_jj‖_F)`` ∈ [0, 1].

    G_ij is the block of G from the trials of task j to the trials of task i. Writing
    G = M Mᵀ (M = dz/dθ), ``‖G_ij‖_F² = ⟨M_iᵀM_i, M_jᵀM_j⟩_F``, so I[i, j] is the alignment of
    the two tasks' parameter-space kernels: 0 when their gradients move disjoint parameter
    directions, 1 when they move the same ones in the same proportions.
    """

    tasks: tuple[int, ...]
    matrix: Tensor
    stderr: Tensor | None


def task_interference(
    G: LinearOperator,
    task_ids: Tensor,
    method: str = "hutchinson",
    num_probes: int = 20,
    seed: int | torch.Generator = 0,
) -> Interference:
    """Interference between the tasks of a multi-task batch (see :class:`Interference`).

    Args:
        G: symmetric PSD operator on (B, T, H).
        task_ids: (B,) integer task of each trial.
        method: ``"hutchinson"`` (``num_probes`` Rademacher probes per task, all tasks in one
            batched call; jackknife standard errors) or ``"exact"`` (B·T·H matvecs).
    """
    if method not in ("hutchinson", "exact"):
        raise ValueError(f"unknown task_interference method {method!r}; allowed: 'hutchinson', 'exact'")
    B = G.shape_in[0]
    if task_ids.shape != (B,):
        raise ValueError(f"task_ids must have shape (B,) = ({B},) for G on {G.shape_in}, got {tuple(task_ids.shape)}")
    tasks = tuple(int(t) for t in torch.unique(task_ids).tolist())
    masks = torch.stack([(task_ids == t) for t in tasks]).to(G.dtype).to(G.device)  # (n_tasks, B)
    per_trial = math.prod(G.shape_in[1:])
    with torch.no_grad():
        if method == "exact":
            # F[j, i] = Σ over basis vectors e supported on task j of ‖(G e)_{task i}‖²
            F = torch.zeros(len(tasks), len(tasks), dtype=G.dtype, device=G.device)
            eye = torch.eye(per_trial, dtype=G.dtype, device=G.device).reshape(per_trial, *G.shape_in[1:])
            for b in range(B):
                E = torch.zeros(per_trial, *G.shape_in, dtype=G.dtype, device=G.device)
                E[:, b] = eye
                out = G.matmat(E).pow(2).reshape(per_trial, B, -1).sum((0, 2))  # (B,)
                F[tasks.index(int(task_ids[b]))] += masks @ out
            samples = F[:, None, :]
        else:
            gen = make_generator(seed, G.device)
            n = G.size_in
            Z = rademacher(len(tasks) * num_probes, n, gen, G.dtype, G.device).reshape(
                len(tasks), num_probes, B, per_trial
            )
            Z = Z * masks[:, None, :, None]
            out = G.matmat(Z.reshape(-1, *G.shape_in)).reshape(len(tasks), num_probes, B, per_trial)
            samples = torch.einsum("jmbp,ib->jmi", out.pow(2), masks)  # (task j, probe, task i)

    def normalise(F: Tensor) -> Tensor:  # F[j, i] estimates ‖G_ij‖_F²
        F = (F + F.T) / 2
        d = torch.sqrt(torch.diagonal(F).clamp_min(torch.finfo(F.dtype).tiny))
        return F / (d[:, None] * d[None, :])

    matrix = normalise(samples.mean(1))
    stderr = None
    m = samples.shape[1]
    if method == "hutchinson" and m >= 3:
        keep = torch.ones(m, dtype=torch.bool)
        loo = []
        for i in range(m):
            keep[i] = False
            loo.append(normalise(samples[:, keep].mean(1)))
            keep[i] = True
        loo_t = torch.stack(loo)
        stderr = torch.sqrt((m - 1) / m * ((loo_t - loo_t.mean(0)) ** 2).sum(0))
    elif method == "exact":
        stderr = torch.zeros_like(matrix)
    return Interference(tasks, matrix, stderr)


def hidden_participation_ratio(z: Tensor, centre: bool = True) -> float:
    """``PR = (Σλ)² / Σλ²`` of the covariance of hidden states z (B, T, H) over the B·T samples
    (λ its eigenvalues; centred by default): how many dimensions the activity occupies.
    :func:`gdlens.operators.participation_ratio` of the B·T rows (nan for activity with no
    variance)."""
    if z.dim() != 3:
        raise ValueError(f"z must have shape (B, T, H), got {tuple(z.shape)}")
    return participation_ratio(z.reshape(-1, z.shape[-1]), centre=centre)
