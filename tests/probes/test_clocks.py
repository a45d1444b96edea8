"""Training clocks: the clock functions, the ClockProbe (on an embedding MLP and a GRU), the three
probes of the phenomenon in one training run, and the deep-linear validation of
the issue (the Schatten bound, T_rep/T_fit on a separable problem, the fit clock of the 1-D
logistic loss under sign descent and under gradient descent)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.models import DeepLinear, EmbeddingMLP
from gdlens.probes import ProbeContext, Schedule
from gdlens.probes.clocks import (
    ClockProbe,
    clock_observation,
    clock_summary,
    clocks_so_far,
    fit_clock,
    generalization_clock,
    representation_clock,
)
from gdlens.probes.energies import EnergyProbe, l2_energy
from gdlens.probes.groups import HeadEmbeddingProbe
from gdlens.probes.training import MetricsProbe

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ------------------------------------------------------------------------------- clocks
def test_fit_clock():
    losses = [2.0, 0.5, 0.2, 0.05, 0.1, 0.001]
    assert fit_clock(losses, 0.1) == 3
    assert fit_clock(losses, 0.1, steps=[0, 10, 20, 30, 40, 50]) == 30
    assert fit_clock(losses, 1e-4) is None
    assert fit_clock([math.nan, 0.5, 0.01], 0.02) == 2  # NaN never counts as fitted
    assert fit_clock(np.array([1.0, 0.5]), 0.5) == 1 and fit_clock(torch.tensor([1.0, 0.5]), 0.5) == 1


def test_generalization_clock_is_the_first_crossing():
    acc = [0.0, 0.2, 0.96, 0.9, 0.99]
    assert generalization_clock(acc, 0.95) == 2
    assert generalization_clock(acc, 0.95, steps=[0, 5, 7, 9, 11]) == 7
    assert generalization_clock(acc, 0.995) is None


def test_representation_clock_holds_for_every_later_step():
    E = [10.0, 5.0, 3.0, 2.03, 1.98, 2.0]
    assert representation_clock(E, 0.02) == 3  # |E − 2| ≤ 0.04 from index 3 on
    assert representation_clock(E, 0.001) == 5  # only the last value
    assert representation_clock(E, 0.02, steps=[0, 1, 2, 4, 8, 16]) == 4
    assert representation_clock([2.0, 5.0, 2.0], 0.1) == 2  # an early visit does not count
    assert representation_clock([2.0, 2.0, 2.0], 0.1) == 0
    assert representation_clock(E, 0.02, final=2.5) is None  # the last value is not within ε of it
    assert representation_clock(E, 0.2, final=2.2) == 3
    assert representation_clock([1.0, 0.0, 0.0], 0.5, final=0.0) == 1
    assert representation_clock([], 0.1) is None


def test_clock_arguments_are_checked():
    with pytest.raises(ValueError, match="eps"):
        fit_clock([1.0], 0.0)
    with pytest.raises(ValueError, match="eps"):
        representation_clock([1.0], -1)
    with pytest.raises(ValueError, match="shape"):
        fit_clock([1.0, 2.0], 0.5, steps=[0])
    with pytest.raises(ValueError, match="increasing"):
        fit_clock([1.0, 2.0], 0.5, steps=[3, 3])
    with pytest.raises(ValueError, match="1-D"):
        fit_clock([[1.0]], 0.5)


# ------------------------------------------------------------------------- the probes
def test_probes_record_energies_clocks_and_groups_in_a_run(tmp_path):
    torch.manual_seed(0)
    data = gd.tasks.modular_addition(p=11, train_fraction=0.6, seed=0)
    m = EmbeddingMLP(11, embedding=8, width=32)
    probes = [
        MetricsProbe(schedule=5),
        EnergyProbe(schedule=5, fourier_k=3),
        ClockProbe(schedule=5, eps=0.2, threshold=0.5),
        HeadEmbeddingProbe(schedule="log:4", ntk_samples=8, num_matvecs=6),
    ]
    res = gd.train(m, data, optimizer="adamw", lr=1e-2, weight_decay=0.1, steps=60, probes=probes,
                   store=tmp_path / "store", progress=False)
    s = res.summary
    for key in ("energy/l2", "energy/l2/embedding", "energy/l2/head", "energy/nuclear", "energy/fourier_sparsity",
                "groups/grad_norm/head", "groups/ntk_trace/embedding", "groups/ntk_share/head",
                "groups/head_over_embedding/ntk_trace", "clocks/fit", "clocks/representation",
                "clocks/generalization"):
        assert key in s, key
    assert s["energy/l2"] == pytest.approx(l2_energy(dict(m.named_parameters())), rel=1e-6)
    assert 0 < s["groups/ntk_share/head"] < 1
    steps, train_loss = res.series("metrics/train/loss")  # ClockProbe and MetricsProbe share a schedule here
    assert s["clocks/fit"] == fit_clock(train_loss, 0.2, steps) is not None
    summary = clock_summary(res, eps=[0.1, 0.2], threshold=0.5)
    assert summary["clocks/fit"] == fit_clock(res.losses, 0.1)
    assert summary["clocks/fit@0.2"] == fit_clock(res.losses, 0.2) <= s["clocks/fit"]
    steps, energy = res.series("energy/l2")
    assert summary["clocks/representation"] == representation_clock(energy, 0.1, steps)
    i = np.searchsorted(steps, 0.9 * steps[-1])
    assert summary["clocks/energy_drift"] == pytest.approx(abs(energy[-1] - energy[i]) / energy[-1])
    assert "clocks/representation/nuclear" in summary and "clocks/representation/l2/head" in summary
    # the same from a bare history dict, and from {name: (steps, values)}
    from_history = clock_summary(res.history, eps=0.05, threshold=0.5)
    assert from_history["clocks/generalization"] == summary["clocks/generalization"]
    assert clock_summary({"energy/l2": (steps, energy)}, eps=0.1)["clocks/representation"] == summary[
        "clocks/representation"]
    # the run in the store carries what was recorded
    metrics = res.run.metrics(names=["clocks/fit"], as_frame=False)
    assert "clocks/fit" in metrics


def test_clock_probe_keeps_its_observations_in_the_state_and_checks_energy():
    probe = ClockProbe(schedule=1, eps=0.5, energy="schatten")
    m = DeepLinear(3, 3, 2, depth=2).double()
    data = gd.tasks.TaskData(x=randn(8, 3), target=torch.arange(8) % 2, loss="cross_entropy", num_classes=2)
    ctx = ProbeContext(0, m, data, None, None, {}, lambda mm: data.loss_value(mm(data.x)))
    state = probe.init(ctx)
    first, state = probe.compute(ctx, state)
    assert math.isnan(first["generalization"]) and math.isnan(first["representation"])  # one record: nothing settled yet
    second, state = probe.compute(ProbeContext(1, m, data), state)
    obs = state["observations"]
    assert obs["step"] == [0, 1] and len(obs["energy"]) == 2
    # the observations are those of the pure function, and the clocks those of the clock functions
    seen = clock_observation(m, data, energy="schatten")
    assert obs["loss"][1] == pytest.approx(seen["loss"]) and obs["energy"][1] == pytest.approx(seen["energy"])
    assert second == clocks_so_far(obs, 0.5, probe.threshold)
    assert second["representation"] == representation_clock(obs["energy"], 0.5, obs["step"])
    with pytest.warns(DeprecationWarning, match="recorder.states"):  # nothing of a run lives on the probe
        assert probe.observations is None
    with pytest.raises(ValueError, match="energy"):
        ClockProbe(energy="entropy")
    with pytest.raises(ValueError, match="cannot read"):  # an energy the model does not have: at the first step
        ClockProbe(energy="nuclear").init(ctx)


def test_clock_probe_on_a_gru_matches_the_clock_functions_and_serves_two_runs():
    """gdlens' GRU and a torch nn.GRU through from_torch, in float64: the ClockProbe's clocks at
    the last step are the clock functions of the MetricsProbe's and EnergyProbe's series recorded
    at the same steps; one ClockProbe serves both runs."""
    from torch import nn

    data = gd.tasks.flip_flop(batch_size=8, T=6, bits=2, pulse_prob=0.3, dtype=F64)
    clock = ClockProbe(schedule=Schedule(every=2), eps=0.3, energy="l2")
    torch.manual_seed(0)
    models = [gd.models.GRU(2, 8, 2).to(F64),
              gd.models.from_torch(nn.GRU(2, 8, batch_first=True).to(F64), readout=nn.Linear(8, 2).to(F64))]
    for model in models:
        res = gd.train(model, data, optimizer="adam", lr=5e-2, steps=40, progress=False,
                       probes=[clock, MetricsProbe(schedule=Schedule(every=2)), EnergyProbe(schedule=Schedule(every=2))])
        steps, loss = res.series("metrics/train/loss")
        _, energy = res.series("energy/l2")
        assert res.series("clocks/fit")[0].tolist() == steps.tolist()
        expected_fit = fit_clock(loss, 0.3, steps)
        got = res.recorder.last("clocks/fit")
        assert (math.isnan(got) and expected_fit is None) or got == expected_fit
        assert res.recorder.last("clocks/representation") == representation_clock(energy, 0.3, steps)
        assert res.recorder.states["clocks"]["observations"]["step"] == steps.tolist()  # this run's only
        recorded = {k.split("/", 1)[1] for k in res.history if k.startswith("clocks/")}
        assert {key for panel in clock.panels for key in panel.keys} <= recorded


def test_moved_names_still_import_from_clocks_with_a_deprecation_warning():
    import gdlens.probes.clocks as clocks
    import gdlens.probes.energies as energies
    import gdlens.probes.groups as groups

    for name, home in (("l2_energy", energies), ("schatten_energy", energies), ("embedding_nuclear_norm", energies),
                       ("fourier_power", energies), ("fourier_sparsity", energies), ("EnergyProbe", energies),
                       ("resolve_groups", groups), ("group_gradient_norms", groups),
                       ("group_ntk_traces", groups), ("HeadEmbeddingProbe", groups)):
        with pytest.warns(DeprecationWarning, match=f"moved to {home.__name__}"):
            assert getattr(clocks, name) is getattr(home, name)
    with pytest.raises(AttributeError):
        clocks.no_such_name  # noqa: B018
    assert gd.probes.EnergyProbe is energies.EnergyProbe and gd.probes.HeadEmbeddingProbe is groups.HeadEmbeddingProbe


# ----------------------------------------------------------------- deep linear validation
def separable_data(n=64, d=4, margin=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(4 * n, d, generator=g, dtype=F64)
    w = torch.randn(d, generator=g, dtype=F64)
    m = X @ (w / w.norm())
    keep = m.abs() > margin
    X, m = X[keep][:n], m[keep][:n]
    return gd.tasks.TaskData(x=X, target=(m > 0).long(), loss="cross_entropy", num_classes=2, name="separable")


def test_deep_linear_fits_on_a_log_clock_and_settles_ten_times_later():
    """GD + L2 (weight decay) on separable data with a depth-2 linear classifier: the
    Schatten-2/L energy of the end-to-end map settles (T_rep) at least 10× later than the
    cross-entropy reaches ε (T_fit), for ε = 0.1, 0.03, 0.01."""
    torch.manual_seed(0)
    model = DeepLinear(4, 4, 2, depth=2).double()
    res = gd.train(model, separable_data(), optimizer="sgd", lr=1.0, weight_decay=1e-3, steps=3000,
                   probes=[EnergyProbe(schedule=1, groups=False)], progress=False)
    eps = (0.1, 0.03, 0.01)
    clocks = clock_summary(res, eps=eps, energy="energy/schatten")
    for e in eps:
        t_fit, t_rep = clocks[f"clocks/fit@{e:g}"], clocks[f"clocks/representation@{e:g}"]
        assert t_fit is not None and t_rep is not None
        assert t_rep >= 10 * t_fit, (e, t_fit, t_rep)
    # the factors end balanced: Σ‖W_ℓ‖² meets L Σσ^{2/L}
    assert res.summary["energy/factors_l2"] == pytest.approx(res.summary["energy/schatten"], rel=1e-3)
    steps, l2 = res.series("energy/factors_l2")
    _, sch = res.series("energy/schatten")
    assert np.all(l2 >= sch * (1 - 1e-9))


def logistic_fit_times(update, lr, eps_list, w0=0.0, max_steps=200_000):
    """Steps until ℓ(w) = log(1 + e^{−w}) ≤ ε, for w_{t+1} = w_t − lr · update(ℓ'(w_t))."""
    w, losses = w0, []
    target = min(eps_list)
    for _ in range(max_steps):
        loss = math.log1p(math.exp(-w))
        losses.append(loss)
        if loss <= target:
            break
        grad = -1.0 / (1.0 + math.exp(w))
        w -= lr * update(grad)
    return [fit_clock(losses, e) for e in eps_list]


def test_logistic_fit_clock_is_logarithmic_under_sign_descent_and_polynomial_under_gd():
    eps_list = [1e-2, 1e-3, 1e-4]
    lr = 0.5
    sign = logistic_fit_times(lambda g: math.copysign(1.0, g), lr, eps_list)
    # sign descent: w = lr t, ℓ ≈ e^{−lr t}: each decade of ε costs ln(10)/lr steps
    decade = math.log(10) / lr
    for a, b in zip(sign, sign[1:]):
        assert b - a == pytest.approx(decade, abs=1.5)
    assert sign[-1] == pytest.approx(math.log(1 / eps_list[-1]) / lr, rel=0.05)
    gd_times = logistic_fit_times(lambda g: g, lr, eps_list)
    # gradient descent: e^{w} ≈ lr t, ℓ ≈ 1/(lr t): each decade of ε costs 10× the steps
    for a, b in zip(gd_times, gd_times[1:]):
        assert b / a == pytest.approx(10, rel=0.1)
    assert gd_times[-1] * eps_list[-1] * lr == pytest.approx(1.0, rel=0.1)


# ---------------------------------------------------------------- grokking, small and fast
def test_small_grokking_run_fits_first_and_generalises_later(tmp_path):
    """p = 23 (80% of the pairs for training): training accuracy is 100% and the loss below
    0.01 long before the test accuracy crosses 95%; the head's NTK trace and gradient dwarf the
    embedding's at the start; the clocks reach the stored run's summary."""
    from gdlens.experiments.grokking import run_grokking

    res = run_grokking(p=23, train_fraction=0.8, embedding=32, width=128, lr=3e-3, steps=2000, every=20,
                       group_points=4, ntk_samples=16, fourier_k=3, num_threads=1, progress=False,
                       store=tmp_path / "store")
    s = res.summary
    t_fit, t_gen = s["clocks/fit"], s["clocks/generalization"]
    assert s["grokked"] and s["metrics/test/accuracy"] >= 0.95 and s["metrics/train/accuracy"] == 1.0
    assert t_fit is not None and t_gen is not None and t_gen >= 3 * t_fit
    steps, train_acc = res.series("metrics/train/accuracy")
    assert steps[np.argmax(train_acc == 1.0)] < t_gen / 3
    assert s["clocks/representation"] is not None and s["clocks/representation"] > t_fit
    _, ratio = res.series("groups/head_over_embedding/ntk_trace")
    _, grad_ratio = res.series("groups/head_over_embedding/grad_norm")
    assert ratio[0] > 10 and grad_ratio[0] > 3
    stored = res.run.summary
    assert stored["clocks/generalization"] == t_gen and stored["clocks/fit@0.1"] == s["clocks/fit@0.1"]
    assert res.run.config["grokking"]["p"] == 23


def test_the_representation_clock_so_far_is_nan_until_the_energy_stays_settled():
    # against its latest value the energy is trivially settled at the latest record: no clock yet
    first = clocks_so_far({"step": [0], "loss": [1.0], "accuracy": [0.0], "energy": [5.0]}, 0.1, 0.9)
    assert math.isnan(first["representation"])
    moving = clocks_so_far({"step": [0, 10, 20], "loss": [1.0] * 3, "accuracy": [0.0] * 3, "energy": [5.0, 3.0, 1.0]},
                           0.1, 0.9)
    assert math.isnan(moving["representation"])
    settled = clocks_so_far({"step": [0, 10, 20], "loss": [1.0] * 3, "accuracy": [0.0] * 3, "energy": [5.0, 1.0, 1.02]},
                            0.1, 0.9)
    assert settled["representation"] == 10
