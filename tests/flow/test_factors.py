"""K and G carry their Jacobian factor: K = J Jᵀ and G = (P J)(P J)ᵀ, for every kernel
implementation, and top_eigs through the factor equals the direct solve."""

from __future__ import annotations

import pytest
import torch

import gdlens as gd
from gdlens.operators import top_eigs

F64 = torch.float64


def snapshot(kind: str, fast: bool, learn_z0: bool, B: int = 2, T: int = 4):
    torch.manual_seed(0)
    cls = {"rnn": gd.models.RNN, "gru": gd.models.GRU, "lstm": gd.models.LSTM}[kind]
    model = cls(2, 3, 2, learn_z0=learn_z0).double()
    if learn_z0:
        with torch.no_grad():
            model.z0.normal_()
    x = torch.randn(B, T, 2, dtype=F64)
    target = torch.randn(B, T, 2, dtype=F64)
    return gd.KPFlow(model, x, target, fast=fast)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("learn_z0", [False, True])
def test_K_and_G_equal_the_gram_of_their_factor(kind, fast, learn_z0):
    kp = snapshot(kind, fast, learn_z0)
    J = kp.K.gram_factor.dense()
    K = kp.K.dense()
    assert torch.allclose(J @ J.T, K, rtol=0, atol=1e-10 * K.abs().max())
    PJ = kp.G.gram_factor.dense()
    G = kp.G.dense()
    assert torch.allclose(PJ @ PJ.T, G, rtol=0, atol=1e-10 * G.abs().max())
    # the factor's adjoint is its transpose
    assert torch.allclose(kp.K.gram_factor.T.dense(), J.T, atol=1e-12)
    # per-group factors too
    for name, Kg in kp.K_groups.items():
        Fg = Kg.gram_factor
        if Fg is not None:
            D = Fg.dense()
            assert torch.allclose(D @ D.T, Kg.dense(), rtol=0, atol=1e-10 * max(K.abs().max(), 1e-300)), name


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_top_eigs_through_the_factor_matches_the_dense_spectrum(kind):
    kp = snapshot(kind, True, False, B=4, T=8)  # B·T·H = 96 > p (RNN 18, GRU 63): the factor is smaller
    for op in (kp.K, kp.G):
        (values, vectors), info = top_eigs(op, 3, return_info=True)
        assert info.get("factored")
        dense = op.dense()
        ref = torch.linalg.eigvalsh(dense).flip(0)[:3]
        assert torch.allclose(values, ref, rtol=1e-8, atol=1e-10)
        V = vectors.reshape(3, -1)
        assert torch.allclose(V @ dense, values[:, None] * V, atol=1e-7 * float(ref[0]))
