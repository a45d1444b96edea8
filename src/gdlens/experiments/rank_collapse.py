"""Rank collapse over depth, in the forward pass and in the KP operators of a transformer.

Dong, Cordonnier & Loukas (arXiv 2103.03404) show that a stack of self-attention layers without
skip connections or MLPs loses rank doubly exponentially in depth: every token's residual stream
converges to one common vector, res(X) = X − 1 x̄ᵀ → 0; skip connections prevent it and MLPs slow
it. This experiment asks the same of the gradient-flow operators of
:class:`~gdlens.models.TransformerStack` read over depth (arXiv 2507.06381): the effective ranks
(participation ratios (tr A)²/‖A‖_F²) of K, of P Pᵀ (reported as "P") and of G = P K Pᵀ on the
(B, L, n·d) space of all layers' residual streams, for four block types at growing depth L:

- ``"attn-only"``: z_ℓ = Attn(LN(z_{ℓ-1}))                 (mlp=False, residual=False)
- ``"attn+mlp"``: z_ℓ = MLP(LN(Attn(LN(z_{ℓ-1}))))          (mlp=True, residual=False)
- ``"attn+skip"``: z_ℓ = z_{ℓ-1} + Attn(LN(z_{ℓ-1}))        (mlp=False, residual=True)
- ``"attn+skip+mlp"``: the full pre-LN block                (mlp=True, residual=True)

at initialisation, full (non-causal) attention, embedding inputs x ~ N(0, 1) of width d, all
positions read. ``G_tokens`` is the effective dimension of G over the token axis alone (G seen on
(B, L, n, d) with :meth:`~gdlens.models.TransformerStack.token_view`, batch, layers and features
traced out, exactly: an (n, n) matrix). ``token_residual`` is the forward measure:
‖X − 1 x̄ᵀ‖_F / ‖X‖_F of the last layer's stream X (n, d), x̄ the token mean, over the batch.

Documented claim (the defaults: d = 8, 2 heads, n = 4, B = 2, seed 0, exact traces; asserted in
``tests/experiments/test_rank_collapse.py``; measured numbers in ``docs/transformers.md``): at
depth ≥ 4, without skip connections ("attn-only", "attn+mlp") the token residual is below 0.1
and the effective ranks of P and G are at most half those of the same blocks with skip
connections ("attn+skip", "attn+skip+mlp"), whose token residual stays above 0.5; at depth 8 G's
effective dimension over the n = 4 tokens is below 1.2 without skips (one token direction) and
above 2 with them; K's effective rank grows with depth in every variant (each layer brings its
own parameters). So rank collapse reaches the flow: without skips,
gradient descent can move the residual streams of a deep attention stack only in a few directions.

Python::

    from gdlens.experiments.rank_collapse import rank_collapse
    result = rank_collapse()            # about 15 s on one CPU thread
    result.rows[0]                      # {"variant": ..., "depth": 1, "K": ..., "P": ..., "G": ...}
    result.to_frame()                   # a pandas DataFrame (pandas needed)
    result.figure("rank_collapse.png")  # matplotlib (the ``report`` extra)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gdlens.flow import KPFlow, effective_ranks
from gdlens.models import TransformerStack
from gdlens.operators import partial_effective_rank

__all__ = ["VARIANTS", "RankCollapseResult", "rank_collapse", "token_residual"]

#: variant name -> (mlp, residual)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "attn-only": (False, False),
    "attn+mlp": (True, False),
    "attn+skip": (False, True),
    "attn+skip+mlp": (True, True),
}

_OPERATORS = ("K", "P", "G")


def token_residual(stream: torch.Tensor) -> float:
    """‖X − 1 x̄ᵀ‖_F / ‖X‖_F for streams X (..., n, d), x̄ the mean over the n tokens; 0 when
    every token carries the same vector (rank collapse, arXiv 2103.03404)."""
    centred = stream - stream.mean(dim=-2, keepdim=True)
    return float(torch.linalg.vector_norm(centred) / torch.linalg.vector_norm(stream))


@dataclass
class RankCollapseResult:
    """One row per (variant, depth, seed): ``variant``, ``depth``, ``seed``, ``dim`` (B·L·n·d,
    the dimension the operators act on), ``K``, ``P``, ``G`` (effective ranks), ``K_stderr``,
    ``P_stderr``, ``G_stderr`` (0 for exact traces), ``G_tokens`` and ``token_residual``."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def mean(self, variant: str, depth: int, key: str) -> float:
        """``key`` averaged over the seeds of (variant, depth)."""
        values = [r[key] for r in self.rows if r["variant"] == variant and r["depth"] == depth]
        if not values:
            raise KeyError(f"no rows for variant {variant!r} at depth {depth}")
        return sum(values) / len(values)

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame (imports pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def figure(self, path: str | None = None) -> Any:
        """Effective ranks of P, G and K, G's over the tokens and the token residual against depth, one line per
        variant (means over seeds); saved to ``path`` when given. Returns the Figure (imports
        matplotlib)."""
        import matplotlib.pyplot as plt

        variants = list(dict.fromkeys(r["variant"] for r in self.rows))
        depths = sorted({r["depth"] for r in self.rows})
        fig, axes = plt.subplots(1, 5, figsize=(19, 3.4), constrained_layout=True)
        for ax, key in zip(axes, ("P", "G", "K", "G_tokens", "token_residual")):
            for v in variants:
                values = [self.mean(v, L, key) for L in depths]
                if key == "token_residual":  # an exact collapse (0) stays on the log axis
                    values = [max(val, 1e-17) for val in values]
                ax.plot(depths, values, marker="o", label=v)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("depth L")
            if key == "token_residual":
                ax.set_yscale("log")
                ax.set_title("token residual ‖X − 1x̄ᵀ‖/‖X‖ (last layer)")
            elif key == "G_tokens":
                ax.set_title("effective rank of G over tokens")
            else:
                ax.set_title(f"effective rank of {key if key != 'P' else 'P Pᵀ'}")
        axes[0].legend(fontsize=8)
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def rank_collapse(
    depths: Sequence[int] = (1, 2, 4, 8),
    variants: Sequence[str] = tuple(VARIANTS),
    *,
    d_model: int = 8,
    n_heads: int = 2,
    seq_len: int = 4,
    batch: int = 2,
    seeds: Sequence[int] = (0,),
    method: str = "exact",
    num_matvecs: int = 30,
    dtype: torch.dtype = torch.float64,
) -> RankCollapseResult:
    """Effective ranks of K, P Pᵀ and G (and the forward token residual) of TransformerStack
    at initialisation, per variant, depth and seed (module docstring).

    The model of seed s is drawn after ``torch.manual_seed(s)``; its input x (B, n, d) ~ N(0, 1)
    from a generator seeded s + 1000 (the same for every variant and depth), the (irrelevant
    to K, P, G) target zero. ``method`` and ``num_matvecs`` go to
    :func:`gdlens.flow.effective_ranks` ("exact" costs B·L·n·d matvecs per operator; use
    ``"hutch++"`` at larger sizes).
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variants must be among {sorted(VARIANTS)}, got {unknown}")
    if not depths or any(isinstance(L, bool) or not isinstance(L, int) or L < 1 for L in depths):
        raise ValueError(f"depths must be positive ints, got {list(depths)}")
    result = RankCollapseResult(settings=dict(
        depths=list(depths), variants=list(variants), d_model=d_model, n_heads=n_heads, seq_len=seq_len,
        batch=batch, seeds=list(seeds), method=method, num_matvecs=num_matvecs,
    ))
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed + 1000)
        x = torch.randn(batch, seq_len, d_model, generator=gen, dtype=dtype)
        target = torch.zeros(batch, seq_len, 1, dtype=dtype)
        for variant in variants:
            mlp, residual = VARIANTS[variant]
            for depth in depths:
                torch.manual_seed(seed)
                model = TransformerStack(
                    d_model, n_heads, depth, 1, seq_len, input_size=d_model, mlp=mlp, residual=residual,
                    causal=False, readout="all",
                ).to(dtype)
                kp = KPFlow(model, x, target)
                ranks = effective_ranks(kp, method=method, num_matvecs=num_matvecs, seed=seed)
                row: dict[str, Any] = dict(variant=variant, depth=depth, seed=seed, dim=kp.hidden.numel())
                for name in _OPERATORS:
                    row[name] = ranks[name].value
                    row[f"{name}_stderr"] = ranks[name].stderr
                row["G_tokens"] = partial_effective_rank(model.token_view(kp.G), keep=2, method="exact").value
                row["token_residual"] = token_residual(model.unflatten_state(kp.hidden)[:, -1])
                result.rows.append(row)
    return result
