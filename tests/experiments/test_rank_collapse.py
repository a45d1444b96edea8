"""The rank-collapse experiment: its documented claim at the default (small) size, its table,
its figure and its argument checks."""

from __future__ import annotations

import pytest
import torch

from gdlens.experiments.rank_collapse import VARIANTS, RankCollapseResult, rank_collapse, token_residual

SKIP_OF = {"attn-only": "attn+skip", "attn+mlp": "attn+skip+mlp"}


@pytest.fixture(scope="module")
def result() -> RankCollapseResult:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # many small calls: one thread is faster on a shared machine
    try:
        return rank_collapse()  # depths 1, 2, 4, 8, every variant, seed 0, exact traces
    finally:
        torch.set_num_threads(before)


def test_table(result: RankCollapseResult) -> None:
    assert len(result.rows) == 4 * len(VARIANTS)
    for row in result.rows:
        B, n, d = 2, 4, 8
        assert row["dim"] == B * row["depth"] * n * d
        for key in ("K", "P", "G"):
            assert 1 - 1e-9 <= row[key] <= row["dim"] + 1e-9
            assert row[f"{key}_stderr"] == 0.0  # exact traces
        assert 1 - 1e-9 <= row["G_tokens"] <= n + 1e-9
        if row["depth"] == 1:  # one step: P = I
            assert row["P"] == pytest.approx(row["dim"])
            assert row["G"] == pytest.approx(row["K"])


def test_documented_claim(result: RankCollapseResult) -> None:
    """At depth ≥ 4 the stacks without skip connections collapse in the forward pass and in P
    and G (at depth 8 G acts on about one token direction); with skips they do not; K's
    effective rank grows with depth in every variant."""
    for depth in (4, 8):
        for no_skip, skip in SKIP_OF.items():
            assert result.mean(no_skip, depth, "token_residual") < 0.1
            assert result.mean(skip, depth, "token_residual") > 0.5
            for key in ("P", "G"):
                assert result.mean(no_skip, depth, key) <= 0.5 * result.mean(skip, depth, key), (no_skip, depth, key)
    for no_skip, skip in SKIP_OF.items():
        assert result.mean(no_skip, 8, "G_tokens") < 1.2
        assert result.mean(skip, 8, "G_tokens") > 2.0
    for variant in VARIANTS:
        ks = [result.mean(variant, L, "K") for L in (1, 2, 4, 8)]
        assert ks == sorted(ks), variant


def test_frame_and_figure(result: RankCollapseResult, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fig = result.figure(str(tmp_path / "rc.png"))
    assert (tmp_path / "rc.png").stat().st_size > 0
    assert len(fig.axes) == 5
    pd = pytest.importorskip("pandas")
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(result.rows)


def test_token_residual() -> None:
    X = torch.randn(3, 5, 4, dtype=torch.float64)
    assert 0 < token_residual(X) <= 1
    assert token_residual(torch.ones(2, 5, 4)) == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="variants must be among"):
        rank_collapse(variants=["attn"])
    with pytest.raises(ValueError, match="depths must be positive ints"):
        rank_collapse(depths=[0])
    with pytest.raises(KeyError, match="no rows"):
        RankCollapseResult().mean("attn-only", 1, "K")
