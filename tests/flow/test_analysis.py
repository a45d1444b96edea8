"""Snapshot analyses against dense float64 computations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gdlens.flow.analysis import (
    effective_ranks,
    hidden_participation_ratio,
    misdirection,
    partial_effective_ranks,
    task_interference,
    top_eigenfunctions,
)
from gdlens.operators import DenseOperator

F64 = torch.float64
SHAPE = (4, 3, 2)  # (B, T, H)
N = 24


def fake_snapshot(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    J = torch.randn(N, 7, generator=gen, dtype=F64)
    Pm = torch.eye(N, dtype=F64) + 0.3 * torch.randn(N, N, generator=gen, dtype=F64)
    Km = J @ J.T
    Gm = Pm @ Km @ Pm.T
    K = DenseOperator(Km, SHAPE, SHAPE, is_symmetric=True)
    P = DenseOperator(Pm, SHAPE, SHAPE)
    G = DenseOperator(Gm, SHAPE, SHAPE, is_symmetric=True)
    return SimpleNamespace(K=K, P=P, G=G), Km, Pm, Gm


def pr(M: torch.Tensor) -> float:
    return float(torch.trace(M) ** 2 / (M * M).sum())


def test_effective_ranks_and_misdirection_match_dense():
    kp, Km, Pm, Gm = fake_snapshot()
    ranks = effective_ranks(kp, method="exact")
    assert abs(ranks["K"].value - pr(Km)) < 1e-10
    assert abs(ranks["P"].value - pr(Pm @ Pm.T)) < 1e-10
    assert abs(ranks["G"].value - pr(Gm)) < 1e-10
    PPt = Pm @ Pm.T
    expected = float((Gm * PPt).sum() / (Gm.norm() * PPt.norm()))
    assert abs(misdirection(kp, method="exact").value - expected) < 1e-10


@pytest.mark.parametrize("keep,pattern", [("trials", "aijbij->ab"), ("time", "iajibj->ab"), ("hidden", "ijaijb->ab")])
def test_partial_effective_ranks_match_dense(keep, pattern):
    kp, Km, Pm, Gm = fake_snapshot(1)
    ranks = partial_effective_ranks(kp, keep=keep, method="exact")
    R = torch.einsum(pattern, Gm.reshape(*SHAPE, *SHAPE))
    assert abs(ranks["G"].value - pr(R)) < 1e-10
    with pytest.raises(ValueError, match="keep must be one of"):
        partial_effective_ranks(kp, keep="neurons")


def test_partial_effective_ranks_keep_a_tuple_of_axes():
    kp, Km, Pm, Gm = fake_snapshot(4)
    ranks = partial_effective_ranks(kp, keep=("batch", "time"), method="exact")
    for name, M in (("K", Km), ("P", Pm @ Pm.T), ("G", Gm)):
        R = torch.einsum("abicdi->abcd", M.reshape(*SHAPE, *SHAPE)).reshape(12, 12)
        assert abs(ranks[name].value - pr(R)) < 1e-10
    same = partial_effective_ranks(kp, keep=("time", "trials"), method="exact")
    assert same["G"].value == ranks["G"].value
    auto = partial_effective_ranks(kp, keep=(0, 1), num_samples=16, seed=1)  # H = 2 ≤ 16 traced: exact
    assert auto["G"].method == "exact" and auto["G"].value == pytest.approx(ranks["G"].value, rel=1e-12)
    with pytest.raises(ValueError, match="one or two distinct axes"):
        partial_effective_ranks(kp, keep=("batch", "trials"))


def test_reference_definition_is_the_ones_contraction_of_the_gram():
    kp, Km, Pm, Gm = fake_snapshot(5)
    ranks = partial_effective_ranks(kp, keep="time", definition="reference")
    for name, M in (("K", Km @ Km.T), ("P", Pm @ Pm.T), ("G", Gm @ Gm.T)):
        R = torch.einsum("aibcjd->ij", M.reshape(*SHAPE, *SHAPE))  # inputs constant, outputs summed over B, H
        assert abs(ranks[name].value - pr(R)) < 1e-10
        assert ranks[name].stderr == 0.0
    with pytest.raises(ValueError, match="definition must be one of"):
        partial_effective_ranks(kp, definition="paper")


def test_top_eigenfunctions_are_shaped_like_hidden_states():
    kp, _, _, Gm = fake_snapshot(2)
    values, vectors = top_eigenfunctions(kp.G, 3)
    assert vectors.shape == (3, *SHAPE)
    assert torch.allclose(values, torch.linalg.eigvalsh(Gm).flip(0)[:3], atol=1e-8)


def test_task_interference_exact_and_estimated():
    kp, _, _, Gm = fake_snapshot(3)
    tasks = torch.tensor([0, 1, 0, 2])
    D = Gm.reshape(4, 6, 4, 6)
    def block_sq(i, j):
        rows = (tasks == i).nonzero().flatten()
        cols = (tasks == j).nonzero().flatten()
        return float(D[rows][:, :, cols].pow(2).sum())
    expected = torch.tensor([[block_sq(i, j) / (block_sq(i, i) * block_sq(j, j)) ** 0.5 for j in range(3)] for i in range(3)], dtype=F64)
    exact = task_interference(kp.G, tasks, method="exact")
    assert exact.tasks == (0, 1, 2)
    assert torch.allclose(exact.matrix, expected, atol=1e-12)
    assert torch.allclose(exact.matrix.diagonal(), torch.ones(3, dtype=F64))
    assert (exact.matrix <= 1 + 1e-12).all()
    est = task_interference(kp.G, tasks, num_probes=400, seed=0)
    off = ~torch.eye(3, dtype=torch.bool)
    assert ((est.matrix - expected).abs()[off] < 5 * est.stderr[off] + 1e-3).all()
    with pytest.raises(ValueError, match=r"\(B,\) = \(4,\)"):
        task_interference(kp.G, torch.tensor([0, 1]))


def test_hidden_participation_ratio():
    gen = torch.Generator().manual_seed(0)
    # activity on exactly two orthogonal directions with equal variance: PR = 2
    basis = torch.linalg.qr(torch.randn(5, 2, generator=gen, dtype=F64))[0]
    coeff = torch.randn(2000, 2, generator=gen, dtype=F64)
    coeff = (coeff - coeff.mean(0)) @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(coeff.T)).T)
    z = (coeff @ basis.T).reshape(40, 50, 5)
    assert abs(hidden_participation_ratio(z) - 2.0) < 1e-10
    iso = torch.randn(100, 30, 4, generator=gen, dtype=F64)
    assert 3.8 < hidden_participation_ratio(iso) <= 4.0
    with pytest.raises(ValueError, match=r"\(B, T, H\)"):
        hidden_participation_ratio(torch.zeros(3, 4))
    # one implementation with gdlens.operators.participation_ratio: no variance is nan, not 0
    assert hidden_participation_ratio(torch.zeros(2, 3, 4)) != hidden_participation_ratio(torch.zeros(2, 3, 4))


def test_float32_overflow_of_an_unstable_rnn_warns_naming_float64():
    import gdlens as gd

    torch.manual_seed(0)
    model = gd.models.RNN(3, 16, 2, g=4.0)  # tanh, float32: P grows ~ (g·gain)^T and overflows
    gen = torch.Generator().manual_seed(0)
    kp = gd.flow.KPFlow(model, torch.randn(2, 80, 3, generator=gen), torch.randn(2, 80, 2, generator=gen))
    with pytest.warns(RuntimeWarning, match="float64"):
        ranks = effective_ranks(kp, num_matvecs=9)
    assert ranks["P"].value != ranks["P"].value  # nan, and now said
    ranks64 = effective_ranks(gd.flow.KPFlow(model.double(), kp.x.double(), kp.target.double()), num_matvecs=9)
    assert 1 <= ranks64["P"].value <= 2 * 80 * 16
