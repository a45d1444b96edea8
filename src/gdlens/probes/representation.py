"""Geometry of representations: dimensionality, principal components, and their drift.

Activations are ``(n, p)`` matrices (rows = inputs; trailing axes of ``(n, ...)`` tensors are
flattened; a layer's activations on sequences ``(B, T, H)`` are ``B·T`` rows, see
:func:`~gdlens.probes.plumbing.layer_activations`).

- :func:`participation_ratio` of the activation covariance, an effective dimensionality (Gao et
  al. 2017, "A theory of multineuronal dimensionality, dynamics and measurement", bioRxiv; used
  for deep networks by Recanatesi et al., arXiv 1906.00443). One implementation for the whole
  package: :func:`gdlens.operators.participation_ratio`, nan on data with no variance.
- :func:`pca`, the principal components.
- :class:`RepresentationProbe`: participation ratio of one layer's activations during training
  and their linear CKA (:mod:`~gdlens.probes.similarity`) with the first and the previous
  recorded activations.

The norms of the weights (:func:`parameter_norms`, :func:`schatten_norm`, :func:`nuclear_norm`,
:func:`end_to_end`) live in :mod:`gdlens.probes.parameters`; their names stay importable here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from gdlens.operators import participation_ratio
from gdlens.probes._utils import as_rows
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.parameters import end_to_end, nuclear_norm, parameter_norms, schatten_norm
from gdlens.probes.plumbing import check_data_choice, layer_activations, probe_data, spread_indices
from gdlens.probes.similarity import linear_cka
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "participation_ratio",
    "pca",
    "PCA",
    "RepresentationProbe",
    # the norms of the weights, from gdlens.probes.parameters
    "end_to_end",
    "schatten_norm",
    "nuclear_norm",
    "parameter_norms",
]


def _centred(acts: Any, name: str = "acts") -> Tensor:
    X = as_rows(acts, name).detach()
    if not X.dtype.is_floating_point:
        X = X.to(torch.float64)
    if X.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (inputs) to have a covariance, got shape {tuple(X.shape)}")
    return X - X.mean(0, keepdim=True)


class PCA(NamedTuple):
    """Principal components of activations.

    Attributes:
        components: ``(k, p)`` orthonormal principal axes (rows), by decreasing variance; each
            row's largest-magnitude entry is positive (a fixed sign).
        explained_variance: ``(k,)`` variances along them (eigenvalues of the covariance with
            the 1/(n − 1) normalisation).
        explained_variance_ratio: ``(k,)`` their fractions of the total variance.
        mean: ``(p,)`` the column means removed before the decomposition.
    """

    components: Tensor
    explained_variance: Tensor
    explained_variance_ratio: Tensor
    mean: Tensor


def pca(acts: Tensor, k: int | None = None) -> PCA:
    """The top-k principal components of activations ``(n, p)``.

    With the thin SVD of the column-centred data ``X_c = U S Vᵀ``: components are the rows of Vᵀ,
    ``explained_variance = S² / (n − 1)`` and ``explained_variance_ratio = S² / Σ S²``.
    ``k=None`` keeps all ``min(n, p)``.
    """
    X0 = as_rows(acts, "acts").detach()
    if not X0.dtype.is_floating_point:
        X0 = X0.to(torch.float64)
    X = _centred(X0)
    n, p = X.shape
    r = min(n, p)
    if k is None:
        k = r
    if not isinstance(k, int) or not 1 <= k <= r:
        raise ValueError(
            f"k must be an integer with 1 <= k <= min(n, p) = {r} for acts of shape {tuple(X.shape)}, got "
            f"{k!r}"
        )
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    comps = Vh[:k]
    sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * torch.where(sign == 0, torch.ones_like(sign), sign)
    var = S**2 / (n - 1)
    total = var.sum()
    ratio = var[:k] / total if bool(total > 0) else torch.full_like(var[:k], math.nan)
    return PCA(comps, var[:k], ratio, X0.mean(0))


def max_participation_ratio(acts: Tensor) -> int:
    """The largest participation ratio activations of this shape can have: the rank bound
    ``min(n − 1, p)`` of the covariance of n centred rows of p features (rows and features as
    in :func:`participation_ratio`)."""
    X = as_rows(acts, "acts")
    return max(min(X.shape[0] - 1, X.shape[1]), 1)


# ---------------------------------------------------------------------------------- the probe
@dataclass
class RepresentationProbe:
    """Dimensionality and drift of one layer's representation.

    At its first step (``init``) the probe fixes ``n_samples`` trials of the training batch
    (``data="eval"``: of the held-out data) spread evenly over it
    (:func:`~gdlens.probes.plumbing.spread_indices`; all of them when the batch is smaller) and
    reads the activations of ``layer`` on them (:func:`~gdlens.probes.plumbing.layer_activations`:
    a submodule's output through a forward hook; default the hidden states z of a state-space
    model, or else the input of the last ``nn.Linear``). Each call records, on those inputs:

    - ``participation_ratio``: (Σλ)²/Σλ² of the activations' covariance
      (:func:`participation_ratio`); ``max_rank``: its largest possible value min(rows − 1, p)
      (:func:`max_participation_ratio`), the dimension line of its panel;
    - ``cka_init``: linear CKA (:func:`~gdlens.probes.similarity.linear_cka`, arXiv 1905.00414;
      ``debiased`` for the unbiased HSIC) with the activations of the probe's first step: 1 while
      the representation only rotates or rescales, lower as it drifts;
    - ``cka_prev``: the same with the previous recorded step (from the second call on).

    The state (kept by the Recorder, one per run) holds the fixed inputs and the first and the
    previous activations. Cost per call: one forward pass on the fixed inputs and O(rows · p²)
    for CKA and the participation ratio (rows = n_samples, or n_samples·T for sequences).
    """

    layer: str | None = None
    n_samples: int = 256
    data: str = "train"
    debiased: bool = False
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=20))
    name: str = "representation"

    title: ClassVar[str] = "Representation"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("participation_ratio", "participation ratio of the layer's activations",
               "(Σλ)²/Σλ², λ the eigenvalues of their covariance over the fixed inputs (rows: samples × steps)"),
        Metric("max_rank", "largest possible participation ratio", "min(rows − 1, features)"),
        Metric("cka_init", "linear CKA with the first recorded activations",
               "‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F), X, Y column-centred (arXiv 1905.00414)"),
        Metric("cka_prev", "linear CKA with the previous recorded activations",
               "‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F), X, Y column-centred (arXiv 1905.00414)"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Dimensionality of the representation", ("participation_ratio",),
              "participation ratio (Σλ)²/Σλ² of the activations", ylim=(0, None), bound="max_rank"),
        Panel("Drift of the representation", ("cka_init", "cka_prev"),
              "linear CKA with the first / previous activations", yscale="linear", ylim=(0, 1)),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        check_data_choice(self.data)
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or self.n_samples < 2:
            raise ValueError(f"n_samples must be an int of at least 2, got {self.n_samples!r}")

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer or "default", "n_samples": self.n_samples, "data": self.data,
                "debiased": self.debiased}

    def reset(self) -> None:
        """Deprecated, does nothing: the state lives in the Recorder."""
        warnings.warn("RepresentationProbe.reset() does nothing: the state lives in the Recorder",
                      DeprecationWarning, stacklevel=2)

    @property
    def inputs(self) -> None:
        """Deprecated: the fixed inputs live in the probe's state (``recorder.states[name]["x"]``)."""
        warnings.warn("RepresentationProbe.inputs is gone: the fixed inputs are the state's 'x' "
                      "(recorder.states[probe.name]['x'])", DeprecationWarning, stacklevel=2)
        return None

    def init(self, ctx: ProbeContext) -> dict[str, Tensor | None]:
        """Fixes the inputs and reads the first activations (ValueError naming ``data=`` or
        ``layer=`` when there is no data or no layer to read)."""
        data = probe_data(ctx, self.data)
        if data is None:
            where = "eval_data= (gd.train: a task with a test split)" if self.data == "eval" else "batch="
            raise ValueError(f"RepresentationProbe(data={self.data!r}) has no data at step {ctx.step}: pass {where}")
        x = data.x[spread_indices(data.x.shape[0], self.n_samples).to(data.x.device)].detach().clone()
        return {"x": x, "first": layer_activations(ctx.model, x, self.layer), "prev": None}

    def compute(self, ctx: ProbeContext, state: dict[str, Tensor | None]) -> tuple[dict[str, float], dict]:
        acts = layer_activations(ctx.model, state["x"], self.layer)
        out = {
            "participation_ratio": participation_ratio(acts),
            "max_rank": max_participation_ratio(acts),
            "cka_init": linear_cka(acts, state["first"], debiased=self.debiased),
        }
        if state["prev"] is not None:
            out["cka_prev"] = linear_cka(acts, state["prev"], debiased=self.debiased)
        return out, {**state, "prev": acts}
