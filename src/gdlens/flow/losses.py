"""Losses in gdlens' convention (docs/design.md, conventions), for the flow.

The loss lives in :mod:`gdlens.losses` (one implementation for tasks, flow, training and
probes); this module keeps its names importable from ``gdlens.flow``::

    L = (1/B) Σ_b Σ_t ℓ(y_{bt}, target_{bt})          (mean over the batch, sum over time)

with y the readout's output (B, T', O). The flow (error, adjoint, G, step_check) uses the
same L, so the identities between them hold exactly.
"""

from __future__ import annotations

from gdlens.losses import LossFn, check_target, cross_entropy_loss, mse_loss, resolve_loss

__all__ = ["LossFn", "mse_loss", "cross_entropy_loss", "resolve_loss", "check_target"]
