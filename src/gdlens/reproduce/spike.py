"""``adam-spike`` (Bai et al., "Adaptive preconditioners trigger loss spikes in Adam", arXiv
2506.04805): as the gradients shrink, Adam's second-moment estimate v decays slowly (β₂ close to
1), so the preconditioned sharpness λ̂ = λ_max(D^{1/2} H D^{1/2}), D = 1/(√v̂ + ε), grows; once
η·λ̂ exceeds 2 the iteration is unstable along the top direction and the loss spikes; the spike's
large gradients raise v again, and λ̂ falls back below 2/η.

We run Adam with β₁ = 0 (β₂ = 0.999), where the linear stability threshold of λ̂ is exactly 2/η
(``gdlens.probes.sharpness.stability_threshold(lr, "adam", beta1=0)``), and compute λ̂ at every
step densely (eigvalsh of D^{1/2} H D^{1/2}, H at the step's parameters, D the preconditioner
of that step, :func:`gdlens.probes.sharpness.adam_preconditioner`), in float64:

* a quadratic ½ θᵀAθ (n = 20, A = Q diag(λ) Qᵀ, λ log-spaced in [10⁻², 1], θ₀ ~ 3·N(0, I),
  η = 0.05);
* a small network (an MLP 2 → 8 → 1, tanh, on 32 teacher-student points, mean squared error,
  η = 0.03, H the dense Hessian by autograd).

Each run stops 50 steps after its first spike (or at its step budget).

The spike: the first step t_s with L(t_s) > 10·min_{t<t_s} L(t); its onset t_o: the last step
before t_s at which L equalled its running minimum. Per seed: ``*_at_onset`` = η·λ̂(t_o) and
``*_after`` = min η·λ̂ over the 50 steps from t_s. A seed without a spike gives NaN (the claim
then fails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import math

import numpy as np
import torch

from gdlens.models import MLP
from gdlens.probes.sharpness import adam_preconditioner
from gdlens.reproduce.common import finite, per_seed, record_series
from gdlens.reproduce.registry import Above, Below, Citation, Claim, Entry, Measurements, register
from gdlens.store import Store
from gdlens.tasks import teacher_student

__all__ = ["spike_steps", "adam_with_lambda_hat"]

_BETAS = (0.0, 0.999)
_FACTOR = 10.0
_AFTER = 50
_SIZES = {"tiny": dict(quad_steps=1500, net_steps=1000, net_lr=0.03),
          "small": dict(quad_steps=2000, net_steps=2500, net_lr=0.03),
          "paper": dict(quad_steps=5000, net_steps=10000, net_lr=0.03)}
_QUAD_LR = 0.05


def spike_steps(losses: Sequence[float], factor: float = _FACTOR) -> tuple[int, int] | None:
    """(t_onset, t_spike) of the first loss spike: t_spike is the first step with
    L > factor · (min of L before it), t_onset the last step before t_spike at which L was at
    its running minimum. None when the loss never spikes."""
    L = np.asarray(losses, dtype=float)
    running = np.minimum.accumulate(L)
    hits = np.flatnonzero(L[1:] > factor * running[:-1])
    if hits.size == 0:
        return None
    t_spike = int(hits[0] + 1)
    t_onset = int(np.flatnonzero(L[:t_spike] <= running[:t_spike])[-1])
    return t_onset, t_spike


def adam_with_lambda_hat(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta0: torch.Tensor, lr: float,
                         steps: int, hessian: Callable[[torch.Tensor], torch.Tensor],
                         stop_after_spike: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Adam (β₁ = 0, β₂ = 0.999) on ``loss_fn`` of a flat parameter vector from ``theta0``;
    returns (losses (T,), η·λ̂ (T,)) with λ̂_t = λ_max(D_t^{1/2} H(θ_t) D_t^{1/2}), D_t the
    preconditioner of step t and ``hessian(θ)`` the dense (n, n) Hessian. T = ``steps``, or
    fewer with ``stop_after_spike=k``: the run stops k steps after the first spike
    (:func:`spike_steps`)."""
    theta = theta0.detach().clone().requires_grad_()
    opt = torch.optim.Adam([theta], lr=lr, betas=_BETAS)
    losses, eta_lam = np.empty(steps), np.empty(steps)
    running, stop = math.inf, steps
    for t in range(steps):
        if t >= stop:
            return losses[:t], eta_lam[:t]
        H = hessian(theta.detach())
        opt.zero_grad()
        loss = loss_fn(theta)
        loss.backward()
        opt.step()
        s = adam_preconditioner(opt, [theta]).sqrt()
        losses[t] = loss.item()
        eta_lam[t] = lr * float(torch.linalg.eigvalsh(s[:, None] * H * s[None, :])[-1])
        if stop_after_spike is not None and stop == steps and losses[t] > _FACTOR * running:
            stop = t + stop_after_spike
        running = min(running, losses[t])
    return losses, eta_lam


def _quadratic(seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    n = 20
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.logspace(0, -2, n, dtype=torch.float64)) @ Q.T
    theta0 = 3.0 * torch.randn(n, generator=g, dtype=torch.float64)
    return adam_with_lambda_hat(lambda th: 0.5 * th @ (A @ th), theta0, _QUAD_LR, steps, lambda th: A,
                                stop_after_spike=_AFTER)


def _network(seed: int, steps: int, lr: float) -> tuple[np.ndarray, np.ndarray]:
    data = teacher_student(32, input_dim=2, teacher_width=3, seed=seed)
    x, y = data.x.double(), data.target.double()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(2, 8, 1, activation="tanh").double()
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def loss_fn(flat: torch.Tensor) -> torch.Tensor:
        params = {k: c.view(s) for k, c, s in zip(names, flat.split(sizes), shapes)}
        return (torch.func.functional_call(model, params, (x,)) - y).pow(2).mean()

    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return adam_with_lambda_hat(loss_fn, theta0, lr, steps,
                                lambda th: torch.autograd.functional.hessian(loss_fn, th, vectorize=True),
                                stop_after_spike=_AFTER)


def _measure(losses: np.ndarray, eta_lam: np.ndarray) -> tuple[float, float]:
    found = spike_steps(losses)
    if found is None:
        return float("nan"), float("nan")
    onset, spike = found
    return float(eta_lam[onset]), float(eta_lam[spike:spike + _AFTER].min())


def _run(size: str, seeds: Sequence[int], store: Store, progress) -> Measurements:
    cfg = _SIZES[size]
    values: dict[str, list[float]] = {k: [] for k in ("quad_at_onset", "quad_after", "net_at_onset", "net_after")}
    curves, run_ids = [], []
    for seed in seeds:
        for kind, (losses, eta_lam) in (("quad", _quadratic(seed, cfg["quad_steps"])),
                                        ("net", _network(seed, cfg["net_steps"], cfg["net_lr"]))):
            at_onset, after = _measure(losses, eta_lam)
            values[f"{kind}_at_onset"].append(at_onset)
            values[f"{kind}_after"].append(after)
            curves.append({"kind": kind, "seed": seed, "losses": losses, "eta_lambda": eta_lam,
                           "spike": spike_steps(losses)})
            steps = np.arange(len(losses))
            lr = _QUAD_LR if kind == "quad" else cfg["net_lr"]
            run_ids.append(record_series(
                store, "reproduce/adam-spike",
                {"reproduce": {"entry": "adam-spike", "size": size, "problem": kind}, "lr": lr,
                 "betas": list(_BETAS), "seed": seed},
                {"train_step/loss": (steps, losses), "spike/eta_lambda_hat": (steps, eta_lam)},
                {"spike/onset": (spike_steps(losses) or (None,))[0]}))
            progress(f"seed {seed}, {kind}: spike (onset, step) {spike_steps(losses)}, "
                     f"η·λ̂ at onset {at_onset:.3f}, after {after:.3f}")
    spiked = {kind: sum(np.isfinite(values[f"{kind}_at_onset"])) for kind in ("quad", "net")}
    return Measurements(per_seed({k: finite(v) for k, v in values.items()}), data={"curves": curves}, run_ids=run_ids,
                        settings={"seeds with a spike (quadratic)": f"{spiked['quad']} of {len(seeds)}",
                                  "seeds with a spike (MLP)": f"{spiked['net']} of {len(seeds)}",
                                  "betas": str(_BETAS), "quadratic lr": _QUAD_LR, "network lr": cfg["net_lr"],
                                  "quadratic steps": cfg["quad_steps"], "network steps": cfg["net_steps"],
                                  "spike factor": _FACTOR})


def _figure(m: Measurements):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex="col")
    for col, kind in enumerate(("quad", "net")):
        c = next(c for c in m.data["curves"] if c["kind"] == kind)
        ax_l, ax_e = axes[0, col], axes[1, col]
        ax_l.semilogy(c["losses"], lw=0.8)
        ax_e.plot(c["eta_lambda"], lw=0.8, color="C1")
        ax_e.axhline(2, color="k", ls="--", lw=1)
        if c["spike"] is not None:
            for ax in (ax_l, ax_e):
                ax.axvline(c["spike"][0], color="C3", ls=":", lw=1)
        ax_l.set_title({"quad": "quadratic", "net": "MLP 2-8-1"}[kind] + f", seed {c['seed']}")
        ax_l.set_ylabel("loss")
        ax_e.set_ylabel("η·λ̂, λ̂ = λ_max(D^½HD^½)")
        ax_e.set_xlabel("step (dotted: spike onset)")
    fig.suptitle("Adam (β₁ = 0) loss spikes follow η·λ̂ crossing 2 (cf. arXiv 2506.04805)")
    return fig


register(Entry(
    name="adam-spike",
    title="Adam's loss spikes follow the preconditioned sharpness crossing 2/η",
    citation=Citation("2506.04805", "the quadratic and network experiments (figure numbers not checked)", "Bai et al."),
    claims=(
        Claim("quad_at_onset", Above(2.0), "2506.04805: a spike sets in when λ_max of the preconditioned "
              "Hessian exceeds 2/η", "η·λ̂ at the spike's onset, quadratic"),
        Claim("quad_after", Below(2.0), "2506.04805: the spike raises v and brings λ̂ back below 2/η",
              "min η·λ̂ over the 50 steps from the spike, quadratic"),
        Claim("net_at_onset", Above(2.0), "2506.04805: a spike sets in when λ_max of the preconditioned "
              "Hessian exceeds 2/η", "η·λ̂ at the spike's onset, MLP"),
        Claim("net_after", Below(2.0), "2506.04805: the spike raises v and brings λ̂ back below 2/η",
              "min η·λ̂ over the 50 steps from the spike, MLP"),
    ),
    run=_run, figure=_figure,
    sizes={"tiny": "at most 1,500 steps (quadratic), 1,000 (MLP)", "small": "at most 2,000 steps (quadratic), "
           "2,500 (MLP)", "paper": "at most 5,000 steps (quadratic), 10,000 (MLP)"},
    default_seeds={"tiny": 2, "small": 3, "paper": 5},
    small_seconds=50.0,
    caveats={"quad_at_onset": "Every seed's spike set in with η·λ̂ above 2 (2.02 to 2.40), but barely: with 2 (tiny) "
                              "or 3 (small) seeds the mean's 2-s.e. margin reaches below 2, so the claim is not "
                              "established there; it holds at the paper size (5 seeds: 2.19 ± 0.07).",
             "net_at_onset": "Holds at the tiny and small sizes; at the paper size (5 seeds) every spike also set in "
                             "with η·λ̂ above 2 (2.05 to 2.99), but one large value widens the spread and the mean's "
                             "2-s.e. margin (2.30 ± 0.18) reaches below 2."},
))
