"""The everyday probes (metrics, parameter norms, relative change, hidden participation ratio):
values against the quantities computed by hand on the same model state, one probe list serving
two runs, a zero-initialised bias, a model returning y alone, and torch's own MSE loss in a
user's loop."""

from __future__ import annotations

import copy
import fnmatch
import math

import numpy as np
import pytest
import torch
from torch import nn

import gdlens as gd
from gdlens.probes import (
    HiddenParticipationProbe,
    MetricsProbe,
    ParameterNormProbe,
    ProbeContext,
    RelativeChangeProbe,
    Schedule,
    default_probes,
)
from gdlens.probes.spec import describe

F64 = torch.float64


def pr_by_eigenvalues(X: torch.Tensor) -> float:
    """(Σλ)²/Σλ² from the eigenvalues of the covariance of the rows (an independent route)."""
    lam = torch.linalg.eigvalsh(torch.cov(X.to(F64).T))
    return float(lam.sum() ** 2 / (lam**2).sum())


def hand_relative_change(model: nn.Module, start: dict[str, torch.Tensor]) -> float:
    num = sum(float(((p.detach() - start[n]) ** 2).sum()) for n, p in model.named_parameters())
    den = sum(float((t**2).sum()) for t in start.values())
    return math.sqrt(num / den)


def regression(n=32, dtype=F64):
    return gd.tasks.teacher_student(n, input_dim=3, output_dim=2, seed=0, dtype=dtype)


def sequential(seed=0, width=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 2)).to(F64)


def recorded_keys(history, probe_name):
    return {k.split("/", 1)[1] for k in history if k.startswith(probe_name + "/")}


def test_probes_follow_the_protocol_and_declare_their_keys():
    probes = [MetricsProbe(), ParameterNormProbe(), RelativeChangeProbe(), HiddenParticipationProbe()]
    for probe in probes:
        assert gd.probes.base.is_probe(probe) and callable(probe.init)
        assert probe.schedule.log_points is not None
        d = describe(probe)
        assert d["title"] != type(probe).__name__ and d["panels"] and d["metrics"]
        for panel in d["panels"]:
            assert panel["ylabel"]
            if panel["bound"] is not None:
                assert any(fnmatch.fnmatchcase(panel["bound"], m["key"]) for m in d["metrics"])
    assert [p.name for p in default_probes(recurrent=False)] == ["metrics", "param_norm", "rel_change"]
    assert [p.name for p in default_probes(recurrent=True)][-1] == "hidden"
    accuracy = [p for p in MetricsProbe.panels if p.title == "Accuracy"][0]
    assert accuracy.ylim == (0, 1)


def test_every_panel_key_is_recorded_on_a_recurrent_classification_run():
    model = gd.models.GRU(3, 8, 3)
    result = gd.train(model, "flip_flop", steps=4, progress=False,
                      probes=[MetricsProbe(schedule=2), ParameterNormProbe(schedule=2),
                              RelativeChangeProbe(schedule=2), HiddenParticipationProbe(schedule=2)])
    for probe in result.recorder.probes:
        keys = recorded_keys(result.history, probe.name)
        for panel in probe.panels:
            for pattern in panel.keys + ((panel.bound,) if panel.bound else ()):
                assert fnmatch.filter(keys, pattern), (probe.name, pattern, keys)
        for key in keys:  # every recorded key is declared
            assert any(fnmatch.fnmatchcase(key, m.key) for m in probe.metric_specs), (probe.name, key)


def test_metrics_probe_is_the_task_metric_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5), nn.Linear(16, 2)).to(F64)
    data = regression()
    model.train()
    values, state = MetricsProbe().compute(ProbeContext(0, model, batch=data, eval_data=data.subset(slice(0, 8))))
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        expected = data.metric(model(data.x))
        expected_test = data.subset(slice(0, 8)).metric(model(data.x[:8]))
        assert values["train/loss"] == pytest.approx(float(((model(data.x) - data.target) ** 2).sum() / 32))
    assert values == pytest.approx({**{f"train/{k}": v for k, v in expected.items()},
                                    **{f"test/{k}": v for k, v in expected_test.items()}}, rel=1e-12)
    with pytest.raises(ValueError, match="batch=TaskData"):
        MetricsProbe().init(ProbeContext(0, model, batch=(data.x, data.target)))
    with pytest.raises(ValueError, match="pass batch="):
        MetricsProbe().init(ProbeContext(0, model))


def test_parameter_norm_probe_is_the_norm_of_each_tensor():
    model = sequential()
    values, _ = ParameterNormProbe().compute(ProbeContext(0, model))
    for name, p in model.named_parameters():
        assert values[name] == pytest.approx(math.sqrt(float((p.detach() ** 2).sum())), rel=1e-12)
    assert values["total"] == pytest.approx(math.sqrt(sum(float((p.detach() ** 2).sum()) for p in model.parameters())))


def test_relative_change_of_a_zero_initialised_bias_is_finite():
    model = sequential()
    with torch.no_grad():
        model[0].bias.zero_()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = gd.train(model, regression(), steps=20, lr=0.05, progress=False,
                      probes=[RelativeChangeProbe(schedule=10)])
    last = result.recorder.last
    moved = float((model[0].bias.detach() - start["0.bias"]).norm())
    assert moved > 0
    whole = math.sqrt(sum(float((t**2).sum()) for t in start.values()))
    assert math.isfinite(last("rel_change/share/0.bias"))
    assert last("rel_change/share/0.bias") == pytest.approx(moved / whole, rel=1e-10)
    assert "rel_change/own/0.bias" not in result.history  # its own ratio is x/0: left out, never nan
    assert last("rel_change/own/0.weight") == pytest.approx(
        float((model[0].weight.detach() - start["0.weight"]).norm() / start["0.weight"].norm()), rel=1e-10)
    assert last("rel_change/total") == pytest.approx(hand_relative_change(model, start), rel=1e-10)
    shares = [v[-1][1] for k, v in result.history.items() if k.startswith("rel_change/share/")]
    assert sum(s**2 for s in shares) == pytest.approx(last("rel_change/total") ** 2, rel=1e-10)
    assert all(math.isfinite(v) for entries in result.history.values() for _, v in entries)


def test_one_probe_list_serves_two_runs_each_against_its_own_start():
    probes = [RelativeChangeProbe(schedule=5), ParameterNormProbe(schedule=5)]
    for seed in (0, 1):
        model = sequential(seed=seed)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        result = gd.train(model, regression(), steps=10, lr=0.05, progress=False, probes=probes)
        steps, values = result.series("rel_change/total")
        assert steps.tolist() == [0, 5, 10] and values[0] == 0.0
        assert values[-1] == pytest.approx(hand_relative_change(model, start), rel=1e-10)


def test_relative_change_probe_needs_the_start():
    with pytest.raises(ValueError, match="initial_params"):
        RelativeChangeProbe().init(ProbeContext(0, sequential()))


def test_hidden_participation_of_a_state_space_model_is_that_of_z():
    torch.manual_seed(0)
    model = gd.models.GRU(2, 6, 2).to(F64)
    data = gd.tasks.flip_flop(batch_size=8, T=7, bits=2, pulse_prob=0.3, dtype=F64)
    probe = HiddenParticipationProbe()
    ctx = ProbeContext(0, model, batch=data)
    values, _ = probe.compute(ctx, probe.init(ctx))
    with torch.no_grad():
        _, z = model(data.x)
    assert values["hidden_size"] == 6
    assert values["participation_ratio"] == pytest.approx(pr_by_eigenvalues(z.reshape(-1, 6)), rel=1e-10)


def test_hidden_participation_of_a_model_returning_y_alone():
    model, data = sequential(width=12), regression()
    probe = HiddenParticipationProbe()
    ctx = ProbeContext(0, model, batch=data)
    values, _ = probe.compute(ctx, probe.init(ctx))
    with torch.no_grad():
        hidden = model[1](model[0](data.x))  # the input of the last nn.Linear
    assert values["hidden_size"] == 12
    assert values["participation_ratio"] == pytest.approx(pr_by_eigenvalues(hidden), rel=1e-10)
    # a named submodule: the first Linear's output (pre-activation)
    named = HiddenParticipationProbe(layer="0")
    pre, _ = named.compute(ctx, named.init(ctx))
    with torch.no_grad():
        assert pre["participation_ratio"] == pytest.approx(pr_by_eigenvalues(model[0](data.x)), rel=1e-10)


class NoLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 2, dtype=F64))

    def forward(self, x):
        return torch.tanh(x @ self.w)


def test_hidden_participation_fails_at_init_naming_layer():
    data = regression()
    with pytest.raises(ValueError, match=r"HiddenParticipationProbe: no activations to read.*layer="):
        HiddenParticipationProbe().init(ProbeContext(0, NoLinear(), batch=data))
    with pytest.raises(ValueError, match="no submodule"):
        HiddenParticipationProbe(layer="encoder").init(ProbeContext(0, sequential(), batch=data))
    with pytest.raises(ValueError, match="pass batch="):
        HiddenParticipationProbe().init(ProbeContext(0, sequential()))
    # inside gd.train the failure names the probe, at step 0 before any update
    with pytest.raises(gd.ProbeError, match="hidden"):
        gd.train(NoLinear(), data, steps=2, progress=False,
                 probes=[ParameterNormProbe(schedule=1), HiddenParticipationProbe(schedule=1)])


def test_probes_in_a_users_loop_trained_with_torch_mse_loss():
    """nn.Sequential trained by hand with torch's nn.MSELoss (mean reduction) under a Recorder."""
    model, data = sequential(), regression()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    criterion = nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probes = [MetricsProbe(schedule=Schedule(every=5)), ParameterNormProbe(schedule=5),
              RelativeChangeProbe(schedule=5), HiddenParticipationProbe(schedule=5),
              gd.probes.RepresentationProbe(schedule=5, n_samples=16)]
    recorder = gd.Recorder(probes, total_steps=10)
    for step in range(11):
        recorder.step(step, model=model, batch=data, optimizer=opt,
                      loss_fn=lambda m: criterion(m(data.x), data.target))
        if step < 10:
            opt.zero_grad()
            criterion(model(data.x), data.target).backward()
            opt.step()
    last = recorder.last
    with torch.no_grad():
        y = model(data.x)
        hidden = model[1](model[0](data.x))
    # the task's loss is gdlens' L (sum over outputs, mean over samples): O times torch's mean MSE
    assert last("metrics/train/loss") == pytest.approx(2 * float(criterion(y, data.target)), rel=1e-12)
    assert last("param_norm/total") == pytest.approx(math.sqrt(sum(float((p.detach() ** 2).sum())
                                                                   for p in model.parameters())), rel=1e-12)
    assert last("rel_change/total") == pytest.approx(hand_relative_change(model, start), rel=1e-10)
    assert last("hidden/participation_ratio") == pytest.approx(pr_by_eigenvalues(hidden), rel=1e-10)
    assert last("representation/participation_ratio") == pytest.approx(
        pr_by_eigenvalues(hidden[gd.probes.plumbing.spread_indices(32, 16)]), rel=1e-10)
    assert last("representation/max_rank") == 15


def test_a_resumed_run_measures_against_the_same_start(tmp_path):
    """θ₀ and the representation probe's state travel in the checkpoint: an interrupted and
    resumed run records what an uninterrupted one does."""
    data = gd.tasks.modular_addition(p=7, train_fraction=0.7, seed=1, encoding="one_hot")

    def model():
        torch.manual_seed(0)
        return gd.models.MLP(data.input_size, 32, 7)

    class StopAt:
        name, schedule = "stop", Schedule(every=1)

        def compute(self, ctx):
            if ctx.step == 47:
                raise KeyboardInterrupt
            return {}

    probes = [RelativeChangeProbe(schedule=5), gd.probes.RepresentationProbe(schedule=Schedule(every=10))]
    kwargs = dict(steps=60, lr=1e-2, progress=False)
    reference = gd.train(model(), data, probes=probes, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        gd.train(model(), data, store=tmp_path, checkpoint_every=20, probes=probes + [StopAt()], **kwargs)
    store = gd.open_store(tmp_path)
    (record,) = store.runs(as_frame=False)
    resumed = gd.train(model(), data, store=store, resume=record["id"], probes=probes, **kwargs)
    for name in ("rel_change/total", "rel_change/share/net.0.bias", "representation/cka_init",
                 "representation/cka_prev"):
        s_ref, v_ref = reference.series(name)
        s_res, v_res = resumed.series(name)
        assert s_res.tolist() == s_ref.tolist()
        np.testing.assert_allclose(v_res, v_ref, rtol=1e-5, atol=1e-7)
