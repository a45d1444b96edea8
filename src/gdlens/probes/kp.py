"""The KP probe: the KP decomposition of gradient flow (arXiv 2507.06381) recorded during
training — effective ranks of K, P Pᵀ and G, the top eigenvalues of G, and misdirection."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gdlens.flow import KPFlow
from gdlens.flow.analysis import effective_ranks, misdirection
from gdlens.operators import top_eigs
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.tasks.base import loss_value

__all__ = ["KPProbe"]


@dataclass
class KPProbe:
    """Builds a :class:`~gdlens.flow.KPFlow` snapshot on the first ``max_trials`` trials of the
    training batch, with the training loss (mask included), and records:

    - ``rank_K``, ``rank_P``, ``rank_G``: participation ratios (tr A)²/‖A‖_F² of K, P Pᵀ and G
      (Hutch++ with ``num_matvecs``; their standard errors as ``*_se``);
    - ``eig_G_1..k``: the top ``k`` eigenvalues of G;
    - ``misdirection``: alignment(G, P Pᵀ).

    Runs in the model's dtype. Cost ≈ (3·num_matvecs + a few·k·10) G-sized matvecs.
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=8))
    max_trials: int = 8
    num_matvecs: int = 30
    k: int = 5
    seed: int = 0
    name: str = "kp"

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        data = ctx.batch
        if data is None or data.x.dim() != 3:
            return {}
        n = min(self.max_trials, data.x.shape[0])
        mask = None if data.mask is None else data.mask[:n]
        kind = data.loss

        def loss(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return loss_value(y, target, kind, mask)

        kp = KPFlow(ctx.model, data.x[:n], data.target[:n], loss=loss, strict=False)
        out: dict[str, float] = {}
        for name, est in effective_ranks(kp, num_matvecs=self.num_matvecs, seed=self.seed).items():
            out[f"rank_{name}"] = est.value
            out[f"rank_{name}_se"] = float("nan") if est.stderr is None else est.stderr
        k = min(self.k, kp.G.size_in)
        values, _ = top_eigs(kp.G, k, seed=self.seed)
        out.update({f"eig_G_{i + 1}": float(v) for i, v in enumerate(values)})
        out["misdirection"] = misdirection(kp, num_matvecs=self.num_matvecs, seed=self.seed).value
        return out
