"""Condensation: hidden neurons of a layer gathering onto a few input orientations.

With small initialisation, the input weight vectors of a layer's neurons condense onto a few
isolated orientations early in training (Luo, Xu, Ma, Zhang, "Phase diagram for two-layer ReLU
neural networks at infinite-width limit", arXiv 2007.07497; Zhou, Zhou, Jin, Luo, Zhang, Xu,
"Towards understanding the condensation of neural networks at initial training",
arXiv 2105.11686). A neuron i of a layer ``σ(W x + b)`` is described by its input vector

    u_i = [w_i, b_i] ∈ R^{d+1}          (just w_i when the layer has no bias),

where w_i is row i of W. Convolution kernels ``(out, in, kh, kw)`` (any weight with more than two
dimensions) are treated the same way: each output channel is one neuron whose vector is its
kernel flattened, ``W.reshape(out, -1)``.

Conventions shared by this module:

- cosine similarities use the signed cosine ``cos(u_i, u_j)``: for ReLU-like activations u and
  −u are different orientations (they switch on in opposite half-spaces). The clustering rule
  takes ``antipodal=True`` to merge u and −u (for odd activations such as tanh).
- a neuron with ``‖u_i‖ = 0`` has no orientation: its row and column of the similarity matrix
  are 0, its own diagonal entry included, so that it never joins a cluster.

Last, :class:`CondensationProbe` records these during training. (About 420 lines, a little over
the package's ~400: the clustering rules, the quantities read from them and the probe that
records them share the conventions above.) The relative change of the parameters, the
regime's order parameter, is :func:`gdlens.probes.parameters.relative_change`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from gdlens.probes import parameters
from gdlens.probes._utils import as_tensor
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.plumbing import resolve_layer
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "neuron_vectors",
    "orientation_similarity",
    "orientation_clusters",
    "count_orientations",
    "orientation_amplitude",
    "OrientationAmplitude",
    "mean_abs_cosine",
    "ordered_similarity",
    "relative_change",
    "CondensationProbe",
]

CLUSTER_METHODS = ("greedy", "single", "complete")


def neuron_vectors(W: Tensor, b: Tensor | None = None) -> Tensor:
    """The neurons' input vectors ``U[i] = [w_i, b_i]``, shape ``(m, D + 1)`` (``(m, D)`` without
    bias), with ``D = prod(W.shape[1:])``.

    Args:
        W: ``(m, d)`` weight of a linear layer (``nn.Linear.weight``), ``(m,)`` for a layer with
            a scalar input, or ``(m, *k)`` for a convolution (``(out, in, kh, kw)``): all axes
            but the first are flattened.
        b: ``(m,)`` biases, or None.
    """
    W = as_tensor(W, "W").detach()  # a measurement: parameters passed in directly carry no graph out
    if W.dim() == 0:
        raise ValueError(f"W must have shape (m, d) (one row per neuron), got a scalar of shape {tuple(W.shape)}")
    U = W.reshape(W.shape[0], -1)
    if b is None:
        return U
    b = as_tensor(b, "b").detach()
    if b.dim() != 1 or b.shape[0] != W.shape[0]:
        raise ValueError(
            f"b must have shape (m,) = ({W.shape[0]},) to match W of shape {tuple(W.shape)}, got "
            f"{tuple(b.shape)}"
        )
    return torch.cat([U, b.to(U.dtype).reshape(-1, 1)], dim=1)


def orientation_similarity(W: Tensor, b: Tensor | None = None) -> Tensor:
    """Cosine similarities of the neurons' input vectors.

    ``S_ij = ⟨u_i, u_j⟩ / (‖u_i‖ ‖u_j‖)`` with ``u_i = [w_i, b_i]`` (see :func:`neuron_vectors`),
    an ``(m, m)`` symmetric matrix with ``S_ii = 1``. A zero vector (``‖u_i‖ = 0``) has no
    orientation: row and column i are 0, ``S_ii`` included. This is the matrix plotted in
    Zhou et al. (arXiv 2105.11686, e.g. their Fig. 1) to show condensation: blocks of S ≈ 1.
    """
    U = neuron_vectors(W, b)
    norms = U.norm(dim=1)
    alive = norms > 0
    safe = torch.where(alive, norms, torch.ones_like(norms))
    V = U / safe[:, None]
    S = V @ V.T
    S = S.clamp(-1.0, 1.0)
    S.diagonal().copy_(alive.to(S.dtype))
    return S


def _kept_neurons(U: Tensor, min_norm_fraction: float) -> Tensor:
    norms = U.norm(dim=1)
    top = norms.max() if norms.numel() else norms.new_zeros(())
    if top <= 0:
        return torch.zeros_like(norms, dtype=torch.bool)
    return (norms > 0) & (norms >= min_norm_fraction * top)


def orientation_clusters(
    W: Tensor,
    b: Tensor | None = None,
    threshold: float = 0.95,
    min_norm_fraction: float = 0.01,
    antipodal: bool = False,
    method: str = "greedy",
) -> Tensor:
    """Cluster labels of the neurons by orientation: ``(m,)`` long tensor, ``-1`` for neurons left out.

    Neurons with ``‖u_i‖ < min_norm_fraction · max_j ‖u_j‖`` (or ``‖u_i‖ = 0``) are left out:
    their orientation carries little of the layer's function and is noise-dominated. Among the
    rest, with similarity ``s_ij = cos(u_i, u_j)`` (``|cos|`` when ``antipodal=True``):

    - ``"greedy"`` (default): leader clustering. Neurons are visited by decreasing norm; an
      unassigned neuron opens a new cluster and every unassigned neuron with ``s ≥ threshold``
      to it joins. Every member lies within angle ``arccos(threshold)`` of its leader, so the
      rule cannot chain a continuum of directions into one cluster. Deterministic.
    - ``"single"``: single linkage, the connected components of the graph ``s_ij ≥ threshold``.
      Chains: a dense ring of directions forms one cluster.
    - ``"complete"``: complete linkage (scipy.cluster.hierarchy) cut at distance
      ``1 − threshold``: every pair in a cluster has ``s ≥ threshold``.

    Labels are 0, 1, ... in order of the clusters' first member by decreasing norm (so cluster 0
    holds the largest neuron).
    """
    if method not in CLUSTER_METHODS:
        raise ValueError(f"unknown clustering method {method!r}; allowed: {', '.join(map(repr, CLUSTER_METHODS))}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity and must lie in [-1, 1], got {threshold}")
    if not 0.0 <= min_norm_fraction <= 1.0:
        raise ValueError(f"min_norm_fraction must lie in [0, 1], got {min_norm_fraction}")
    U = neuron_vectors(W, b)
    m = U.shape[0]
    labels = torch.full((m,), -1, dtype=torch.long)
    kept = _kept_neurons(U, min_norm_fraction).cpu()
    idx = torch.nonzero(kept).flatten()
    if idx.numel() == 0:
        return labels
    with torch.no_grad():
        Uk = U.detach()[idx.to(U.device)].cpu().to(torch.float64)
        order = torch.argsort(Uk.norm(dim=1), descending=True, stable=True)
        Uk, idx = Uk[order], idx[order]
        V = Uk / Uk.norm(dim=1, keepdim=True)
        S = V @ V.T
        if antipodal:
            S = S.abs()
        local = _cluster(S, threshold, method)
    # relabel by first appearance in decreasing-norm order
    mapping: dict[int, int] = {}
    for pos, lab in enumerate(local.tolist()):
        if lab not in mapping:
            mapping[lab] = len(mapping)
        labels[idx[pos]] = mapping[lab]
    return labels


def _cluster(S: Tensor, threshold: float, method: str) -> Tensor:
    k = S.shape[0]
    import numpy as np

    if method == "greedy":  # in numpy: one small vector operation per cluster, no per-element torch calls
        local = np.full(k, -1, dtype=np.int64)
        close = (S >= threshold).numpy()
        c = 0
        for i in range(k):
            if local[i] >= 0:
                continue
            join = close[i] & (local < 0)
            join[i] = True
            local[join] = c
            c += 1
        return torch.from_numpy(local)

    if method == "single":
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        _, lab = connected_components(csr_matrix((S >= threshold).numpy()), directed=False)
        return torch.as_tensor(lab, dtype=torch.long)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if k == 1:
        return torch.zeros(1, dtype=torch.long)
    D = (1.0 - S).clamp_min(0).numpy()
    np.fill_diagonal(D, 0.0)
    Z = linkage(squareform(D, checks=False), method="complete")
    lab = fcluster(Z, t=1.0 - threshold, criterion="distance")
    return torch.as_tensor(lab, dtype=torch.long)


def count_orientations(
    W: Tensor,
    b: Tensor | None = None,
    threshold: float = 0.95,
    min_norm_fraction: float = 0.01,
    antipodal: bool = False,
    method: str = "greedy",
) -> int:
    """Number of distinct orientations the layer's neurons have condensed onto.

    The number of clusters of :func:`orientation_clusters` (same arguments): neurons
    ``u_i = [w_i, b_i]`` with ``‖u_i‖ ≥ min_norm_fraction · max_j ‖u_j‖`` grouped so that members
    of a cluster have ``cos ≥ threshold`` to its leader (``method="greedy"``). A fully condensed
    layer gives a small number (Luo et al. arXiv 2007.07497, Zhou et al. arXiv 2105.11686); a
    random layer of m neurons in d ≫ 1 dimensions gives ≈ m. Antipodal vectors (u, −u) are
    different orientations unless ``antipodal=True``. Returns 0 when every neuron is zero.
    """
    labels = orientation_clusters(W, b, threshold, min_norm_fraction, antipodal, method)
    return int(labels.max().item()) + 1 if (labels >= 0).any() else 0


def mean_abs_cosine(W: Tensor, b: Tensor | None = None, min_norm_fraction: float = 0.01) -> float:
    """Mean ``|cos(u_i, u_j)|`` over the ordered pairs i ≠ j of the neurons that count
    (``0 < ‖u_i‖`` and ``‖u_i‖ ≥ min_norm_fraction · max_j ‖u_j‖``, as in
    :func:`orientation_clusters`), in float64:

        c̄ = Σ_{i≠j} |S_ij| / (k (k − 1)),   S = :func:`orientation_similarity`, k neurons counted.

    Near 1 for a condensed layer (all neurons on a few orientations and their opposites); about
    ``sqrt(2 / (π D))`` for random directions in D ≫ 1 dimensions. ``nan`` with fewer than two
    neurons counted.
    """
    if not 0.0 <= min_norm_fraction <= 1.0:
        raise ValueError(f"min_norm_fraction must lie in [0, 1], got {min_norm_fraction}")
    U = neuron_vectors(W, b)
    kept = _kept_neurons(U, min_norm_fraction)
    k = int(kept.sum())
    if k < 2:
        return math.nan
    A = orientation_similarity(U[kept].to(torch.float64)).abs()
    return float((A.sum() - torch.diagonal(A).sum()) / (k * (k - 1)))


def ordered_similarity(
    W: Tensor,
    b: Tensor | None = None,
    threshold: float = 0.95,
    min_norm_fraction: float = 0.01,
    antipodal: bool = False,
    method: str = "greedy",
    max_neurons: int | None = None,
) -> Tensor:
    """The cosine matrix :func:`orientation_similarity` of the first ``m' = min(m, max_neurons)``
    neurons, rows and columns ordered by orientation cluster, ``(m', m')``.

    The clusters are those of the whole layer (:func:`orientation_clusters`, same arguments);
    neurons of cluster 0 come first, then cluster 1, ..., and the neurons left out (label −1)
    last, by index within each group. A condensed layer then shows as blocks of S ≈ 1 along the
    diagonal (the figure of Zhou et al., arXiv 2105.11686).
    """
    if max_neurons is not None and max_neurons < 1:
        raise ValueError(f"max_neurons must be a positive int or None, got {max_neurons}")
    labels = orientation_clusters(W, b, threshold, min_norm_fraction, antipodal, method)
    S = orientation_similarity(W, b)
    m = S.shape[0]
    r = m if max_neurons is None else min(m, max_neurons)
    lab = labels[:r]
    order = torch.argsort(torch.where(lab < 0, torch.full_like(lab, m), lab), stable=True).to(S.device)
    return S[:r, :r][order][:, order]


class OrientationAmplitude(NamedTuple):
    """Per-neuron polar coordinates of a layer with scalar input: ``angle`` θ_i ∈ (−π, π] and
    ``amplitude`` A_i, both ``(m,)``."""

    angle: Tensor
    amplitude: Tensor


def orientation_amplitude(W: Tensor, b: Tensor | None = None, a: Tensor | None = None) -> OrientationAmplitude:
    """Orientation angle and amplitude of each neuron of a layer with a one-dimensional input.

    For neuron i with input weight w_i ∈ R, bias b_i and output weights a_i (the i-th column of
    the next layer's weight):

        θ_i = atan2(b_i, w_i) ∈ (−π, π],
        A_i = ‖a_i‖ · ‖(w_i, b_i)‖    (A_i = ‖(w_i, b_i)‖ when a is None),

    the scatter plot (θ_i, A_i) of Luo et al. (arXiv 2007.07497) and Zhou et al.
    (arXiv 2105.11686): condensation shows as a few spikes in θ. Without bias θ_i ∈ {0, π}.
    For a ReLU neuron A_i is its whole scale: ``a_i relu(w_i x + b_i) = a_i ‖u_i‖ relu(ũ_i·[x, 1])``.

    Args:
        W: ``(m, 1)`` or ``(m,)`` input weights.
        b: ``(m,)`` biases or None.
        a: output weights: ``(m,)``, or the next layer's weight ``(o, m)`` (``‖a_i‖`` is then the
            norm of column i), or None.
    """
    W = as_tensor(W, "W").detach()
    if not (W.dim() == 1 or (W.dim() == 2 and W.shape[1] == 1)):
        raise ValueError(f"orientation_amplitude needs a scalar input: W of shape (m, 1) or (m,), got {tuple(W.shape)}")
    w = W.reshape(-1)
    m = w.shape[0]
    if b is None:
        bb = torch.zeros_like(w)
    else:
        bb = as_tensor(b, "b").detach()
        if tuple(bb.shape) != (m,):
            raise ValueError(f"b must have shape ({m},) to match W of shape {tuple(W.shape)}, got {tuple(bb.shape)}")
    angle = torch.atan2(bb, w)
    amplitude = torch.sqrt(w**2 + bb**2)
    if a is not None:
        a = as_tensor(a, "a").detach()
        if a.dim() == 1 and a.shape[0] == m:
            scale = a.abs()
        elif a.dim() == 2 and a.shape[1] == m:
            scale = a.norm(dim=0)
        elif a.dim() == 2 and a.shape == (m, 1):
            scale = a.reshape(-1).abs()
        else:
            raise ValueError(
                f"a must have shape ({m},) or (o, {m}) (output weights of the {m} neurons), got "
                f"{tuple(a.shape)}"
            )
        amplitude = amplitude * scale
    return OrientationAmplitude(angle, amplitude)


def relative_change(theta_t: Any, theta_0: Any) -> float:
    """Deprecated: ``gdlens.probes.parameters.relative_change(theta_t, theta_0)["total"]``, the
    relative distance ``RD = ‖θ_t − θ_0‖ / ‖θ_0‖`` over all entries (arXiv 2007.07497), which
    this returns (``nan`` when ``‖θ_0‖ = 0``; it was ``inf`` when θ had moved)."""
    warnings.warn(
        "gdlens.probes.condensation.relative_change is deprecated: use "
        "gdlens.probes.parameters.relative_change(theta_t, theta_0)['total']",
        DeprecationWarning,
        stacklevel=2,
    )
    return parameters.relative_change(theta_t, theta_0)["total"]


# ---------------------------------------------------------------------- the probe
@dataclass
class CondensationProbe:
    """Condensation of one layer's neurons onto few orientations (arXiv 2007.07497, 2105.11686).

    Reads the neurons ``u_i = [w_i, b_i]`` of ``layer`` (:func:`~gdlens.probes.plumbing.resolve_layer`;
    default the first ``nn.Linear``; ``use_bias=False`` ignores the bias) and records:

    - ``orientations``: :func:`count_orientations` with ``threshold``, ``min_norm_fraction``,
      ``antipodal`` and ``method``; ``neurons``: the layer's number of neurons m, its bound;
    - ``mean_abs_cos``: :func:`mean_abs_cosine` (near 1 when condensed);
    - ``similarity`` (array): :func:`ordered_similarity`, the cosine matrix of the first
      ``max_neurons`` neurons ordered by cluster, in float32, at the probe's 1st, (k+1)th, ...
      call with ``matrix_every=k`` (``None``: never).

    The state is the number of calls so far. Cost: O(m² d) for the cosines plus the
    clustering, no forward pass.
    """

    layer: str | None = None
    threshold: float = 0.95
    min_norm_fraction: float = 0.01
    antipodal: bool = False
    method: str = "greedy"
    use_bias: bool = True
    matrix_every: int | None = 1
    max_neurons: int = 64
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "condensation"

    title: ClassVar[str] = "Condensation"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("orientations", "number of orientations",
               "clusters of the neurons u_i = [w_i, b_i] at cos ≥ threshold to their leader"),
        Metric("neurons", "number of neurons m", "rows of the layer's weight"),
        Metric("mean_abs_cos", "mean |cos| between neurons", "Σ_{i≠j} |cos(u_i, u_j)| / (k(k−1)), k neurons kept"),
        Metric("similarity", "cosine similarity of neurons", "cos(u_i, u_j), neurons ordered by cluster"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Orientations", ("orientations",), "number of orientations (clusters at cos ≥ threshold)",
              yscale="linear", ylim=(0, None), bound="neurons"),
        Panel("Alignment of neurons", ("mean_abs_cos",), "mean |cos(u_i, u_j)|, i ≠ j", yscale="linear", ylim=(0, 1)),
        Panel("Cosine similarity of neurons", ("similarity",), "cos(u_i, u_j), neurons ordered by cluster",
              yscale="linear", ylim=(-1, 1), kind="matrix"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if self.method not in CLUSTER_METHODS:
            raise ValueError(f"unknown clustering method {self.method!r}; allowed: {CLUSTER_METHODS}")
        if self.matrix_every is not None and (not isinstance(self.matrix_every, int) or self.matrix_every < 1):
            raise ValueError(f"matrix_every must be a positive int (in probe calls) or None, got {self.matrix_every!r}")
        if self.max_neurons < 1:
            raise ValueError(f"max_neurons must be positive, got {self.max_neurons}")

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer, "threshold": self.threshold, "min_norm_fraction": self.min_norm_fraction,
                "antipodal": self.antipodal, "method": self.method}

    def reset(self) -> None:
        """Deprecated, does nothing: the state lives in the Recorder."""
        warnings.warn("CondensationProbe.reset() does nothing: the state lives in the Recorder",
                      DeprecationWarning, stacklevel=2)

    def weights(self, model: nn.Module) -> tuple[Tensor, Tensor | None]:
        """The (detached) weight and bias the probe reads from ``model``."""
        w_name, b_name = resolve_layer(model, self.layer)
        named = dict(model.named_parameters())
        b = named[b_name].detach() if (b_name is not None and self.use_bias) else None
        return named[w_name].detach(), b

    def init(self, ctx: ProbeContext) -> dict[str, int]:
        """Checks that the model has the layer (ValueError naming ``layer=`` otherwise)."""
        self.weights(ctx.model)
        return {"calls": 0}

    def compute(self, ctx: ProbeContext, state: dict[str, int] | None) -> tuple[dict[str, Any], dict[str, int]]:
        calls = 0 if state is None else int(state["calls"])
        W, b = self.weights(ctx.model)
        rule = (self.threshold, self.min_norm_fraction, self.antipodal, self.method)
        out: dict[str, Any] = {
            "orientations": count_orientations(W, b, *rule),
            "neurons": W.shape[0],
            "mean_abs_cos": mean_abs_cosine(W, b, self.min_norm_fraction),
        }
        if self.matrix_every is not None and calls % self.matrix_every == 0:
            out["similarity"] = ordered_similarity(W, b, *rule, max_neurons=self.max_neurons).to(torch.float32).cpu()
        return out, {"calls": calls + 1}
