"""The operator demo: randomized estimates next to the exact answer, on an operator whose
spectrum is known by construction."""

from __future__ import annotations

import torch

from gdlens.operators import CallableOperator, LinearOperator, effective_rank, top_eigs, trace


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
    n = 1
    for s in n_shape:
        n *= s
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
