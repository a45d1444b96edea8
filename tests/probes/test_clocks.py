"""Training clocks: the clock functions, the energies against their closed forms, the per-group
gradient norms and NTK traces, the probes in a training run, and the deep-linear validation of
the issue (the Schatten bound, T_rep/T_fit on a separable problem, the fit clock of the 1-D
logistic loss under sign descent and under gradient descent)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.models import DeepLinear, EmbeddingMLP, Transformer1L
from gdlens.probes.clocks import (
    ClockProbe,
    EnergyProbe,
    HeadEmbeddingProbe,
    clock_summary,
    embedding_nuclear_norm,
    fit_clock,
    fourier_power,
    fourier_sparsity,
    generalization_clock,
    group_gradient_norms,
    group_ntk_traces,
    l2_energy,
    representation_clock,
    resolve_groups,
    schatten_energy,
)
from gdlens.probes.ntk import empirical_ntk
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


# ------------------------------------------------------------------------------ energies
def balanced_factors(W: torch.Tensor, L: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """W = W_L ⋯ W_1 with every ‖W_ℓ‖_F² = Σ σ^{2/L}: W_1 = Q_1 S^{1/L} Vᵀ,
    W_ℓ = Q_ℓ S^{1/L} Q_{ℓ−1}ᵀ, W_L = U S^{1/L} Q_{L−1}ᵀ, the Q_ℓ (width, r) with orthonormal columns."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    r = S.numel()
    root = torch.diag(S ** (1.0 / L))
    Qs = [torch.linalg.qr(randn(width, r, seed=seed + i))[0] for i in range(L - 1)]
    lefts = Qs + [U]
    rights = [Vh.T] + Qs
    return [lefts[i] @ root @ rights[i].T for i in range(L)]


@pytest.mark.parametrize("L", [1, 2, 3, 5])
def test_schatten_energy_is_attained_by_balanced_factors(L):
    W = randn(4, 6, seed=L)
    factors = balanced_factors(W, L, width=7, seed=10 * L)
    torch.testing.assert_close(gd.probes.representation.end_to_end(factors), W, rtol=1e-10, atol=1e-10)
    s = torch.linalg.svdvals(W)
    expected = L * float((s ** (2.0 / L)).sum())
    assert schatten_energy(factors) == pytest.approx(expected, rel=1e-10)
    assert l2_energy(factors) == pytest.approx(expected, rel=1e-10)
    assert schatten_energy(W, depth=L) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_l2_energy_bounds_the_schatten_energy(seed):
    g = torch.Generator().manual_seed(seed)
    L = int(torch.randint(2, 6, (1,), generator=g))
    dims = torch.randint(1, 6, (L + 1,), generator=g).tolist()
    factors = [torch.randn(dims[i + 1], dims[i], generator=g, dtype=F64) * (i + 1.0) for i in range(L)]
    assert l2_energy(factors) >= schatten_energy(factors) * (1 - 1e-12)
    # unbalancing a balanced factorisation (W_2 → c W_2, W_1 → W_1 / c) keeps the map and raises the l2 energy
    W = randn(3, 3, seed=seed)
    f = balanced_factors(W, 2, width=3, seed=seed)
    unbalanced = [f[0] / 3.0, f[1] * 3.0]
    assert l2_energy(unbalanced) > 1.5 * schatten_energy(unbalanced)
    assert schatten_energy(unbalanced) == pytest.approx(schatten_energy(f), rel=1e-10)


def test_schatten_energy_special_depths_and_nuclear_norm():
    W = randn(5, 3, seed=3)
    s = torch.linalg.svdvals(W)
    assert schatten_energy(W) == pytest.approx(float((W**2).sum()))  # L = 1: Frobenius²
    assert schatten_energy(W, depth=2) == pytest.approx(2 * float(s.sum()))  # L = 2: twice the nuclear norm
    assert embedding_nuclear_norm(W) == pytest.approx(float(s.sum()))
    with pytest.raises(ValueError, match="depth"):
        schatten_energy(W, depth=0)
    with pytest.raises(ValueError, match="embedding"):
        embedding_nuclear_norm(randn(2, 3, 4))


@pytest.mark.parametrize("p", [23, 24])
def test_fourier_power_parseval_and_sparsity(p):
    E = randn(p, 6, seed=p)
    P = fourier_power(E)
    assert P.shape == (p // 2 + 1,)
    assert float(P.sum()) == pytest.approx(float((E**2).sum()), rel=1e-10)
    assert float(P[1:].sum()) == pytest.approx(float(((E - E.mean(0)) ** 2).sum()), rel=1e-10)
    # built from the frequencies 2, 5 and 9 (plus a constant): all non-constant power there
    t = torch.arange(p, dtype=F64)[:, None]
    coeffs = randn(6, 6, seed=1)
    cols = [torch.cos(2 * math.pi * k * t / p + phase) for k in (2, 5, 9) for phase in (0.3, 1.1)]
    E3 = torch.cat(cols, 1) @ coeffs + 4.0
    P3 = fourier_power(E3)
    assert set(torch.topk(P3[1:], 3).indices.add(1).tolist()) == {2, 5, 9}
    assert fourier_sparsity(E3, k=3) == pytest.approx(1.0, abs=1e-10)
    assert fourier_sparsity(E3, k=2) < 0.9
    # a random embedding spreads its power: about k/⌊p/2⌋
    assert fourier_sparsity(E, k=3) < 0.5
    assert fourier_sparsity(E, k=p) == pytest.approx(1.0)
    assert math.isnan(fourier_sparsity(torch.ones(p, 3), k=2))
    with pytest.raises(ValueError, match="k"):
        fourier_sparsity(E, k=0)


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


def test_clock_probe_restarts_on_a_new_run_and_checks_energy():
    probe = ClockProbe(schedule=1, eps=0.5, energy="schatten")
    m = DeepLinear(3, 3, 2, depth=2).double()
    data = gd.tasks.TaskData(x=randn(8, 3), target=torch.arange(8) % 2, loss="cross_entropy", num_classes=2)
    ctx = gd.probes.ProbeContext(0, m, data, None, None, {}, lambda mm: data.loss_value(mm(data.x)))
    first = probe.compute(ctx)
    assert math.isnan(first["generalization"]) and first["representation"] == 0
    probe.compute(gd.probes.ProbeContext(1, m, data))
    assert len(probe.observations["step"]) == 2
    probe.compute(ctx)  # step 0 again: a new run
    assert probe.observations["step"] == [0]
    with pytest.raises(ValueError, match="energy"):
        ClockProbe(energy="entropy")


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
