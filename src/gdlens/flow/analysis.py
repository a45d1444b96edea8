"""Analyses of one KP snapshot (KPFlow, arXiv 2507.06381).

Every function takes operators on hidden-state tensors (B, T, H) (or a :class:`KPFlow`) and
returns numbers with error bars:

- effective rank (participation ratio) of K, G and P Pᵀ, in full and reduced to the time,
  trial or hidden axis ("effective dimension");
- top eigenfunctions of G or K, shaped (k, B, T, H);
- misdirection: the Frobenius alignment of G with P Pᵀ, i.e. how much the parameter
  operator K bends the flow away from the direction the propagator alone would take;
- task interference: normalised cross-blocks of G between the trials of two tasks;
- the participation ratio of the hidden states themselves.
"""

from __future__ import annotations

import math
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
    top_eigs,
)
from gdlens.operators._common import make_generator, rademacher

if TYPE_CHECKING:  # pragma: no cover
    from gdlens.flow.kpflow import KPFlow

__all__ = [
    "AXES",
    "effective_ranks",
    "partial_effective_ranks",
    "top_eigenfunctions",
    "misdirection",
    "task_interference",
    "Interference",
    "hidden_participation_ratio",
]

AXES = {"trials": 0, "time": 1, "hidden": 2}


def _symmetric_operators(kp: KPFlow) -> dict[str, LinearOperator]:
    """K, G and P Pᵀ: P is not symmetric, so its rank is measured through P Pᵀ, whose
    participation ratio is (Σσ²)²/Σσ⁴ in P's singular values σ."""
    return {"K": kp.K, "P": kp.P @ kp.P.T, "G": kp.G}


def effective_ranks(
    kp: KPFlow, method: str = "hutch++", num_matvecs: int = 30, seed: int = 0
) -> dict[str, Estimate]:
    """Participation ratios ``(tr A)²/‖A‖_F²`` of K, P Pᵀ (reported as "P") and G."""
    return {name: effective_rank(op, method, num_matvecs, seed) for name, op in _symmetric_operators(kp).items()}


def partial_effective_ranks(
    kp: KPFlow, keep: str = "time", method: str = "hutchinson", num_samples: int = 8, seed: int = 0
) -> dict[str, Estimate]:
    """Effective dimension of K, P Pᵀ and G over one axis only: each operator is reduced to
    ``keep`` ∈ {"trials", "time", "hidden"} by tracing out the two other axes of (B, T, H), and
    the participation ratio of the reduced matrix is returned (see
    :func:`gdlens.operators.partial_effective_rank`)."""
    if keep not in AXES:
        raise ValueError(f"keep must be one of {sorted(AXES)}, got {keep!r}")
    return {
        name: partial_effective_rank(op, AXES[keep], method, num_samples, seed)
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
    (λ its eigenvalues; centred by default): how many dimensions the activity occupies."""
    if z.dim() != 3:
        raise ValueError(f"z must have shape (B, T, H), got {tuple(z.shape)}")
    X = z.reshape(-1, z.shape[-1]).to(torch.float64)
    if centre:
        X = X - X.mean(0)
    s2 = torch.linalg.svdvals(X) ** 2
    total = float((s2**2).sum())
    return float(s2.sum() ** 2 / total) if total > 0 else 0.0
