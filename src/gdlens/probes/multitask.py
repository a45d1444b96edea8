"""How the tasks of a multi-task batch share gradient flow (KPFlow, arXiv 2507.06381:
the multi-task application of the KP decomposition).

Setting: one recurrent network trained on a batch mixing n tasks (e.g.
:func:`gdlens.tasks.multi_task`), trial b belonging to task ``task_ids[b]``. With the KPFlow
conventions (docs/kpflow.md): hidden states z (B, T, H), direct error e = ∂L/∂z (B, T, H),
L = (1/B) Σ_b Σ_t ℓ_bt, and ``G = P K Pᵀ = (dz/dθ)(dz/dθ)ᵀ`` on (B, T, H), so that gradient
flow moves the states by ``dz/dτ = −G e``. Π_k keeps the trials of task k (zero elsewhere);
``e_k = Π_k e`` is task k's error (the error of its part L_k of the loss, L = Σ_k L_k), and
``G_ij = Π_i G Π_j`` the block of G from task j's trials to task i's. Then
``dz_i/dτ = −Σ_j G_ij e_j``: task j's error moves task i's states through G_ij.

Per task pair (i, j) this module measures:

- **interference** ``I_ij = ‖G_ij‖_F² / (‖G_ii‖_F ‖G_jj‖_F)`` ∈ [0, 1] (KPFlow's normalised
  cross-task block of G; :func:`gdlens.flow.task_interference`, Hutchinson with jackknife
  errors or exact): 0 when the two tasks' gradients move disjoint parameter directions;
- **hidden-state similarity** ``S_ij`` = the mean over trial pairs (b in task i, b' in task j,
  b ≠ b') of ``cos(z_b, z_b')``, z_b the flattened (T·H) trajectory of trial b
  (:func:`hidden_similarity`): how alike the two tasks' hidden trajectories are;
- **update alignment** ``A_ij = cos(G_ij e_j, G_ii e_i)`` over task i's (trials, T, H)
  (:func:`update_alignment`): whether task j's error moves task i's states the way task i's
  own error does (1 on the diagonal; −1: straight against it; NaN when either is zero);
- **transfer** ``C_ij = ⟨e_i, G_ij e_j⟩ / ⟨e_i, G_ii e_i⟩`` (:func:`loss_transfer`): the rate at
  which task j's gradient lowers task i's loss, relative to task i's own, since exactly
  ``−dL_i/dτ = Σ_j ⟨e_i, G_ij e_j⟩`` under gradient flow (> 0 helps, < 0 hurts; C_ii = 1).

A *grouping* assigns each task a label (e.g. Pro/Anti, or Delay/Memory, of the four ring
tasks). :func:`grouping_contrast` of a matrix is the mean of its off-diagonal entries within
groups minus the mean between groups: positive when the matrix groups the tasks that way.
:func:`overtake_step` reports the step from which one grouping's contrast stays above
another's (KPFlow: the blocks of G first group Delay/Memory, then Pro/Anti).

The normalisations of S, A and C are gdlens' own (stated above); G, its task blocks and the
error follow KPFlow. Everything is computed in the model's dtype; the tests compare it with a
dense G from ``torch.func.jacrev`` in float64 (tests/probes/test_multitask.py).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gdlens.flow import KPFlow, task_interference
from gdlens.losses import loss_value
from gdlens.operators import LinearOperator
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "task_masks",
    "hidden_similarity",
    "error_updates",
    "update_alignment",
    "loss_transfer",
    "grouping_contrast",
    "overtake_step",
    "multitask_snapshot",
    "multitask_matrices",
    "MultiTaskProbe",
]


def task_masks(task_ids: Tensor) -> tuple[tuple[int, ...], Tensor]:
    """The tasks present (sorted ids) and their trial masks, a bool tensor (n, B)."""
    if not isinstance(task_ids, Tensor) or task_ids.dim() != 1 or task_ids.dtype.is_floating_point:
        raise ValueError("task_ids must be a 1-d integer tensor (B,): each trial's task")
    tasks = tuple(int(t) for t in torch.unique(task_ids).tolist())
    return tasks, torch.stack([task_ids == t for t in tasks])


def hidden_similarity(z: Tensor, task_ids: Tensor) -> Tensor:
    """``S[i, j]``: mean of ``cos(z_b, z_b')`` over trials b of task i and b' ≠ b of task j,
    z_b the flattened (T·H) trajectory; z (B, T, H), task_ids (B,). Returns (n, n) float64
    (NaN for a task with one trial on the diagonal, or a zero trajectory)."""
    if z.dim() != 3 or task_ids.shape != (z.shape[0],):
        raise ValueError(f"z must be (B, T, H) and task_ids (B,), got {tuple(z.shape)} and {tuple(task_ids.shape)}")
    _, masks = task_masks(task_ids)
    flat = z.detach().reshape(z.shape[0], -1).to(torch.float64)
    unit = flat / flat.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    cos.fill_diagonal_(0.0)
    m = masks.to(torch.float64)
    pairs = m.sum(1)[:, None] * m.sum(1)[None, :] - torch.diag(m.sum(1))
    return (m @ cos @ m.T) / pairs


def error_updates(G: LinearOperator, error: Tensor, task_ids: Tensor) -> Tensor:
    """``U[j] = G (Π_j e)``, (n, B, T, H): how each task's error moves every trial's states
    (``−U[j]`` is task j's share of dz/dτ). One batched product with G of n probes."""
    _, masks = task_masks(task_ids)
    probes = masks[:, :, None, None].to(error.dtype) * error.unsqueeze(0)
    with torch.no_grad():
        return G.matmat(probes)


def _restricted(updates: Tensor, masks: Tensor) -> Tensor:
    """``R[i, j] = Π_i U[j]`` flattened: (n, n, B·T·H)."""
    n = masks.shape[0]
    kept = masks[:, None, :, None, None].to(updates.dtype) * updates.unsqueeze(0)
    return kept.reshape(n, n, -1)


def update_alignment(updates: Tensor, task_ids: Tensor) -> Tensor:
    """``A[i, j] = cos(Π_i G Π_j e, Π_i G Π_i e)`` from ``updates`` = :func:`error_updates`;
    (n, n) float64."""
    _, masks = task_masks(task_ids)
    R = _restricted(updates, masks).to(torch.float64)
    own = torch.stack([R[i, i] for i in range(R.shape[0])])  # (n, BTH)
    dots = torch.einsum("ijk,ik->ij", R, own)
    return dots / (R.norm(dim=2) * own.norm(dim=1)[:, None])


def loss_transfer(updates: Tensor, error: Tensor, task_ids: Tensor) -> Tensor:
    """``C[i, j] = ⟨e_i, G_ij e_j⟩ / ⟨e_i, G_ii e_i⟩`` from ``updates`` = :func:`error_updates`
    and the error e (B, T, H); (n, n) float64. ``Σ_j ⟨e_i, G_ij e_j⟩ = −dL_i/dτ``."""
    _, masks = task_masks(task_ids)
    e_tasks = (masks[:, :, None, None].to(error.dtype) * error.unsqueeze(0)).reshape(masks.shape[0], -1)
    raw = torch.einsum("ik,jk->ij", e_tasks.to(torch.float64), updates.reshape(updates.shape[0], -1).to(torch.float64))
    return raw / torch.diagonal(raw)[:, None]


def grouping_contrast(matrix: Tensor, groups: Sequence[Hashable]) -> float:
    """Mean of the off-diagonal entries of ``matrix`` (n, n) between tasks of the same group
    minus the mean between tasks of different groups (``groups``: a label per task). NaN
    entries are ignored; NaN when either set is empty."""
    n = matrix.shape[0]
    if matrix.shape != (n, n) or len(groups) != n:
        raise ValueError(
            f"matrix must be (n, n) with one group label per task; got {tuple(matrix.shape)}, {len(groups)} labels"
        )
    M = matrix.detach().to(torch.float64)
    same = torch.tensor([[groups[i] == groups[j] for j in range(n)] for i in range(n)])
    off = ~torch.eye(n, dtype=torch.bool)
    finite = ~torch.isnan(M)
    within, between = M[same & off & finite], M[~same & finite]
    if within.numel() == 0 or between.numel() == 0:
        return math.nan
    return float(within.mean() - between.mean())


def overtake_step(steps: Sequence[int], a: Sequence[float], b: Sequence[float]) -> int | None:
    """The first of ``steps`` from which ``a > b`` at every later recorded step (a NaN is not
    greater); None when ``a ≤ b`` at the last step. ``steps``, ``a``, ``b``: equal lengths."""
    if not len(steps) == len(a) == len(b):
        raise ValueError(f"steps, a and b must have equal lengths, got {len(steps)}, {len(a)}, {len(b)}")
    found = None
    for s, x, y in zip(reversed(list(steps)), reversed(list(a)), reversed(list(b))):
        if not x > y:
            break
        found = int(s)
    return found


def multitask_snapshot(model: nn.Module, x: Tensor, target: Tensor, loss: str = "mse",
                       mask: Tensor | None = None) -> KPFlow:
    """The :class:`~gdlens.flow.KPFlow` of ``model`` on the joint batch, with gdlens' loss L
    (:func:`gdlens.losses.loss_value`, ``mask`` (B, T) included)."""

    def masked(y: Tensor, t: Tensor) -> Tensor:
        return loss_value(y, t, loss, mask)

    return KPFlow(model, x, target, loss=masked, strict=False)


def multitask_matrices(kp: KPFlow, task_ids: Tensor, method: str = "hutchinson", num_probes: int = 20,
                       seed: int = 0) -> dict[str, Tensor]:
    """All four (n, n) matrices of one snapshot: ``interference`` and ``interference_se``
    (:func:`gdlens.flow.task_interference`), ``similarity``, ``update_alignment``,
    ``transfer``."""
    inter = task_interference(kp.G, task_ids, method=method, num_probes=num_probes, seed=seed)
    updates = error_updates(kp.G, kp.error, task_ids)
    se = inter.stderr if inter.stderr is not None else torch.full_like(inter.matrix, math.nan)
    return {
        "interference": inter.matrix.to(torch.float64),
        "interference_se": se.to(torch.float64),
        "similarity": hidden_similarity(kp.hidden, task_ids),
        "update_alignment": update_alignment(updates, task_ids),
        "transfer": loss_transfer(updates, kp.error, task_ids),
    }


# ---------------------------------------------------------------------- the probe
MATRICES = ("interference", "similarity", "update_alignment", "transfer")


@dataclass
class MultiTaskProbe:
    """Per task pair, the interference, hidden-state similarity, update alignment and transfer
    of a multi-task batch (module docstring), and their grouping contrasts.

    ``data``: the fixed analysis batch (a TaskData with ``task_ids``, e.g. from
    :func:`gdlens.tasks.multi_task`); None analyses each step's training batch.
    ``groupings``: name -> a label per task (in the order of the sorted task ids), e.g.
    ``{"pro_anti": ["pro", "anti", "pro", "anti"], "delay_memory": ["d", "d", "m", "m"]}``;
    each gives ``<matrix>_contrast_<name>`` scalars. ``method``/``num_probes``: the
    interference estimator. Records the (n, n) matrices as arrays, ``tasks`` (n) and the
    contrasts. Stateless: the state is None. Fails at ``init`` on data without ``task_ids``
    and on a model KPFlow cannot take.
    """

    data: Any = None
    groupings: Mapping[str, Sequence[Hashable]] = field(default_factory=dict)
    method: str = "hutchinson"
    num_probes: int = 20
    seed: int = 0
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=10))
    name: str = "multitask"

    title: ClassVar[str] = "Multi-task gradient flow"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("interference", "task interference I_ij", "‖G_ij‖_F² / (‖G_ii‖_F ‖G_jj‖_F)",
               stderr="interference_se"),
        Metric("similarity", "hidden-state similarity S_ij", "mean cos(z_b, z_b'), b in task i, b' ≠ b in task j"),
        Metric("update_alignment", "update alignment A_ij", "cos(G_ij e_j, G_ii e_i) over task i's states"),
        Metric("transfer", "loss transfer C_ij", "⟨e_i, G_ij e_j⟩ / ⟨e_i, G_ii e_i⟩"),
        Metric("tasks", "number of tasks n", "distinct task_ids"),
        Metric("*_contrast_*", "grouping contrast", "mean within-group − mean between-group off-diagonal entries"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Task interference", ("interference",), "I_ij = ‖G_ij‖_F² / (‖G_ii‖_F ‖G_jj‖_F)",
              yscale="linear", ylim=(0, 1), kind="matrix"),
        Panel("Hidden-state similarity", ("similarity",), "mean cos(z_b, z_b') between trials of tasks i, j",
              yscale="linear", ylim=(-1, 1), kind="matrix"),
        Panel("Update alignment", ("update_alignment",), "cos(G_ij e_j, G_ii e_i)", yscale="linear",
              ylim=(-1, 1), kind="matrix"),
        Panel("Grouping contrasts", ("*_contrast_*",), "within − between groups (off-diagonal means)",
              yscale="linear"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if self.method not in ("hutchinson", "exact"):
            raise ValueError(f"method must be 'hutchinson' or 'exact', got {self.method!r}")
        self.groupings = {str(k): tuple(v) for k, v in dict(self.groupings).items()}

    def settings(self) -> dict[str, Any]:
        return {"method": self.method, "num_probes": self.num_probes, "groupings": ", ".join(self.groupings)}

    def _data(self, ctx: ProbeContext) -> Any:
        data = self.data if self.data is not None else ctx.batch
        if data is None or getattr(data, "task_ids", None) is None or data.x.dim() != 3:
            raise ValueError(
                "MultiTaskProbe needs a recurrent multi-task batch with task_ids: pass "
                "data=gdlens.tasks.multi_task(...) or train on a multi_task task"
            )
        return data

    def _snapshot(self, ctx: ProbeContext) -> tuple[KPFlow, Tensor]:
        data = self._data(ctx)
        dtype = next(ctx.model.parameters()).dtype
        x, target = data.x.to(dtype), data.target.to(dtype)
        return multitask_snapshot(ctx.model, x, target, data.loss, data.mask), data.task_ids

    def init(self, ctx: ProbeContext) -> None:
        """Checks the data and the model (builds one snapshot), and the groupings' lengths."""
        _, task_ids = self._snapshot(ctx)
        n = len(task_masks(task_ids)[0])
        for key, labels in self.groupings.items():
            if len(labels) != n:
                raise ValueError(f"grouping {key!r} has {len(labels)} labels for {n} tasks; give one label per task")
        return None

    def compute(self, ctx: ProbeContext, state: None) -> tuple[dict[str, Any], None]:
        kp, task_ids = self._snapshot(ctx)
        mats = multitask_matrices(kp, task_ids, self.method, self.num_probes, self.seed)
        out: dict[str, Any] = dict(mats)
        out["tasks"] = mats["interference"].shape[0]
        for key in MATRICES:
            for gname, labels in self.groupings.items():
                out[f"{key}_contrast_{gname}"] = grouping_contrast(mats[key], labels)
        return out, None
