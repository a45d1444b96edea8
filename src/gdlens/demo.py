"""The main job (``gdlens demo``): a GRU on flip-flop at a small and a large initial
recurrent-weight scale, recorded with the KP probe, summarised side by side; and the
operator example (``gdlens demo --operators``)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gdlens.models import GRU
from gdlens.operators import CallableOperator, LinearOperator, effective_rank, top_eigs, trace
from gdlens.probes import KPProbe, Schedule, default_probes
from gdlens.report import write_report
from gdlens.tasks import get as get_task
from gdlens.train import TrainResult, train

__all__ = ["run_demo", "run_operator_demo", "known_spectrum_operator"]


def run_demo(
    store: str | Path = "gdlens-runs",
    scales: tuple[float, ...] = (0.5, 2.0),
    hidden: int = 48,
    steps: int = 400,
    seed: int = 0,
    progress: bool = True,
    sweep: str = "demo",
) -> list[TrainResult]:
    """Train a GRU on 3-bit flip-flop at each initial recurrent-weight scale ``g`` (weights
    ~ N(0, g²/H)), with the KP probe on a log-spaced schedule, into ``store``; print a
    side-by-side summary, write one HTML report of both runs (``<store>/<sweep>.html``) and
    return the results."""
    task = get_task("flip_flop", T=40, bits=3, pulse_prob=0.1)
    results = []
    for g in scales:
        torch.manual_seed(seed)
        model = GRU(3, hidden, 3, g=g)
        probes = default_probes(recurrent=True) + [KPProbe(schedule=Schedule(log_points=5), max_trials=8, k=3)]
        print(f"GRU H={hidden}, g={g}: {steps} Adam steps on flip-flop (batch 64, T=40)")
        results.append(
            train(model, task, lr=3e-3, steps=steps, batch_size=64, probes=probes, store=store, seed=seed,
                  name=f"demo-g{g}", config={"g": g, "hidden": hidden}, sweep=sweep, progress=progress)
        )
    _print_summary(scales, results, store)
    try:
        import matplotlib  # noqa: F401  - the report's figures
        import pandas  # noqa: F401  - the report's tables
    except ImportError as err:  # the core install: training and the summary work, the HTML report needs the extra
        print(f"report: skipped ({err.name} is missing): pip install 'gdlens[cli]' for the HTML report")
        return results
    path = write_report(store, Path(store) / f"{sweep}.html", name=sweep)
    print(f"report: {Path(path).resolve()}")
    return results


def _first_last(result: TrainResult, name: str) -> tuple[float, float]:
    entries = result.history.get(name, [])
    return (entries[0][1], entries[-1][1]) if entries else (math.nan, math.nan)


def _print_summary(scales, results: list[TrainResult], store) -> None:
    rows = [
        ("final training loss", lambda r: f"{r.summary['final_train_loss']:.4g}"),
        ("test accuracy", lambda r: f"{r.recorder.last('metrics/test/accuracy'):.3f}"),
        ("effective rank of K  (start → end)", lambda r: "{:.1f} → {:.1f}".format(*_first_last(r, "kp/rank_K"))),
        ("effective rank of PPᵀ (start → end)", lambda r: "{:.1f} → {:.1f}".format(*_first_last(r, "kp/rank_P"))),
        ("effective rank of G  (start → end)", lambda r: "{:.2f} → {:.2f}".format(*_first_last(r, "kp/rank_G"))),
        ("  of dimension B·T·H", lambda r: "{:.0f}".format(_first_last(r, "kp/dim")[0])),
        ("misdirection         (start → end)", lambda r: "{:.3f} → {:.3f}".format(*_first_last(r, "kp/misdirection"))),
        ("hidden participation (start → end)", lambda r: "{:.2f} → {:.2f}".format(*_first_last(r, "hidden/participation_ratio"))),
        ("recording overhead", lambda r: f"{100 * r.summary['recording_overhead']:.0f}%"),
        ("run id", lambda r: r.run.id if r.run is not None else "-"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    print()
    print(" " * width + "".join(f"{'g = ' + str(g):>22}" for g in scales))
    for name, cell in rows:
        print(f"{name:<{width}}" + "".join(f"{cell(r):>22}" for r in results))
    print(f"\nruns stored in {Path(store).resolve()}  (see: gdlens runs --store {store}; gdlens show RUN --store {store})")


# ---------------------------------------------------------------------- the operator example
def known_spectrum_operator(eigenvalues: torch.Tensor, shape: tuple[int, ...], seed: int = 0) -> LinearOperator:
    """``A = H diag(λ) H`` with H a Householder reflection (H = Hᵀ = H⁻¹): a dense-looking,
    matrix-free symmetric operator on tensors of ``shape`` with exactly the given eigenvalues."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(eigenvalues.numel(), generator=gen, dtype=eigenvalues.dtype)
    u = u / u.norm()

    def reflect(X: torch.Tensor) -> torch.Tensor:  # rows of X (k, n)
        return X - 2 * (X @ u)[:, None] * u

    def matmat(X: torch.Tensor) -> torch.Tensor:
        flat = X.reshape(X.shape[0], -1)
        return reflect(reflect(flat) * eigenvalues).reshape(X.shape)

    return CallableOperator(matmat, shape, is_symmetric=True, dtype=eigenvalues.dtype)


def run_operator_demo(n_shape: tuple[int, ...] = (8, 25, 16), seed: int = 0) -> None:
    """Print trace, top eigenvalues and effective rank estimates against the truth."""
    n = math.prod(n_shape)
    lam = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 1.5
    A = known_spectrum_operator(lam, n_shape, seed)
    print(f"Operator on tensors of shape {n_shape} (n = {n}) with eigenvalues λ_k = k^-1.5\n")
    print(f"trace: exact {float(lam.sum()):.6f}")
    for method in ("hutchinson", "hutch++", "xtrace"):
        est = trace(A, method=method, num_matvecs=60, seed=seed)
        print(f"  {method:<11} {est.value:.6f} ± {est.stderr:.2e}   (60 matvecs, error {abs(est.value - float(lam.sum())):.1e})")
    (values, vectors), info = top_eigs(A, 5, return_info=True, seed=seed)
    print(f"\ntop 5 eigenvalues by block Lanczos ({info['num_matvecs']} matvecs), eigenvector shape {tuple(vectors.shape)}")
    for k in range(5):
        print(f"  λ_{k + 1}: {float(values[k]):.12f}   truth {float(lam[k]):.12f}")
    pr = float(lam.sum() ** 2 / (lam**2).sum())
    est = effective_rank(A, num_matvecs=90, seed=seed)
    print(f"\neffective rank (tr A)²/‖A‖_F²: {est.value:.3f} ± {est.stderr:.2e}   truth {pr:.3f}")
