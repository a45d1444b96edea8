"""Training clocks: the time scales on which a run fits its data, settles its representation and
generalises (grokking).

Grokking separates fitting the training data from learning the rule. The "training clocks"
analysis (arXiv 2606.05863) names the time scales: the cross-entropy falls to ε on a
*logarithmic* clock, while the structure of the learned map — under layerwise weight decay, a
Schatten-type energy of the end-to-end map — settles on a much slower, *polynomial* one. In a
two-layer ReLU embedding model the classifier head receives larger effective gradients than the
embedding, so the head fits first and the representation simplifies later.

Clocks (pure functions of recorded series; ``steps`` defaults to 0, 1, 2, …)::

    T_fit(ε)    = min{ t : L_train(t) ≤ ε }                                 fit_clock
    T_rep(ε)    = min{ t : |E(s) − E_∞| ≤ ε |E_∞| for every recorded s ≥ t }  representation_clock
    T_gen(a)    = min{ t : acc_test(t) ≥ a }                                 generalization_clock

E_∞ is the last recorded value unless given. A clock that is never reached is None.

Energies (functions of the weights)::

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

**The fit clock depends on the optimiser.** On the separable 1-D logistic loss
``ℓ(w) = log(1 + e^{−w})`` plain gradient descent has ``ẇ = η σ(−w) ≈ η e^{−w}``, so
``e^{w} ≈ η t`` and ``ℓ ≈ 1/(η t)``: ``T_fit(ε) ≈ 1/(η ε)``, polynomial in 1/ε. Sign descent
(and Adam while its second moment tracks the gradient, which it then approximates) moves w by η
per step, so ``ℓ ≈ e^{−η t}`` and ``T_fit(ε) ≈ log(1/ε)/η``: the logarithmic fit clock is that of
sign-like optimisers; under plain gradient descent fitting is itself polynomial
(tests/probes/test_clocks.py checks both rates).

Schedulable probes: :class:`EnergyProbe` (the energies), :class:`ClockProbe` (the three clocks
so far, so that any run's summary ends with them), :class:`HeadEmbeddingProbe` (per-group
gradient norms and per-group NTK traces, ``tr K_head`` vs ``tr K_embedding``); and
:func:`clock_summary`, the clocks of a finished run from its recorded history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdlens.operators import trace
from gdlens.probes._utils import as_tensor, leaves
from gdlens.probes.base import ProbeContext, Schedule, as_schedule, forward
from gdlens.probes.ntk import empirical_ntk
from gdlens.probes.representation import end_to_end

__all__ = [
    "fit_clock",
    "representation_clock",
    "generalization_clock",
    "l2_energy",
    "schatten_energy",
    "embedding_nuclear_norm",
    "fourier_power",
    "fourier_sparsity",
    "resolve_groups",
    "group_gradient_norms",
    "group_ntk_traces",
    "EnergyProbe",
    "ClockProbe",
    "HeadEmbeddingProbe",
    "clock_summary",
]


# ---------------------------------------------------------------------------------- clocks
def _series(values: Any, steps: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    v = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    v = v.astype(float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D series, got shape {v.shape}")
    if steps is None:
        s = np.arange(v.shape[0])
    else:
        s = steps.detach().cpu().numpy() if isinstance(steps, Tensor) else np.asarray(steps)
        if s.shape != v.shape:
            raise ValueError(f"steps must have the shape of {name} {v.shape}, got {s.shape}")
        if s.size > 1 and not np.all(np.diff(s) > 0):
            raise ValueError("steps must be strictly increasing")
    return v, s


def _step(s: np.ndarray, i: int) -> int | float:
    value = s[i]
    return int(value) if float(value).is_integer() else float(value)


def fit_clock(losses: Any, eps: float, steps: Any = None) -> int | None:
    """``T_fit(ε)``: the first step at which the training loss is ≤ ε (None if never).

    Args:
        losses: 1-D series of training losses (NaN entries never count as fitted).
        eps: the loss level ε > 0.
        steps: the step of each entry (default 0, 1, 2, …).
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    v, s = _series(losses, steps, "losses")
    hits = np.flatnonzero(v <= eps)
    return _step(s, hits[0]) if hits.size else None


def generalization_clock(test_acc: Any, threshold: float, steps: Any = None) -> int | None:
    """``T_gen(a)``: the first step at which the test accuracy is ≥ ``threshold`` (None if
    never). The first crossing: a later dip does not move it."""
    v, s = _series(test_acc, steps, "test_acc")
    hits = np.flatnonzero(v >= threshold)
    return _step(s, hits[0]) if hits.size else None


def representation_clock(energy: Any, eps: float, steps: Any = None, final: float | None = None) -> int | None:
    """``T_rep(ε)``: the first step after which ``|E − E_final| ≤ ε |E_final|`` holds at every
    later recorded step.

    Args:
        energy: 1-D series of an energy (or any structural quantity) over training.
        eps: relative tolerance ε > 0.
        steps: the step of each entry (default 0, 1, 2, …).
        final: E_final; the last value by default (then the clock is always defined, at worst
            the last step). With a given E_final the clock is None when the last value is not
            within the tolerance; with E_final = 0 the condition is E = 0 exactly.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    v, s = _series(energy, steps, "energy")
    if v.size == 0:
        return None
    target = v[-1] if final is None else float(final)
    ok = np.abs(v - target) <= eps * abs(target)  # NaN -> False
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return _step(s, 0)
    return _step(s, bad[-1] + 1) if bad[-1] + 1 < v.size else None


# -------------------------------------------------------------------------------- energies
def l2_energy(params: Any) -> float:
    """``Σ_ℓ ‖W_ℓ‖_F²`` over a parameter container (dict, ``named_parameters()``, list or a
    tensor), summed in float64."""
    _, tensors = leaves(params, "params")
    return float(sum((t.detach().to(torch.float64) ** 2).sum() for t in tensors))


def schatten_energy(weights: Tensor | Sequence[Tensor], depth: int | None = None) -> float:
    """``L Σ_i σ_i(W)^{2/L}`` of the end-to-end map ``W = W_L ⋯ W_1`` (weights listed input to
    output, ``W_ℓ`` of shape ``(d_ℓ, d_{ℓ−1})``), L the number of factors unless ``depth`` is given
    (``schatten_energy(W, depth=L)`` prices a single map as an L-factor product).

    The least ``Σ_ℓ ‖W_ℓ‖_F²`` over factorisations of W into L factors: never above
    :func:`l2_energy` of the factors, equal to it at balanced ones (module docstring). L = 1 gives
    ``‖W‖_F²``, L = 2 twice the nuclear norm.
    """
    if isinstance(weights, Tensor):
        weights = [weights]
    L = len(weights) if depth is None else depth
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    W = end_to_end(list(weights)).to(torch.float64)
    s = torch.linalg.svdvals(W)
    return float(L * (s ** (2.0 / L)).sum())


def embedding_nuclear_norm(E: Tensor) -> float:
    """``‖E‖_* = Σ_i σ_i(E)`` of an embedding matrix (p, d)."""
    E = as_tensor(E, "E")
    if E.dim() != 2:
        raise ValueError(f"E must be an embedding matrix (p, d), got shape {tuple(E.shape)}")
    return float(torch.linalg.svdvals(E.detach().to(torch.float64)).sum())


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


# ------------------------------------------------------------------------- parameter groups
def resolve_groups(model: nn.Module, groups: Any = None) -> dict[str, list[str]]:
    """Parameter names by group: ``groups`` as a dict group -> names, or a function
    name -> group (None leaves a parameter out); by default ``model.parameter_groups()`` where
    the model has one (:class:`~gdlens.models.EmbeddingMLP`, ``Transformer1L``, ``DeepLinear``),
    else the first component of each name (``"head.weight"`` -> ``"head"``)."""
    names = [n for n, _ in model.named_parameters()]
    if groups is None and hasattr(model, "parameter_groups"):
        groups = model.parameter_groups()
    if groups is None:
        groups = lambda n: n.split(".")[0]  # noqa: E731
    if callable(groups):
        out: dict[str, list[str]] = {}
        for n in names:
            g = groups(n)
            if g is not None:
                out.setdefault(str(g), []).append(n)
        return out
    out = {str(g): list(members) for g, members in groups.items()}
    unknown = [m for members in out.values() for m in members if m not in names]
    if unknown:
        raise ValueError(f"groups name unknown parameters {unknown}; the model has {names}")
    return out


def group_gradient_norms(
    model: nn.Module, loss_fn: Callable[[nn.Module], Tensor], groups: Any = None
) -> dict[str, float]:
    """``‖∂L/∂θ_g‖`` per parameter group g (:func:`resolve_groups`) and over all parameters
    (``"total"``), from one backward pass of ``loss_fn(model)``; the model's ``.grad`` are left
    untouched."""
    groups = resolve_groups(model, groups)
    named = dict(model.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad]
    loss = loss_fn(model)
    grads = torch.autograd.grad(loss, [named[n] for n in names], allow_unused=True)
    sq = {n: (0.0 if g is None else float((g.detach().to(torch.float64) ** 2).sum())) for n, g in zip(names, grads)}
    out = {g: math.sqrt(sum(sq.get(n, 0.0) for n in members)) for g, members in groups.items()}
    if "total" in out:
        raise ValueError("a parameter group is named 'total', which is reserved for the overall norm")
    out["total"] = math.sqrt(sum(sq.values()))
    return out


def _outputs(model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    out = torch.func.functional_call(model, dict(params), (x,))
    return out[0] if isinstance(out, tuple) else out


def group_ntk_traces(
    model: nn.Module,
    x: Tensor,
    groups: Any = None,
    method: str = "hutch++",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> dict[str, tuple[float, float]]:
    """``tr K_g`` of the empirical NTK of each parameter group on the inputs x,
    ``K_g = J_g J_gᵀ`` with ``J_g = ∂f(x; θ)/∂θ_g`` (the other parameters held fixed), so that
    ``K = Σ_g K_g`` and ``tr K_g = ‖J_g‖_F² = Σ_{n,o} ‖∂f_{no}/∂θ_g‖²``: the share of the kernel —
    of how fast gradient flow moves the outputs — that flows through group g.

    Each ``K_g`` is the matrix-free operator :func:`gdlens.probes.ntk.empirical_ntk` and its
    trace comes from :func:`gdlens.operators.trace` with ``method`` (``"exact"`` spends one matvec
    per output entry). Returns ``{group: (estimate, standard error)}``.
    """
    groups = resolve_groups(model, groups)
    params = {n: p.detach() for n, p in model.named_parameters()}
    out: dict[str, tuple[float, float]] = {}
    for g, members in groups.items():
        own = {n: params[n] for n in members}
        rest = {n: v for n, v in params.items() if n not in own}

        def model_fn(theta: Mapping[str, Tensor], inputs: Tensor, rest: dict = rest) -> Tensor:
            return _outputs(model, {**rest, **theta}, inputs)

        K = empirical_ntk(model_fn, own, x)
        est = trace(K, method=method, num_matvecs=num_matvecs, seed=seed)
        out[g] = (float(est.value), float(est.stderr))
    return out


# ---------------------------------------------------------------------------------- probes
def _model_attr(model: nn.Module, given: Callable | None, attr: str) -> Any:
    if given is not None:
        return given(model)
    method = getattr(model, attr, None)
    return method() if callable(method) else None


@dataclass
class EnergyProbe:
    """The energies of the module docstring: ``l2`` (Σ‖θ‖² over all parameters) and ``l2/<group>``;
    ``schatten`` (L Σσ^{2/L} of the end-to-end map) and ``factors_l2`` (Σ‖W_ℓ‖² of its factors)
    for models with factors; ``nuclear`` and ``fourier_sparsity`` (top ``fourier_k``
    frequencies) of the embedding for models with one.

    Args:
        groups: parameter groups (:func:`resolve_groups`); ``False`` records no per-group l2.
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

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        model = ctx.model
        named = dict(model.named_parameters())
        out = {"l2": l2_energy(named)}
        if self.groups is not False:
            for g, members in resolve_groups(model, self.groups).items():
                out[f"l2/{g}"] = l2_energy([named[n] for n in members]) if members else 0.0
        with torch.no_grad():
            factors = _model_attr(model, self.factors, "factors")
            if factors is not None:
                out["schatten"] = schatten_energy(list(factors))
                out["factors_l2"] = l2_energy(list(factors))
            E = _model_attr(model, self.embedding, "embedding_matrix")
            if E is not None:
                out["nuclear"] = embedding_nuclear_norm(E)
                out["fourier_sparsity"] = fourier_sparsity(E, self.fourier_k)
        return out


_ENERGIES: dict[str, Callable[[nn.Module], float]] = {
    "l2": lambda m: l2_energy(dict(m.named_parameters())),
    "schatten": lambda m: schatten_energy(list(m.factors())),
    "nuclear": lambda m: embedding_nuclear_norm(m.embedding_matrix()),
    "fourier_sparsity": lambda m: fourier_sparsity(m.embedding_matrix()),
}


@dataclass
class ClockProbe:
    """The three clocks of the run so far: ``fit`` (T_fit(eps) of the training loss),
    ``generalization`` (T_gen(threshold) of the held-out accuracy) and ``representation``
    (T_rep(eps) of ``energy``, relative to its latest value), ``nan`` while not reached. At the
    last step these are the run's clocks (at this probe's resolution), and the training loop puts
    them into the run summary as ``clocks/fit`` etc.

    It keeps its own observations (training loss on the batch, held-out accuracy, the energy)
    at its scheduled steps in :attr:`observations`; a step at or before the last one seen starts
    a new record (a new run).

    Args:
        eps: ε of the fit and representation clocks.  threshold: accuracy of the generalisation clock.
        energy: ``"l2"``, ``"schatten"`` (models with ``factors()``), ``"nuclear"`` or
            ``"fourier_sparsity"`` (models with ``embedding_matrix()``), or ``model -> float``.
        accuracy: the metric key of the held-out data to read (``"accuracy"``).
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(every=10))
    name: str = "clocks"
    eps: float = 0.01
    threshold: float = 0.95
    energy: str | Callable[[nn.Module], float] = "l2"
    accuracy: str = "accuracy"
    observations: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if isinstance(self.energy, str) and self.energy not in _ENERGIES:
            raise ValueError(f"energy must be one of {sorted(_ENERGIES)} or a callable, got {self.energy!r}")
        self._reset()

    def _reset(self) -> None:
        self.observations = {"step": [], "loss": [], "accuracy": [], "energy": []}

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        if self.observations["step"] and ctx.step <= self.observations["step"][-1]:
            self._reset()
        obs = self.observations
        model = ctx.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            if ctx.loss_fn is not None:
                loss = float(ctx.loss_fn(model))
            elif ctx.batch is not None:
                loss = float(ctx.batch.loss_value(forward(model, ctx.batch.x)[0]))
            else:
                loss = math.nan
            acc = math.nan
            if ctx.eval_data is not None:
                acc = float(ctx.eval_data.metric(forward(model, ctx.eval_data.x)[0]).get(self.accuracy, math.nan))
            energy = float(self.energy(model) if callable(self.energy) else _ENERGIES[self.energy](model))
        model.train(was_training)
        for key, value in (("step", ctx.step), ("loss", loss), ("accuracy", acc), ("energy", energy)):
            obs[key].append(value)
        clocks = {
            "fit": fit_clock(obs["loss"], self.eps, obs["step"]),
            "generalization": generalization_clock(obs["accuracy"], self.threshold, obs["step"]),
            "representation": representation_clock(obs["energy"], self.eps, obs["step"]),
        }
        return {k: (math.nan if v is None else float(v)) for k, v in clocks.items()}


@dataclass
class HeadEmbeddingProbe:
    """Which parameter group fits first: per group g, ``grad_norm/<g>`` (‖∂L/∂θ_g‖ on the
    training batch) and ``ntk_trace/<g>`` (``tr K_g`` of the output NTK, :func:`group_ntk_traces`,
    on ``ntk_samples`` fixed training inputs, divided by their number) with ``ntk_share/<g>``
    (``tr K_g / Σ_h tr K_h``); with groups ``head`` and ``embedding``, also the ratios
    ``head_over_embedding/grad_norm`` and ``head_over_embedding/ntk_trace``.

    Args:
        groups: parameter groups (:func:`resolve_groups`).
        ntk_samples: training inputs in the NTK traces (a seeded subset; None for all).
        method, num_matvecs, seed: the trace estimator (:func:`gdlens.operators.trace`).
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "groups"
    groups: Any = None
    ntk_samples: int | None = 64
    method: str = "hutch++"
    num_matvecs: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def compute(self, ctx: ProbeContext) -> dict[str, float]:
        if ctx.batch is None:
            return {}
        model, batch = ctx.model, ctx.batch
        loss_fn = ctx.loss_fn or (lambda m: batch.loss_value(forward(m, batch.x)[0]))
        groups = resolve_groups(model, self.groups)
        out: dict[str, float] = {}
        norms = group_gradient_norms(model, loss_fn, groups)
        out.update({f"grad_norm/{g}": v for g, v in norms.items()})
        x = batch.x
        n = x.shape[0]
        if self.ntk_samples is not None and self.ntk_samples < n:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))[: self.ntk_samples]
            x = x[idx.sort().values.to(x.device)]
        traces = group_ntk_traces(model, x, groups, self.method, self.num_matvecs, self.seed)
        total = sum(v for v, _ in traces.values())
        for g, (value, _) in traces.items():
            out[f"ntk_trace/{g}"] = value / x.shape[0]
            out[f"ntk_share/{g}"] = value / total if total > 0 else math.nan
        if "head" in groups and "embedding" in groups:
            ge, te = norms["embedding"], traces["embedding"][0]
            out["head_over_embedding/grad_norm"] = norms["head"] / ge if ge > 0 else math.nan
            out["head_over_embedding/ntk_trace"] = traces["head"][0] / te if te > 0 else math.nan
        return out


# ------------------------------------------------------------------------- run summaries
def _history_series(history: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray] | None:
    entries = history.get(name)
    if entries is None:
        return None
    if isinstance(entries, tuple) and len(entries) == 2:
        return np.asarray(entries[0]), np.asarray(entries[1], dtype=float)
    if not entries:
        return None
    steps, values = zip(*entries)
    return np.asarray(steps), np.asarray(values, dtype=float)


def _drift(series: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    """|E(end) − E(0.9 end)| / |E(end)|: how much the energy still moved over the last tenth of
    the recorded steps (above ε, the representation clock is cut short by the horizon)."""
    if series is None or series[1].size < 2:
        return None
    steps, values = series
    start = steps[0] + 0.9 * (steps[-1] - steps[0])
    i = int(np.searchsorted(steps, start))
    i = min(i, steps.size - 2)
    end = float(values[-1])
    return abs(end - float(values[i])) / abs(end) if end != 0 else None


def _is_scalar_series(entries: Any) -> bool:
    if isinstance(entries, tuple) and len(entries) == 2:
        return np.ndim(entries[1]) == 1
    return bool(entries) and all(np.ndim(v) == 0 for _, v in entries)


def clock_summary(
    source: Any,
    eps: float | Sequence[float] = 0.01,
    threshold: float = 0.95,
    loss: str = "metrics/train/loss",
    accuracy: str = "metrics/test/accuracy",
    energy: str = "energy/l2",
    energies: str | None = "energy/",
) -> dict[str, Any]:
    """The clocks of a finished run, for its summary.

    Args:
        source: a :class:`~gdlens.train.TrainResult` (its per-step training losses give the fit
            clock at full resolution), a Recorder ``history`` (``{name: [(step, value), …]}``), or
            a dict ``{name: (steps, values)}``.
        eps: ε of the fit and representation clocks, or several (the first is the main one).
        threshold: test accuracy of the generalisation clock.
        loss, accuracy, energy: the recorded series to read (``energy`` for the main
            representation clock).
        energies: prefix of further scalar series whose representation clocks are reported as
            ``clocks/representation/<name without prefix>`` (None for none).

    Returns:
        ``{"clocks/fit": T_fit, "clocks/generalization": T_gen, "clocks/representation": T_rep,
        "clocks/rep_over_fit": T_rep / T_fit, "clocks/energy_drift": d, "clocks/eps": ε,
        "clocks/threshold": a, ...}`` with None for a clock never reached (or a series never
        recorded); with several ε, also ``clocks/fit@<ε>`` and ``clocks/representation@<ε>`` for
        each. ``d = |E(end) − E(0.9 end)| / |E(end)|`` is the energy's relative change over the
        last tenth of the run: when it exceeds ε the energy had not settled by the end, and
        ``clocks/representation`` (measured against the last value) is a lower bound cut short by
        the horizon.
    """
    eps_list = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not eps_list:
        raise ValueError("eps must be a number or a non-empty sequence")
    history = getattr(source, "history", source)
    dense_losses = getattr(source, "losses", None)
    fit_series: tuple[np.ndarray, np.ndarray] | None
    if dense_losses is not None and len(dense_losses):
        fit_series = (np.arange(len(dense_losses)), np.asarray(dense_losses, dtype=float))
    else:
        fit_series = _history_series(history, loss)
    acc_series = _history_series(history, accuracy)
    energy_series = _history_series(history, energy)

    def clocks_at(e: float) -> tuple[int | None, int | None]:
        t_fit = fit_clock(fit_series[1], e, fit_series[0]) if fit_series is not None else None
        t_rep = representation_clock(energy_series[1], e, energy_series[0]) if energy_series is not None else None
        return t_fit, t_rep

    t_fit, t_rep = clocks_at(eps_list[0])
    out: dict[str, Any] = {
        "clocks/fit": t_fit,
        "clocks/generalization": (
            generalization_clock(acc_series[1], threshold, acc_series[0]) if acc_series is not None else None
        ),
        "clocks/representation": t_rep,
        "clocks/rep_over_fit": (t_rep / t_fit if t_fit and t_rep is not None else None),
        "clocks/energy_drift": _drift(energy_series),
        "clocks/eps": eps_list[0],
        "clocks/threshold": threshold,
    }
    if len(eps_list) > 1:
        for e in eps_list:
            f, r = clocks_at(e)
            out[f"clocks/fit@{e:g}"], out[f"clocks/representation@{e:g}"] = f, r
    if energies:
        for name in sorted(history):
            if name.startswith(energies) and name != energy and _is_scalar_series(history[name]):
                series = _history_series(history, name)
                if series is not None:
                    key = name[len(energies):]
                    out[f"clocks/representation/{key}"] = representation_clock(series[1], eps_list[0], series[0])
    return out
