"""A transformer grokking modular addition, with its KP operators measured across training.

:class:`~gdlens.models.TransformerStack` (pre-LN, causal attention, ReLU MLP, ``layers``
blocks) reads the three tokens ``a, b, =`` (vocabulary p + 1, "=" is token p) and predicts
``a + b mod p`` at the last position (``readout="last"``, y (B, 1, p)). It trains on a
``train_fraction`` of the p² pairs (:func:`gdlens.tasks.modular_addition`, split by ``seed``)
with full-batch AdamW and strong weight decay, as :func:`gdlens.experiments.grokking.run_grokking`
does, through :func:`gdlens.train.train`.

Every ``kp_every`` steps a :class:`TransformerKPProbe` builds :class:`gdlens.flow.KPFlow` (float64 copy of
the model, cross-entropy) on a fixed batch of ``kp_batch`` training pairs and records, on the
space (B, L, n·d) of every block's residual stream:

- the effective ranks (participation ratios ``r(A) = (tr A)² / ‖A‖_F²``) of K = J_θ J_θᵀ,
  P Pᵀ (reported as ``P``) and G = P K Pᵀ, with Hutch++ standard errors
  (:func:`gdlens.flow.effective_ranks`);
- each component's share of the trace of K, ``s_c = tr K_c / tr K`` with
  ``K_c = J_c J_cᵀ`` the kernel of the parameter tensors of component c
  (``model.parameter_groups()``: ``blocks.ℓ.head{h}``, ``blocks.ℓ.mlp``, ``embedding``, …).
  K = Σ_c K_c, so the shares sum to 1. They are exact:
  ``tr K_c = ‖J_c‖_F² = Σ_i ‖J_cᵀ e_i‖²`` over the basis e_i of (B, L, n·d), every component
  from the same vector-Jacobian products (one per basis vector, :func:`component_traces`);
- ``heads``, the share of all attention heads, and ``top_head``, the largest head's share of
  the heads' trace, ``max_h tr K_h / Σ_h tr K_h`` ∈ [1/H, 1] (H heads over all blocks): 1/H when
  the heads carry K equally, 1 when one head carries all of it.

Metrics (training and test loss and accuracy) and the energies of
:class:`~gdlens.probes.energies.EnergyProbe` (Σ‖θ‖² and, for the number tokens' embedding rows,
their nuclear norm and Fourier sparsity) are recorded every ``record_every`` steps; the clocks
come from :func:`gdlens.probes.clocks.clock_summary`: fit ``T_fit(ε)`` (first step with
training loss ≤ ε, per-step losses), generalisation ``T_gen(a)`` (first step with test accuracy
≥ a) and representation ``T_rep(ε)`` (the step after which Σ‖θ‖² stays within ε of its final
value).

Documented claims (measured numbers in ``docs/transformers.md``; asserted at p = 23 in
``tests/experiments/test_transformer_grokking.py``): the run groks (T_gen ≥ 5 T_fit); the
effective ranks of K and G fall to about 0.4 of their initial values, between the fit and the
generalisation clock, and stay flat (within a factor 1.5) while the test accuracy climbs: the
rank of G moves during memorisation, not at grokking; the heads' share of tr K falls from about
a third to a few per cent (the embedding and the attention output biases take it over) and no
head comes to carry most of the heads' trace (the largest about 20 % of it, 1/8 for an equal
split). Full-batch AdamW at this learning rate has transient loss spikes, visible in every
series.

Python::

    from gdlens.experiments.transformer_grokking import transformer_grokking
    result = transformer_grokking()            # p = 31, two layers; a few minutes on one CPU thread
    result.rows[0]                              # {"step": 0, "K": ..., "G": ..., "share/blocks.0.head0": ...}
    result.clocks["clocks/generalization"]
    result.figure("transformer_grokking.png")   # matplotlib
    transformer_grokking(p=97, train_fraction=0.3, d_model=128, d_mlp=512, lr=1e-3, steps=20000)  # not measured
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gdlens.experiments.grokking import _threads
from gdlens.flow import KPFlow, effective_ranks
from gdlens.models import TransformerStack
from gdlens.operators.base import basis_chunks
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.clocks import clock_summary
from gdlens.probes.energies import EnergyProbe
from gdlens.probes.training import MetricsProbe
from gdlens.tasks import SplitData, TaskData, modular_addition
from gdlens.train import train

__all__ = [
    "TransformerGrokkingResult",
    "TransformerKPProbe",
    "component_traces",
    "equals_tokens",
    "transformer_grokking",
]

_RANKED = ("K", "P", "G")


def equals_tokens(data: SplitData) -> SplitData:
    """The modular-arithmetic split as sequences for a token transformer: each pair (a, b)
    becomes the three tokens ``(a, b, p)`` (p is "="), the label a target of shape (N, 1) (one
    prediction, at the last position). Loss, metric and ``info`` are those of the task."""
    p = int(data.info["p"])

    def convert(split: TaskData) -> TaskData:
        pairs = split.info["pairs"]
        x = torch.cat([pairs, torch.full((pairs.shape[0], 1), p, dtype=pairs.dtype)], dim=1)
        return TaskData(x=x, target=split.target[:, None], loss=split.loss, num_classes=split.num_classes,
                        name=split.name, info=split.info, metric_fn=split.metric_fn)

    return SplitData(train=convert(data.train), test=convert(data.test), name=data.name, info=data.info)


def component_traces(kp: KPFlow, groups: dict[str, Sequence[str]], chunk_size: int = 256) -> dict[str, float]:
    """Exact ``tr K_c = ‖J_c‖_F² = Σ_i ‖J_cᵀ e_i‖²`` for every component c (a list of θ names),
    e_i the basis of the flow's space (B, T, H), J_c the immediate Jacobian's columns of c: one
    vector-Jacobian product per basis vector serves every component. Names of φ (the readout)
    are not in θ and are skipped. Returns ``{component: trace}`` (float64 sums)."""
    theta = kp.theta
    members = {c: [n for n in names if n in theta] for c, names in groups.items()}
    members = {c: names for c, names in members.items() if names}
    sq = {n: 0.0 for n in theta}
    ref = next(iter(theta.values()))
    for E in basis_chunks(kp.hidden.numel(), chunk_size, ref.dtype, ref.device):
        rows = kp.jacobian.vjp(E.reshape(E.shape[0], *kp.shape))
        for n, r in rows.items():
            sq[n] += float(r.to(torch.float64).pow(2).sum())
    return {c: sum(sq[n] for n in names) for c, names in members.items()}


@dataclass
class TransformerKPProbe:
    """KP measurements of a :class:`~gdlens.models.TransformerStack` on fixed inputs (module
    docstring): ``K``, ``P``, ``G`` effective ranks and their ``*_stderr`` (Hutch++ with
    ``num_matvecs`` and ``seed``, :func:`gdlens.flow.effective_ranks`), ``trK`` (exact, per
    example), ``share/<component>`` for every component of ``model.parameter_groups()`` in θ,
    ``heads`` and ``top_head``. The flow is built on a float64 copy of the model, so the run is
    not touched. (It is not :class:`gdlens.probes.KPProbe`, which records the KP ranks, G's
    eigenvalues and misdirection of any state-space model; this one adds the per-component
    shares of tr K that the transformer experiment plots.)

    Args:
        x, target: the fixed batch (tokens (B, n), classes (B, 1)).
    """

    x: Tensor
    target: Tensor
    schedule: Schedule = field(default_factory=lambda: Schedule(every=100))
    name: str = "kp"
    num_matvecs: int = 60
    seed: int = 0

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        model = copy.deepcopy(ctx.model).to(torch.float64)
        kp = KPFlow(model, self.x.to(next(model.parameters()).device), self.target, loss="cross_entropy")
        out: dict[str, float] = {}
        for key, est in effective_ranks(kp, num_matvecs=self.num_matvecs, seed=self.seed).items():
            out[key], out[f"{key}_stderr"] = float(est.value), float(est.stderr)
        traces = component_traces(kp, model.parameter_groups())
        total = sum(traces.values())
        out["trK"] = total / self.x.shape[0]
        for c, value in traces.items():
            out[f"share/{c}"] = value / total if total > 0 else math.nan
        heads = [v for c, v in traces.items() if ".head" in c]
        out["heads"] = sum(heads) / total if total > 0 else math.nan
        out["top_head"] = max(heads) / sum(heads) if heads and sum(heads) > 0 else math.nan
        return out


@dataclass
class TransformerGrokkingResult:
    """What :func:`transformer_grokking` returns.

    Attributes:
        rows: one dict per KP checkpoint: ``step``, ``train_loss``, ``train_accuracy``,
            ``test_loss``, ``test_accuracy`` and everything :class:`TransformerKPProbe` records (``K``,
            ``K_stderr``, ``G``, ``share/blocks.0.head0``, ``heads``, ``top_head``, …).
        clocks: :func:`~gdlens.probes.clocks.clock_summary` of the run, plus ``grokked`` (final
            test accuracy ≥ the threshold).
        metrics: ``{name: (steps, values)}`` of the dense series (``metrics/test/accuracy``,
            ``energy/l2``, ``energy/fourier_sparsity``, …).
        settings: the arguments.  train: the :class:`~gdlens.train.TrainResult`.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    clocks: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    train: Any = None

    @property
    def heads(self) -> list[str]:
        """The head components, ``blocks.ℓ.head{h}``, in order."""
        return [k[len("share/"):] for k in self.rows[0] if k.startswith("share/") and ".head" in k] if self.rows else []

    def column(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one column of :attr:`rows`."""
        steps = np.array([r["step"] for r in self.rows])
        return steps, np.array([r.get(key, math.nan) for r in self.rows], dtype=float)

    def at(self, step: float) -> dict[str, Any]:
        """The row of the last checkpoint at or before ``step`` (the first row if none)."""
        chosen = self.rows[0]
        for row in self.rows:
            if row["step"] <= step:
                chosen = row
        return chosen

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame (imports pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def figure(self, path: str | None = None) -> Any:
        """Three panels against the step: accuracies (and losses), the effective ranks of K and G
        (± 2 standard errors), and each head's share of tr K; the fit, representation (of Σ‖θ‖²,
        and dashed of the embedding's Fourier sparsity) and generalisation clocks as vertical
        lines. Saved to ``path`` when given; returns the
        Figure (imports matplotlib)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), constrained_layout=True)
        ax = axes[0]
        for name, style in (("metrics/train/accuracy", "-"), ("metrics/test/accuracy", "-")):
            if name in self.metrics:
                s, v = self.metrics[name]
                ax.plot(s, v, style, label=name.split("/")[1] + " accuracy")
        ax.set_ylabel("accuracy")
        ax.set_title("fit and generalisation")
        loss_ax = ax.twinx()
        for name in ("metrics/train/loss", "metrics/test/loss"):
            if name in self.metrics:
                s, v = self.metrics[name]
                loss_ax.plot(s, np.maximum(v, 1e-8), ":", label=name.split("/")[1] + " loss")
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel("loss (dotted)")
        ax.legend(fontsize=8, loc="center right")
        ax = axes[1]
        for key in ("K", "G"):
            s, v = self.column(key)
            _, e = self.column(f"{key}_stderr")
            ax.plot(s, v, marker=".", label=f"r({key})")
            ax.fill_between(s, v - 2 * e, v + 2 * e, alpha=0.25)
        ax.set_ylabel("effective rank (tr A)²/‖A‖²_F")
        ax.set_title("effective ranks of K and G")
        ax.legend(fontsize=8)
        ax = axes[2]
        for head in self.heads:
            s, v = self.column(f"share/{head}")
            ax.plot(s, v, marker=".", label=head)
        s, v = self.column("heads")
        ax.plot(s, v, "k--", label="all heads")
        ax.set_ylabel("tr K_head / tr K")
        ax.set_title("heads' shares of K")
        ax.legend(fontsize=7, ncol=2)
        marks = {  # clock key -> (label, colour, line style)
            "fit": ("T_fit", "tab:green", "-"),
            "representation": ("T_rep (Σ‖θ‖²)", "tab:purple", "-"),
            "representation/fourier_sparsity": ("T_rep (Fourier)", "tab:purple", "--"),
            "generalization": ("T_gen", "tab:red", "-"),
        }
        for ax in axes:
            ax.set_xlabel("step")
            for clock, (label, colour, style) in marks.items():
                t = self.clocks.get(f"clocks/{clock}")
                if t is not None:
                    ax.axvline(t, color=colour, ls=style, lw=1, alpha=0.8)
                    if ax is axes[0]:
                        ax.text(t, 0.02, f" {label}", color=colour, fontsize=7, rotation=90, va="bottom")
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def transformer_grokking(
    p: int = 31,
    *,
    train_fraction: float = 0.5,
    layers: int = 2,
    d_model: int = 32,
    heads: int = 4,
    d_mlp: int = 128,
    steps: int = 3000,
    lr: float = 3e-3,
    weight_decay: float = 1.0,
    betas: Sequence[float] = (0.9, 0.98),
    seed: int = 0,
    record_every: int = 50,
    kp_every: int = 150,
    kp_batch: int = 16,
    num_matvecs: int = 60,
    eps: float = 0.1,
    threshold: float = 0.95,
    num_threads: int | None = 1,
    store: Any = None,
    progress: bool = False,
) -> TransformerGrokkingResult:
    """Train a ``layers``-block :class:`~gdlens.models.TransformerStack` on ``a + b mod p`` and
    measure K, P Pᵀ and G and the heads' shares of K across training (module docstring).

    Args:
        p, train_fraction, seed: the task (``seed`` also fixes the initialisation, drawn under a
            forked RNG, and the KP batch).
        layers, d_model, heads, d_mlp: the model (ReLU MLP, causal attention, readout at "=").
        steps, lr, weight_decay, betas: full-batch AdamW.
        record_every: steps between the metrics and energies.
        kp_every: steps between KP checkpoints (a multiple of ``record_every``); every
            checkpoint costs B·L·3·d vector-Jacobian products (the exact shares) plus
            ``num_matvecs`` matvecs per operator (the ranks).
        kp_batch: B, the training pairs the flow is built on.
        eps, threshold: the fit/representation clocks' ε and the generalisation clock's accuracy.
        num_threads: torch threads during the run (None leaves the setting alone).
        store: a :class:`~gdlens.store.Store` or path to record the run in (None: in memory).
        progress: progress bar.
    """
    for name, value in (("p", p), ("layers", layers), ("d_model", d_model), ("heads", heads), ("d_mlp", d_mlp),
                        ("steps", steps), ("record_every", record_every), ("kp_every", kp_every),
                        ("kp_batch", kp_batch), ("num_matvecs", num_matvecs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "p" else 1):
            raise ValueError(f"{name} must be an int >= {2 if name == 'p' else 1}, got {value!r}")
    if kp_every % record_every:
        raise ValueError(f"kp_every = {kp_every} must be a multiple of record_every = {record_every}")
    if d_model % heads:
        raise ValueError(f"heads = {heads} must divide d_model = {d_model}")
    data = equals_tokens(modular_addition(p=p, train_fraction=train_fraction, seed=seed))
    if kp_batch > data.train.x.shape[0]:
        raise ValueError(f"kp_batch = {kp_batch} exceeds the {data.train.x.shape[0]} training pairs")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TransformerStack(d_model, heads, layers, p, 3, vocab_size=p + 1, d_mlp=d_mlp, activation="relu")
    pick = torch.randperm(data.train.x.shape[0], generator=torch.Generator().manual_seed(seed + 1))[:kp_batch]
    pick = pick.sort().values
    kp_probe = TransformerKPProbe(data.train.x[pick], data.train.target[pick], schedule=Schedule(every=kp_every),
                       num_matvecs=num_matvecs, seed=seed)
    probes = [
        MetricsProbe(schedule=Schedule(every=record_every)),
        EnergyProbe(schedule=Schedule(every=record_every), embedding=lambda m: m.embed.weight[:p]),
        kp_probe,
    ]
    settings = dict(p=p, train_fraction=train_fraction, layers=layers, d_model=d_model, heads=heads, d_mlp=d_mlp,
                    steps=steps, lr=lr, weight_decay=weight_decay, betas=list(betas), seed=seed,
                    record_every=record_every, kp_every=kp_every, kp_batch=kp_batch, num_matvecs=num_matvecs,
                    eps=eps, threshold=threshold)
    with _threads(num_threads):
        run = train(model, data, optimizer="adamw", lr=lr, weight_decay=weight_decay, betas=tuple(betas),
                    steps=steps, batch_size=None, probes=probes, store=store, name="transformer_grokking",
                    config={"transformer_grokking": settings}, seed=seed, progress=progress)
    clocks = clock_summary(run, eps=eps, threshold=threshold)
    final = run.summary.get("metrics/test/accuracy")
    clocks["grokked"] = bool(final is not None and final >= threshold)
    run.summary.update(clocks)
    if run.run is not None:
        run.run.update_summary(clocks)
    metrics = {n: run.series(n) for n in run.history if n.startswith(("metrics/", "energy/"))
               and np.ndim(run.history[n][0][1]) == 0}
    dense = {n: dict(zip(*(a.tolist() for a in metrics[n]))) for n in metrics if n.startswith("metrics/")}
    kp_keys = [n for n in run.history if n.startswith(f"{kp_probe.name}/")]
    kp_steps = [int(s) for s in run.series(kp_keys[0])[0]]
    rows = []
    for i, step in enumerate(kp_steps):
        row: dict[str, Any] = {"step": step}
        for split in ("train", "test"):
            for key in ("loss", "accuracy"):
                row[f"{split}_{key}"] = dense.get(f"metrics/{split}/{key}", {}).get(step, math.nan)
        for n in kp_keys:
            row[n[len(kp_probe.name) + 1:]] = float(run.series(n)[1][i])
        rows.append(row)
    return TransformerGrokkingResult(rows=rows, clocks=clocks, metrics=metrics, settings=settings, train=run)


def __getattr__(name: str):
    if name == "KPProbe":  # renamed: it clashed with gdlens.probes.KPProbe
        import warnings

        warnings.warn("gdlens.experiments.transformer_grokking.KPProbe is now TransformerKPProbe",
                      DeprecationWarning, stacklevel=2)
        return TransformerKPProbe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
