"""Built-in phase diagrams: sweeps whose every point is reduced to order parameters.

- :func:`condensation_phase_diagram`: two-layer ReLU and tanh networks across initialisation
  scale and width (Luo, Xu, Ma & Zhang, "Phase diagram for two-layer ReLU neural networks at
  infinite-width limit", arXiv 2007.07497). The order parameter is the relative change of the
  input weights at the end of training, ``RD = ‖W(T) − W(0)‖ / ‖W(0)‖``: in the linear (NTK)
  regime RD falls with width, in the condensed regime it grows, and at the critical scale it
  stays roughly flat. The slope of log RD against log width classifies each (activation,
  scale) row; the number of orientations the input layer's neurons have condensed onto
  (:func:`gdlens.probes.condensation.count_orientations`) is reported alongside.
- :func:`kpflow_phase_diagram`: the KPFlow initial-weight-scale sweep (arXiv 2507.06381): GRU
  and tanh RNN on memory-pro across a log grid of g; the effective ranks of K, P and G (the
  :class:`~gdlens.probes.KPProbe`) and the hidden participation ratio at initialisation and
  after training.

Both return a pandas DataFrame (one row per configuration, seeds averaged) and leave every run
in the store, so a rerun skips what is done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gdlens.store import Store, open_store
from gdlens.sweep.runner import sweep
from gdlens.sweep.spec import SweepSpec

__all__ = [
    "condensation_spec", "condensation_phase_diagram", "classify_regime", "kpflow_spec", "kpflow_phase_diagram",
]


def condensation_spec(
    widths: Sequence[int] = (32, 128, 512),
    gammas: Sequence[float] = (0.5, 1.0, 1.75),
    activations: Sequence[str] = ("relu", "tanh"),
    seeds: int = 1,
    steps: int = 10000,
    lr: float = 0.1,
    optimizer: str = "flow",
    input_dim: int = 5,
) -> SweepSpec:
    """The condensation sweep: MLP(depth 1) on a teacher-student task over activation ×
    γ × width ``model.hidden`` × seeds (full batch).

    Luo et al.'s model (arXiv 2007.07497) is ``f(x) = Σ_k a_k σ(w_k·x)`` with ``a_k ~ N(0, β₁²)``
    and ``w_k ~ N(0, β₂² I)`` (bias inside w), at ``γ = −log(β₁β₂)/log m`` and
    ``γ' = −log(β₁/β₂)/log m``. The sweep sits on the diagonal γ' = 0: every weight and bias is
    drawn from N(0, β²) with ``β = m^(−γ/2)`` (``model.init_std``; :class:`gdlens.models.MLP`), so
    γ is exact at every width. Their phase diagram is a statement about gradient flow, so the
    default optimizer is ``"flow"`` (:class:`gdlens.train.flow.GradientFlow`: Armijo-controlled
    Euler steps from step size ``lr``), which follows the flow at every γ and width; a fixed
    learning rate would diverge at small γ and large m or crawl at large γ. Each config
    records its ``meta.gamma``. The defaults (18 runs of 10,000 steps on 128 samples) take about
    80 s on 2 cores and give linear, critical and condensed at γ = 0.5, 1 and 1.75 for both
    activations; tanh from a small initialisation converges slowest (see ``loss_ratio``).
    """
    configs = [{"meta.gamma": float(gm), "model.hidden": int(m), "model.init_std": float(m ** (-gm / 2))}
               for gm in gammas for m in widths]
    return SweepSpec(
        base={
            "task": {"name": "teacher_student", "input_dim": input_dim, "teacher_width": 4},
            "model": {"name": "mlp", "hidden": int(widths[0]), "activation": activations[0]},
            "optimizer": optimizer, "lr": lr, "steps": steps,
            "probes": ["metrics", {"name": "rel_change", "schedule": "log:10"}],
        },
        grid={"model.activation": list(activations)},
        configs=configs,
        seeds=seeds,
        name="condensation",
    )


def classify_regime(widths: Sequence[float], rd: Sequence[float], tol: float = 0.15) -> tuple[str, float]:
    """(regime, slope) from the slope of log RD against log width: ``"linear"`` below
    −tol, ``"condensed"`` above +tol, ``"critical"`` between."""
    w, r = np.log(np.asarray(widths, float)), np.log(np.maximum(np.asarray(rd, float), 1e-300))
    if len(w) < 2 or not np.all(np.isfinite(r)):
        return "unknown", float("nan")
    slope = float(np.polyfit(w, r, 1)[0])
    return ("linear" if slope < -tol else "condensed" if slope > tol else "critical"), slope


def condensation_phase_diagram(
    store: Store | str, backend: str = "local", workers: int = 2, ensemble: bool = True, tol: float = 0.15,
    threshold: float = 0.95, **spec_kwargs: Any,
):
    """Run (or reuse) :func:`condensation_spec` and reduce it: one row per (activation, gamma,
    hidden) with ``init_std``, ``rd`` (relative change of the input weights, mean over seeds),
    ``orientations`` (condensed orientations of the input layer, mean over seeds),
    ``final_loss`` and ``loss_ratio`` (final over initial training loss: RD is read at the end
    of training, which should be near convergence), and per (activation, gamma) the ``slope``
    of log RD vs log width and the ``regime``."""
    import pandas as pd

    from gdlens.probes.condensation import count_orientations

    store = open_store(store) if not isinstance(store, Store) else store
    spec = condensation_spec(**spec_kwargs)
    result = sweep(spec, store, backend=backend, workers=workers, ensemble=ensemble)
    rows = []
    for config, run_id in zip(result.configs, result.run_ids):
        if run_id is None:
            continue
        run = store.run(run_id)
        summary = run.summary
        ckpt = run.latest_checkpoint()
        n_orient = float("nan")
        if ckpt is not None:
            state = ckpt[1]["model"]
            n_orient = count_orientations(state["net.0.weight"], state.get("net.0.bias"), threshold=threshold)
        first = run.metrics(names=["train_step/loss"], as_frame=False).get("train_step/loss")
        initial = float(first[1][np.argmin(first[0])]) if first is not None and len(first[0]) else float("nan")
        final = summary.get("final_train_loss", float("nan"))
        rows.append({
            "activation": config["model"]["activation"], "gamma": config["meta"]["gamma"],
            "init_std": config["model"].get("init_std", float("nan")), "hidden": config["model"]["hidden"],
            "seed": config["seed"], "rd": summary.get("rel_change/own/net.0.weight", float("nan")),
            "orientations": n_orient, "final_loss": final,
            "loss_ratio": final / initial if initial > 0 else float("nan"),
        })
    if not rows:
        raise RuntimeError(f"every configuration of the condensation sweep failed: {result.errors}")
    frame = pd.DataFrame(rows).groupby(["activation", "gamma", "hidden"], as_index=False).mean(numeric_only=True)
    frame = frame.drop(columns="seed")
    regimes = {}
    for (act, gm), part in frame.groupby(["activation", "gamma"]):
        regimes[(act, gm)] = classify_regime(part["hidden"], part["rd"], tol)
    frame["regime"] = [regimes[(a, gm)][0] for a, gm in zip(frame["activation"], frame["gamma"])]
    frame["slope"] = [regimes[(a, gm)][1] for a, gm in zip(frame["activation"], frame["gamma"])]
    frame.attrs["errors"] = result.errors
    return frame


def kpflow_spec(
    gs: Sequence[float] = tuple(float(g) for g in np.logspace(-1, math.log10(3.0), 4)),
    models: Sequence[str] = ("gru", "rnn"),
    hidden: int = 32,
    steps: int = 200,
    seeds: int = 1,
    lr: float = 3e-3,
    batch_size: int = 32,
    task: dict[str, Any] | None = None,
) -> SweepSpec:
    """The KPFlow g sweep: ``models`` (``"rnn"`` is the tanh RNN) on memory-pro across ``gs``,
    with the KP probe and the hidden participation ratio at initialisation and at the end."""
    return SweepSpec(
        base={
            "task": task or {"name": "memory_pro", "T_fix": 5, "T_stim": 5, "T_delay": 10, "T_resp": 5},
            "model": {"name": models[0], "hidden": hidden, "g": 1.0},
            "optimizer": "adam", "lr": lr, "steps": steps, "batch_size": batch_size,
            "probes": [
                {"name": "metrics", "schedule": "log:10"},
                {"name": "kp", "schedule": f"every:{max(steps, 1)}", "num_matvecs": 20},
                {"name": "hidden", "schedule": f"every:{max(steps, 1)}"},
            ],
        },
        grid={"model.name": list(models), "model.g": [float(g) for g in gs]},
        seeds=seeds,
        name="kpflow_g",
    )


def kpflow_phase_diagram(
    store: Store | str, backend: str = "local", workers: int = 2, ensemble: bool = True, **spec_kwargs: Any
):
    """Run (or reuse) :func:`kpflow_spec` and reduce it: one row per (model, g) with
    ``rank_K``, ``rank_P``, ``rank_G`` and ``participation_ratio`` at ``_init`` (step 0) and
    ``_final`` (last step), and the final loss; seeds averaged."""
    import pandas as pd

    store = open_store(store) if not isinstance(store, Store) else store
    spec = kpflow_spec(**spec_kwargs)
    result = sweep(spec, store, backend=backend, workers=workers, ensemble=ensemble)
    names = {"kp/rank_K": "rank_K", "kp/rank_P": "rank_P", "kp/rank_G": "rank_G",
             "hidden/participation_ratio": "participation_ratio"}
    rows = []
    for config, run_id in zip(result.configs, result.run_ids):
        if run_id is None:
            continue
        run = store.run(run_id)
        metrics = run.metrics(names=list(names), as_frame=False)
        row = {"model": config["model"]["name"], "g": config["model"]["g"], "seed": config["seed"],
               "final_loss": run.summary.get("final_train_loss", float("nan"))}
        for key, short in names.items():
            steps, values = metrics.get(key, (np.array([]), np.array([])))
            first = values[np.argmin(steps)] if len(steps) else float("nan")
            last = values[np.argmax(steps)] if len(steps) else float("nan")
            row[f"{short}_init"], row[f"{short}_final"] = float(first), float(last)
        rows.append(row)
    frame = pd.DataFrame(rows).groupby(["model", "g"], as_index=False).mean(numeric_only=True).drop(columns="seed")
    frame.attrs["errors"] = result.errors
    return frame
