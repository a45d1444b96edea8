"""Entries from Xu and coauthors: the frequency principle (arXiv 1901.06523) and the phase
diagram of two-layer ReLU networks (arXiv 2007.07497). The Adam loss spike (arXiv 2506.04805)
lives in :mod:`gdlens.reproduce.spike`.

``frequency-principle``: an MLP (1 → 200 → 200 → 1, tanh, Adam lr 1e-3, full batch) fits
sin x + sin 3x + sin 5x on 201 points of [−π, π]; the FrequencyProbe records, at 40
log-spaced steps, the relative error Δ_k = |ĥ_k − ŷ_k| / |ŷ_k| of the prediction's DFT at the
target's three peaks k. T(k) = the first recorded step at which Δ_k ≤ 0.1 (our threshold)
there and at the next two recorded steps (a dip at the start does not count; Adam's late loss
spikes do not undo it). Claims: T(3)/T(1) > 1 and T(5)/T(3) > 1 (low frequencies converge
first), per seed, mean ± s.e.

``condensation-phase``: the condensation sweep of :mod:`gdlens.sweep.experiments` (two-layer
ReLU network, every weight N(0, m^−γ), γ' = 0, gradient flow) at γ = 0.5, 1, 1.75 over widths
m; per seed the slope of log RD against log m, RD = ‖W(end) − W(0)‖/‖W(0)‖ of the input
weights. Claims: slope < 0 at γ = 0.5 (linear regime), slope > 0 at γ = 1.75 (condensed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gdlens.models import MLP
from gdlens.probes import FrequencyProbe, Schedule
from gdlens.reproduce.common import history_keys, per_seed, settled_step
from gdlens.reproduce.registry import Above, Below, Citation, Claim, Entry, Measurements, register
from gdlens.store import Store
from gdlens.tasks import fourier_1d
from gdlens.train import train

__all__: list[str] = []

# ---------------------------------------------------------------- frequency principle

_FP_SIZES = {"tiny": dict(width=100, steps=2000, lr=2e-3), "small": dict(width=200, steps=3000, lr=1e-3),
             "paper": dict(width=200, steps=10000, lr=1e-3)}
_FP_THRESHOLD = 0.1


def _fp_run(size: str, seeds: Sequence[int], store: Store, progress) -> Measurements:
    cfg = _FP_SIZES[size]
    data = fourier_1d(frequencies=(1, 3, 5), n_points=201)
    ratios: dict[str, list[float]] = {"t3_over_t1": [], "t5_over_t3": []}
    errors: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    run_ids = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MLP(1, cfg["width"], 1, depth=2, activation="tanh")
        probe = FrequencyProbe(schedule=Schedule(log_points=40))
        result = train(model, data, optimizer="adam", lr=cfg["lr"], steps=cfg["steps"], probes=[probe], store=store,
                       name="reproduce/frequency-principle", seed=seed, progress=False,
                       config={"reproduce": {"entry": "frequency-principle", "size": size}})
        keys = sorted(history_keys(result, "frequency/err_k"), key=lambda k: int(k.rsplit("k", 1)[1]))
        series = {int(k.rsplit("k", 1)[1]): result.series(k) for k in keys}
        errors[seed] = series
        t = [settled_step(s, v, _FP_THRESHOLD) for s, v in series.values()]
        t = (t + [np.nan] * 3)[:3]
        ratios["t3_over_t1"].append(t[1] / max(t[0], 1.0))
        ratios["t5_over_t3"].append(t[2] / max(t[1], 1.0))
        progress(f"seed {seed}: T(Δ_k ≤ {_FP_THRESHOLD}) per peak {t}")
        if result.run is not None:
            run_ids.append(result.run.id)
    return Measurements(per_seed(ratios), data={"errors": errors}, run_ids=run_ids,
                        settings={**cfg, "threshold": _FP_THRESHOLD, "peaks": "sin x + sin 3x + sin 5x"})


def _fp_figure(m: Measurements):
    from matplotlib.figure import Figure

    first = next(iter(m.data["errors"].values()))
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax, hm = fig.subplots(1, 2)
    for i, (k, (steps, err)) in enumerate(first.items()):
        ax.loglog(np.maximum(steps, 1), err, color=f"C{i}", label=f"peak k = {k}")
    ax.axhline(_FP_THRESHOLD, color="k", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("relative error Δ_k = |ĥ_k − ŷ_k| / |ŷ_k|")
    ax.legend(fontsize=8)
    steps = next(iter(first.values()))[0]
    grid = np.stack([v for _, v in first.values()])
    im = hm.imshow(grid, aspect="auto", cmap="viridis_r", vmin=0, vmax=1, interpolation="nearest")
    hm.set_yticks(range(len(first)), [str(k) for k in first])
    ticks = np.linspace(0, len(steps) - 1, 5).astype(int)
    hm.set_xticks(ticks, [str(int(steps[i])) for i in ticks])
    hm.set_xlabel("step")
    hm.set_ylabel("DFT peak k")
    fig.colorbar(im, ax=hm, label="Δ_k")
    fig.suptitle("frequency principle, first seed (cf. arXiv 1901.06523 Fig. 1)")
    return fig


register(Entry(
    name="frequency-principle",
    title="Frequency principle: a network fits the low frequencies first (1-D)",
    citation=Citation("1901.06523", "Fig. 1 (1-D example)", "Xu, Zhang, Luo, Xiao & Ma"),
    claims=(
        Claim("t3_over_t1", Above(1.0), "Fig. 1: the relative error at the lower peak falls first",
              "T(k=3)/T(k=1), T(k) = first recorded step with Δ_k ≤ 0.1 there and at the next two"),
        Claim("t5_over_t3", Above(1.0), "Fig. 1: the relative error at the lower peak falls first",
              "T(k=5)/T(k=3), T(k) = first recorded step with Δ_k ≤ 0.1 there and at the next two"),
    ),
    run=_fp_run, figure=_fp_figure,
    sizes={"tiny": "width 100, 2,000 Adam steps (lr 2e-3)", "small": "width 200, 3,000 Adam steps (lr 1e-3)",
           "paper": "width 200, 10,000 Adam steps (lr 1e-3)"},
    default_seeds={"tiny": 1, "small": 3, "paper": 5},
    small_seconds=90.0,
))

# ---------------------------------------------------------------- condensation phase diagram

_CP_SIZES = {"tiny": dict(widths=(16, 64, 256), steps=1000), "small": dict(widths=(32, 128, 512), steps=3000),
             "paper": dict(widths=(32, 128, 512, 2048), steps=10000)}
_CP_GAMMAS = (0.5, 1.0, 1.75)


def _cp_run(size: str, seeds: Sequence[int], store: Store, progress) -> Measurements:
    from gdlens.sweep.experiments import classify_regime, condensation_spec
    from gdlens.sweep.runner import sweep

    cfg = _CP_SIZES[size]
    spec = condensation_spec(widths=cfg["widths"], gammas=_CP_GAMMAS, activations=("relu",), steps=cfg["steps"])
    spec.seeds = list(seeds)
    spec.name = f"reproduce-condensation-{size}"
    result = sweep(spec, store, workers=1, ensemble=True)
    rd: dict[tuple[float, int], dict[int, float]] = {}
    run_ids = []
    for config, run_id in zip(result.configs, result.run_ids):
        if run_id is None:
            continue
        run_ids.append(run_id)
        key = (float(config["meta"]["gamma"]), int(config["seed"]))
        summary = store.run(run_id).summary  # RD of the input weights (older runs: without "own/")
        rd.setdefault(key, {})[int(config["model"]["hidden"])] = float(
            summary.get("rel_change/own/net.0.weight", summary.get("rel_change/net.0.weight", np.nan)))
    slopes: dict[float, list[float]] = {g: [] for g in _CP_GAMMAS}
    for (gamma, seed), by_width in sorted(rd.items()):
        widths = sorted(by_width)
        slopes[gamma].append(classify_regime(widths, [by_width[w] for w in widths])[1])
    progress(f"slopes of log RD vs log m: { {g: np.round(s, 3).tolist() for g, s in slopes.items()} }")
    values = per_seed({"slope_linear": slopes[0.5], "slope_condensed": slopes[1.75]})
    return Measurements(values, data={"rd": rd, "slopes": slopes}, run_ids=run_ids,
                        settings={"widths": str(cfg["widths"]), "steps": cfg["steps"], "optimizer": "flow",
                                  "gammas": str(_CP_GAMMAS)})


def _cp_figure(m: Measurements):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for i, gamma in enumerate(_CP_GAMMAS):
        curves = [v for (g, _), v in m.data["rd"].items() if g == gamma]
        if not curves:
            continue
        widths = sorted(curves[0])
        mean = np.mean([[c[w] for w in widths] for c in curves], axis=0)
        slope = np.mean(m.data["slopes"][gamma])
        ax.loglog(widths, mean, "o-", color=f"C{i}", label=f"γ = {gamma:g} (slope {slope:+.2f})")
    ax.set_xlabel("width m")
    ax.set_ylabel("RD = ‖W(end) − W(0)‖ / ‖W(0)‖")
    ax.set_title("two-layer ReLU, gradient flow (cf. arXiv 2007.07497)")
    ax.legend(fontsize=8)
    return fig


register(Entry(
    name="condensation-phase",
    title="Phase diagram of two-layer ReLU networks: linear, critical, condensed",
    citation=Citation("2007.07497", "the phase diagram (Fig. 1): RD against width",
                      "Luo, Xu, Ma & Zhang"),
    claims=(
        Claim("slope_linear", Below(0.0), "phase diagram: γ < 1 is the linear regime, RD → 0 as m → ∞",
              "slope of log RD against log m at γ = 0.5"),
        Claim("slope_condensed", Above(0.0), "phase diagram: γ > 1 is the condensed regime, RD → ∞ as m → ∞",
              "slope of log RD against log m at γ = 1.75"),
    ),
    run=_cp_run, figure=_cp_figure,
    sizes={"tiny": "widths 16, 64, 256; 1,000 flow steps", "small": "widths 32, 128, 512; 3,000 flow steps",
           "paper": "widths 32 to 2,048; 10,000 flow steps"},
    default_seeds={"tiny": 1, "small": 2, "paper": 3},
    small_seconds=150.0,
    notes="The critical line γ = 1 (RD = O(1)) is drawn but not claimed: its slope is near zero and "
          "the paper states no number to test it against.",
))
