"""Gradient norms and NTK traces per parameter group: against autograd, dense Jacobians (jacrev,
float64) and closed forms, on embedding MLPs, a transformer and recurrent models (gdlens' GRU and
a torch nn.GRU through gd.models.from_torch); the HeadEmbeddingProbe in training runs."""

from __future__ import annotations

import copy
import fnmatch
import math

import pytest
import torch
from torch import nn

import gdlens as gd
from probe_helpers import assert_declared_keys_recorded
from gdlens.models import EmbeddingMLP, Transformer1L
from gdlens.probes import ProbeContext, Schedule
from gdlens.probes.groups import (
    HeadEmbeddingProbe,
    check_group_model,
    group_gradient_norms,
    group_ntk_traces,
    ntk_subset,
    resolve_groups,
)
from gdlens.probes.ntk import empirical_ntk

F64 = torch.float64


# ------------------------------------------------------------------ head vs embedding
def small_mlp(seed=0):
    torch.manual_seed(seed)
    return EmbeddingMLP(11, embedding=4, width=8).double()


def test_group_ntk_traces_sum_to_the_full_trace_and_match_the_head_closed_form():
    m = small_mlp()
    x = torch.tensor([[0, 1], [2, 3], [4, 10], [7, 7], [9, 2]])
    traces = group_ntk_traces(m, x, method="exact")
    assert set(traces) == {"embedding", "hidden", "head"}
    assert all(err == 0 for _, err in traces.values())
    params = {n: p.detach() for n, p in m.named_parameters()}
    K = empirical_ntk(lambda th, xx: torch.func.functional_call(m, th, (xx,)), params, x)
    full = float(torch.diagonal(K.dense()).sum())
    assert sum(v for v, _ in traces.values()) == pytest.approx(full, rel=1e-10)
    # y = W_o h + b_o: ∂y_no/∂W_o[o, j] = h_nj, so tr K_head = O (Σ_n ‖h_n‖² + N)
    h = m.features(x).detach()
    assert traces["head"][0] == pytest.approx(11 * (float((h**2).sum()) + 5), rel=1e-10)
    # the randomized estimate agrees within a few standard errors
    est, err = group_ntk_traces(m, x, method="hutch++", num_matvecs=24, seed=1)["hidden"]
    assert abs(est - traces["hidden"][0]) < 5 * err + 1e-8


def test_group_ntk_traces_of_the_transformer_partition_its_kernel():
    torch.manual_seed(0)
    m = Transformer1L(7, d_model=8, n_heads=2, d_mlp=8).double()
    x = torch.tensor([[0, 1], [6, 3], [2, 2]])
    traces = group_ntk_traces(m, x, method="exact")
    params = {n: p.detach() for n, p in m.named_parameters()}
    K = empirical_ntk(lambda th, xx: torch.func.functional_call(m, th, (xx,)), params, x)
    assert sum(v for v, _ in traces.values()) == pytest.approx(float(torch.diagonal(K.dense()).sum()), rel=1e-10)


def test_group_gradient_norms_match_autograd_and_leave_grads_alone():
    m = small_mlp()
    data = gd.tasks.modular_addition(p=11, seed=0)

    def loss_fn(model):
        return data.train.loss_value(model(data.train.x))

    norms = group_gradient_norms(m, loss_fn)
    assert all(p.grad is None for p in m.parameters())
    loss_fn(m).backward()
    by_group = resolve_groups(m)
    for g, names in by_group.items():
        expected = math.sqrt(sum(float((dict(m.named_parameters())[n].grad ** 2).sum()) for n in names))
        assert norms[g] == pytest.approx(expected, rel=1e-10)
    assert norms["total"] == pytest.approx(math.sqrt(sum(norms[g] ** 2 for g in by_group)), rel=1e-10)


def test_resolve_groups():
    m = small_mlp()
    assert resolve_groups(m) == m.parameter_groups()
    mlp = gd.models.MLP(3, 4, 2)
    assert resolve_groups(mlp) == {"net": ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]}
    assert resolve_groups(m, lambda n: "w" if n.endswith("weight") else None)["w"][0] == "embed_a.weight"
    assert resolve_groups(m, {"a": ["head.bias"]}) == {"a": ["head.bias"]}
    with pytest.raises(ValueError, match="unknown"):
        resolve_groups(m, {"a": ["nope"]})


# ------------------------------------------------------------------ recurrent models
def gdlens_gru():
    torch.manual_seed(0)
    return gd.models.GRU(2, 4, 2).to(F64)


def torch_gru():
    torch.manual_seed(1)
    return gd.models.from_torch(nn.GRU(2, 4, batch_first=True).to(F64), readout=nn.Linear(4, 2).to(F64))


RECURRENT = {"gd.models.GRU": gdlens_gru, "from_torch(nn.GRU)": torch_gru}


def dense_group_traces(model: nn.Module, x: torch.Tensor, groups: dict) -> dict[str, float]:
    """tr(J_g J_gᵀ) = Σ of the squared entries of the Jacobian of all outputs (B, T, O) with
    respect to the group's parameters, from torch.func.jacrev (dense, float64)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    out = {}
    for g, members in groups.items():
        rest = {n: v for n, v in params.items() if n not in members}

        def f(own):
            y = torch.func.functional_call(model, {**rest, **own}, (x,))
            return y[0] if isinstance(y, tuple) else y

        jac = torch.func.jacrev(f)({n: params[n] for n in members})
        out[g] = float(sum((j**2).sum() for j in jac.values()))
    return out


@pytest.mark.parametrize("which", sorted(RECURRENT))
def test_group_ntk_traces_of_a_gru_match_dense_jacobians(which):
    model = RECURRENT[which]()
    data = gd.tasks.flip_flop(batch_size=5, T=6, bits=2, pulse_prob=0.3, dtype=F64)
    groups = resolve_groups(model)
    assert set(groups) >= {"readout"} and len(groups) >= 4  # weight_ih*, weight_hh*, bias_*, readout
    truth = dense_group_traces(model, data.x, groups)
    traces = group_ntk_traces(model, data.x, method="exact")
    assert set(traces) == set(groups)
    for g in groups:
        assert traces[g][0] == pytest.approx(truth[g], rel=1e-10), g
    g_hh = "weight_hh" if which.startswith("gd") else "weight_hh_l0"
    est, err = group_ntk_traces(model, data.x, method="hutch++", num_matvecs=12, seed=3)[g_hh]
    assert abs(est - truth[g_hh]) < 5 * err + 1e-8
    # the gradient norms per group against autograd on the module
    norms = group_gradient_norms(model, lambda m: data.loss_value(m(data.x)[0]))
    model.zero_grad()
    data.loss_value(model(data.x)[0]).backward()
    named = dict(model.named_parameters())
    for g, members in groups.items():
        assert norms[g] == pytest.approx(math.sqrt(sum(float((named[n].grad ** 2).sum()) for n in members)),
                                         rel=1e-10)


@pytest.mark.parametrize("which", sorted(RECURRENT))
def test_head_embedding_probe_on_a_gru_in_training(which):
    """In gd.train (float64): the probe's values at the last step are the dense truth on the
    trained model; every panel key the model can have is recorded; two runs share the probe."""
    data = gd.tasks.flip_flop(batch_size=5, T=6, bits=2, pulse_prob=0.3, dtype=F64)
    probe = HeadEmbeddingProbe(schedule=Schedule(every=3), ntk_samples=None, method="exact")
    before = copy.deepcopy(vars(probe))
    models = []
    for _ in range(2):
        models.append(RECURRENT[which]())
        result = gd.train(models[-1], data, optimizer="adam", lr=1e-2, steps=6, probes=[probe], progress=False)
    model = models[-1]
    groups = resolve_groups(model)
    truth = dense_group_traces(model, data.x, groups)
    total = sum(truth.values())
    last = result.recorder.last
    for g in groups:
        assert last(f"groups/ntk_trace/{g}") == pytest.approx(truth[g] / data.x.shape[0], rel=1e-9)
        assert last(f"groups/ntk_share/{g}") == pytest.approx(truth[g] / total, rel=1e-9)
    recorded = {k.split("/", 1)[1] for k in result.history if k.startswith("groups/")}
    for panel in probe.panels[:3]:  # no head/embedding groups in a GRU: the ratio panel stays empty
        for key in panel.keys:
            assert fnmatch.filter(recorded, key), (panel.title, key)
    assert not fnmatch.filter(recorded, "head_over_embedding/*")
    assert vars(probe).keys() == before.keys()


def test_torch_recurrent_modules_are_refused_with_the_adapter_named():
    gru = nn.GRU(2, 4, batch_first=True)
    with pytest.raises(ValueError, match="from_torch"):
        check_group_model(gru)
    with pytest.raises(ValueError, match="from_torch"):
        HeadEmbeddingProbe().init(ProbeContext(0, gru))
    with pytest.raises(ValueError, match="from_torch"):
        group_ntk_traces(nn.LSTM(2, 3), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="ntk_samples"):
        HeadEmbeddingProbe(ntk_samples=0)
    with pytest.raises(TypeError, match="groups must be"):
        resolve_groups(gdlens_gru(), ["weight_ih"])


def test_ntk_subset_is_seeded_and_ordered():
    x = torch.arange(20.0)[:, None]
    sub = ntk_subset(x, 5, seed=2)
    assert sub.shape == (5, 1) and torch.equal(sub, ntk_subset(x, 5, seed=2))
    assert bool((sub[1:, 0] > sub[:-1, 0]).all())
    assert ntk_subset(x, None, 0) is x and ntk_subset(x, 50, 0) is x


def test_head_embedding_probe_on_an_embedding_mlp_records_every_panel_key():
    torch.manual_seed(0)
    data = gd.tasks.modular_addition(p=11, train_fraction=0.6, seed=0)
    probe = HeadEmbeddingProbe(schedule=5, ntk_samples=8, num_matvecs=6)
    result = gd.train(EmbeddingMLP(11, embedding=8, width=16), data, optimizer="adamw", lr=1e-2, steps=10,
                      probes=[probe], progress=False)
    recorded = {k.split("/", 1)[1] for k in result.history if k.startswith("groups/")}
    assert_declared_keys_recorded(probe, recorded)


def test_group_report_from_norms_and_traces():
    norms = {"head": 3.0, "embedding": 1.5, "hidden": 0.0, "total": 3.4}
    traces = {"head": (8.0, 0.1), "embedding": (2.0, 0.0), "hidden": (0.0, 0.0)}
    out = gd.probes.groups.group_report(norms, traces, n_inputs=4)
    assert out["grad_norm/total"] == 3.4 and out["ntk_trace/head"] == 2.0
    assert out["ntk_share/head"] == 0.8 and out["ntk_share/hidden"] == 0.0
    assert out["head_over_embedding/grad_norm"] == 2.0 and out["head_over_embedding/ntk_trace"] == 4.0
    zero = gd.probes.groups.group_report({"a": 0.0, "total": 0.0}, {"a": (0.0, 0.0)}, 2)
    assert math.isnan(zero["ntk_share/a"]) and "head_over_embedding/grad_norm" not in zero


def test_head_embedding_probe_reads_a_dropout_model_in_eval_mode():
    """A model with dropout, in train mode as gd.train keeps it: the probe's traces are the dense
    truth of the model in eval mode (no random op under vmap), and its mode is restored."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 2)).to(F64)
    data = gd.tasks.teacher_student(10, input_dim=3, output_dim=2, dtype=F64)
    probe = HeadEmbeddingProbe(ntk_samples=None, method="exact")
    model.train()
    out = probe.compute(ProbeContext(0, model, batch=data), probe.init(ProbeContext(0, model, batch=data)))[0]
    assert model.training
    model.eval()
    groups = resolve_groups(model)
    assert set(groups) == {"0", "1", "4"}
    truth = dense_group_traces(model, data.x, groups)
    for g in groups:
        assert out[f"ntk_trace/{g}"] == pytest.approx(truth[g] / 10, rel=1e-10)
