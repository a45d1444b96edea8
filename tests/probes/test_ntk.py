"""Empirical NTK against closed forms and dense Jacobians; kernel comparisons on known kernels;
the NTK probe inside gd.train against the kernel built by plain reverse-mode autograd."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import gdlens as gd
from probe_helpers import assert_declared_keys_recorded
from gdlens.operators import DenseOperator, top_eigs
from gdlens.probes import ProbeContext, Schedule
from gdlens.probes.ntk import (
    NTKProbe,
    empirical_ntk,
    kernel_distance,
    kernel_spectrum,
    kernel_target_alignment,
    kernel_velocity,
    ntk_effective_rank,
    ntk_entries,
    ntk_matrix,
    parameter_jacobian,
)
from gdlens.probes.plumbing import spread_indices

F64 = torch.float64


def linear_model(p, x):
    out = x @ p["W"].T
    return out + p["b"] if "b" in p else out


def test_linear_model_ntk_closed_form():
    gen = torch.Generator().manual_seed(0)
    B, d, O = 5, 3, 2
    X = torch.randn(B, d, generator=gen, dtype=F64)
    W = torch.randn(O, d, generator=gen, dtype=F64)
    K = empirical_ntk(linear_model, {"W": W}, X)
    assert K.shape_in == (B, O) and K.is_symmetric
    # Θ[(b,o),(b',o')] = (x_b·x_b') δ_oo'
    assert torch.allclose(K.dense(), torch.kron(X @ X.T, torch.eye(O, dtype=F64)), atol=1e-12)
    b = torch.randn(O, generator=gen, dtype=F64)
    Kb = empirical_ntk(linear_model, {"W": W, "b": b}, X)
    assert torch.allclose(Kb.dense(), torch.kron(X @ X.T + 1.0, torch.eye(O, dtype=F64)), atol=1e-12)


def mlp(p, x):
    return torch.tanh(x @ p["W1"].T + p["b1"]) @ p["W2"].T


def mlp_params(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {
        "W1": torch.randn(6, 3, generator=gen, dtype=F64),
        "b1": torch.randn(6, generator=gen, dtype=F64),
        "W2": torch.randn(2, 6, generator=gen, dtype=F64),
    }


def dense_ntk(p, x):
    names = list(p)
    sizes = [p[n].numel() for n in names]
    theta = torch.cat([p[n].reshape(-1) for n in names])

    def f(t):
        pieces = torch.split(t, sizes)
        return mlp({n: q.reshape(p[n].shape) for n, q in zip(names, pieces)}, x)

    J = torch.func.jacrev(f)(theta).reshape(-1, theta.numel())
    return J @ J.T, J


def test_mlp_ntk_matches_dense_jacobian():
    p = mlp_params()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    K = empirical_ntk(mlp, p, x)
    dense, J = dense_ntk(p, x)
    assert torch.allclose(K.dense(), dense, atol=1e-10)
    Jop = parameter_jacobian(mlp, p, x)
    assert torch.allclose(Jop.dense(), J, atol=1e-12)
    assert torch.allclose(Jop.T.dense(), J.T, atol=1e-12)
    vals = top_eigs(K, 3).values
    assert torch.allclose(vals, torch.linalg.eigvalsh(dense).flip(0)[:3], rtol=1e-8)


def test_kernel_distance_known_values():
    gen = torch.Generator().manual_seed(3)
    L = torch.randn(6, 6, generator=gen, dtype=F64)
    K = L @ L.T
    assert kernel_distance(K, K) == pytest.approx(0.0, abs=1e-12)
    assert kernel_distance(K, 3.7 * K) == pytest.approx(0.0, abs=1e-12)
    K1 = torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64))
    K2 = torch.diag(torch.tensor([0.0, 0.0, 2.0, 5.0], dtype=F64))
    assert kernel_distance(K1, K2) == pytest.approx(1.0)
    e1 = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    assert kernel_distance(e1, torch.eye(2, dtype=F64)) == pytest.approx(1 - 1 / math.sqrt(2))
    # operators and mixed inputs agree with the dense computation
    A = DenseOperator(K1, is_symmetric=True)
    assert kernel_distance(A, K2) == pytest.approx(1.0)
    assert kernel_distance(A, DenseOperator(2 * K1)) == pytest.approx(0.0, abs=1e-12)


def test_kernel_distance_between_ntks_of_two_parameter_points():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    p0, p1 = mlp_params(1), mlp_params(5)
    K0, K1 = empirical_ntk(mlp, p0, x), empirical_ntk(mlp, p1, x)
    D0, D1 = dense_ntk(p0, x)[0], dense_ntk(p1, x)[0]
    expected = kernel_distance(D0, D1)
    assert 0.0 < expected < 1.0
    assert kernel_distance(K0, K1) == pytest.approx(expected, rel=1e-10)
    assert kernel_distance(K0, D1.reshape(4, 2, 4, 2)) == pytest.approx(expected, rel=1e-10)  # shaped dense
    assert kernel_distance(K0, K0) == pytest.approx(0.0, abs=1e-12)
    assert kernel_velocity(K0, K1, dt=4.0) == pytest.approx(expected / 4.0, rel=1e-10)
    with pytest.raises(ValueError, match="dt"):
        kernel_velocity(K0, K1, dt=0.0)


def test_kernel_target_alignment_known_values():
    gen = torch.Generator().manual_seed(6)
    n = 8
    y = torch.randn(n, generator=gen, dtype=F64)
    assert kernel_target_alignment(torch.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_target_alignment(torch.eye(n, dtype=F64), y) == pytest.approx(1 / math.sqrt(n))
    # orthogonal to the targets: 0
    z = torch.randn(n, generator=gen, dtype=F64)
    z = z - (z @ y) / (y @ y) * y
    assert kernel_target_alignment(torch.outer(z, z), y) == pytest.approx(0.0, abs=1e-12)
    # a constant offset in the targets: uncentred alignment < 1, centred = 1
    yc = y - y.mean()
    y_off = yc + 2.0
    K = torch.outer(yc, yc)
    assert kernel_target_alignment(K, y_off) == pytest.approx(float(yc @ yc / (y_off @ y_off)))
    assert kernel_target_alignment(K, y_off, centered=True) == pytest.approx(1.0)
    # several target columns: ⟨K, YYᵀ⟩ / (‖K‖ ‖YYᵀ‖)
    Y = torch.randn(n, 3, generator=gen, dtype=F64)
    assert kernel_target_alignment(Y @ Y.T, Y) == pytest.approx(1.0)
    assert kernel_target_alignment(torch.eye(n, dtype=F64), Y) == pytest.approx(
        float(torch.trace(Y.T @ Y) / (math.sqrt(n) * (Y.T @ Y).norm()))
    )


def test_kernel_target_alignment_operator_matches_dense():
    p = mlp_params()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(8), dtype=F64)
    K = empirical_ntk(mlp, p, x)
    D = dense_ntk(p, x)[0]
    yf = y.reshape(-1)
    expected = float(yf @ D @ yf / (D.norm() * (yf @ yf)))
    assert kernel_target_alignment(K, y) == pytest.approx(expected, rel=1e-10)
    # centred over the batch axis: H on (B, O) subtracts the batch mean of each output
    H = torch.kron(torch.eye(5, dtype=F64) - 1 / 5, torch.eye(2, dtype=F64))
    Dc, yc = H @ D @ H, H @ yf
    expected_c = float(yc @ Dc @ yc / (Dc.norm() * (yc @ yc)))
    assert kernel_target_alignment(K, y, centered=True) == pytest.approx(expected_c, rel=1e-10)
    # the dense kernel with y shaped (B, O): the same centring over the batch axis, not over all B·O rows
    assert kernel_target_alignment(D, y, centered=True) == pytest.approx(expected_c, rel=1e-10)
    assert kernel_target_alignment(D, y) == pytest.approx(expected, rel=1e-10)


def test_ntk_effective_rank():
    assert ntk_effective_rank(torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=F64))) == pytest.approx(3.0)
    u = torch.randn(5, dtype=F64)
    assert ntk_effective_rank(torch.outer(u, u)) == pytest.approx(1.0)
    p = mlp_params()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    D = dense_ntk(p, x)[0]
    assert ntk_effective_rank(empirical_ntk(mlp, p, x)) == pytest.approx(ntk_effective_rank(D), rel=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        kernel_distance(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(3, 3\) and \(4, 4\)"):
        kernel_distance(torch.eye(3), torch.eye(4))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        kernel_target_alignment(torch.eye(4, dtype=F64), torch.zeros(5, dtype=F64))
    p = mlp_params()
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        kernel_target_alignment(empirical_ntk(mlp, p, x), torch.zeros(8, dtype=F64))


def test_kernel_spectrum():
    L = torch.randn(5, 3, generator=torch.Generator().manual_seed(10), dtype=F64)
    K = L @ L.T  # rank 3
    ev = torch.linalg.eigvalsh(K)
    spec = kernel_spectrum(K)
    assert spec.size == 5 and spec.trace == pytest.approx(float(ev.sum()))
    assert spec.lambda_max == pytest.approx(float(ev[-1]))
    assert spec.effective_rank == pytest.approx(float(ev.sum() ** 2 / (ev**2).sum()))
    assert 1.0 <= spec.effective_rank <= 3.0
    assert kernel_spectrum(K.reshape(5, 1, 5, 1)) == spec


# ---------------------------------------------------------------------- the probe
def mlp_model(input_size=3, width=10, output_size=2, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return gd.models.MLP(input_size, width, output_size).to(F64)


def call(model: nn.Module):
    """``(params, x) -> model(x)`` with the parameters given, by torch.func.functional_call."""
    return lambda p, x: torch.func.functional_call(model, p, (x,))


def autograd_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Dense truth: Θ = J Jᵀ with the rows of J from plain reverse-mode autograd, one backward
    pass per output entry (the model in eval mode; no torch.func)."""
    was = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(x).reshape(-1)
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, params, retain_graph=True)]) for o in out]
    model.train(was)
    J = torch.stack(rows)
    return J @ J.T


def run_once(probe, ctx):
    """One call of a probe as the Recorder makes it: init, then compute."""
    return probe.compute(ctx, probe.init(ctx))


def keys(result, probe_name: str) -> set[str]:
    return {k.split("/", 1)[1] for k in result.history if k.startswith(probe_name + "/")}


def gru_setup(seed=0):
    torch.manual_seed(seed)
    model = gd.models.GRU(2, 4, 2).to(F64)
    data = gd.tasks.flip_flop(batch_size=6, T=5, bits=2, pulse_prob=0.3, dtype=F64)
    return model, data


def gru_output(model, p, x):
    """The GRU's output from explicit parameters, through its own pure functions."""
    theta = {k: v for k, v in p.items() if not k.startswith("readout.")}
    phi = {k: v for k, v in p.items() if k.startswith("readout.")}
    return model.read(phi, model.unroll(theta, x))


def test_ntk_probe_on_a_regression_with_two_outputs():
    model = mlp_model()
    initial = copy.deepcopy(model)
    data = gd.tasks.teacher_student(40, input_dim=3, output_dim=2, dtype=F64)
    n = 6
    probes = [NTKProbe(n_samples=n, schedule=Schedule(every=10)),
              NTKProbe(n_samples=n, centered=True, name="ntk_c", schedule=Schedule(every=10))]
    result = gd.train(model, data, optimizer="sgd", lr=0.05, steps=20, probes=probes, progress=False)
    assert keys(result, "ntk") == {"trace", "lambda_max", "effective_rank", "size", "kernel_distance",
                                   "target_alignment"}
    idx = spread_indices(40, n)
    assert idx.tolist() == [0, 8, 16, 23, 31, 39]
    x, y = data.x[idx], data.target[idx]
    K, K0 = autograd_ntk(model, x), autograd_ntk(initial, x)
    assert K.shape == (2 * n, 2 * n)
    torch.testing.assert_close(result.recorder.states["ntk"]["K0"], K0, rtol=1e-10, atol=1e-12)
    last = result.recorder.last
    ev = torch.linalg.eigvalsh(K)
    assert last("ntk/trace") == pytest.approx(float(torch.trace(K)), rel=1e-10)
    assert last("ntk/lambda_max") == pytest.approx(float(ev[-1]), rel=1e-10)
    assert last("ntk/effective_rank") == pytest.approx(float(ev.sum() ** 2 / (ev**2).sum()), rel=1e-10)
    assert last("ntk/size") == 2 * n
    cos = float((K * K0).sum() / (K.norm() * K0.norm()))
    assert last("ntk/kernel_distance") == pytest.approx(1 - cos, rel=1e-8, abs=1e-14)
    assert result.series("ntk/kernel_distance")[1][0] == pytest.approx(0.0, abs=1e-14)
    assert last("ntk/kernel_distance") > 1e-6
    yf = y.reshape(-1)
    assert last("ntk/target_alignment") == pytest.approx(float(yf @ K @ yf / (K.norm() * (yf @ yf))), rel=1e-10)
    # centred over the samples: H = (I_n − 11ᵀ/n) ⊗ I_2 on kernel and targets
    H = torch.kron(torch.eye(n, dtype=F64) - 1 / n, torch.eye(2, dtype=F64))
    Kc, yc = H @ K @ H, H @ yf
    assert last("ntk_c/target_alignment") == pytest.approx(float(yc @ Kc @ yc / (Kc.norm() * (yc @ yc))), rel=1e-8)
    Kop = DenseOperator(K, shape_in=(n, 2), shape_out=(n, 2), is_symmetric=True)
    assert last("ntk_c/target_alignment") == pytest.approx(kernel_target_alignment(Kop, y, centered=True), rel=1e-8)


def test_one_probe_list_serves_two_runs():
    """The second run is measured against its own first kernel (with the state on the probe, it
    was measured against the first run's)."""
    data = gd.tasks.teacher_student(40, input_dim=3, output_dim=2, dtype=F64)
    probes = [NTKProbe(n_samples=4, schedule=Schedule(every=10))]
    x = data.x[spread_indices(40, 4)]
    finals, initials = [], []
    for seed in (0, 1):
        model = mlp_model(seed=seed)
        initials.append(autograd_ntk(model, x))
        result = gd.train(model, data, optimizer="sgd", lr=0.05, steps=10, probes=probes, progress=False)
        finals.append(autograd_ntk(model, x))
        distances = result.series("ntk/kernel_distance")[1]
        assert distances[0] == pytest.approx(0.0, abs=1e-14)
        K, K0 = finals[-1], initials[-1]
        assert distances[-1] == pytest.approx(float(1 - (K * K0).sum() / (K.norm() * K0.norm())), rel=1e-8)
        torch.testing.assert_close(result.recorder.states["ntk"]["K0"], K0, rtol=1e-10, atol=1e-12)
    assert kernel_distance(initials[0], initials[1]) > 1e-3  # the two runs' kernels differ


def test_ntk_probe_on_layernorm_embedding_and_dropout():
    """Tokens through nn.Embedding, nn.LayerNorm and nn.Dropout: the probe measures the model in
    eval mode (dropout off), in float64, against the kernel of plain autograd, and leaves the
    model's mode as it was."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 4), nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, 6), nn.Tanh(),
                          nn.Dropout(0.5), nn.Linear(6, 3)).to(F64)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 7, (10, 3), generator=gen)
    data = gd.tasks.TaskData(x, torch.randn(10, 3, generator=gen, dtype=F64))
    model.train()
    state = NTKProbe(n_samples=5).init(ProbeContext(0, model, batch=data))
    out, state = NTKProbe(n_samples=5).compute(ProbeContext(0, model, batch=data), state)
    assert model.training
    idx = spread_indices(10, 5)
    K = autograd_ntk(model, x[idx])
    ev = torch.linalg.eigvalsh(K)
    assert out["trace"] == pytest.approx(float(ev.sum()), rel=1e-10)
    assert out["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-10)
    assert out["effective_rank"] == pytest.approx(float(ev.sum() ** 2 / (ev**2).sum()), rel=1e-10)
    y = data.target[idx].reshape(-1)
    assert out["target_alignment"] == pytest.approx(float(y @ K @ y / (K.norm() * (y @ y))), rel=1e-10)
    assert out["size"] == 15 and out["kernel_distance"] == pytest.approx(0.0, abs=1e-14)
    # inside gd.train (which leaves the model in train mode between steps) the kernel is still dropout's
    result = gd.train(model, data, optimizer="sgd", lr=0.1, steps=4,
                      probes=[NTKProbe(n_samples=5, schedule=Schedule(every=2))], progress=False)
    assert result.recorder.last("ntk/trace") == pytest.approx(float(torch.trace(autograd_ntk(model, x[idx]))),
                                                              rel=1e-10)


def test_ntk_probe_with_cross_entropy_and_on_a_gru():
    data = gd.tasks.modular_addition(p=5, train_fraction=0.6, encoding="one_hot", seed=1, dtype=F64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 5)).to(F64)
    out, state = run_once(NTKProbe(n_samples=4), ProbeContext(0, model, batch=data.train))
    idx = spread_indices(data.train.x.shape[0], 4)
    x = data.train.x[idx]
    K = autograd_ntk(model, x)
    onehot = torch.nn.functional.one_hot(data.train.target[idx], 5).to(F64).reshape(-1)
    assert out["target_alignment"] == pytest.approx(float(onehot @ K @ onehot / (K.norm() * (onehot @ onehot))),
                                                    rel=1e-10)
    assert out["kernel_distance"] == pytest.approx(0.0, abs=1e-14)
    torch.testing.assert_close(state["K0"], K, rtol=1e-10, atol=1e-12)
    # a GRU: outputs (n, T, O), the kernel of the model's own pure functions
    gru, seq = gru_setup()
    out, _ = run_once(NTKProbe(n_samples=2), ProbeContext(0, gru, batch=seq))
    xs = seq.x[spread_indices(6, 2)]
    Kg = empirical_ntk(lambda p, x: gru_output(gru, p, x), dict(gru.named_parameters()), xs).dense()
    assert Kg.shape == (2 * 5 * 2, 2 * 5 * 2)
    assert out["trace"] == pytest.approx(float(torch.trace(Kg)), rel=1e-10)
    assert out["effective_rank"] == pytest.approx(ntk_effective_rank(Kg), rel=1e-10)
    rows7 = ntk_matrix(lambda p, x: gru_output(gru, p, x), dict(gru.named_parameters()), xs, chunk_size=7)
    torch.testing.assert_close(rows7, Kg, rtol=1e-10, atol=1e-12)


def test_ntk_probe_keeps_at_most_max_outputs_entries():
    """Past max_outputs, the kernel is the principal submatrix of the full NTK on evenly spread
    entries of every sample; for classification the samples' own classes are among them."""
    gru, seq = gru_setup()
    out, state = run_once(NTKProbe(n_samples=2, max_outputs=8), ProbeContext(0, gru, batch=seq))
    xs = seq.x[spread_indices(6, 2)]
    fn = lambda p, x: gru_output(gru, p, x)  # noqa: E731
    full = empirical_ntk(fn, dict(gru.named_parameters()), xs).dense()  # (2·5·2)²
    cols = spread_indices(10, 4)  # 4 of each sample's T·O = 10 entries
    entries = state["entries"]
    assert entries.tolist() == cols.tolist() + (10 + cols).tolist()
    sub = full[entries][:, entries]
    assert out["trace"] == pytest.approx(float(torch.trace(sub)), rel=1e-10)
    assert out["effective_rank"] == pytest.approx(ntk_effective_rank(sub), rel=1e-10)
    assert out["size"] == 8
    torch.testing.assert_close(ntk_matrix(fn, dict(gru.named_parameters()), xs, entries=entries), sub, atol=1e-12,
                               rtol=1e-10)

    data = gd.tasks.modular_addition(p=11, train_fraction=0.6, encoding="one_hot", seed=2, dtype=F64)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(22, 8), nn.ReLU(), nn.Linear(8, 11)).to(F64)
    out, state = run_once(NTKProbe(n_samples=3, max_outputs=12), ProbeContext(0, model, batch=data.train))
    idx = spread_indices(data.train.x.shape[0], 3)
    classes = data.train.target[idx]
    per_sample = state["entries"].reshape(3, 4) - 11 * torch.arange(3)[:, None]
    assert (per_sample == per_sample[0]).all() and set(classes.tolist()) <= set(per_sample[0].tolist())
    assert per_sample[0].tolist() == ntk_entries(data.train, idx, (3, 11), 12)[:4].tolist()
    sub = autograd_ntk(model, data.train.x[idx])[state["entries"]][:, state["entries"]]
    y = torch.nn.functional.one_hot(classes, 11).to(F64).reshape(-1)[state["entries"]]
    assert out["target_alignment"] == pytest.approx(float(y @ sub @ y / (sub.norm() * (y @ y))), rel=1e-10)


class TiedAutoencoder(nn.Module):
    """``y = W tanh(W x + b) + c``: one weight W held by two modules (``dec.weight`` is ``enc.weight``)."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(d, d), nn.Linear(d, d)
        self.dec.weight = self.enc.weight

    def forward(self, x):
        return self.dec(torch.tanh(self.enc(x)))


def test_ntk_probe_swaps_tied_weights_together():
    """One weight in two modules: both uses of W move (a swap of one slot only gives another kernel)."""
    torch.manual_seed(0)
    model = TiedAutoencoder().to(F64)
    data = gd.tasks.teacher_student(20, input_dim=3, output_dim=3, dtype=F64)
    out, _ = run_once(NTKProbe(n_samples=4), ProbeContext(0, model, batch=data))
    K = autograd_ntk(model, data.x[spread_indices(20, 4)])  # autograd sees W once, used twice
    assert out["trace"] == pytest.approx(float(torch.diagonal(K).sum()), rel=1e-10)
    assert out["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(K)[-1]), rel=1e-10)


def test_ntk_probe_declares_what_it_records_and_fails_early():
    probe = NTKProbe(schedule=Schedule(every=5))
    model = mlp_model()
    data = gd.tasks.teacher_student(20, input_dim=3, output_dim=2, dtype=F64)
    result = gd.train(model, data, optimizer="sgd", lr=0.05, steps=5, probes=[probe], progress=False)
    recorded = keys(result, "ntk")
    assert_declared_keys_recorded(probe, recorded, specs=False)
    assert {m.key for m in probe.metric_specs} == recorded
    assert gd.probes.base.is_probe(probe) and NTKProbe().schedule.log_points is not None
    with pytest.warns(DeprecationWarning, match="Recorder"):
        probe.reset()
    with pytest.warns(DeprecationWarning, match="K0"):
        assert probe.initial_kernel is None
    # no data yet: no state, nothing recorded; a model without trainable parameters fails at init
    assert probe.init(ProbeContext(0, model)) is None
    assert probe.compute(ProbeContext(0, model), None) == ({}, None)
    with pytest.raises(ValueError, match="no trainable parameters"):
        probe.init(ProbeContext(0, nn.Sequential(nn.Tanh()), batch=data))
    with pytest.raises(ValueError, match="data must be"):
        NTKProbe(data="test")
    with pytest.raises(ValueError, match="positive"):
        NTKProbe(n_samples=0)
