"""Matrix-free linear algebra on shaped tensors (knows nothing of networks).

Operators: :class:`LinearOperator` and its concrete kinds; estimators: :func:`trace`,
:func:`frobenius_norm`, :func:`alignment`, :func:`effective_rank` (and all of them at once for
several operators: :func:`moments`), :func:`top_eigs`,
:func:`svds`, :func:`spectral_density`.
"""

from gdlens.operators.base import (
    AdjointOperator,
    ComposedOperator,
    LinearOperator,
    PartialTraceOperator,
    ScaledOperator,
    SumOperator,
)
from gdlens.operators.concrete import CallableOperator, DenseOperator, DiagonalOperator, IdentityOperator

__all__ = [
    "LinearOperator",
    "DenseOperator",
    "IdentityOperator",
    "DiagonalOperator",
    "CallableOperator",
    "ComposedOperator",
    "SumOperator",
    "ScaledOperator",
    "AdjointOperator",
    "PartialTraceOperator",
]

from gdlens.operators._common import Estimate
from gdlens.operators.density import SpectralDensity, spectral_density
from gdlens.operators.eigen import SVD, Eigs, svds, top_eigs
from gdlens.operators.moments import Moments, alignment, effective_rank, frobenius_norm, moments
from gdlens.operators.partial import (
    PartialReduction,
    exact_partial_trace,
    gram_partial_trace,
    partial_effective_rank,
    partial_reduction,
    partial_trace_samples,
    variance_count,
)
from gdlens.operators.participation import participation_ratio
from gdlens.operators.trace import trace

__all__ += [
    "Estimate",
    "trace",
    "frobenius_norm",
    "alignment",
    "effective_rank",
    "moments",
    "Moments",
    "partial_effective_rank",
    "partial_trace_samples",
    "partial_reduction",
    "PartialReduction",
    "exact_partial_trace",
    "gram_partial_trace",
    "variance_count",
    "participation_ratio",
    "top_eigs",
    "svds",
    "Eigs",
    "SVD",
    "spectral_density",
    "SpectralDensity",
]
