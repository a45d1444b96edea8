"""Experiment 4(b): a two-layer TransformerStack grokking modular addition, with K, G and the
heads' shares of K across training. Its documented claims are asserted at a small size
(p = 23, 80 % of the pairs for training, 1,500 steps; about 40 s on one CPU thread); the default
size (p = 31) gives the numbers in docs/transformers.md."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.experiments.transformer_grokking import (
    TransformerGrokkingResult,
    component_traces,
    equals_tokens,
    transformer_grokking,
)
from gdlens.flow import KPFlow
from gdlens.models import TransformerStack
from gdlens.operators import trace
from gdlens.tasks import modular_addition

SMALL = dict(p=23, train_fraction=0.8, layers=2, steps=1500, kp_every=250, kp_batch=8)
HEADS = 2 * 4  # layers × heads


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small calls: one thread is faster on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def result() -> TransformerGrokkingResult:
    return transformer_grokking(**SMALL)


def test_table(result: TransformerGrokkingResult) -> None:
    assert [r["step"] for r in result.rows] == list(range(0, 1501, 250))
    dim = 8 * 2 * 3 * 32  # B · L · n · d
    assert len(result.heads) == HEADS
    for row in result.rows:
        for key in ("K", "P", "G"):
            assert 1 - 1e-9 <= row[key] <= dim + 1e-9
            assert row[f"{key}_stderr"] >= 0
        shares = {k: v for k, v in row.items() if k.startswith("share/")}
        assert "share/readout" not in shares  # φ is not in K
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
        assert row["heads"] == pytest.approx(sum(row[f"share/{h}"] for h in result.heads), abs=1e-12)
        assert 1 / HEADS - 1e-12 <= row["top_head"] <= 1
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            assert math.isfinite(row[key])
    assert result.at(900)["step"] == 750
    assert "energy/fourier_sparsity" in result.metrics and "metrics/test/accuracy" in result.metrics


def test_documented_claim(result: TransformerGrokkingResult) -> None:
    """The run groks (T_gen ≥ 5 T_fit). The effective ranks of K and G fall to at most 0.6 of
    their initial values, and G's has fallen (to ≤ 0.75 of it) by the generalisation clock, then
    stays within a factor 1.5 to the end: grokking itself does not move it. The heads' share of
    tr K falls below 0.4 of its initial value and below 0.15, the embedding's grows tenfold, and
    no head carries more than 30 % of the heads' trace (1/8 is an equal split)."""
    c = result.clocks
    assert c["grokked"]
    assert c["clocks/fit"] is not None and c["clocks/generalization"] >= 5 * c["clocks/fit"]
    first, last = result.rows[0], result.rows[-1]
    at_gen = result.at(c["clocks/generalization"])
    for key in ("K", "G"):
        assert last[key] <= 0.6 * first[key], key
    assert at_gen["G"] <= 0.75 * first["G"]
    assert 1 / 1.5 <= last["G"] / at_gen["G"] <= 1.5
    assert last["heads"] <= 0.4 * first["heads"] and last["heads"] < 0.15
    assert last["share/embedding"] >= 10 * first["share/embedding"]
    assert max(r["top_head"] for r in result.rows) < 0.3


def test_frame_and_figure(result: TransformerGrokkingResult, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fig = result.figure(str(tmp_path / "tg.png"))
    assert (tmp_path / "tg.png").stat().st_size > 0
    assert len(fig.axes) == 4  # three panels and the loss axis
    pd = pytest.importorskip("pandas")
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(result.rows)


def test_component_traces_are_exact() -> None:
    """tr K_c from the shared vector-Jacobian products equals the exact trace of Σ K_name over
    the component's tensors, and the components sum to tr K."""
    torch.manual_seed(0)
    model = TransformerStack(4, 2, 2, 5, 3, vocab_size=6, d_mlp=8, activation="relu").double()
    x = torch.tensor([[0, 1, 5], [3, 4, 5]])
    kp = KPFlow(model, x, torch.tensor([[1], [2]]), loss="cross_entropy")
    groups = model.parameter_groups()
    traces = component_traces(kp, groups, chunk_size=7)
    assert "readout" not in traces
    for c, value in traces.items():
        op = None
        for name in groups[c]:
            op = kp.K_groups[name] if op is None else op + kp.K_groups[name]
        assert value == pytest.approx(trace(op, method="exact").value, rel=1e-10, abs=1e-12), c
    assert sum(traces.values()) == pytest.approx(trace(kp.K, method="exact").value, rel=1e-10)


def test_equals_tokens() -> None:
    data = equals_tokens(modular_addition(p=7, train_fraction=0.5, seed=0))
    for split in (data.train, data.test):
        assert split.x.shape[1] == 3 and bool((split.x[:, 2] == 7).all())
        assert split.target.shape == (split.x.shape[0], 1)
        assert torch.equal(split.target[:, 0], (split.x[:, 0] + split.x[:, 1]) % 7)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kp_every = 75 must be a multiple of record_every = 50"):
        transformer_grokking(p=5, kp_every=75)
    with pytest.raises(ValueError, match="heads = 3 must divide d_model = 32"):
        transformer_grokking(p=5, heads=3)
    with pytest.raises(ValueError, match="kp_batch = 100 exceeds"):
        transformer_grokking(p=5, kp_batch=100)
    with pytest.raises(ValueError, match="p must be an int >= 2"):
        transformer_grokking(p=1)
    with pytest.raises(ValueError, match="layers must be an int >= 1"):
        transformer_grokking(layers=0)
