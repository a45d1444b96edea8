"""The everyday probes: task metrics, parameter norms, relative parameter change, hidden-state
participation ratio."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gdlens.flow.analysis import hidden_participation_ratio
from gdlens.probes.base import ProbeContext, Schedule, as_schedule, forward

__all__ = ["MetricsProbe", "ParameterNormProbe", "RelativeChangeProbe", "HiddenParticipationProbe", "default_probes"]


@dataclass
class MetricsProbe:
    """The task's own metrics (loss, accuracy, ...) on the training batch (``train/<key>``)
    and on the held-out data (``test/<key>``), from one forward pass each in eval mode."""

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=40))
    name: str = "metrics"

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        out: dict[str, float] = {}
        was_training = ctx.model.training
        ctx.model.eval()
        with torch.no_grad():
            for prefix, data in (("train", ctx.batch), ("test", ctx.eval_data)):
                if data is not None:
                    y, _ = forward(ctx.model, data.x)
                    out.update({f"{prefix}/{k}": v for k, v in data.metric(y).items()})
        ctx.model.train(was_training)
        return out


@dataclass
class ParameterNormProbe:
    """``‖θ‖`` over all parameters (``total``) and per parameter tensor (its name)."""

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "param_norm"

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        norms = {n: float(p.detach().norm()) for n, p in ctx.model.named_parameters()}
        norms["total"] = sum(v**2 for v in norms.values()) ** 0.5
        return norms


@dataclass
class RelativeChangeProbe:
    """``RD = ‖θ(t) − θ(0)‖ / ‖θ(0)‖`` per parameter tensor and over all of them (``total``):
    the order parameter of the linear (RD → 0 with width) vs condensed (RD ≫ 0) regimes
    (Luo et al. arXiv 2007.07497)."""

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "rel_change"

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        out, num, den = {}, 0.0, 0.0
        for n, p in ctx.model.named_parameters():
            p0 = ctx.initial_params.get(n)
            if p0 is None:
                continue
            d, r = float((p.detach() - p0).norm() ** 2), float(p0.norm() ** 2)
            num, den = num + d, den + r
            out[n] = (d / r) ** 0.5 if r > 0 else float("nan")
        out["total"] = (num / den) ** 0.5 if den > 0 else float("nan")
        return out


@dataclass
class HiddenParticipationProbe:
    """Participation ratio ``(Σλ)²/Σλ²`` of the hidden states' covariance over trials and time
    on the training batch (models whose forward returns ``(y, z)``)."""

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=20))
    name: str = "hidden"

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        if ctx.batch is None:
            return {}
        with torch.no_grad():
            _, z = forward(ctx.model, ctx.batch.x)
        if z is None or z.dim() != 3:
            return {}
        return {"participation_ratio": hidden_participation_ratio(z)}


def default_probes(recurrent: bool) -> list:
    """Metrics, parameter norms and relative change; plus the hidden participation ratio for
    recurrent models."""
    probes = [MetricsProbe(), ParameterNormProbe(), RelativeChangeProbe()]
    if recurrent:
        probes.append(HiddenParticipationProbe())
    return probes
