"""``grokking-clocks`` (Tan, Gai & Zhang, the two training clocks; arXiv 2606.05863 as cited in
gdlens.experiments.grokking): on modular addition under full-batch AdamW with weight decay, the
training loss is fitted on a fast clock (T_fit) while the weights' energy Σ‖θ‖² settles on a
slow one (T_rep), and the held-out accuracy arrives late (T_gen); at first the head, not the
embedding, carries the gradient and the neural tangent kernel.

Setting: :func:`gdlens.experiments.grokking.run_grokking` (EmbeddingMLP, AdamW lr 3e-3, weight
decay 1, betas (0.9, 0.98)); small: p = 23, 80 % of the pairs for training, embeddings of 32,
128 ReLU units, 2,000 steps (examples/grokking.py); paper: the experiment's defaults (p = 97,
half the pairs, 128/512, lr 1e-3, 4,000 steps). Clocks at ε = 0.01 (fit, representation) and
95 % test accuracy (generalisation), :func:`gdlens.probes.clocks.clock_summary`. Per seed:

* ``gen_over_fit`` = T_gen / T_fit and ``rep_over_fit`` = T_rep / T_fit;
* ``head_over_embedding_ntk`` = tr K_head / tr K_embedding and ``head_over_embedding_grad`` =
  ‖∇_head L‖ / ‖∇_embedding L‖ at step 0 (:class:`~gdlens.probes.HeadEmbeddingProbe`);
each the mean over seeds ± its standard error (NaN for a seed whose clock was never reached,
which then fails its claim).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdlens.reproduce.common import history_keys, nan_if_none, per_seed
from gdlens.reproduce.registry import Above, Citation, Claim, Entry, Measurements, register
from gdlens.store import Store

__all__: list[str] = []

_EXAMPLE = dict(p=23, train_fraction=0.8, embedding=32, width=128, lr=3e-3, steps=2000, fourier_k=3)
_SIZES = {"tiny": _EXAMPLE, "small": _EXAMPLE, "paper": {}}


def _run(size: str, seeds: Sequence[int], store: Store, progress) -> Measurements:
    from gdlens.experiments.grokking import run_grokking

    cfg = _SIZES[size]
    values: dict[str, list[float]] = {k: [] for k in
                                      ("gen_over_fit", "rep_over_fit", "head_over_embedding_ntk",
                                       "head_over_embedding_grad")}
    curves, clocks, run_ids = [], [], []
    for seed in seeds:
        result = run_grokking(**cfg, seed=seed, store=store, progress=False, name="reproduce/grokking-clocks")
        s = result.summary
        t_fit, t_gen, t_rep = (nan_if_none(s.get(f"clocks/{k}")) for k in ("fit", "generalization", "representation"))
        values["gen_over_fit"].append(t_gen / max(t_fit, 1.0))
        values["rep_over_fit"].append(t_rep / max(t_fit, 1.0))
        values["head_over_embedding_ntk"].append(float(result.series("groups/head_over_embedding/ntk_trace")[1][0]))
        values["head_over_embedding_grad"].append(float(result.series("groups/head_over_embedding/grad_norm")[1][0]))
        clocks.append({"fit": t_fit, "rep": t_rep, "gen": t_gen})
        curves.append({k: result.series(k) for k in
                       ("metrics/train/accuracy", "metrics/test/accuracy", "energy/l2",
                        *history_keys(result, "groups/head_over_embedding/"))})
        if result.run is not None:
            run_ids.append(result.run.id)
        progress(f"seed {seed}: T_fit {t_fit:g}, T_rep {t_rep:g}, T_gen {t_gen:g}")
    settings = {k: v for k, v in cfg.items()} or {"p": 97, "steps": 4000, "(run_grokking defaults)": True}
    return Measurements(per_seed(values), data={"curves": curves, "clocks": clocks}, run_ids=run_ids,
                        settings={**settings, "ε (fit, representation)": 0.01, "generalisation threshold": 0.95})


def _figure(m: Measurements):
    from matplotlib.figure import Figure

    c, t = m.data["curves"][0], m.data["clocks"][0]
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax_a, ax_e, ax_h = fig.subplots(1, 3)
    for key, label in (("metrics/train/accuracy", "train"), ("metrics/test/accuracy", "test")):
        steps, v = c[key]
        ax_a.plot(steps, v, label=label)
    ax_a.set_ylim(0, 1.02)
    ax_a.set_ylabel("accuracy")
    steps, e = c["energy/l2"]
    ax_e.plot(steps, e, color="C2")
    ax_e.set_ylabel("Σ‖θ‖² (weight energy)")
    for key in (k for k in c if k.startswith("groups/head_over_embedding/")):
        steps, v = c[key]
        ax_h.loglog(np.maximum(steps, 1), v, "o-", ms=3, label=key.rsplit("/", 1)[1])
    ax_h.axhline(1, color="k", lw=0.8, ls=":")
    ax_h.set_ylabel("head / embedding")
    for ax in (ax_a, ax_e, ax_h):
        ax.set_xlabel("step")
        for name, ls in (("fit", "--"), ("rep", "-."), ("gen", ":")):
            if np.isfinite(t[name]):
                ax.axvline(max(t[name], 1), color="gray", ls=ls, lw=1, label=f"T_{name}" if ax is ax_a else None)
    ax_a.legend(fontsize=8)
    ax_h.legend(fontsize=8)
    fig.suptitle("two training clocks on modular addition, first seed")
    return fig


_SOURCE = "arXiv 2606.05863 (as cited in gdlens.experiments.grokking; figure number not checked)"

register(Entry(
    name="grokking-clocks",
    title="Two training clocks: T_fit, T_rep, T_gen on modular addition",
    citation=Citation("2606.05863", "the clock definitions and the modular-addition runs", "Tan, Gai & Zhang"),
    claims=(
        Claim("gen_over_fit", Above(1.0), f"{_SOURCE}: generalisation comes after the fit (grokking)",
              "T_gen / T_fit (test accuracy ≥ 95 % / training loss ≤ 0.01)"),
        Claim("rep_over_fit", Above(1.0), f"{_SOURCE}: the representation clock is the slow one",
              "T_rep / T_fit (Σ‖θ‖² within 1 % of its final value / training loss ≤ 0.01)"),
        Claim("head_over_embedding_ntk", Above(1.0), f"{_SOURCE}: the head, not the embedding, fits first",
              "tr K_head / tr K_embedding at step 0"),
        Claim("head_over_embedding_grad", Above(1.0), f"{_SOURCE}: the head, not the embedding, fits first",
              "‖∇_head L‖ / ‖∇_embedding L‖ at step 0"),
    ),
    run=_run, figure=_figure,
    sizes={"tiny": "p = 23, 2,000 AdamW steps (one seed)", "small": "p = 23, 2,000 AdamW steps (examples/grokking.py)",
           "paper": "p = 97, 4,000 AdamW steps (run_grokking defaults)"},
    default_seeds={"tiny": 1, "small": 3, "paper": 3},
    small_seconds=60.0,
    notes="The claims are the qualitative statements the library's grokking documentation attributes to the "
          "two-clocks paper; its figures were not checked number by number in this reproduction. At the small "
          "size Σ‖θ‖² is still falling at the end of the run, so T_rep (measured against the last value) is a "
          "lower bound, which is enough for T_rep / T_fit > 1.",
))
