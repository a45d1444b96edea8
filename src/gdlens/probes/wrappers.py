"""Schedulable probes of the known phenomena of training dynamics, for the training
:class:`~gdlens.train.Recorder`.

Each class follows the :class:`~gdlens.probes.base.Probe` protocol (``name``, ``schedule``,
``compute(ctx)``) and is a thin wrapper around the pure functions of one phenomenon module:

- :class:`CondensationProbe` (:mod:`~gdlens.probes.condensation`): number of orientations a
  layer's neurons have condensed onto, mean |cos| between them, optionally the similarity matrix.
- :class:`FrequencyProbe` (:mod:`~gdlens.probes.frequency`): relative error at each spectral peak
  of a 1-D target on a uniform grid (the frequency principle).
- :class:`SharpnessProbe` (:mod:`~gdlens.probes.sharpness`): top Hessian eigenvalue against
  2/η; for Adam the preconditioned sharpness, its threshold and the directional curvature.
- :class:`NTKProbe` (:mod:`~gdlens.probes.ntk`): the empirical NTK on a fixed subset of inputs,
  its effective rank, trace, distance to the first recorded NTK and alignment with the targets.
- :class:`RepresentationProbe` (:mod:`~gdlens.probes.representation`,
  :mod:`~gdlens.probes.similarity`): participation ratio of a layer's activations and their
  linear CKA with the first recorded activations (representation drift).

Probes that compare with "the first recorded step" (NTK, representation) or fix something at
their first call (the frequency peaks, the inputs of the NTK and representation probes) keep that
state on the instance (its ``init=False`` fields): use one instance per run, or call ``reset()``
between runs. That state travels in ``gd.train``'s checkpoints
(:func:`gdlens.probes.base.probe_state`), so a resumed run keeps the reference of its first step.

The probes that differentiate the model (sharpness, NTK) need the loss or the outputs as a
function of the parameters: :func:`torch.func.functional_call` puts the given tensors into the
model's parameter slots for the duration of one call (weights tied between two modules are
swapped together, ``tie_weights=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gdlens.probes.base import ProbeContext, Schedule, as_schedule, forward
from gdlens.probes.condensation import CLUSTER_METHODS, orientation_clusters, orientation_similarity
from gdlens.probes.frequency import error_by_frequency, spectral_peaks
from gdlens.probes.ntk import kernel_distance, kernel_target_alignment, ntk_effective_rank, parameter_jacobian
from gdlens.probes.representation import RepresentationProbe  # noqa: F401  (moved there)
from gdlens.probes.sharpness import SharpnessProbe  # noqa: F401  (moved there)

__all__ = [
    "CondensationProbe",
    "FrequencyProbe",
    "SharpnessProbe",
    "NTKProbe",
    "RepresentationProbe",
    "resolve_layer",
    "layer_activations",
    "ntk_matrix",
    "ntk_entries",
    "spread_indices",
]


# ---------------------------------------------------------------------- model plumbing
from gdlens.probes.plumbing import (  # noqa: E402  (moved; the private names stay for old imports)
    check_data_choice as _check_data_choice,
    functional_loss as _functional_loss,
    functional_model as _functional_model,
    layer_activations,
    probe_data as _data,
    resolve_layer,
    spread_indices,
    submodule as _submodule,
    trainable_params as _trainable,
)


def _kernel_from_rows(J: Any, chunk_size: int, entries: Tensor | None = None) -> Tensor:
    m = J.size_out
    idx = torch.arange(m, device=J.device) if entries is None else entries.to(J.device)
    rows = []
    for start in range(0, idx.numel(), chunk_size):
        chunk = idx[start : start + chunk_size]
        basis = torch.zeros(chunk.numel(), m, dtype=J.dtype, device=J.device)
        basis[torch.arange(chunk.numel(), device=J.device), chunk] = 1
        with torch.no_grad():
            rows.append(J.rmatmat(basis.reshape(chunk.numel(), *J.shape_out)).detach())
    R = torch.cat(rows)
    return R @ R.T


def ntk_matrix(
    model_fn: Callable[[Any, Tensor], Tensor],
    params: Any,
    x: Tensor,
    chunk_size: int = 256,
    entries: Tensor | None = None,
) -> Tensor:
    """The dense empirical NTK ``Θ = J Jᵀ`` ``(m, m)`` of the outputs on x (m = their number of
    entries, row-major), from the rows of J; with ``entries`` (flat indices into the outputs)
    the principal submatrix ``Θ[entries][:, entries]``, at the cost of those rows only.

    The rows ``∂f_i/∂θ`` are ``vjp`` s of basis vectors, ``chunk_size`` at a time (batched with
    ``vmap``), then Θ is one matrix product. Cost: one vector–Jacobian product per row and an
    ``(rows, n_params)`` array; the same matrix as ``empirical_ntk(model_fn, params, x).dense()``
    (:func:`gdlens.probes.ntk.empirical_ntk`), which spends m products of each kind.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    J = parameter_jacobian(model_fn, params, x)
    if entries is not None:
        entries = torch.as_tensor(entries, dtype=torch.long).reshape(-1)
        if entries.numel() and (entries.min() < 0 or entries.max() >= J.size_out):
            raise ValueError(f"entries must be flat indices in [0, {J.size_out}) of the outputs {J.shape_out}")
    return _kernel_from_rows(J, chunk_size, entries)


def ntk_entries(data: Any, idx: Tensor, out_shape: tuple[int, ...], max_outputs: int) -> Tensor:
    """Flat output entries the NTK probe keeps: for each of the n samples, the same
    ``r' = min(r, max(1, max_outputs // n))`` of its r output entries, spread evenly
    (:func:`spread_indices`); for a classification batch without a time axis the samples' own
    classes come first (so that the targets are in the kernel), then classes spread evenly."""
    n = out_shape[0]
    r = math.prod(out_shape[1:])
    keep = min(r, max(1, max_outputs // n))
    cols = spread_indices(r, keep)
    if keep < r and data is not None and data.loss == "cross_entropy" and len(out_shape) == 2:
        own = torch.unique(data.target[idx].reshape(-1).long().cpu())[:keep]
        taken = set(own.tolist())
        others = torch.tensor([c for c in range(r) if c not in taken], dtype=torch.long)
        fill = others[spread_indices(others.numel(), keep - own.numel())]
        cols = torch.sort(torch.cat([own, fill])).values
    return (torch.arange(n)[:, None] * r + cols[None, :]).reshape(-1)


# ---------------------------------------------------------------------- condensation
@dataclass
class CondensationProbe:
    """Condensation of one layer's neurons onto few orientations (arXiv 2007.07497, 2105.11686).

    Records, for the neurons ``u_i = [w_i, b_i]`` of ``layer`` (see :func:`resolve_layer`; default
    the first ``nn.Linear``):

    - ``orientations``: :func:`~gdlens.probes.condensation.count_orientations` with
      ``threshold``, ``min_norm_fraction``, ``antipodal`` and ``method``;
    - ``mean_abs_cos``: the mean of ``|cos(u_i, u_j)|`` over pairs i ≠ j of the neurons that count
      (``‖u_i‖ ≥ min_norm_fraction · max_j ‖u_j‖``); near 1 when condensed, ~ sqrt(2/(π d)) for
      random directions in d dimensions; nan with fewer than two such neurons;
    - ``similarity`` (array, only with ``matrix_every=k``): the ``(m', m')`` cosine matrix
      (:func:`~gdlens.probes.condensation.orientation_similarity`) of the first
      ``m' = min(m, max_neurons)`` neurons, in float32, at the probe's 1st, (k+1)th, ... call.

    ``use_bias=False`` ignores the bias. Cost: O(m² d) for the cosines plus the clustering, no
    forward pass; at the default 30 log-spaced steps negligible beside training.
    """

    layer: str | None = None
    threshold: float = 0.95
    min_norm_fraction: float = 0.01
    antipodal: bool = False
    method: str = "greedy"
    use_bias: bool = True
    matrix_every: int | None = None
    max_neurons: int = 128
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "condensation"
    _calls: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if self.method not in CLUSTER_METHODS:
            raise ValueError(f"unknown clustering method {self.method!r}; allowed: {CLUSTER_METHODS}")
        if self.matrix_every is not None and (not isinstance(self.matrix_every, int) or self.matrix_every < 1):
            raise ValueError(f"matrix_every must be a positive int (in probe calls) or None, got {self.matrix_every!r}")
        if self.max_neurons < 1:
            raise ValueError(f"max_neurons must be positive, got {self.max_neurons}")

    def reset(self) -> None:
        self._calls = 0

    def weights(self, model: nn.Module) -> tuple[Tensor, Tensor | None]:
        """The (detached) weight and bias the probe reads from ``model``."""
        w_name, b_name = resolve_layer(model, self.layer)
        named = dict(model.named_parameters())
        b = named[b_name].detach() if (b_name is not None and self.use_bias) else None
        return named[w_name].detach(), b

    def compute(self, ctx: ProbeContext) -> dict[str, Any]:
        W, b = self.weights(ctx.model)
        labels = orientation_clusters(W, b, self.threshold, self.min_norm_fraction, self.antipodal, self.method)
        kept = labels >= 0
        S = orientation_similarity(W, b)
        out: dict[str, Any] = {"orientations": int(labels.max()) + 1 if bool(kept.any()) else 0}
        k = int(kept.sum())
        if k >= 2:
            idx = torch.nonzero(kept).flatten().to(S.device)
            A = S[idx][:, idx].abs().to(torch.float64)
            out["mean_abs_cos"] = float((A.sum() - torch.diagonal(A).sum()) / (k * (k - 1)))
        else:
            out["mean_abs_cos"] = math.nan
        if self.matrix_every is not None and self._calls % self.matrix_every == 0:
            r = min(S.shape[0], self.max_neurons)
            out["similarity"] = S[:r, :r].to(torch.float32).cpu()
        self._calls += 1
        return out


# ---------------------------------------------------------------------- frequency principle
@dataclass
class FrequencyProbe:
    """The frequency principle on a 1-D regression task (arXiv 1901.06523, projection method).

    On data whose inputs x ``(N, 1)`` lie on a uniform grid (e.g. ``gd.tasks.fourier_1d``, trained
    full batch), records for each spectral peak k of the target (output column ``output``) the
    relative error ``err_k<k> = |ĥ_k − ŷ_k| / |ŷ_k|`` of the model's prediction
    (:func:`~gdlens.probes.frequency.error_by_frequency`). The peaks
    (:func:`~gdlens.probes.frequency.spectral_peaks` with ``num_peaks`` and ``rel_height``) and
    the grid are fixed from the target at the first call; every later call must see the same
    grid. ``data="eval"`` reads the held-out data instead of the training batch.

    Cost: one forward pass on the N points and an FFT per call.
    """

    num_peaks: int | None = None
    rel_height: float = 0.1
    output: int = 0
    data: str = "train"
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "frequency"
    _peaks: Tensor | None = field(default=None, init=False, repr=False)
    _x: Tensor | None = field(default=None, init=False, repr=False)
    _spacing: float = field(default=1.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        _check_data_choice(self.data)

    def reset(self) -> None:
        self._peaks, self._x = None, None

    def _column(self, t: Tensor) -> Tensor:
        if t.dim() == 1:
            return t
        if t.dim() != 2 or not 0 <= self.output < t.shape[1]:
            raise ValueError(f"FrequencyProbe needs targets (N,) or (N, O) with output < O, got {tuple(t.shape)}")
        return t[:, self.output]

    @property
    def peaks(self) -> Tensor | None:
        """The DFT indices fixed at the first call (None before it)."""
        return self._peaks

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        data = _data(ctx, self.data)
        if data is None:
            return {}
        x = data.x
        if self._peaks is None:
            grid = x.reshape(-1) if x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1) else None
            if grid is None or grid.shape[0] < 4 or not grid.is_floating_point():
                raise ValueError(
                    f"FrequencyProbe needs 1-D inputs on a uniform grid, x of shape (N, 1); got {tuple(x.shape)}"
                )
            dx = torch.diff(grid.double())
            if not bool((dx > 0).all()) or not torch.allclose(dx, dx.mean().expand_as(dx), rtol=1e-4, atol=0.0):
                raise ValueError(
                    "FrequencyProbe needs the inputs in order on a uniform grid (full-batch training on e.g. "
                    "fourier_1d; minibatches are not a grid): pass data='eval' or train with batch_size=None"
                )
            self._x = x.detach().clone()
            self._spacing = float(dx.mean())
            self._peaks = spectral_peaks(self._column(data.target).detach(), self.num_peaks, self.rel_height)
        elif x.shape != self._x.shape or not torch.equal(x, self._x):
            raise ValueError("FrequencyProbe: the inputs changed since the first call; the grid must stay the same")
        with torch.no_grad():
            y, _ = forward(ctx.model, x)
        res = error_by_frequency(
            self._column(y.reshape(y.shape[0], -1)), self._column(data.target), peaks=self._peaks, spacing=self._spacing
        )
        return {f"err_k{int(k)}": float(e) for k, e in zip(res.indices.tolist(), res.errors)}


# ---------------------------------------------------------------------- NTK
def _alignment_targets(data: Any, idx: Tensor, out_shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
    """The targets of the trials ``idx`` shaped like the outputs (one-hot for cross-entropy), or
    None when they cannot be (e.g. a readout that does not match the target's width)."""
    t = data.target[idx]
    if data.loss == "cross_entropy":
        y = torch.nn.functional.one_hot(t.long(), num_classes=out_shape[-1]).to(dtype)
    else:
        y = t.to(dtype)
    return y if tuple(y.shape) == tuple(out_shape) else None


@dataclass
class NTKProbe:
    """The empirical NTK of the model's outputs (arXiv 1806.07572) on a fixed set of inputs.

    At its first call the probe keeps ``n_samples`` trials of the training batch (``data="eval"``:
    of the held-out data), spread evenly over it (:func:`spread_indices`), their targets, and
    which output entries to use (:func:`ntk_entries`): all of them when the n samples have at
    most ``max_outputs`` in all, otherwise the same evenly spread ``max_outputs // n`` entries of
    each sample (time steps and channels of a sequence; for classification the samples' own
    classes and classes spread evenly) — a principal submatrix of the full NTK, which bounds the
    cost. Every call then builds the dense kernel ``Θ = J Jᵀ`` ``(m, m)`` on those entries
    (:func:`ntk_matrix`) and records:

    - ``trace``: tr Θ;  ``lambda_max``: its largest eigenvalue;
    - ``effective_rank``: (tr Θ)²/‖Θ‖_F² (:func:`~gdlens.probes.ntk.ntk_effective_rank`);
    - ``kernel_distance``: 1 − ⟨Θ, Θ₀⟩_F/(‖Θ‖_F‖Θ₀‖_F) to the kernel Θ₀ of the first recorded
      step, kept by the probe (:func:`~gdlens.probes.ntk.kernel_distance`, arXiv 2010.15110);
    - ``target_alignment``: ``yᵀΘy/(‖Θ‖_F‖y‖²)`` with y the targets at the same entries (one-hot
      for cross-entropy) (:func:`~gdlens.probes.ntk.kernel_target_alignment`); ``centered=True``
      centres kernel and targets over the samples (arXiv 1203.0550). The mask of masked tasks
      is not applied.

    Cost per call: m ≤ max(max_outputs, n_samples) vector–Jacobian products on the n samples
    (batched ``chunk_size`` at a time), an ``(m, n_params)`` array, and O(m³) for the eigenvalue.
    """

    n_samples: int = 8
    max_outputs: int = 128
    data: str = "train"
    centered: bool = False
    chunk_size: int = 256
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=10))
    name: str = "ntk"
    _x: Tensor | None = field(default=None, init=False, repr=False)
    _y: Tensor | None = field(default=None, init=False, repr=False)
    _entries: Tensor | None = field(default=None, init=False, repr=False)
    _K0: Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        _check_data_choice(self.data)
        if self.n_samples < 1 or self.max_outputs < 1 or self.chunk_size < 1:
            raise ValueError(
                f"n_samples, max_outputs and chunk_size must be positive, got {self.n_samples}, "
                f"{self.max_outputs}, {self.chunk_size}"
            )

    def reset(self) -> None:
        self._x, self._y, self._entries, self._K0 = None, None, None, None

    @property
    def initial_kernel(self) -> Tensor | None:
        """Θ₀, the kernel of the first recorded step (None before it)."""
        return self._K0

    @property
    def entries(self) -> Tensor | None:
        """The flat output entries the kernel is built on (None before the first call)."""
        return self._entries

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        first = self._x is None
        if first:
            data = _data(ctx, self.data)
            if data is None:
                return {}
            idx = spread_indices(data.x.shape[0], self.n_samples).to(data.x.device)
            self._x = data.x[idx].detach().clone()
        J = parameter_jacobian(_functional_model(ctx.model), _trainable(ctx.model), self._x)
        if first:
            self._entries = ntk_entries(data, idx, J.shape_out, self.max_outputs)
        K = _kernel_from_rows(J, self.chunk_size, self._entries)
        if first:
            self._K0 = K.clone()
            y = _alignment_targets(data, idx, J.shape_out, K.dtype)
            self._y = None if y is None else y.reshape(-1)[self._entries.to(y.device)].reshape(J.shape_out[0], -1)
        out = {
            "trace": float(torch.diagonal(K).sum()),
            "lambda_max": float(torch.linalg.eigvalsh(K.double())[-1]),
            "effective_rank": ntk_effective_rank(K),
            "kernel_distance": kernel_distance(K, self._K0),
        }
        if self._y is not None:
            out["target_alignment"] = self._alignment(K, self._y)
        return out

    def _alignment(self, K: Tensor, y: Tensor) -> float:
        """y: (n, r) targets at the kept entries; K: (n·r, n·r)."""
        if not self.centered:
            return kernel_target_alignment(K, y.reshape(-1))
        n, r = y.shape
        K4 = K.reshape(n, r, n, r)
        K4 = K4 - K4.mean(dim=0, keepdim=True)
        K4 = K4 - K4.mean(dim=2, keepdim=True)
        yc = y - y.mean(dim=0, keepdim=True)
        return kernel_target_alignment(K4.reshape(n * r, n * r), yc.reshape(-1))
