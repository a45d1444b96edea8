"""The empirical neural tangent kernel of a model's outputs and how it moves during training.

For a model ``f(x; θ)`` evaluated on a batch x, with outputs of shape ``s`` (e.g. ``(B, O)``) and
flat parameters θ ∈ Rⁿ, the empirical NTK is

    Θ = J Jᵀ,   J = ∂f(x; θ)/∂θ   (an operator from Rⁿ to output-shaped tensors),

a symmetric PSD operator on output-shaped tensors: ``Θ[(b,o), (b',o')] = ⟨∂f_{bo}/∂θ, ∂f_{b'o'}/∂θ⟩``
(Jacot, Gabriel, Hongler, arXiv 1806.07572). Kernels here are either dense tensors
(``(m, m)``, or ``(*s, *s)`` as given by ``op.dense(shaped=True)``) or
:class:`~gdlens.operators.LinearOperator` s; functions that compare kernels accept both.

Quantities of kernel motion follow Fort et al. ("Deep learning versus kernel learning",
arXiv 2010.15110): kernel distance and kernel velocity; kernel–target alignment follows
Cristianini et al. (NeurIPS 2001) and, centred, Cortes, Mohri, Rostamizadeh (arXiv 1203.0550).

Layout (about 480 lines, over the package's ~400): the operator and dense kernels, their
comparisons, the spectrum summary, then :class:`NTKProbe`. They share one convention (a kernel's
rows are the outputs' flat row-major entries; the sample axis is the first), which splitting
the module would write in two places.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from gdlens.operators import (
    CallableOperator,
    ComposedOperator,
    DenseOperator,
    LinearOperator,
    alignment,
    effective_rank,
    frobenius_norm,
)
from gdlens.probes._utils import as_tensor, flatten_params
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.plumbing import (
    check_data_choice,
    eval_mode,
    functional_model,
    probe_data,
    spread_indices,
    trainable_params,
)
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "parameter_jacobian",
    "empirical_ntk",
    "ntk_matrix",
    "ntk_entries",
    "kernel_distance",
    "kernel_velocity",
    "kernel_target_alignment",
    "ntk_effective_rank",
    "KernelSpectrum",
    "kernel_spectrum",
    "NTKProbe",
]

ModelFn = Callable[[Any, Tensor], Tensor]


def parameter_jacobian(model_fn: ModelFn, params: Any, x: Tensor) -> LinearOperator:
    """``J = ∂f(x; θ)/∂θ``: flat parameter vectors ``(n,)`` -> output-shaped tensors.

    ``J u`` is a ``jvp`` of ``θ ↦ model_fn(params(θ), x)``, ``Jᵀ v`` a ``vjp`` (its pullback is
    built once, at construction); both are batched over stacks of vectors with ``vmap``.
    ``model_fn(params, x)`` receives a container of the same kind as ``params``.
    """
    flat0, unflatten = flatten_params(params)

    def f(v: Tensor) -> Tensor:
        return model_fn(unflatten(v), x)

    out, vjp_fn = torch.func.vjp(f, flat0)
    if out.dtype != flat0.dtype:
        raise ValueError(f"model outputs have dtype {out.dtype} but the parameters have dtype {flat0.dtype}")

    def matmat(U: Tensor) -> Tensor:
        return torch.func.vmap(lambda u: torch.func.jvp(f, (flat0,), (u,))[1])(U)

    def rmatmat(V: Tensor) -> Tensor:
        return torch.func.vmap(vjp_fn)(V)[0]

    return CallableOperator(
        matmat, (flat0.numel(),), tuple(out.shape), rmatmat, dtype=flat0.dtype, device=flat0.device
    )


def empirical_ntk(model_fn: ModelFn, params: Any, x: Tensor) -> LinearOperator:
    """The empirical NTK ``Θ = J Jᵀ`` of the model's outputs on the batch x (arXiv 1806.07572).

    A symmetric PSD :class:`~gdlens.operators.LinearOperator` on tensors shaped like
    ``model_fn(params, x)``: ``Θ v = J (Jᵀ v)``, one batched ``vjp`` then one batched ``jvp``
    (nothing of size n or (B·O)² is stored). Its ``gram_factor`` is J, so
    :func:`~gdlens.operators.top_eigs` works in the smaller of the output and parameter spaces.
    ``Θ.dense()`` gives the ``(B·O, B·O)`` matrix (row-major flattening of the outputs).

    Args:
        model_fn: ``(params, x) -> outputs`` (e.g.
            ``lambda p, x: torch.func.functional_call(model, p, (x,))``).
        params: dict name -> tensor, list of tensors or a tensor (detached, not modified).
        x: the inputs.
    """
    J = parameter_jacobian(model_fn, params, x)
    K = ComposedOperator([J, J.T], is_symmetric=True)
    K.gram_factor = J
    return K


def _kernel_from_rows(J: Any, chunk_size: int, entries: Tensor | None = None) -> Tensor:
    """``R Rᵀ`` with R the rows ``Jᵀ e_i`` of J for the flat output entries i (all by default),
    ``chunk_size`` vector–Jacobian products at a time."""
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
    model_fn: ModelFn,
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
    ``(rows, n_params)`` array; the same matrix as ``empirical_ntk(model_fn, params, x).dense()``,
    which spends m products of each kind.
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
    (:func:`~gdlens.probes.plumbing.spread_indices`); for a classification batch without a time
    axis the samples' own classes come first (so that the targets are in the kernel), then
    classes spread evenly."""
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


# ---------------------------------------------------------------------- comparing kernels
def _dense_matrix(K: Tensor, name: str) -> Tensor:
    K = as_tensor(K, name)
    if K.dim() == 2 and K.shape[0] == K.shape[1]:
        return K
    half = K.dim() // 2
    if K.dim() >= 2 and K.dim() % 2 == 0 and K.shape[:half] == K.shape[half:]:
        m = math.prod(K.shape[:half])
        return K.reshape(m, m)
    raise ValueError(f"{name} must be a square kernel matrix (m, m) or shaped (*s, *s), got {tuple(K.shape)}")


def _as_operator(K: Any, like: LinearOperator | None, name: str) -> LinearOperator:
    if isinstance(K, LinearOperator):
        if not K.is_square:
            raise ValueError(f"{name} must be a square operator, got {K.shape_in} -> {K.shape_out}")
        return K
    M = _dense_matrix(K, name)
    shape = like.shape_in if like is not None else (M.shape[0],)
    if math.prod(shape) != M.shape[0]:
        raise ValueError(f"{name} has {M.shape[0]} rows but the other kernel acts on shape {shape}")
    return DenseOperator(M, shape_in=shape, shape_out=shape, is_symmetric=True)


def kernel_distance(
    K1: Tensor | LinearOperator,
    K2: Tensor | LinearOperator,
    method: str = "exact",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> float:
    """``d(K₁, K₂) = 1 − ⟨K₁, K₂⟩_F / (‖K₁‖_F ‖K₂‖_F)`` (arXiv 2010.15110).

    0 for kernels that are positive multiples of each other, 1 for Frobenius-orthogonal ones (for
    PSD kernels: orthogonal ranges), at most 2. A zero kernel counts as orthogonal to everything
    (distance 1). Dense kernels are compared exactly; when either is a
    :class:`~gdlens.operators.LinearOperator` the alignment comes from
    :func:`gdlens.operators.alignment` with ``method`` (``"exact"``: n matvecs per kernel;
    ``"hutch++"``/``"hutchinson"``: ``num_matvecs`` each, seeded).
    """
    if not isinstance(K1, LinearOperator) and not isinstance(K2, LinearOperator):
        A, B = _dense_matrix(K1, "K1"), _dense_matrix(K2, "K2")
        if A.shape != B.shape:
            raise ValueError(f"K1 and K2 must have the same shape, got {tuple(A.shape)} and {tuple(B.shape)}")
        dtype = torch.promote_types(A.dtype, B.dtype)
        A, B = A.detach().to(dtype), B.detach().to(dtype)
        denom = (A.norm() * B.norm()).clamp_min(torch.finfo(dtype).tiny)
        return float(1.0 - (A * B).sum() / denom)
    A = _as_operator(K1, K2 if isinstance(K2, LinearOperator) else None, "K1")
    B = _as_operator(K2, A, "K2")
    if A.shape_in != B.shape_in:
        raise ValueError(f"K1 and K2 act on different shapes: {A.shape_in} and {B.shape_in}")
    return 1.0 - float(alignment(A, B, method=method, num_matvecs=num_matvecs, seed=seed).value)


def kernel_velocity(
    K_prev: Tensor | LinearOperator,
    K_next: Tensor | LinearOperator,
    dt: float = 1.0,
    **kwargs: Any,
) -> float:
    """Kernel velocity ``v = d(K_prev, K_next) / dt`` (arXiv 2010.15110): the kernel distance
    between two snapshots taken ``dt`` apart (in steps, epochs or time, the caller's unit)
    divided by dt. ``kwargs`` go to :func:`kernel_distance`."""
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    return kernel_distance(K_prev, K_next, **kwargs) / dt


def _center_first_axis(V: Tensor) -> Tensor:
    """H applied to a stack (k, n, ...): subtract the mean over axis n."""
    return V - V.mean(dim=1, keepdim=True)


def kernel_target_alignment(
    K: Tensor | LinearOperator,
    y: Tensor,
    centered: bool = False,
    method: str = "exact",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> float:
    """Kernel–target alignment ``A(K, y) = ⟨K, y yᵀ⟩_F / (‖K‖_F ‖y yᵀ‖_F)``, i.e.
    ``yᵀ K y / (‖K‖_F ‖y‖²)``.

    In [−1, 1] (in [0, 1] for PSD K), 1 when K ∝ y yᵀ: how much of the kernel's energy lies on the
    targets (Cristianini et al. 2001). Two forms of y:

    - y shaped like K's input (e.g. ``(B, O)`` targets for the output NTK, or ``(m,)`` for a dense
      ``(m, m)`` K): the formula above with y flattened.
    - a dense ``(m, m)`` K and ``y`` of shape ``(m, c)`` (several target columns):
      ``⟨K, Y Yᵀ⟩_F / (‖K‖_F ‖Y Yᵀ‖_F) = tr(YᵀKY) / (‖K‖_F ‖YᵀY‖_F)``.

    ``centered=True`` uses the centred kernel ``H K H`` and centred targets ``H y``, with H the
    centring over the first (sample) axis of y (Cortes et al. arXiv 1203.0550): a constant offset
    in the targets then does not count. For a dense K and y of shape ``(n, ...)`` with m entries
    (n < m: n samples of r = m/n outputs, K indexed row-major like y), H averages over the n
    samples, each output entry apart, as the operator form does. ``centered=False`` (default) is
    the original alignment.

    For an operator K, ``‖K‖_F`` comes from :func:`gdlens.operators.frobenius_norm` with
    ``method`` (``"exact"`` by default). Returns a float (``nan`` if K or y is zero).
    """
    y = as_tensor(y, "y").detach()
    if isinstance(K, LinearOperator):
        if not K.is_square:
            raise ValueError(f"K must be a square operator, got {K.shape_in} -> {K.shape_out}")
        if tuple(y.shape) != K.shape_in:
            raise ValueError(f"y must be shaped like the kernel's input {K.shape_in}, got {tuple(y.shape)}")
        Kop = K
        if centered:
            Hop = CallableOperator(_center_first_axis, K.shape_in, is_symmetric=True, dtype=K.dtype, device=K.device)
            Kop = ComposedOperator([Hop, K, Hop], is_symmetric=True)
        y = y.to(dtype=K.dtype, device=K.device)
        yc = _center_first_axis(y[None])[0] if centered else y
        with torch.no_grad():
            num = float((yc * K.apply(yc)).sum())
        k_norm = float(frobenius_norm(Kop, method=method, num_matvecs=num_matvecs, seed=seed).value)
        y_sq = float((yc * yc).sum())
        return num / (k_norm * y_sq) if k_norm > 0 and y_sq > 0 else math.nan
    M = _dense_matrix(K, "K").detach()
    m = M.shape[0]
    dtype = torch.promote_types(M.dtype, y.dtype)
    M, y = M.to(dtype), y.to(dtype=dtype, device=M.device)
    if y.dim() >= 1 and y.shape[0] == m and y.dim() <= 2:  # (m,) or (m, c): m samples, c target columns
        Y, n = y.reshape(m, -1), m
    elif y.dim() >= 1 and y.numel() == m:  # shaped like K's input (n, ...): n samples of r = m / n entries
        Y, n = y.reshape(m, 1), y.shape[0]
    else:
        raise ValueError(
            f"y must have shape ({m},), ({m}, c) or (n, ...) with {m} entries in all to match K of shape "
            f"{tuple(as_tensor(K, 'K').shape)}, got {tuple(y.shape)}"
        )
    if centered:  # H over the sample axis: K as (n, r, n, r), Y as (n, r·c)
        r = m // n
        M4 = M.reshape(n, r, n, r)
        M4 = M4 - M4.mean(dim=0, keepdim=True)
        M = (M4 - M4.mean(dim=2, keepdim=True)).reshape(m, m)
        Yn = Y.reshape(n, -1)
        Y = (Yn - Yn.mean(dim=0, keepdim=True)).reshape(m, -1)
    num = float((Y * (M @ Y)).sum())
    denom = float(M.norm() * (Y.T @ Y).norm())
    return num / denom if denom > 0 else math.nan


def ntk_effective_rank(
    K: Tensor | LinearOperator,
    method: str = "exact",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> float:
    """Effective rank of a PSD kernel, the participation ratio of its eigenvalues,

        r_eff(K) = (tr K)² / ‖K‖_F² = (Σ λ_i)² / Σ λ_i²  ∈ [1, rank K].

    Dense kernels exactly; operators through :func:`gdlens.operators.effective_rank` with
    ``method`` (``"exact"``, ``"hutch++"`` or ``"hutchinson"``). ``nan`` for a zero dense kernel
    (the operator estimator reports 0 there).
    """
    if isinstance(K, LinearOperator):
        return float(effective_rank(K, method=method, num_matvecs=num_matvecs, seed=seed).value)
    M = _dense_matrix(K, "K").detach()
    f2 = float((M * M).sum())
    return float(torch.diagonal(M).sum()) ** 2 / f2 if f2 > 0 else math.nan


class KernelSpectrum(NamedTuple):
    """Summary of a dense PSD kernel: ``trace`` tr K, ``lambda_max`` its largest eigenvalue,
    ``effective_rank`` (tr K)²/‖K‖_F² and ``size`` m, the largest value the effective rank can take."""

    trace: float
    lambda_max: float
    effective_rank: float
    size: int


def kernel_spectrum(K: Tensor) -> KernelSpectrum:
    """:class:`KernelSpectrum` of a dense kernel ``(m, m)`` (or ``(*s, *s)``): tr K, λ_max
    (``eigvalsh`` in float64), :func:`ntk_effective_rank` and m."""
    M = _dense_matrix(K, "K").detach()
    lam = float(torch.linalg.eigvalsh(M.to(torch.float64))[-1]) if M.shape[0] else math.nan
    return KernelSpectrum(float(torch.diagonal(M).sum()), lam, ntk_effective_rank(M), int(M.shape[0]))


# ---------------------------------------------------------------------- the probe
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

    Its state, fixed at the first call (:meth:`init`): ``n_samples`` trials of the training batch
    (``data="eval"``: of the held-out data) spread evenly over it, their targets, and which output
    entries to use (:func:`ntk_entries`): all of them when the n samples have at most
    ``max_outputs`` in all, otherwise the same evenly spread ``max_outputs // n`` entries of each
    sample (for classification the samples' own classes first) — a principal submatrix of the
    full NTK, which bounds the cost; and Θ₀, the kernel of the first call. Every call builds the
    dense kernel ``Θ = J Jᵀ`` ``(m, m)`` on those entries (:func:`ntk_matrix`'s rows, the model in
    eval mode: dropout off) over the trainable parameters and records:

    - ``trace``, ``lambda_max``, ``effective_rank`` (tr Θ)²/‖Θ‖_F² and its bound ``size`` = m
      (:func:`kernel_spectrum`);
    - ``kernel_distance``: 1 − ⟨Θ, Θ₀⟩_F/(‖Θ‖_F‖Θ₀‖_F) (:func:`kernel_distance`, arXiv 2010.15110);
    - ``target_alignment``: :func:`kernel_target_alignment` with y the targets at the same
      entries (one-hot for cross-entropy), centred over the samples with ``centered=True``
      (arXiv 1203.0550); absent when the targets are not shaped like the outputs. The mask of
      masked tasks is not applied.

    Cost per call: m ≤ max(max_outputs, n_samples) vector–Jacobian products on the n samples
    (``chunk_size`` at a time), an ``(m, n_params)`` array, and O(m³) for the eigenvalue.
    """

    n_samples: int = 8
    max_outputs: int = 128
    data: str = "train"
    centered: bool = False
    chunk_size: int = 256
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=10))
    name: str = "ntk"

    title: ClassVar[str] = "Neural tangent kernel"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("trace", "trace of the NTK", "tr Θ, Θ = J Jᵀ on the fixed inputs' kept output entries"),
        Metric("lambda_max", "largest eigenvalue of the NTK", "λ_max(Θ)"),
        Metric("effective_rank", "effective rank of the NTK", "(tr Θ)² / ‖Θ‖_F²"),
        Metric("size", "size of the NTK m", "output entries kept: the largest possible effective rank"),
        Metric("kernel_distance", "distance to the first kernel", "1 − ⟨Θ, Θ₀⟩_F / (‖Θ‖_F ‖Θ₀‖_F)"),
        Metric("target_alignment", "kernel–target alignment", "yᵀ Θ y / (‖Θ‖_F ‖y‖²), centred over samples if asked"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Scale of the NTK", ("trace", "lambda_max"), "tr Θ and λ_max(Θ)", yscale="log"),
        Panel("Effective rank of the NTK", ("effective_rank",), "(tr Θ)² / ‖Θ‖_F²", ylim=(1, None), bound="size"),
        Panel("Kernel motion", ("kernel_distance",), "1 − ⟨Θ, Θ₀⟩_F / (‖Θ‖_F ‖Θ₀‖_F)", yscale="auto"),
        Panel("Kernel–target alignment", ("target_alignment",), "yᵀ Θ y / (‖Θ‖_F ‖y‖²)", yscale="linear",
              ylim=(0, 1)),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        check_data_choice(self.data)
        if self.n_samples < 1 or self.max_outputs < 1 or self.chunk_size < 1:
            raise ValueError(
                f"n_samples, max_outputs and chunk_size must be positive, got {self.n_samples}, "
                f"{self.max_outputs}, {self.chunk_size}"
            )

    def settings(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "max_outputs": self.max_outputs, "data": self.data,
                "centered": self.centered}

    def reset(self) -> None:
        """Deprecated, does nothing: the state lives in the Recorder."""
        warnings.warn("NTKProbe.reset() does nothing: the state lives in the Recorder",
                      DeprecationWarning, stacklevel=2)

    @property
    def initial_kernel(self) -> None:
        """Deprecated: Θ₀ is in the Recorder's state (``recorder.states[name]["K0"]``)."""
        warnings.warn("NTKProbe.initial_kernel is gone: read recorder.states[probe.name]['K0']",
                      DeprecationWarning, stacklevel=2)
        return None

    @property
    def entries(self) -> None:
        """Deprecated: the entries are in the Recorder's state (``recorder.states[name]["entries"]``)."""
        warnings.warn("NTKProbe.entries is gone: read recorder.states[probe.name]['entries']",
                      DeprecationWarning, stacklevel=2)
        return None

    def _jacobian(self, ctx: ProbeContext, x: Tensor) -> LinearOperator:
        """J of the model's first output on x over the trainable parameters (a lazy operator:
        its callers use it inside :func:`eval_mode`)."""
        return parameter_jacobian(functional_model(ctx.model), trainable_params(ctx.model), x)

    def init(self, ctx: ProbeContext) -> dict[str, Any] | None:
        """The fixed inputs, their kept output entries and targets (``K0`` is set by the first
        :meth:`compute`); None while there is no data. Fails at once on a model whose outputs
        cannot be differentiated in its parameters."""
        data = probe_data(ctx, self.data)
        if data is None:
            return None
        if not trainable_params(ctx.model):
            raise ValueError(f"NTKProbe: {type(ctx.model).__name__} has no trainable parameters (requires_grad=True)")
        idx = spread_indices(data.x.shape[0], self.n_samples).to(data.x.device)
        x = data.x[idx].detach().clone()
        with eval_mode(ctx.model):
            J = self._jacobian(ctx, x)
            shape = J.shape_out
        entries = ntk_entries(data, idx, shape, self.max_outputs)
        y = _alignment_targets(data, idx, shape, J.dtype)
        if y is not None:
            y = y.reshape(-1)[entries.to(y.device)].reshape(shape[0], -1)
        return {"x": x, "entries": entries, "y": y, "K0": None}

    def compute(self, ctx: ProbeContext, state: dict[str, Any] | None) -> tuple[dict[str, float], Any]:
        if state is None:
            state = self.init(ctx)
            if state is None:
                return {}, None
        with eval_mode(ctx.model):
            K = _kernel_from_rows(self._jacobian(ctx, state["x"]), self.chunk_size, state["entries"])
        if state["K0"] is None:
            state = {**state, "K0": K.clone()}
        spec = kernel_spectrum(K)
        out = {**spec._asdict(), "kernel_distance": kernel_distance(K, state["K0"])}
        if state["y"] is not None:
            out["target_alignment"] = kernel_target_alignment(K, state["y"], centered=self.centered)
        return out, state
