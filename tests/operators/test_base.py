"""Every operator operation against dense float64 matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdlens.operators import (
    CallableOperator,
    DenseOperator,
    DiagonalOperator,
    IdentityOperator,
    LinearOperator,
)

F64 = torch.float64


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def dense_op(shape_out, shape_in, seed=0) -> tuple[DenseOperator, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(math.prod(shape_out), math.prod(shape_in), generator=gen, dtype=F64)
    return DenseOperator(M, shape_in=shape_in, shape_out=shape_out), M


def test_single_and_batched_application_match_matrix():
    A, M = dense_op((2, 3), (3, 4))
    x = torch.randn(3, 4, dtype=F64)
    assert (A @ x).shape == (2, 3)
    assert rel_err((A @ x).reshape(-1), M @ x.reshape(-1)) < 1e-12
    X = torch.randn(7, 3, 4, dtype=F64)
    Y = A @ X
    assert Y.shape == (7, 2, 3)
    assert rel_err(Y.reshape(7, -1), X.reshape(7, -1) @ M.T) < 1e-12


def test_shape_mismatch_names_both_shapes():
    A, _ = dense_op((2, 3), (3, 4))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(12,\)"):
        A @ torch.randn(12, dtype=F64)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        A @ torch.randn(4, 3, dtype=F64)
    B, _ = dense_op((5,), (5,))
    with pytest.raises(ValueError, match=r"shape_in \(3, 4\).*shape_out \(5,\)"):
        A @ B
    with pytest.raises(ValueError, match="cannot add"):
        A + B


def test_dtype_mismatch_is_an_error_not_a_cast():
    A, _ = dense_op((2,), (3,))
    with pytest.raises(ValueError, match="dtype"):
        A @ torch.randn(3, dtype=torch.float32)


def test_adjoint_dense_and_involution():
    A, M = dense_op((2, 5), (3, 4))
    assert rel_err(A.T.dense(), M.T) < 1e-12
    assert A.T.T is A
    assert A.T.shape_in == (2, 5) and A.T.shape_out == (3, 4)


def test_composition_chain_and_its_adjoint():
    A, MA = dense_op((2, 3), (4,), seed=1)
    B, MB = dense_op((4,), (5, 2), seed=2)
    C, MC = dense_op((5, 2), (3, 3), seed=3)
    chain = A @ B @ C
    assert chain.shape_in == (3, 3) and chain.shape_out == (2, 3)
    assert rel_err(chain.dense(), MA @ MB @ MC) < 1e-12
    assert rel_err(chain.T.dense(), (MA @ MB @ MC).T) < 1e-12
    assert rel_err((C.T @ B.T @ A.T).dense(), (MA @ MB @ MC).T) < 1e-12
    # composition of adjoint with operator of the opposite orientation
    assert rel_err((A.T @ A).dense(), MA.T @ MA) < 1e-12


def test_sum_difference_scaling_negation():
    A, MA = dense_op((3, 2), (3, 2), seed=1)
    B, MB = dense_op((3, 2), (3, 2), seed=2)
    assert rel_err((A + B).dense(), MA + MB) < 1e-12
    assert rel_err((A - B).dense(), MA - MB) < 1e-12
    assert rel_err((2.5 * A).dense(), 2.5 * MA) < 1e-12
    assert rel_err((A * -3).dense(), -3 * MA) < 1e-12
    assert rel_err((-A).dense(), -MA) < 1e-12
    assert rel_err((A / 4).dense(), MA / 4) < 1e-12
    combo = 2 * (A + B) @ (A - 0.5 * B).T
    assert rel_err(combo.dense(), 2 * (MA + MB) @ (MA - 0.5 * MB).T) < 1e-12
    assert rel_err(combo.T.dense(), (2 * (MA + MB) @ (MA - 0.5 * MB).T).T) < 1e-12


def test_gram_is_AtA_and_symmetric():
    A, M = dense_op((6,), (2, 2))
    G = A.gram()
    assert G.is_symmetric and G.shape_in == (2, 2) and G.shape_out == (2, 2)
    assert rel_err(G.dense(), M.T @ M) < 1e-12


@pytest.mark.parametrize("dims", [0, 1, 2, (0, 1), (0, 2), (1, 2), (-1,)])
def test_partial_trace_over_each_axis_of_BTH(dims):
    shape = (2, 3, 4)
    A, M = dense_op(shape, shape, seed=5)
    D = M.reshape(*shape, *shape)
    letters_in, letters_out = "abc", "def"
    dims_t = (dims,) if isinstance(dims, int) else dims
    traced = {d % 3 for d in dims_t}
    out_letters = "".join(letters_out[d] if d not in traced else letters_in[d] for d in range(3))
    kept_out = "".join(letters_out[d] for d in range(3) if d not in traced)
    kept_in = "".join(letters_in[d] for d in range(3) if d not in traced)
    expected = torch.einsum(f"{out_letters}{letters_in}->{kept_out}{kept_in}", D)
    PT = A.partial_trace(dims)
    kept_shape = tuple(shape[d] for d in range(3) if d not in traced)
    assert PT.shape_in == kept_shape
    assert rel_err(PT.dense(shaped=True), expected) < 1e-12
    n = math.prod(kept_shape)
    assert rel_err(PT.T.dense(), expected.reshape(n, n).T) < 1e-12


def test_partial_trace_errors():
    A, _ = dense_op((2, 3), (3, 2))
    with pytest.raises(ValueError, match="square"):
        A.partial_trace(0)
    B, _ = dense_op((2, 3), (2, 3))
    with pytest.raises(ValueError, match="out of range"):
        B.partial_trace(2)
    with pytest.raises(ValueError, match="trace"):
        B.partial_trace((0, 1))
    with pytest.raises(ValueError, match="repeated"):
        B.partial_trace((1, -1))


def test_identity_and_diagonal():
    I = IdentityOperator((2, 3))
    assert torch.equal(I.dense(), torch.eye(6, dtype=F64))
    d = torch.randn(2, 3, dtype=F64)
    D = DiagonalOperator(d)
    assert torch.equal(D.dense(), torch.diag(d.reshape(-1)))
    assert D.T is D
    A, M = dense_op((2, 3), (2, 3))
    assert rel_err((A @ D + I).dense(), M @ torch.diag(d.reshape(-1)) + torch.eye(6, dtype=F64)) < 1e-12


def test_dense_operator_shaped_input_and_errors():
    M = torch.randn(2, 3, 4, 5, dtype=F64)
    A = DenseOperator(M, shape_in=(4, 5), shape_out=(2, 3))
    assert rel_err(A.dense(), M.reshape(6, 20)) < 1e-15
    with pytest.raises(ValueError, match="does not match"):
        DenseOperator(torch.randn(6, 20, dtype=F64), shape_in=(4, 4))
    with pytest.raises(ValueError, match="needs both"):
        DenseOperator(M)
    before = M.clone()
    A.dense().zero_()  # dense() is a copy: writing to it leaves the operator (and M) alone
    assert rel_err(A.dense(), before.reshape(6, 20)) < 1e-15


def test_callable_operator_single_vector_function_is_vmapped():
    W = torch.randn(4, 3, dtype=F64)
    A = CallableOperator(lambda v: W @ v, (3,), (4,), rmatmat=lambda u: W.T @ u, batched=False)
    X = torch.randn(5, 3, dtype=F64)
    assert rel_err(A @ X, X @ W.T) < 1e-12
    assert rel_err(A.T.dense(), W.T) < 1e-12
    no_adjoint = CallableOperator(lambda V: V @ W.T, (3,), (4,))
    with pytest.raises(NotImplementedError, match="adjoint"):
        no_adjoint.T @ torch.randn(4, dtype=F64)


def test_to_scipy_matches_dense():
    A, M = dense_op((2, 3), (4, 2))
    S = A.to_scipy()
    assert S.shape == (6, 8)
    v = np.random.default_rng(0).standard_normal(8)
    w = np.random.default_rng(1).standard_normal(6)
    V = np.random.default_rng(2).standard_normal((8, 3))
    Mn = M.numpy()
    assert np.allclose(S @ v, Mn @ v, rtol=1e-12, atol=1e-12)
    assert np.allclose(S.rmatvec(w), Mn.T @ w, rtol=1e-12, atol=1e-12)
    assert np.allclose(S @ V, Mn @ V, rtol=1e-12, atol=1e-12)
    assert np.allclose(S.H @ np.stack([w, w], 1), Mn.T @ np.stack([w, w], 1), rtol=1e-12, atol=1e-12)


def test_operators_do_not_block_autograd():
    M = torch.randn(3, 3, dtype=F64, requires_grad=True)
    c = torch.tensor(2.0, dtype=F64, requires_grad=True)
    d = torch.randn(3, dtype=F64, requires_grad=True)
    x = torch.randn(3, dtype=F64, requires_grad=True)
    A = c * (DenseOperator(M) @ DiagonalOperator(d)).T
    (A @ x).sum().backward()
    for t in (M, c, d, x):
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_batched_call_is_one_call_of_the_implementation():
    calls = []

    def matmat(X):
        calls.append(X.shape)
        return 2 * X

    A = CallableOperator(matmat, (3, 2), is_symmetric=True)
    A @ torch.randn(32, 3, 2, dtype=F64)
    assert calls == [(32, 3, 2)]


class _Counting(LinearOperator):
    """Check that the base class needs only _matmat/_rmatmat."""

    def __init__(self, M):
        self.M = M
        super().__init__((M.shape[1],), (M.shape[0],))

    def _matmat(self, X):
        return X @ self.M.T

    def _rmatmat(self, Y):
        return Y @ self.M


@settings(max_examples=40, deadline=None)
@given(
    shape_in=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    shape_out=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
    k=st.integers(1, 3),
)
def test_adjoint_identity_property(shape_in, shape_out, seed, k):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for random shapes, on a composite operator."""
    gen = torch.Generator().manual_seed(seed)
    n_in, n_out = math.prod(shape_in), math.prod(shape_out)
    M1 = torch.randn(n_out, n_in, generator=gen, dtype=F64)
    M2 = torch.randn(n_in, n_in, generator=gen, dtype=F64)
    d = torch.randn(*shape_in, generator=gen, dtype=F64)
    A1 = DenseOperator(M1, shape_in=shape_in, shape_out=shape_out)
    A2 = DenseOperator(M2, shape_in=shape_in, shape_out=shape_in)
    A = 0.5 * A1 @ (A2 + DiagonalOperator(d)) @ A2.T
    x = torch.randn(k, *shape_in, generator=gen, dtype=F64)
    y = torch.randn(k, *shape_out, generator=gen, dtype=F64)
    lhs = ((A @ x) * y).sum()
    rhs = (x * (A.T @ y)).sum()
    assert abs(float(lhs - rhs)) <= 1e-10 * max(1.0, abs(float(lhs)))


def test_subclass_with_only_matmat_and_rmatmat():
    M = torch.randn(4, 3, dtype=F64)
    A = _Counting(M)
    assert rel_err(A.dense(), M) < 1e-15
    assert rel_err(A.T.dense(), M.T) < 1e-15
