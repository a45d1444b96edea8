"""The frequency principle: networks fit the low frequencies of a target first.

Xu, Zhang, Luo, Xiao, Ma, "Frequency principle: Fourier analysis sheds light on deep neural
networks", arXiv 1901.06523. Two measurements:

- **Projection method** (1-D data on a uniform grid): the relative error of the network's output
  at each spectral peak of the target, ``Δ_k = |ĥ_k − ŷ_k| / |ŷ_k|`` (:func:`error_by_frequency`).
  Under the F-principle Δ_k falls first for the lowest peaks.
- **Filtering method** (n-D data): split a function on the dataset into a low-frequency part, its
  Gaussian smoothing over the inputs, and the high-frequency rest, and compare network and
  target on each part (:func:`gaussian_filter`, :func:`split_frequencies`, :func:`filtered_error`).

DFT convention: ``ŷ_k = Σ_{n=0}^{N-1} y_n exp(−2πi k n / N)`` (``torch.fft.rfft``) for the
non-negative frequencies k = 0 .. ⌊N/2⌋; k cycles over the grid, i.e. ``k / (N·dx)`` in the
units of the input when the grid spacing is dx.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from gdlens.probes._utils import as_tensor
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.plumbing import check_data_choice, eval_mode, forward, probe_data
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "grid_spacing",
    "spectral_peaks",
    "error_by_frequency",
    "FrequencyErrors",
    "gaussian_filter",
    "split_frequencies",
    "filtered_error",
    "FilteredError",
    "FrequencyProbe",
]


class FrequencyErrors(NamedTuple):
    """Relative errors at the target's spectral peaks.

    Attributes:
        indices: ``(n_peaks,)`` long, the DFT indices k (ascending).
        frequencies: ``(n_peaks,)`` the frequencies ``k / (N · spacing)``.
        errors: ``(n_peaks,)`` for one prediction, ``(S, n_peaks)`` for a stack of S.
        target_magnitude: ``(n_peaks,)`` ``|ŷ_k|``.
    """

    indices: Tensor
    frequencies: Tensor
    errors: Tensor
    target_magnitude: Tensor


def grid_spacing(x: Tensor, rtol: float = 1e-4) -> float:
    """The spacing dx of 1-D inputs on a uniform grid, ``x`` of shape ``(N,)`` or ``(N, 1)``.

    The points must be floating, at least 4, strictly increasing, and evenly spaced:
    ``|x_{i+1} − x_i − dx| ≤ rtol · dx`` with dx the mean step. ValueError otherwise (saying
    what to pass: minibatches of a grid are not a grid).
    """
    x = as_tensor(x, "x")
    if not (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)) or x.shape[0] < 4 or not x.is_floating_point():
        raise ValueError(
            f"the frequency principle's projection method needs 1-D inputs on a uniform grid, x of shape (N, 1) "
            f"with N >= 4 floating points; got {tuple(x.shape)} {x.dtype}"
        )
    dx = torch.diff(x.detach().reshape(-1).double())
    if not bool((dx > 0).all()) or not torch.allclose(dx, dx.mean().expand_as(dx), rtol=rtol, atol=0.0):
        raise ValueError(
            "the inputs must be in order on a uniform grid (full-batch training on e.g. fourier_1d; minibatches are "
            "not a grid): pass data='eval' or train with batch_size=None"
        )
    return float(dx.mean())


def spectral_peaks(
    target: Tensor,
    num_peaks: int | None = None,
    rel_height: float = 0.1,
    include_zero: bool = False,
) -> Tensor:
    """Indices k of the peaks of ``|ŷ_k|``, the DFT magnitude of a real 1-D signal ``(N,)``.

    k (0 ≤ k ≤ ⌊N/2⌋) is a peak when ``|ŷ_k| ≥ |ŷ_{k−1}|`` and ``|ŷ_k| > |ŷ_{k+1}|`` (a missing
    neighbour at either end counts as lower) and ``|ŷ_k| ≥ rel_height · max_j |ŷ_j|``, the max
    over the candidate frequencies. ``k = 0`` (the mean) is a candidate only with
    ``include_zero=True``. With ``num_peaks`` only the largest ``num_peaks`` are kept. Returned
    in ascending order of k, as a long tensor.
    """
    y = as_tensor(target, "target")
    if y.dim() != 1:
        raise ValueError(f"target must be a 1-D signal on a uniform grid, shape (N,), got {tuple(y.shape)}")
    if y.shape[0] < 2:
        raise ValueError(f"target needs at least 2 grid points, got shape {tuple(y.shape)}")
    if not 0.0 <= rel_height <= 1.0:
        raise ValueError(f"rel_height must lie in [0, 1], got {rel_height}")
    if num_peaks is not None and num_peaks < 1:
        raise ValueError(f"num_peaks must be a positive integer or None, got {num_peaks}")
    mag = torch.fft.rfft(y.detach()).abs()
    lower = torch.cat([mag.new_full((1,), -1.0), mag[:-1]])
    upper = torch.cat([mag[1:], mag.new_full((1,), -1.0)])
    is_peak = (mag >= lower) & (mag > upper)
    first = 0 if include_zero else 1
    cand = torch.zeros_like(is_peak)
    cand[first:] = True
    top = mag[first:].max() if mag.shape[0] > first else mag.new_zeros(())
    if top <= 0:
        return torch.zeros(0, dtype=torch.long, device=y.device)
    is_peak = is_peak & cand & (mag >= rel_height * top) & (mag > 0)
    idx = torch.nonzero(is_peak).flatten()
    if num_peaks is not None and idx.numel() > num_peaks:
        idx = idx[torch.argsort(mag[idx], descending=True, stable=True)[:num_peaks]]
    return torch.sort(idx).values


def error_by_frequency(
    pred: Tensor,
    target: Tensor,
    num_peaks: int | None = None,
    rel_height: float = 0.1,
    include_zero: bool = False,
    peaks: Sequence[int] | Tensor | None = None,
    spacing: float = 1.0,
) -> FrequencyErrors:
    """Relative error of a prediction at each spectral peak of the target (arXiv 1901.06523).

    On a uniform 1-D grid of N points, with ĥ and ŷ the DFTs of prediction and target,

        Δ_k = |ĥ_k − ŷ_k| / |ŷ_k|   for each peak k of |ŷ| (see :func:`spectral_peaks`).

    Δ_k = 0 when the prediction has the target's k-th component exactly, 1 when it lacks it.

    Args:
        pred: ``(N,)`` or a stack ``(S, N)`` (e.g. one row per training step).
        target: ``(N,)``.
        num_peaks, rel_height, include_zero: peak selection, as in :func:`spectral_peaks`.
        peaks: use these indices instead of detecting peaks (fixed across calls).
        spacing: grid spacing dx, for ``frequencies = k / (N · dx)``.

    Returns:
        :class:`FrequencyErrors` (errors ``(n_peaks,)`` or ``(S, n_peaks)``).
    """
    y = as_tensor(target, "target")
    h = as_tensor(pred, "pred")
    if y.dim() != 1:
        raise ValueError(f"target must be a 1-D signal on a uniform grid, shape (N,), got {tuple(y.shape)}")
    N = y.shape[0]
    if h.dim() not in (1, 2) or h.shape[-1] != N:
        raise ValueError(
            f"pred must have shape (N,) or (S, N) with N = {N} (target {tuple(y.shape)}), got "
            f"{tuple(h.shape)}"
        )
    if peaks is None:
        idx = spectral_peaks(y, num_peaks, rel_height, include_zero)
    else:
        idx = torch.as_tensor(peaks, dtype=torch.long, device=y.device).reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() > N // 2):
            raise ValueError(f"peaks must be DFT indices in [0, {N // 2}] for N = {N}, got {idx.tolist()}")
    dtype = torch.promote_types(y.dtype, h.dtype)
    Y = torch.fft.rfft(y.detach().to(dtype))[idx]
    H = torch.fft.rfft(h.detach().to(dtype), dim=-1)[..., idx]
    mag = Y.abs()
    errors = (H - Y).abs() / mag
    freqs = idx.to(mag.dtype) / (N * spacing)
    return FrequencyErrors(idx, freqs, errors, mag)


# ---------------------------------------------------------------------- filtering method
def _columns(y: Tensor, n: int, name: str) -> Tensor:
    if y.dim() == 0 or y.shape[0] != n:
        raise ValueError(f"{name} must have one row per input, shape (N, ...) with N = {n}, got {tuple(y.shape)}")
    return y.reshape(n, -1)


def gaussian_filter(y: Tensor, X: Tensor, delta: float, chunk_size: int = 256) -> Tensor:
    """Gaussian smoothing of a function sampled on a dataset: its low-frequency part.

        y^{low,δ}_i = Σ_j y_j exp(−‖x_i − x_j‖² / (2δ)) / Σ_j exp(−‖x_i − x_j‖² / (2δ))

    (arXiv 1901.06523, filtering method; δ is the variance of the Gaussian kernel G^δ, whose
    Fourier transform keeps frequencies |ξ| ≲ 1/(2π√δ)). The kernel is normalised per row, so
    constants pass unchanged; δ → 0 gives y back, δ → ∞ the mean of y.

    Rows are processed ``chunk_size`` at a time: memory is ``O(chunk_size · N)`` for the kernel
    block plus the inputs, never N × N (N = 60,000, d = 784 in float64 with chunk_size=256:
    X takes 0.38 GB and one block 0.12 GB, updated in place). Each row's exponent is shifted by
    its smallest distance before exponentiating (the shift cancels in the ratio), so no row
    underflows to 0/0.

    Args:
        y: ``(N,)`` or ``(N, ...)`` values (e.g. one-hot targets ``(N, C)``); smoothed per column.
        X: ``(N, d)`` inputs (trailing axes flattened: images ``(N, 1, 28, 28)`` are fine).
        delta: kernel variance δ > 0.
        chunk_size: rows per block.

    Returns:
        ``y^{low,δ}``, the shape of y.
    """
    X = as_tensor(X, "X")
    y = as_tensor(y, "y")
    if X.dim() < 1:
        raise ValueError(f"X must have shape (N, d), got {tuple(X.shape)}")
    n = X.shape[0]
    Yc = _columns(y, n, "y")
    low = _smooth_columns(Yc, X.reshape(n, -1), delta, chunk_size)
    return low.reshape(y.shape)


def _smooth_columns(Y: Tensor, X: Tensor, delta: float, chunk_size: int) -> Tensor:
    if not delta > 0:
        raise ValueError(f"delta (the Gaussian kernel's variance) must be positive, got {delta}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    dtype = torch.promote_types(X.dtype, Y.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    X = X.detach().to(dtype)
    Y = Y.detach().to(dtype).to(X.device)
    n = X.shape[0]
    sq = torch.linalg.vector_norm(X, dim=1).square_()  # ‖x_i‖², without an (N, d) temporary
    out = torch.empty_like(Y)
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            # one (chunk, N) block, updated in place: ‖x_i‖² + ‖x_j‖² − 2 x_i·x_j, shifted by its row min
            D = X[start:stop] @ X.T
            D.mul_(-2.0).add_(sq[None, :]).add_(sq[start:stop, None]).clamp_min_(0)
            D.sub_(D.min(dim=1, keepdim=True).values)
            G = D.mul_(-1.0 / (2.0 * delta)).exp_()
            out[start:stop] = (G @ Y) / G.sum(1, keepdim=True)
    return out


def split_frequencies(y: Tensor, X: Tensor, delta: float, chunk_size: int = 256) -> tuple[Tensor, Tensor]:
    """``(y_low, y_high)`` with ``y_low = gaussian_filter(y, X, delta)`` and ``y_high = y − y_low``
    (so ``y_low + y_high = y``)."""
    low = gaussian_filter(y, X, delta, chunk_size)
    y = as_tensor(y, "y")
    return low, y.detach().to(low.dtype) - low


class FilteredError(NamedTuple):
    """Relative errors of the low- and high-frequency parts: 0-d tensors, or ``(S,)`` for a
    stack of S predictions."""

    low: Tensor
    high: Tensor


def filtered_error(pred: Tensor, target: Tensor, X: Tensor, delta: float, chunk_size: int = 256) -> FilteredError:
    """Errors of a prediction on the low- and high-frequency parts of the target (arXiv 1901.06523).

        e_low  = ‖h^{low,δ} − y^{low,δ}‖ / ‖y^{low,δ}‖,
        e_high = ‖h^{high,δ} − y^{high,δ}‖ / ‖y^{high,δ}‖,

    with ``·^{low,δ}`` the Gaussian smoothing of :func:`gaussian_filter` over the inputs X,
    ``·^{high,δ} = · − ·^{low,δ}``, and ‖·‖ the Euclidean norm over all samples and outputs.
    Under the F-principle e_low drops well before e_high.

    Target and every prediction are smoothed in one pass over the kernel blocks (one kernel
    evaluation serves all columns), chunked as in :func:`gaussian_filter`.

    Args:
        pred: shaped like ``target``, or a stack ``(S, *target.shape)`` of S predictions.
        target: ``(N,)`` or ``(N, C)`` (any ``(N, ...)``).
        X: ``(N, d)`` inputs (trailing axes flattened).
        delta: kernel variance δ > 0.
        chunk_size: rows per kernel block.

    Returns:
        :class:`FilteredError` ``(low, high)``; 0-d tensors, or ``(S,)`` for a stack.
    """
    X = as_tensor(X, "X")
    y = as_tensor(target, "target")
    h = as_tensor(pred, "pred")
    if X.dim() < 1 or y.dim() < 1:
        raise ValueError(f"X and target need a leading sample axis, got X {tuple(X.shape)} and target {tuple(y.shape)}")
    n = X.shape[0]
    Yc = _columns(y, n, "target")
    if tuple(h.shape) == tuple(y.shape):
        stacked, S = False, 1
        Hc = h.reshape(1, n, -1)
    elif h.dim() == y.dim() + 1 and tuple(h.shape[1:]) == tuple(y.shape):
        stacked, S = True, h.shape[0]
        Hc = h.reshape(S, n, -1)
    else:
        raise ValueError(
            f"pred must have the target's shape {tuple(y.shape)} or (S, *{tuple(y.shape)}), got {tuple(h.shape)}"
        )
    c = Yc.shape[1]
    dtype = torch.promote_types(torch.promote_types(Yc.dtype, Hc.dtype), X.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    cols = torch.cat([Yc.detach().to(dtype), Hc.detach().to(dtype).permute(1, 0, 2).reshape(n, S * c)], dim=1)
    low = _smooth_columns(cols, X.reshape(n, -1), delta, chunk_size)
    cols = cols.to(low.dtype)
    y_low, h_low = low[:, :c], low[:, c:].reshape(n, S, c)
    y_high, h_high = cols[:, :c] - y_low, cols[:, c:].reshape(n, S, c) - h_low
    e_low = (h_low - y_low[:, None]).norm(dim=(0, 2)) / y_low.norm()
    e_high = (h_high - y_high[:, None]).norm(dim=(0, 2)) / y_high.norm()
    if not stacked:
        e_low, e_high = e_low[0], e_high[0]
    return FilteredError(e_low, e_high)


# ---------------------------------------------------------------------- the probe
def _output_column(t: Tensor, output: int) -> Tensor:
    """Column ``output`` of targets or predictions ``(N, O)`` (``(N,)`` passes through)."""
    if t.dim() == 1:
        return t
    t = t.reshape(t.shape[0], -1)
    if not 0 <= output < t.shape[1]:
        raise ValueError(f"output={output} must index the {t.shape[1]} output columns of shape {tuple(t.shape)}")
    return t[:, output]


@dataclass
class FrequencyProbe:
    """The frequency principle on a 1-D regression task (arXiv 1901.06523, projection method).

    On data whose inputs x ``(N, 1)`` lie on a uniform grid (:func:`grid_spacing`; e.g.
    ``gd.tasks.fourier_1d`` trained full batch), records for each spectral peak k of the target
    (output column ``output``) the relative error ``err_k<k> = |ĥ_k − ŷ_k| / |ŷ_k|`` of the
    model's prediction (:func:`error_by_frequency`), the model evaluated in eval mode (dropout
    off). ``data="eval"`` reads the held-out data instead of the training batch.

    The state, fixed at the first call: the grid x, its spacing and the peaks
    (:func:`spectral_peaks` with ``num_peaks`` and ``rel_height``); every later call must see the
    same grid. Cost: one forward pass on the N points and an FFT per call.
    """

    num_peaks: int | None = None
    rel_height: float = 0.1
    output: int = 0
    data: str = "train"
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "frequency"

    title: ClassVar[str] = "Frequency principle"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("err_k*", "relative error at frequency k",
               "|ĥ_k − ŷ_k| / |ŷ_k|, DFTs of prediction h and target y on the grid, k a peak of |ŷ|"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Relative error per frequency", ("err_k*",), "relative error |ĥ_k − ŷ_k| / |ŷ_k| at the target's peak k",
              yscale="log"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        check_data_choice(self.data)

    def settings(self) -> dict[str, Any]:
        return {"num_peaks": self.num_peaks, "rel_height": self.rel_height, "output": self.output, "data": self.data}

    def reset(self) -> None:
        """Deprecated, does nothing: the state lives in the Recorder."""
        warnings.warn("FrequencyProbe.reset() does nothing: the state lives in the Recorder",
                      DeprecationWarning, stacklevel=2)

    @property
    def peaks(self) -> None:
        """Deprecated: the peaks are in the Recorder's state (``recorder.states[name]["peaks"]``)."""
        warnings.warn("FrequencyProbe.peaks is gone: read recorder.states[probe.name]['peaks']",
                      DeprecationWarning, stacklevel=2)
        return None

    def init(self, ctx: ProbeContext) -> dict[str, Any] | None:
        """The grid, its spacing and the target's peaks; None while there is no data. ValueError
        when the inputs are not a 1-D uniform grid or ``output`` is not a column."""
        data = probe_data(ctx, self.data)
        if data is None:
            return None
        spacing = grid_spacing(data.x)
        target = _output_column(data.target, self.output).detach()
        peaks = spectral_peaks(target, self.num_peaks, self.rel_height)
        return {"x": data.x.detach().clone(), "spacing": spacing, "peaks": peaks}

    def compute(self, ctx: ProbeContext, state: dict[str, Any] | None) -> tuple[dict[str, float], Any]:
        if state is None:
            state = self.init(ctx)
        data = probe_data(ctx, self.data)
        if state is None or data is None:
            return {}, state
        x = data.x
        if x.shape != state["x"].shape or not torch.equal(x, state["x"].to(x.device)):
            raise ValueError("FrequencyProbe: the inputs changed since the first call; the grid must stay the same")
        with eval_mode(ctx.model), torch.no_grad():
            y, _ = forward(ctx.model, x)
        res = error_by_frequency(_output_column(y, self.output), _output_column(data.target, self.output),
                                 peaks=state["peaks"], spacing=state["spacing"])
        return {f"err_k{int(k)}": float(e) for k, e in zip(res.indices.tolist(), res.errors)}, state
