"""Energies of the weights: the structural quantities whose settling is the representation clock
(:mod:`gdlens.probes.clocks`, arXiv 2606.05863).

::

    l2_energy           Σ_ℓ ‖W_ℓ‖_F²                          what weight decay penalises
    schatten_energy     L Σ_i σ_i(W)^{2/L},  W = W_L ⋯ W_1    the least Σ_ℓ ‖W_ℓ‖_F² of any
                                                              factorisation of W into L factors
    embedding_nuclear_norm   ‖E‖_* = Σ_i σ_i(E)
    fourier_sparsity    share of the non-constant power of an embedding E (p, d) over the token
                        axis that lies in its top-k frequencies

The bound ``Σ_ℓ ‖W_ℓ‖_F² ≥ L Σ_i σ_i(W)^{2/L}`` is Hölder's inequality for Schatten (quasi-)norms,
``‖W_L ⋯ W_1‖_{S_{2/L}} ≤ Π_ℓ ‖W_ℓ‖_{S_2}``, followed by the AM–GM inequality
``Π_ℓ ‖W_ℓ‖_F^{2/L} ≤ (1/L) Σ_ℓ ‖W_ℓ‖_F²``. It is tight for *balanced* factors: with the SVD
``W = U S Vᵀ``, ``W_1 = Q_1 S^{1/L} Vᵀ``, ``W_ℓ = Q_ℓ S^{1/L} Q_{ℓ−1}ᵀ``, ``W_L = U S^{1/L} Q_{L−1}ᵀ``
(Q_ℓ with orthonormal columns) every ``‖W_ℓ‖_F² = Σ σ_i^{2/L}``. Gradient flow with layerwise
weight decay keeps ``W_{ℓ+1}ᵀW_{ℓ+1} − W_ℓW_ℓᵀ`` decaying to zero, so the two energies meet as
training settles.

Norms have one implementation, :mod:`gdlens.probes.parameters` (``parameter_norms``,
``schatten_norm``, ``nuclear_norm``); the energies are their squares and powers. All sums in
float64. Last, :class:`EnergyProbe` records them during training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gdlens.probes._utils import as_tensor
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.groups import resolve_groups
from gdlens.probes.parameters import nuclear_norm, parameter_norms, schatten_norm
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "l2_energy",
    "schatten_energy",
    "embedding_nuclear_norm",
    "fourier_power",
    "fourier_sparsity",
    "ENERGIES",
    "model_energy",
    "model_energies",
    "EnergyProbe",
]


def l2_energy(params: Any) -> float:
    """``Σ_ℓ ‖W_ℓ‖_F²`` over a parameter container (dict, ``named_parameters()``, list or a
    tensor): ``parameter_norms(params)["total"]²``, summed in float64."""
    if isinstance(params, Sequence) and not isinstance(params, Tensor):
        params = {str(i): t for i, t in enumerate(params)}  # positional names cannot clash with "total"
    return parameter_norms(params)["total"] ** 2


def schatten_energy(weights: Tensor | Sequence[Tensor], depth: int | None = None) -> float:
    """``L Σ_i σ_i(W)^{2/L} = L ‖W‖_{S_{2/L}}^{2/L}`` of the end-to-end map ``W = W_L ⋯ W_1``
    (weights listed input to output, ``W_ℓ`` of shape ``(d_ℓ, d_{ℓ−1})``), L the number of factors
    unless ``depth`` is given (``schatten_energy(W, depth=L)`` prices a single map as an L-factor
    product).

    The least ``Σ_ℓ ‖W_ℓ‖_F²`` over factorisations of W into L factors: never above
    :func:`l2_energy` of the factors, equal to it at balanced ones (module docstring). L = 1 gives
    ``‖W‖_F²``, L = 2 twice the nuclear norm.
    """
    if isinstance(weights, Tensor):
        weights = [weights]
    L = len(weights) if depth is None else depth
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    q = 2.0 / L
    return L * schatten_norm([as_tensor(w, "weights").detach().to(torch.float64) for w in weights], q) ** q


def embedding_nuclear_norm(E: Tensor) -> float:
    """``‖E‖_* = Σ_i σ_i(E)`` of an embedding matrix (p, d) (:func:`gdlens.probes.parameters.nuclear_norm`)."""
    E = as_tensor(E, "E")
    if E.dim() != 2:
        raise ValueError(f"E must be an embedding matrix (p, d), got shape {tuple(E.shape)}")
    return nuclear_norm(E.detach().to(torch.float64))


def fourier_power(E: Tensor) -> Tensor:
    """Power of an embedding ``E`` (p, d) per frequency of the token axis, conjugate pairs
    combined: ``P_k = (|Ê_k|² + |Ê_{p−k}|²)/p`` summed over the d columns, k = 0..⌊p/2⌋, with
    ``Ê_k = Σ_t E_t e^{−2πikt/p}`` (``|Ê_{p/2}|²/p`` alone for even p). By Parseval ``Σ_k P_k = ‖E‖_F²``
    and ``P_0 = p ‖mean_t E_t‖²``, so ``Σ_{k≥1} P_k = ‖E − mean‖_F²``. Returns (⌊p/2⌋ + 1,) float64.
    """
    E = as_tensor(E, "E")
    if E.dim() == 1:
        E = E[:, None]
    if E.dim() != 2 or E.shape[0] < 2:
        raise ValueError(f"E must be (p, d) with p >= 2 tokens on the first axis, got shape {tuple(E.shape)}")
    p = E.shape[0]
    F = torch.fft.rfft(E.detach().to(torch.float64), dim=0)
    power = (F.real**2 + F.imag**2).sum(1) / p
    paired = torch.ones_like(power) * 2
    paired[0] = 1
    if p % 2 == 0:
        paired[-1] = 1
    return power * paired


def fourier_sparsity(E: Tensor, k: int = 8) -> float:
    """Share of the non-constant power of an embedding ``E`` (p, d) that lies in its top-k
    frequencies (token axis; :func:`fourier_power`):

        S_k(E) = Σ_{k largest P_j, j ≥ 1} P_j / Σ_{j ≥ 1} P_j   ∈ [k/⌊p/2⌋, 1].

    Above k/⌊p/2⌋ for a random embedding, the more so the fewer its columns (picking the top k
    favours noise: 0.18 against 0.17 at p = 97, d = 256, k = 8, but 0.41 against 0.27 at p = 23,
    d = 6, k = 3); 1 for one built from k frequencies (the "clock"
    representation of grokked modular addition, Nanda et al. arXiv 2301.05217). ``nan`` when E is
    constant over tokens. k is clipped to ⌊p/2⌋.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    E = as_tensor(E, "E").detach().to(torch.float64)
    P = fourier_power(E - E.mean(0, keepdim=True))[1:]  # centred first: a constant E has exactly no power
    total = float(P.sum())
    if not total > 0:
        return math.nan
    top = torch.topk(P, min(k, P.numel())).values
    return float(top.sum()) / total


def _model_attr(model: nn.Module, given: Callable | None, attr: str) -> Any:
    if given is not None:
        return given(model)
    method = getattr(model, attr, None)
    return method() if callable(method) else None


ENERGIES: dict[str, Callable[[nn.Module], float]] = {
    "l2": lambda m: l2_energy(dict(m.named_parameters())),
    "schatten": lambda m: schatten_energy(list(m.factors())),
    "nuclear": lambda m: embedding_nuclear_norm(m.embedding_matrix()),
    "fourier_sparsity": lambda m: fourier_sparsity(m.embedding_matrix()),
}
"""The named energies of a model: ``"l2"`` (any model), ``"schatten"`` (models with
``factors()``), ``"nuclear"`` and ``"fourier_sparsity"`` (models with ``embedding_matrix()``)."""


def model_energy(model: nn.Module, energy: str | Callable[[nn.Module], float]) -> float:
    """One energy of ``model``: a name of :data:`ENERGIES` or a function ``model -> float``,
    without gradients."""
    if isinstance(energy, str) and energy not in ENERGIES:
        raise ValueError(f"energy must be one of {sorted(ENERGIES)} or a callable, got {energy!r}")
    with torch.no_grad():
        return float(energy(model) if callable(energy) else ENERGIES[energy](model))


def model_energies(
    model: nn.Module,
    groups: Any = None,
    factors: Callable[[nn.Module], Sequence[Tensor]] | None = None,
    embedding: Callable[[nn.Module], Tensor] | None = None,
    fourier_k: int = 8,
) -> dict[str, float]:
    """The energies :class:`EnergyProbe` records (its docstring), without gradients."""
    named = dict(model.named_parameters())
    out = {"l2": l2_energy(named)}
    if groups is not False:
        resolved = resolve_groups(model, groups)
        norms = parameter_norms(named, resolved) if resolved else {}
        out.update({f"l2/{g}": norms[g] ** 2 for g in resolved})
    with torch.no_grad():
        W = _model_attr(model, factors, "factors")
        if W is not None:
            out["schatten"] = schatten_energy(list(W))
            out["factors_l2"] = l2_energy(list(W))
        E = _model_attr(model, embedding, "embedding_matrix")
        if E is not None:
            out["nuclear"] = embedding_nuclear_norm(E)
            out["fourier_sparsity"] = fourier_sparsity(E, fourier_k)
    return out


# ------------------------------------------------------------------------------------ probe
@dataclass
class EnergyProbe:
    """The energies of the module docstring (:func:`model_energies`): ``l2`` (Σ‖θ‖² over all
    parameters) and ``l2/<group>``; ``schatten`` (L Σσ^{2/L} of the end-to-end map) and
    ``factors_l2`` (Σ‖W_ℓ‖² of its factors) for models with factors; ``nuclear`` and
    ``fourier_sparsity`` (top ``fourier_k`` frequencies) of the embedding for models with one.
    Carries nothing between calls (its state is None); groups that do not resolve fail at the
    first step (``init``).

    Args:
        groups: parameter groups (:func:`~gdlens.probes.groups.resolve_groups`); ``False``
            records no per-group l2.
        factors: ``model -> [W_1, …, W_L]``; default ``model.factors()`` where it exists.
        embedding: ``model -> E (p, d)``, tokens first; default ``model.embedding_matrix()``.
        fourier_k: k of :func:`fourier_sparsity`.
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=60))
    name: str = "energy"
    groups: Any = None
    factors: Callable[[nn.Module], Sequence[Tensor]] | None = None
    embedding: Callable[[nn.Module], Tensor] | None = None
    fourier_k: int = 8

    title = "Weight energies"
    metric_specs = (
        Metric("l2", "l2 energy", "Σ ‖θ‖² over all parameters"),
        Metric("l2/*", "l2 energy of a parameter group", "Σ_{θ ∈ g} ‖θ‖²"),
        Metric("schatten", "Schatten energy of the end-to-end map", "L Σ_i σ_i(W_L ⋯ W_1)^{2/L}"),
        Metric("factors_l2", "l2 energy of the factors", "Σ_ℓ ‖W_ℓ‖_F² (≥ the Schatten energy)"),
        Metric("nuclear", "nuclear norm of the embedding", "‖E‖_* = Σ_i σ_i(E)"),
        Metric("fourier_sparsity", "Fourier sparsity of the embedding",
               "share of the non-constant power of E over tokens in its top-k frequencies"),
    )
    panels = (
        Panel("l2 energy", ("l2", "l2/*"), "Σ ‖θ‖² (all parameters and per group)", yscale="auto"),
        Panel("End-to-end map: Schatten energy against its factors", ("schatten", "factors_l2"),
              "L Σ σ_i(W)^{2/L} and Σ_ℓ ‖W_ℓ‖_F²", yscale="auto"),
        Panel("Embedding nuclear norm", ("nuclear",), "‖E‖_* = Σ_i σ_i(E)", yscale="auto"),
        Panel("Embedding Fourier sparsity", ("fourier_sparsity",), "top-k share of the power over tokens",
              yscale="linear", ylim=(0.0, 1.0)),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if isinstance(self.fourier_k, bool) or not isinstance(self.fourier_k, int) or self.fourier_k < 1:
            raise ValueError(f"fourier_k must be a positive int, got {self.fourier_k!r}")

    def settings(self) -> dict[str, Any]:
        return {"fourier_k": self.fourier_k}

    def init(self, ctx: ProbeContext) -> None:
        if self.groups is not False:
            resolve_groups(ctx.model, self.groups)
        return None

    def compute(self, ctx: ProbeContext, state: None) -> tuple[dict[str, float], None]:
        return model_energies(ctx.model, self.groups, self.factors, self.embedding, self.fourier_k), state
