"""The KP probe in float64 against exact moments and dense eigenvalues of its KPFlow snapshot;
its joint estimate of P Pᵀ and G (shared Pᵀ v), and its warm-started eigenvalues."""

from __future__ import annotations

import pytest
import torch

import gdlens as gd
from gdlens.operators import moments, top_eigs
from gdlens.probes import KPProbe
from gdlens.probes.base import ProbeContext, probe_state
from gdlens.probes.kp import _shared_transpose
from gdlens.tasks.base import TaskData

F64 = torch.float64


def snapshot(seed: int = 0, hidden: int = 6, trials: int = 5, T: int = 7):
    torch.manual_seed(seed)
    model = gd.models.GRU(2, hidden, 2).double()
    gen = torch.Generator().manual_seed(seed)
    data = TaskData(x=torch.randn(trials, T, 2, generator=gen, dtype=F64),
                    target=torch.randn(trials, T, 2, generator=gen, dtype=F64))
    return model, data


def test_records_match_exact_moments_and_dense_eigenvalues():
    model, data = snapshot()
    probe = KPProbe(max_trials=4, num_matvecs=30, k=3, tol=1e-10)
    out = probe.compute(ProbeContext(0, model, data))
    kp = gd.KPFlow(model, data.x[:4], data.target[:4])
    exact = moments({"K": kp.K, "P": kp.P @ kp.P.T, "G": kp.G}, method="exact")
    for name in ("K", "P", "G"):
        truth = exact.effective_rank(name).value
        assert abs(out[f"rank_{name}"] - truth) <= 5 * out[f"rank_{name}_se"] + 1e-9 * truth
    assert abs(out["misdirection"] - exact.alignment("G", "P").value) <= 0.05
    ref = torch.linalg.eigvalsh(kp.G.dense()).flip(0)[:3]
    got = torch.tensor([out[f"eig_G_{i}"] for i in (1, 2, 3)], dtype=F64)
    assert torch.allclose(got, ref, rtol=1e-8)


def test_joint_application_shares_the_transpose():
    model, data = snapshot(1)
    kp = gd.KPFlow(model, data.x, data.target)
    calls = {"P": 0, "PT": 0}
    P = kp.P
    matmat, rmatmat = P.matmat, P.rmatmat

    def counted(fn, key):
        def inner(X):
            calls[key] += 1
            return fn(X)
        return inner

    P.matmat, P.rmatmat = counted(matmat, "P"), counted(rmatmat, "PT")
    V = torch.randn(3, kp.G.size_in, dtype=F64)
    PPt, G = _shared_transpose(kp.K, P)(V)
    assert calls == {"P": 1, "PT": 1}
    P.matmat, P.rmatmat = matmat, rmatmat
    assert torch.allclose(PPt, (kp.P @ kp.P.T).matmat(V.reshape(3, *kp.G.shape_in)).reshape(3, -1), atol=1e-12)
    assert torch.allclose(G, kp.G.matmat(V.reshape(3, *kp.G.shape_in)).reshape(3, -1), atol=1e-10)


def test_warm_start_is_kept_saved_and_reset(monkeypatch):
    import gdlens.probes.kp as kp_module

    spent = []

    def spy(*args, **kwargs):
        (values, vectors), info = top_eigs(*args, **kwargs, return_info=True)
        spent.append((kwargs.get("v0") is not None, info["num_matvecs"]))
        return values, vectors

    monkeypatch.setattr(kp_module, "top_eigs", spy)
    model, data = snapshot(2, hidden=8, trials=4, T=10)
    probe = KPProbe(max_trials=4, num_matvecs=12, k=3)
    first = probe.compute(ProbeContext(0, model, data))
    assert probe_state(probe)["_vectors"].shape == (3, 4, 10, 8)
    again = probe.compute(ProbeContext(1, model, data))  # the same operator: one block of k + 1
    assert spent[0][0] is False and spent[1] == (True, 4) and spent[1][1] < spent[0][1]
    assert again["eig_G_1"] == pytest.approx(first["eig_G_1"], rel=1e-5)
    # a nearby model: still warm, fewer products than the cold first call
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-4 * torch.randn_like(p))
    probe.compute(ProbeContext(2, model, data))
    assert spent[2][0] and spent[2][1] <= spent[0][1]
    # another snapshot shape (fewer trials) starts cold; reset forgets the vectors
    probe.compute(ProbeContext(3, model, data.subset(slice(0, 3))))
    assert spent[3][0] is False and probe._vectors.shape == (3, 3, 10, 8)
    probe.reset()
    assert probe_state(probe) == {"_vectors": None}
