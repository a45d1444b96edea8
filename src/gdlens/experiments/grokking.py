"""Grokking on modular addition, with its clocks measured.

``run_grokking()`` trains the embedding MLP of :class:`gdlens.models.EmbeddingMLP` on
``a + b mod p`` (p = 97, half of the p² pairs for training, embeddings of 128, 512 ReLU units)
with full-batch AdamW (lr 1e-3, weight decay 1.0, betas (0.9, 0.98)) for 4,000 steps, and
records:

- ``metrics/{train,test}/{loss,accuracy}`` every ``every`` steps;
- ``energy/...``: Σ‖θ‖² (total and per group), the embedding's nuclear norm and its Fourier
  sparsity over the token axis (:class:`~gdlens.probes.energies.EnergyProbe`);
- ``groups/...``: per-group gradient norms and NTK traces, head vs embedding
  (:class:`~gdlens.probes.groups.HeadEmbeddingProbe`) at log-spaced steps;
- the clocks in the summary (:func:`~gdlens.probes.clocks.clock_summary`): ``clocks/fit``
  (first step with training loss ≤ ε, from the per-step losses), ``clocks/generalization``
  (first step with test accuracy ≥ ``threshold``) and ``clocks/representation`` (the step after
  which Σ‖θ‖² stays within ε of its final value), for each ε in ``eps``.

With these settings the run groks: training accuracy reaches 100% within about 100 steps and
the test accuracy crosses 95% near step 2,200 (p = 97, seed 0; bench/grokking.py prints the
clocks and the wall time). The initialisation matters and is the model's own: embeddings
``N(0, 1)`` (torch's ``nn.Embedding`` default), linear weights ``N(0, 1/fan_in)``, zero
biases. Large embeddings make the head and hidden layer, not the embedding, take most of the
NTK at first (``groups/head_over_embedding/ntk_trace`` ≫ 1): the head fits first and weight
decay simplifies the representation afterwards.

Python::

    from gdlens.experiments.grokking import run_grokking
    result = run_grokking(store="runs")          # TrainResult; result.summary["clocks/fit"], ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch

from gdlens.models import EmbeddingMLP, Transformer1L
from gdlens.probes.base import Schedule
from gdlens.probes.clocks import clock_summary
from gdlens.probes.energies import EnergyProbe
from gdlens.probes.groups import HeadEmbeddingProbe
from gdlens.probes.training import MetricsProbe
from gdlens.tasks import modular_addition
from gdlens.train import TrainResult, train

__all__ = ["run_grokking", "grokking_probes", "MODELS"]

MODELS = ("mlp", "transformer")


def grokking_probes(every: int = 10, group_points: int = 30, ntk_samples: int | None = 64,
                    fourier_k: int = 8) -> list:
    """The probes of :func:`run_grokking`: metrics and energies every ``every`` steps, the
    head/embedding split at ``group_points`` log-spaced steps (NTK traces on ``ntk_samples``
    training pairs)."""
    return [
        MetricsProbe(schedule=Schedule(every=every)),
        EnergyProbe(schedule=Schedule(every=every), fourier_k=fourier_k),
        HeadEmbeddingProbe(schedule=Schedule(log_points=group_points), ntk_samples=ntk_samples),
    ]


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_grokking(
    p: int = 97,
    train_fraction: float = 0.5,
    embedding: int = 128,
    width: int = 512,
    steps: int = 4000,
    lr: float = 1e-3,
    weight_decay: float = 1.0,
    betas: Sequence[float] = (0.9, 0.98),
    seed: int = 0,
    store: Any = None,
    progress: bool = True,
    *,
    model: str = "mlp",
    activation: str = "relu",
    operation: str = "add",
    embed_std: float = 1.0,
    n_heads: int = 4,
    eps: float | Sequence[float] = (0.01, 0.03, 0.1),
    threshold: float = 0.95,
    every: int = 10,
    group_points: int = 30,
    ntk_samples: int | None = 64,
    fourier_k: int = 8,
    extra_probes: Sequence[Any] = (),
    num_threads: int | None = None,
    name: str | None = "grokking",
) -> TrainResult:
    """Train on ``a ∘ b mod p`` with full-batch AdamW and record the training clocks (module
    docstring).

    Args:
        p, train_fraction, operation: the task (:func:`gdlens.tasks.modular_addition`; ``seed``
            fixes the split).
        embedding, width, activation, embed_std: the :class:`~gdlens.models.EmbeddingMLP`
            (``model="mlp"``); with ``model="transformer"`` a :class:`~gdlens.models.Transformer1L`
            with d_model = ``embedding``, d_mlp = ``width`` and ``n_heads`` heads.
        steps, lr, weight_decay, betas: full-batch AdamW.
        seed: the split and the initialisation (drawn under a forked RNG; the global torch RNG is
            left as it was).
        store: a :class:`~gdlens.store.Store` or a path (None: in memory).
        progress: progress bar.
        eps: ε of the fit and representation clocks (the first is the main one; all are reported
            as ``clocks/fit@ε`` and ``clocks/representation@ε``).
        threshold: test accuracy of the generalisation clock.
        every, group_points, ntk_samples, fourier_k: probe settings (:func:`grokking_probes`).
        extra_probes: further probes to record.
        num_threads: torch threads during the run (None leaves the setting alone).
        name: the run's name in the store.

    Returns:
        the :class:`~gdlens.train.TrainResult`; its ``summary`` (and the stored run's) holds the
        clocks and ``grokked`` (final test accuracy ≥ threshold).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    data = modular_addition(p=p, operation=operation, train_fraction=train_fraction, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model == "mlp":
            net: torch.nn.Module = EmbeddingMLP(p, embedding=embedding, width=width, activation=activation,
                                                embed_std=embed_std)
        else:
            net = Transformer1L(p, d_model=embedding, n_heads=n_heads, d_mlp=width)
    probes = grokking_probes(every, group_points, ntk_samples, fourier_k) + list(extra_probes)
    config = {
        "experiment": "grokking",
        "grokking": {
            "p": p, "train_fraction": train_fraction, "operation": operation, "model": model,
            "embedding": embedding, "width": width, "activation": activation, "embed_std": embed_std,
            "n_heads": n_heads if model == "transformer" else None,
            "eps": list(eps) if not isinstance(eps, (int, float)) else [eps], "threshold": threshold,
        },
    }
    with _threads(num_threads):
        result = train(
            net, data, optimizer="adamw", lr=lr, weight_decay=weight_decay, betas=tuple(betas), steps=steps,
            batch_size=None, probes=probes, store=store, name=name, config=config, seed=seed, progress=progress,
        )
    clocks = clock_summary(result, eps=eps, threshold=threshold)
    final_acc = result.summary.get("metrics/test/accuracy")
    clocks["grokked"] = bool(final_acc is not None and final_acc >= threshold)
    result.summary.update(clocks)
    if result.run is not None:
        result.run.update_summary(clocks)
    return result
