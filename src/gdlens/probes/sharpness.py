"""Sharpness: the loss Hessian's top curvature, against the optimizer's stability threshold.

Edge of stability (Cohen, Kaur, Li, Kolter, Talwalkar, arXiv 2103.00065): under full-batch GD
with step η the sharpness ``λ_max(H)`` rises until it reaches ``2/η`` and then hovers there.
For Adam the relevant quantity is the sharpness of the *preconditioned* Hessian, whose linear
stability threshold is ``(2 + 2β₁) / ((1 − β₁) η)`` (Cohen et al., "Adaptive gradient methods at
the edge of stability", arXiv 2207.14484). Loss spikes in Adam appear when the curvature along
the gradient direction of the preconditioned Hessian crosses the threshold (Bai et al.,
"Adaptive preconditioners trigger loss spikes in Adam", arXiv 2506.04805).

The phenomenon's pure functions live in two modules, one idea each, and every public name of
both stays importable from here (``gdlens.probes.sharpness.<name>``):

- :mod:`gdlens.probes.hessian`: the Hessian as a matrix-free operator (three backends for its
  Hessian–vector products; reverse-over-reverse by default, which works with torch's own
  losses), its extreme eigenvalues and trace;
- :mod:`gdlens.probes.stability`: Adam's preconditioner, the preconditioned Hessian and its
  sharpness, the curvature along the update direction, the stability thresholds and the spike
  rule.

This module holds, last, the schedulable :class:`SharpnessProbe`, which calls them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.hessian import (
    HESSIAN_BACKENDS,
    TopEig,
    hessian_operator,
    hessian_trace,
    lanczos_top_eig,
    top_hessian_eig,
)
from gdlens.probes.plumbing import eval_mode, forward, functional_loss, trainable_params
from gdlens.probes.spec import Metric, Panel
from gdlens.probes.stability import (
    adam_preconditioner,
    directional_curvature,
    preconditioned_hessian_operator,
    preconditioned_sharpness,
    spike_warning,
    stability_threshold,
)

__all__ = [
    "HESSIAN_BACKENDS",
    "hessian_operator",
    "lanczos_top_eig",
    "TopEig",
    "top_hessian_eig",
    "hessian_trace",
    "adam_preconditioner",
    "preconditioned_hessian_operator",
    "preconditioned_sharpness",
    "directional_curvature",
    "stability_threshold",
    "spike_warning",
    "learning_rate",
    "has_adam_state",
    "SharpnessProbe",
]


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The optimizer's one learning rate η (ValueError when its parameter groups differ)."""
    lrs = {float(g["lr"]) for g in optimizer.param_groups}
    if len(lrs) != 1:
        raise ValueError(
            f"the sharpness threshold needs one learning rate for all parameter groups, got {sorted(lrs)}: "
            "give every group the same lr, or measure without the optimizer (optimizer=None)"
        )
    return lrs.pop()


def has_adam_state(optimizer: torch.optim.Optimizer, params: Mapping[str, Tensor]) -> bool:
    """Whether an Adam/AdamW optimizer has taken a step for every one of ``params`` (so that
    :func:`adam_preconditioner` can read ``v̂``)."""
    for p in params.values():
        state = optimizer.state.get(p, {})
        if "step" not in state or float(state["step"]) <= 0:
            return False
    return True


def _warm_start(previous: Tensor | None, n: int) -> Tensor | None:
    return previous if previous is not None and previous.numel() == n else None


@dataclass
class SharpnessProbe:
    """Sharpness of the training loss against the optimizer's stability threshold.

    With H the Hessian of the training loss (``ctx.loss_fn``, or the loss on the first
    ``max_samples`` trials of the batch) in the trained parameters, the model in eval mode
    (dropout off), and η the optimizer's learning rate (one for all parameter groups, checked at
    the first step):

    - ``lambda_max``: λ_max(H) (edge of stability, arXiv 2103.00065;
      :func:`~gdlens.probes.hessian.top_hessian_eig`);
    - ``directional_curvature``: the curvature along the update direction
      (:func:`~gdlens.probes.stability.directional_curvature`): ``gᵀHg/gᵀg`` for SGD, the
      preconditioned ``(Dg)ᵀH(Dg)/gᵀDg`` with Adam's ``D = 1/(√v̂+ε)``;
    - SGD: ``threshold`` = 2/η, or (2+2β)/η with heavy-ball momentum β (dampening and Nesterov
      are not modelled); ``spike_warning`` = 1 when ``lambda_max > spike_margin · threshold``;
    - Adam/AdamW (once the optimizer has state, i.e. from step 1): ``threshold`` = 2/η (GD's, for
      reference), ``precond_sharpness`` λ_max(D^{1/2} H D^{1/2}) = λ_max(D H) (arXiv 2207.14484,
      :func:`~gdlens.probes.stability.preconditioned_sharpness` with
      :func:`~gdlens.probes.stability.adam_preconditioner`), ``precond_threshold`` =
      (2+2β₁)/((1−β₁)η) (:func:`~gdlens.probes.stability.stability_threshold`), and
      ``spike_warning`` = 1 when the directional curvature exceeds ``spike_margin · 2/η`` (Bai et
      al. arXiv 2506.04805, :func:`~gdlens.probes.stability.spike_warning`);
    - other optimizers: ``lambda_max`` and ``directional_curvature`` only (no threshold).

    One Hessian operator (:func:`~gdlens.probes.hessian.hessian_operator`, ``backend``) serves
    every number of a call. The eigenvalues come from :func:`~gdlens.operators.top_eigs`
    (``k = 1``, ``v0_noise=1.0``) started from the eigenvectors of the previous call, which the
    probe returns in its state (``{"v": …, "v_pre": …}``, kept and checkpointed by the Recorder:
    one probe serves any number of runs), to relative residual ``tol``: the eigenvalue is within
    ``tol·λ`` of the exact one, and typically within ``(tol·λ)²/gap`` (with the default 1e-2,
    within 2e-3 relative on the runs of ``bench/probes.py``, 1e-5 with ``tol=1e-3`` at ~1.5× the
    cost).

    Cost per call: one gradient graph, then about 5–20 Hessian–vector products (each ≈ 1–2
    training steps) per eigenvalue — two eigenvalues for Adam — plus one product for the
    directional curvature: 15–30 training steps' worth on the runs of ``bench/probes.py``, so
    the default 8 log-spaced steps (9 calls with step 0) cost about 10% of a 2000–3000-step run
    and less of longer ones. ``max_samples`` makes each product cheaper on large batches; a
    sparser schedule or a looser ``tol`` cuts the number of products.
    """

    max_samples: int | None = None
    tol: float = 1e-2
    max_matvecs: int = 300
    backend: str = "autograd"
    spike_margin: float = 1.0
    seed: int = 0
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=8))
    name: str = "sharpness"

    title = "Sharpness and stability thresholds"
    metric_specs = (
        Metric("lambda_max", "sharpness", "λ_max(H), H = ∇²L(θ) of the training loss", "loss/θ²"),
        Metric("threshold", "GD stability threshold", "2/η; (2+2β)/η with heavy-ball momentum β", "loss/θ²"),
        Metric("precond_sharpness", "Adam's preconditioned sharpness",
               "λ_max(D^{1/2} H D^{1/2}) = λ_max(D H), D = 1/(√v̂ + ε)", "loss/θ²"),
        Metric("precond_threshold", "Adam's stability threshold", "(2+2β₁)/((1−β₁)η)", "loss/θ²"),
        Metric("directional_curvature", "curvature along the update",
               "gᵀHg/gᵀg (SGD); (Dg)ᵀH(Dg)/gᵀDg (Adam)", "loss/θ²"),
        Metric("spike_warning", "spike warning",
               "1 when λ_max > margin·threshold (SGD) or the directional curvature > margin·2/η (Adam)"),
    )
    panels = (
        Panel("Sharpness against 2/η", ("lambda_max", "threshold"),
              "λ_max(H) and the threshold 2/η [loss/θ²]", yscale="auto"),
        Panel("Adam: preconditioned sharpness against its threshold", ("precond_sharpness", "precond_threshold"),
              "λ_max(D H), D = 1/(√v̂+ε), and (2+2β₁)/((1−β₁)η) [loss/θ²]", yscale="auto"),
        Panel("Curvature along the update", ("directional_curvature", "threshold"),
              "dᵀHd / dᵀD⁻¹d along the step d = D g (D = I for SGD), and the GD threshold [loss/θ²]",
              yscale="auto"),
        Panel("Spike warning", ("spike_warning",), "1 = above the threshold", yscale="linear", ylim=(0.0, 1.0)),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be a positive int or None, got {self.max_samples}")
        if self.backend not in HESSIAN_BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; allowed: {HESSIAN_BACKENDS}")

    def settings(self) -> dict[str, Any]:
        return {"tol": self.tol, "max_samples": self.max_samples, "backend": self.backend,
                "spike_margin": self.spike_margin}

    def reset(self) -> None:
        """Deprecated no-op: the warm-start vectors live in the state the Recorder keeps."""
        warnings.warn("SharpnessProbe.reset() does nothing: the state lives in the Recorder", DeprecationWarning,
                      stacklevel=2)

    def _loss(self, ctx: ProbeContext) -> Callable[[nn.Module], Tensor] | None:
        if ctx.batch is None or (self.max_samples is None and ctx.loss_fn is not None):
            return ctx.loss_fn
        data = ctx.batch if self.max_samples is None else ctx.batch.subset(slice(0, self.max_samples))
        return lambda m: data.loss_value(forward(m, data.x)[0])

    def init(self, ctx: ProbeContext) -> dict[str, Tensor | None]:
        """Checks the model (trainable parameters) and the optimizer (one learning rate) before
        any update; no warm start yet."""
        if not trainable_params(ctx.model, ctx.optimizer):
            raise ValueError(
                f"SharpnessProbe: {type(ctx.model).__name__} has no trainable parameters (requires_grad=True and, "
                "with an optimizer, held by it): the Hessian would be empty"
            )
        if ctx.optimizer is not None:
            learning_rate(ctx.optimizer)
        return {"v": None, "v_pre": None}

    def compute(self, ctx: ProbeContext, state: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """The values of one step, with the model in eval mode (dropout off: the Hessian of one
        deterministic loss), its mode restored afterwards."""
        with eval_mode(ctx.model):
            return self._compute(ctx, state)

    def _compute(self, ctx: ProbeContext, state: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        loss_fn = self._loss(ctx)
        if loss_fn is None:
            return {}, state
        opt = ctx.optimizer
        params = trainable_params(ctx.model, opt)
        loss = functional_loss(ctx.model, loss_fn)
        H = hessian_operator(loss, params, backend=self.backend)
        n = H.size_in
        eig = dict(tol=self.tol, max_matvecs=self.max_matvecs, seed=self.seed, v0_noise=1.0, return_vectors=True)
        top = top_hessian_eig(loss, params, hessian=H, v0=_warm_start(state.get("v"), n), **eig)
        state = {**state, "v": top.vectors[0].detach()}
        out = {"lambda_max": float(top.values[0])}
        if opt is None:
            out["directional_curvature"] = directional_curvature(loss, params, hessian=H)
            return out, state
        lr = learning_rate(opt)
        if isinstance(opt, torch.optim.Adam):  # AdamW included
            out["threshold"] = stability_threshold(lr, "sgd")
            if not has_adam_state(opt, params):
                return out, state
            beta1 = float(opt.param_groups[0]["betas"][0])
            D = adam_preconditioner(opt, params)
            pre = preconditioned_sharpness(loss, params, D, hessian=H, v0=_warm_start(state.get("v_pre"), n), **eig)
            state["v_pre"] = pre.vectors[0].detach()
            out["precond_sharpness"] = float(pre.values[0])
            out["precond_threshold"] = stability_threshold(lr, "adam", beta1=beta1)
            curv = directional_curvature(loss, params, preconditioner=D, hessian=H)
            out["directional_curvature"] = curv
            out["spike_warning"] = float(spike_warning(curv, lr, "adam", beta1=0.0, margin=self.spike_margin))
            return out, state
        out["directional_curvature"] = directional_curvature(loss, params, hessian=H)
        if isinstance(opt, torch.optim.SGD):
            momentum = float(opt.param_groups[0].get("momentum", 0.0))
            kind = "momentum" if momentum > 0 else "sgd"
            out["threshold"] = stability_threshold(lr, kind, beta1=momentum)
            out["spike_warning"] = float(spike_warning(out["lambda_max"], lr, kind, beta1=momentum,
                                                       margin=self.spike_margin))
        return out, state
