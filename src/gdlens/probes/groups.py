"""Which parameter group fits first: gradient norms and NTK traces per parameter group.

In a two-layer embedding model the classifier head receives larger effective gradients than
the embedding, so the head fits first and the representation simplifies later (the "training
clocks" of arXiv 2606.05863, :mod:`gdlens.probes.clocks`). Per group g of parameters θ_g:

    ‖∂L/∂θ_g‖                                          group_gradient_norms
    tr K_g = ‖J_g‖_F² = Σ_{n,o} ‖∂f_{no}/∂θ_g‖²,  K_g = J_g J_gᵀ,  J_g = ∂f(x; θ)/∂θ_g
                                                       group_ntk_traces

``K = Σ_g K_g`` is the empirical NTK of the outputs f (all entries, time steps and channels of a
sequence model included), so ``tr K_g / tr K`` is the share of how fast gradient flow moves the
outputs that flows through group g. Groups come from :func:`resolve_groups`. Works on any
``nn.Module`` whose forward returns ``y`` or ``(y, z)`` (gdlens' state-space models, torch's
recurrent modules converted by :func:`gdlens.models.from_torch`); a torch ``nn.RNN``/``nn.GRU``/
``nn.LSTM`` itself returns ``(output, h_n)`` with no readout and is refused with a message
naming the adapter.

Last, :class:`HeadEmbeddingProbe` records both during training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gdlens.operators import trace
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.ntk import empirical_ntk
from gdlens.probes.parameters import parameter_norms
from gdlens.probes.plumbing import eval_mode, forward, functional_model
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "resolve_groups",
    "check_group_model",
    "group_gradient_norms",
    "group_ntk_traces",
    "ntk_subset",
    "group_report",
    "HeadEmbeddingProbe",
]


def resolve_groups(model: nn.Module, groups: Any = None) -> dict[str, list[str]]:
    """Parameter names by group: ``groups`` as a dict group -> names, or a function
    name -> group (None leaves a parameter out); by default ``model.parameter_groups()`` where
    the model has one (:class:`~gdlens.models.EmbeddingMLP`, ``Transformer1L``, ``DeepLinear``),
    else the first component of each name (``"head.weight"`` -> ``"head"``; for a recurrent
    model each of ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` and ``readout``)."""
    names = [n for n, _ in model.named_parameters()]
    if groups is None and hasattr(model, "parameter_groups"):
        groups = model.parameter_groups()
    if groups is None:
        groups = lambda n: n.split(".")[0]  # noqa: E731
    if callable(groups):
        out: dict[str, list[str]] = {}
        for n in names:
            g = groups(n)
            if g is not None:
                out.setdefault(str(g), []).append(n)
        return out
    if not isinstance(groups, Mapping):
        raise TypeError(f"groups must be a dict group -> parameter names, a function name -> group, or None; "
                        f"got {type(groups).__name__}")
    out = {str(g): list(members) for g, members in groups.items()}
    unknown = [m for members in out.values() for m in members if m not in names]
    if unknown:
        raise ValueError(f"groups name unknown parameters {unknown}; the model has {names}")
    return out


def check_group_model(model: nn.Module) -> None:
    """ValueError for a model the group measurements cannot read: a torch recurrent module
    (``nn.RNN``/``nn.GRU``/``nn.LSTM``, whose forward returns ``(output, h_n)`` and has no
    readout) — convert it with :func:`gdlens.models.from_torch` — or a model without parameters."""
    if isinstance(model, nn.RNNBase):
        raise ValueError(
            f"a torch {type(model).__name__} returns (output, h_n) and has no readout: pass "
            f"gd.models.from_torch(module, readout=nn.Linear(hidden_size, outputs)) instead"
        )
    if not any(True for _ in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no parameters to group")


def group_gradient_norms(
    model: nn.Module, loss_fn: Callable[[nn.Module], Tensor], groups: Any = None
) -> dict[str, float]:
    """``‖∂L/∂θ_g‖`` per parameter group g (:func:`resolve_groups`) and over all trainable
    parameters (``"total"``), from one backward pass of ``loss_fn(model)``
    (:func:`gdlens.probes.parameters.parameter_norms` of the gradients); the model's ``.grad``
    are left untouched."""
    groups = resolve_groups(model, groups)
    if "total" in groups:
        raise ValueError("a parameter group is named 'total', which is reserved for the overall norm")
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with torch.enable_grad():
        grads = torch.autograd.grad(loss_fn(model), list(named.values()), allow_unused=True)
    g = {n: (torch.zeros_like(p) if d is None else d.detach()) for (n, p), d in zip(named.items(), grads)}
    kept = {name: [m for m in members if m in g] for name, members in groups.items()}
    norms = parameter_norms(g, kept)
    return {**{name: norms[name] for name in groups}, "total": norms["total"]}


def group_ntk_traces(
    model: nn.Module,
    x: Tensor,
    groups: Any = None,
    method: str = "hutch++",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> dict[str, tuple[float, float]]:
    """``tr K_g`` of the empirical NTK of each parameter group on the inputs x,
    ``K_g = J_g J_gᵀ`` with ``J_g = ∂f(x; θ)/∂θ_g`` (the other parameters held fixed), so that
    ``K = Σ_g K_g`` and ``tr K_g = ‖J_g‖_F² = Σ_{n,o} ‖∂f_{no}/∂θ_g‖²`` (module docstring).

    Each ``K_g`` is the matrix-free operator :func:`gdlens.probes.ntk.empirical_ntk` of the model's
    first output (:func:`gdlens.probes.plumbing.functional_model`) and its trace comes from
    :func:`gdlens.operators.trace` with ``method`` (``"exact"`` spends one matvec per output
    entry). Returns ``{group: (estimate, standard error)}`` (error 0 for ``"exact"``).
    """
    check_group_model(model)
    groups = resolve_groups(model, groups)
    params = {n: p.detach() for n, p in model.named_parameters()}
    f = functional_model(model)
    out: dict[str, tuple[float, float]] = {}
    for g, members in groups.items():
        own = {n: params[n] for n in members}
        if not own:
            out[g] = (0.0, 0.0)
            continue
        rest = {n: v for n, v in params.items() if n not in own}

        def model_fn(theta: Mapping[str, Tensor], inputs: Tensor, rest: dict = rest) -> Tensor:
            return f({**rest, **theta}, inputs)

        est = trace(empirical_ntk(model_fn, own, x), method=method, num_matvecs=num_matvecs, seed=seed)
        out[g] = (float(est.value), float(est.stderr or 0.0))
    return out


def ntk_subset(x: Tensor, n: int | None, seed: int) -> Tensor:
    """``n`` of the inputs x (rows), a seeded random subset in their original order; all of them
    when ``n`` is None or at least their number."""
    if n is None or n >= x.shape[0]:
        return x
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx.sort().values.to(x.device)]


def group_report(
    norms: Mapping[str, float], traces: Mapping[str, tuple[float, float]], n_inputs: int
) -> dict[str, float]:
    """The keys of :class:`HeadEmbeddingProbe` from :func:`group_gradient_norms` and
    :func:`group_ntk_traces` on ``n_inputs`` inputs: ``grad_norm/<g>`` (and ``grad_norm/total``),
    ``ntk_trace/<g> = tr K_g / n_inputs``, ``ntk_share/<g> = tr K_g / Σ_h tr K_h`` (nan when the
    sum is 0) and, with groups ``head`` and ``embedding``, ``head_over_embedding/grad_norm`` and
    ``head_over_embedding/ntk_trace`` (head's value over the embedding's; nan over 0)."""

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else math.nan

    out = {f"grad_norm/{g}": v for g, v in norms.items()}
    total = sum(v for v, _ in traces.values())
    for g, (value, _) in traces.items():
        out[f"ntk_trace/{g}"] = value / n_inputs
        out[f"ntk_share/{g}"] = ratio(value, total)
    if "head" in traces and "embedding" in traces:
        out["head_over_embedding/grad_norm"] = ratio(norms["head"], norms["embedding"])
        out["head_over_embedding/ntk_trace"] = ratio(traces["head"][0], traces["embedding"][0])
    return out


# ------------------------------------------------------------------------------------ probe
@dataclass
class HeadEmbeddingProbe:
    """Which parameter group fits first: per group g, ``grad_norm/<g>`` (‖∂L/∂θ_g‖ on the
    training batch, :func:`group_gradient_norms`, and ``grad_norm/total``) and ``ntk_trace/<g>``
    (``tr K_g`` of the output NTK, :func:`group_ntk_traces`, on ``ntk_samples`` training inputs
    (:func:`ntk_subset`), divided by their number) with ``ntk_share/<g>`` (``tr K_g / Σ_h tr K_h``);
    with groups ``head`` and ``embedding``, also the ratios ``head_over_embedding/grad_norm`` and
    ``head_over_embedding/ntk_trace``.

    Measures the model in eval mode (dropout off; its mode restored afterwards). Fails at its
    first step (``init``) on a model it cannot read (:func:`check_group_model`: a
    torch recurrent module is to be converted by :func:`gdlens.models.from_torch`) or groups
    that do not resolve. Carries nothing between calls (its state is None).

    Args:
        groups: parameter groups (:func:`resolve_groups`).
        ntk_samples: training inputs in the NTK traces (a seeded subset; None for all).
        method, num_matvecs, seed: the trace estimator (:func:`gdlens.operators.trace`).
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "groups"
    groups: Any = None
    ntk_samples: int | None = 64
    method: str = "hutch++"
    num_matvecs: int = 30
    seed: int = 0

    title = "Parameter groups: gradient norms and NTK traces"
    metric_specs = (
        Metric("grad_norm/*", "gradient norm of a parameter group", "‖∂L/∂θ_g‖ on the training batch"),
        Metric("ntk_trace/*", "NTK trace of a parameter group per input", "tr K_g / N, K_g = J_g J_gᵀ"),
        Metric("ntk_share/*", "share of the NTK trace", "tr K_g / Σ_h tr K_h"),
        Metric("head_over_embedding/*", "head over embedding", "ratio of the head's value to the embedding's"),
    )
    panels = (
        Panel("Gradient norm per group", ("grad_norm/*",), "‖∂L/∂θ_g‖ (training batch)", yscale="auto"),
        Panel("NTK trace per group", ("ntk_trace/*",), "tr K_g / N = ‖∂f/∂θ_g‖_F² / N", yscale="auto"),
        Panel("Share of the NTK trace", ("ntk_share/*",), "tr K_g / Σ_h tr K_h", yscale="linear", ylim=(0.0, 1.0)),
        Panel("Head over embedding", ("head_over_embedding/*",), "ratio head / embedding", yscale="auto"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if self.ntk_samples is not None and (isinstance(self.ntk_samples, bool) or self.ntk_samples < 1):
            raise ValueError(f"ntk_samples must be a positive int or None, got {self.ntk_samples!r}")

    def settings(self) -> dict[str, Any]:
        return {"ntk_samples": self.ntk_samples, "method": self.method, "num_matvecs": self.num_matvecs}

    def init(self, ctx: ProbeContext) -> None:
        check_group_model(ctx.model)
        resolve_groups(ctx.model, self.groups)
        return None

    def compute(self, ctx: ProbeContext, state: None) -> tuple[dict[str, float], None]:
        if ctx.batch is None:
            return {}, state
        model, batch = ctx.model, ctx.batch
        loss_fn = ctx.loss_fn or (lambda m: batch.loss_value(forward(m, batch.x)[0]))
        groups = resolve_groups(model, self.groups)
        x = ntk_subset(batch.x, self.ntk_samples, self.seed)
        with eval_mode(model):  # dropout off: one deterministic model (and no random op under vmap)
            norms = group_gradient_norms(model, loss_fn, groups)
            traces = group_ntk_traces(model, x, groups, self.method, self.num_matvecs, self.seed)
        return group_report(norms, traces, x.shape[0]), state
