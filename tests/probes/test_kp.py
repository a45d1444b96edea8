"""The KP probe in float64 against exact moments and dense eigenvalues of its KPFlow snapshot;
its joint estimate of P Pᵀ and G (shared Pᵀ v), warm starts kept in the state, one probe over
two runs, a user's torch module, the reduced ranks (keep=) against dense partial traces, and
every panel key recorded."""

from __future__ import annotations

import fnmatch

import pytest
import torch
from torch import nn

import gdlens as gd
from gdlens.operators import moments, top_eigs
from gdlens.probes import KPProbe
from gdlens.probes.base import ProbeContext
from gdlens.probes.kp import _shared_transpose, state_space_model
from gdlens.probes.spec import describe
from gdlens.tasks.base import TaskData

F64 = torch.float64


def snapshot(seed: int = 0, hidden: int = 6, trials: int = 5, T: int = 7):
    torch.manual_seed(seed)
    model = gd.models.GRU(2, hidden, 2).double()
    gen = torch.Generator().manual_seed(seed)
    data = TaskData(x=torch.randn(trials, T, 2, generator=gen, dtype=F64),
                    target=torch.randn(trials, T, 2, generator=gen, dtype=F64))
    return model, data


def run(probe, model, data, steps=1, state=None, step0=0):
    ctx = ProbeContext(step0, model, data)
    state = probe.init(ctx) if state is None else state
    outs = []
    for s in range(steps):
        out, state = probe.compute(ProbeContext(step0 + s, model, data), state)
        outs.append(out)
    return outs, state


def test_records_match_exact_moments_and_dense_eigenvalues():
    model, data = snapshot()
    probe = KPProbe(max_trials=4, num_matvecs=30, k=3, tol=1e-10)
    (out,), state = run(probe, model, data)
    idx = torch.tensor([0, 1, 3, 4])  # 4 trials spread over 5
    assert torch.equal(state["x"], data.x[idx])
    kp = gd.KPFlow(model, data.x[idx], data.target[idx])
    exact = moments({"K": kp.K, "P": kp.P @ kp.P.T, "G": kp.G}, method="exact")
    for name in ("K", "P", "G"):
        truth = exact.effective_rank(name).value
        assert abs(out[f"rank_{name}"] - truth) <= 5 * out[f"rank_{name}_se"] + 1e-9 * truth
    truth = exact.alignment("G", "P").value
    assert out["misdirection_se"] > 0
    assert abs(out["misdirection"] - truth) <= 5 * out["misdirection_se"] + 1e-9
    assert 0 <= truth <= 1  # both PSD: the panel's ylim=(0, 1)
    assert (out["B"], out["T"], out["H"], out["dim"]) == (4, 7, 6, 4 * 7 * 6)
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


def test_warm_start_lives_in_the_state(monkeypatch):
    import gdlens.probes.kp as kp_module

    spent = []

    def spy(*args, **kwargs):
        (values, vectors), info = top_eigs(*args, **kwargs, return_info=True)
        spent.append((kwargs.get("v0") is not None, info["num_matvecs"]))
        return values, vectors

    monkeypatch.setattr(kp_module, "top_eigs", spy)
    model, data = snapshot(2, hidden=8, trials=4, T=10)
    probe = KPProbe(max_trials=4, num_matvecs=12, k=3)
    (first, again), state = run(probe, model, data, steps=2)  # the same operator: one block of k + 1
    assert state["vectors"].shape == (3, 4, 10, 8)
    assert spent[0][0] is False and spent[1] == (True, 4) and spent[1][1] < spent[0][1]
    assert again["eig_G_1"] == pytest.approx(first["eig_G_1"], rel=1e-5)
    assert not any(f.name.startswith("_") for f in __import__("dataclasses").fields(probe))  # nothing on the probe
    with pytest.warns(DeprecationWarning, match="Recorder"):
        probe.reset()


def test_one_probe_serves_two_runs_each_on_its_own_batch():
    import copy

    probe = KPProbe(max_trials=3, num_matvecs=9, k=2, tol=1e-10, schedule=2)
    for seed in (0, 1):
        model, data = snapshot(seed, hidden=5, trials=4, T=6)
        before = copy.deepcopy(model)
        result = gd.train(model, data, optimizer="sgd", steps=2, lr=1e-2, probes=[probe], seed=seed, progress=False)
        steps, eig = result.series("kp/eig_G_1")
        assert list(steps) == [0, 2]
        # step 0 of this run: this run's model and batch, whatever the probe saw before
        (fresh,), _ = run(KPProbe(max_trials=3, num_matvecs=9, k=2, tol=1e-10), before, data)
        assert eig[0] == pytest.approx(fresh["eig_G_1"], rel=1e-8)
        assert torch.equal(result.recorder.states["kp"]["x"], data.x[torch.tensor([0, 2, 3])])


class Mine(nn.Module):
    """A user's model: a torch recurrent module and an nn.Linear readout."""

    def __init__(self, cell: type = nn.GRU, hidden: int = 5):
        super().__init__()
        self.rnn = cell(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_a_users_torch_module_is_converted():
    torch.manual_seed(0)
    mine = Mine().double()
    gen = torch.Generator().manual_seed(0)
    data = TaskData(x=torch.randn(3, 6, 2, generator=gen, dtype=F64), target=torch.randn(3, 6, 2, generator=gen, dtype=F64))
    (out,), _ = run(KPProbe(max_trials=3, num_matvecs=9, k=2, tol=1e-10), mine, data)
    converted = gd.models.from_torch(mine.rnn, mine.head)
    kp = gd.KPFlow(converted, data.x, data.target)
    ref = torch.linalg.eigvalsh(kp.G.dense()).flip(0)[:2]
    assert torch.allclose(torch.tensor([out["eig_G_1"], out["eig_G_2"]], dtype=F64), ref, rtol=1e-8)

    class Twisted(Mine):  # output is not readout(rnn(x)): refused, naming what to pass
        def forward(self, x):
            return self.head(torch.tanh(self.rnn(x)[0]))

    with pytest.raises(TypeError, match="from_torch"):
        KPProbe().init(ProbeContext(0, Twisted().double(), data))
    with pytest.raises(TypeError, match="StateSpace"):
        KPProbe().init(ProbeContext(0, nn.Sequential(nn.Linear(2, 2)).double(), data))


def test_train_with_a_users_module_records_kp_values():
    torch.manual_seed(0)
    data = TaskData(x=torch.randn(3, 5, 2), target=torch.randn(3, 5, 2))
    probe = KPProbe(max_trials=2, num_matvecs=6, k=1, schedule=2)
    result = gd.train(Mine(nn.RNN, 4), data, steps=2, lr=1e-2, probes=[probe], progress=False)
    steps, rank = result.series("kp/rank_K")
    assert list(steps) == [0, 2] and all(1 <= r <= 2 * 5 * 4 for r in rank)


@pytest.mark.parametrize("keep,pattern", [("time", "iajibj->ab"), (("batch", "time"), "abicdi->abcd")])
def test_reduced_ranks_match_dense_partial_traces(keep, pattern):
    model, data = snapshot(3, hidden=3, trials=2, T=5)
    probe = KPProbe(max_trials=2, num_matvecs=9, k=1, keep=(keep,), num_samples=16)
    (out,), _ = run(probe, model, data)
    kp = gd.KPFlow(model, data.x, data.target)
    label = "_".join((keep,) if isinstance(keep, str) else keep)
    shape = kp.G.shape_in
    for name, M in (("K", kp.K.dense()), ("P", (kp.P @ kp.P.T).dense()), ("G", kp.G.dense())):
        D = M.reshape(*shape, *shape)
        R = torch.einsum(pattern, D).reshape(out[f"dim_{label}"], -1)
        truth = float(torch.trace(R) ** 2 / (R * R).sum())
        # n = 30 <= 16 · n_κ: the probe reduces exactly
        assert out[f"rank_{name}_{label}"] == pytest.approx(truth, rel=1e-9)
        lam = torch.linalg.eigvalsh(R).flip(0)
        count = int((torch.cumsum(lam, 0) < 0.95 * lam.sum()).sum()) + 1
        assert out[f"n95_{name}_{label}"] == count


def test_every_panel_key_is_recorded_and_declared():
    model, data = snapshot(4, hidden=3, trials=3, T=4)
    probe = KPProbe(max_trials=3, num_matvecs=9, k=2, keep=("time", ("batch", "time")))
    (out,), _ = run(probe, model, data)
    desc = describe(probe)
    assert desc["panels"] and desc["title"]
    for panel in desc["panels"]:
        for key in panel["keys"]:
            assert any(fnmatch.fnmatchcase(k, key) for k in out), key
        if panel["bound"]:
            assert panel["bound"] in out
    for key in out:
        assert any(fnmatch.fnmatchcase(key, m["key"]) for m in desc["metrics"]), key
    mis = next(p for p in desc["panels"] if p["keys"] == ["misdirection"])
    assert tuple(mis["ylim"]) == (0, 1)
    eig = next(p for p in desc["panels"] if p["keys"] == ["eig_G_*"])
    assert eig["yscale"] == "log"
    assert desc["settings"]["keep"] == "time, batch_time"


def test_bad_arguments_and_data():
    with pytest.raises(ValueError, match="keep must be one of"):
        KPProbe(keep=("neurons",))
    with pytest.raises(ValueError, match="data must be"):
        KPProbe(data="test")
    model, _ = snapshot()
    static = TaskData(x=torch.randn(4, 2, dtype=F64), target=torch.randn(4, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"x \(B, T, I\)"):
        KPProbe().init(ProbeContext(0, model, static))
    with pytest.raises(ValueError, match="eval_data"):
        KPProbe(data="eval").init(ProbeContext(0, model, static))


def test_eval_data_is_the_fixed_analysis_batch():
    model, data = snapshot(5, trials=6)
    _, held = snapshot(6, trials=4)
    probe = KPProbe(data="eval", max_trials=2, num_matvecs=6, k=1)
    state = probe.init(ProbeContext(0, model, data, eval_data=held))
    assert torch.equal(state["x"], held.x[torch.tensor([0, 3])])
    own = KPProbe(data=held, max_trials=4, num_matvecs=6, k=1).init(ProbeContext(0, model, data))
    assert torch.equal(own["x"], held.x)
    assert state_space_model(model) is model
    direct, made = probe.compute(ProbeContext(0, model, data, eval_data=held))  # no state: init makes it
    assert torch.equal(made["x"], state["x"]) and made["vectors"] is not None and direct["B"] == 2


def test_gd_train_on_a_model_without_a_recurrent_core_fails_at_step_0_naming_what_to_pass():
    data = TaskData(x=torch.randn(3, 5, 2), target=torch.randn(3, 5, 2))
    mlp = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in mlp.parameters()]
    with pytest.raises(gd.ProbeError, match=r"step 0.*from_torch"):
        gd.train(mlp, data, steps=2, probes=[KPProbe(schedule=1)], progress=False)
    assert all(torch.equal(a, p) for a, p in zip(before, mlp.parameters()))  # before any update


def test_state_survives_a_weights_only_checkpoint(tmp_path):
    model, data = snapshot(7, hidden=4, trials=3, T=5)
    probe = KPProbe(max_trials=3, num_matvecs=9, k=2, keep=("time",))
    (first,), state = run(probe, model, data)
    torch.save(state, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)
    again, _ = probe.compute(ProbeContext(1, model, data), loaded)
    assert again["eig_G_1"] == pytest.approx(first["eig_G_1"], rel=1e-6)
    assert again["rank_K_time"] == first["rank_K_time"]
    old_style, converted = probe.compute(ProbeContext(2, model, data), probe.upgrade_state({"_vectors": state["vectors"]}))
    assert torch.equal(converted["x"], state["x"])  # the batch is made again, the vectors kept
    assert old_style["eig_G_1"] == pytest.approx(first["eig_G_1"], rel=1e-6)
