"""flip_flop: the vectorised targets equal a plain loop, the target semantics, the pulse
statistics, and the batch layout."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdlens.tasks import flip_flop, flip_flop_pulses, flip_flop_targets


def reference_targets(pulses: torch.Tensor) -> torch.Tensor:
    """The definition, one trial, channel and step at a time."""
    B, T, C = pulses.shape
    values = pulses.tolist()
    out = [[[0] * C for _ in range(T)] for _ in range(B)]
    for b in range(B):
        for c in range(C):
            held = 0
            for t in range(T):
                v = values[b][t][c]
                if v != 0:
                    held = 1 if v > 0 else -1
                out[b][t][c] = held
    return torch.tensor(out, dtype=torch.int8).reshape(B, T, C)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 17, 2), (8, 90, 3), (2, 200, 5)])
@pytest.mark.parametrize("pulse_prob", [0.0, 0.05, 0.3, 1.0])
def test_vectorised_targets_equal_the_loop_on_drawn_pulses(shape, pulse_prob):
    B, T, C = shape
    pulses = flip_flop_pulses(B, T, C, pulse_prob, seed=B * T + C)
    torch.testing.assert_close(flip_flop_targets(pulses), reference_targets(pulses), rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda B: st.integers(1, 40).flatmap(
            lambda T: st.lists(st.sampled_from([-3, -1, 0, 0, 0, 1, 2]), min_size=B * T * 2, max_size=B * T * 2).map(
                lambda v: torch.tensor(v, dtype=torch.int8).reshape(B, T, 2)
            )
        )
    )
)
def test_vectorised_targets_equal_the_loop_on_arbitrary_pulses(pulses):
    torch.testing.assert_close(flip_flop_targets(pulses), reference_targets(pulses), rtol=0, atol=0)


def test_long_sequences_take_the_wide_key_path():
    # 4T + 7 > 32767 switches the key to int64
    pulses = flip_flop_pulses(2, 9000, 1, 0.001, seed=3)
    assert (pulses != 0).sum() > 4
    torch.testing.assert_close(flip_flop_targets(pulses), reference_targets(pulses), rtol=0, atol=0)


def test_target_semantics_by_hand():
    p = torch.tensor([0, 0, 1, 0, -1, -1, 0, 1, 0], dtype=torch.int8).view(1, 9, 1)
    expected = [0, 0, 1, 1, -1, -1, -1, 1, 1]  # a pulse sets the target at its own step
    assert flip_flop_targets(p).view(-1).tolist() == expected


def test_batch_layout_and_noise():
    clean = flip_flop(16, T=40, bits=4, pulse_prob=0.1, seed=5)
    noisy = flip_flop(16, T=40, bits=4, pulse_prob=0.1, noise=0.3, seed=5)
    assert clean.x.shape == clean.target.shape == (16, 40, 4)
    assert clean.loss == "mse" and clean.x.dtype == torch.float32
    pulses = clean.info["pulses"]
    torch.testing.assert_close(clean.x, pulses.float(), rtol=0, atol=0)
    torch.testing.assert_close(clean.target, reference_targets(pulses).float(), rtol=0, atol=0)
    # noise changes the inputs only; the pulses and targets are those of the clean batch
    torch.testing.assert_close(noisy.info["pulses"], pulses, rtol=0, atol=0)
    torch.testing.assert_close(noisy.target, clean.target, rtol=0, atol=0)
    assert 0.25 < (noisy.x - clean.x).std().item() < 0.35


def test_pulse_statistics():
    pulses = flip_flop_pulses(400, 100, 3, 0.2, seed=0)
    frac_pos = (pulses == 1).double().mean().item()
    frac_neg = (pulses == -1).double().mean().item()
    assert frac_pos == pytest.approx(0.1, abs=0.003) and frac_neg == pytest.approx(0.1, abs=0.003)
    assert set(pulses.unique().tolist()) == {-1, 0, 1}
    assert (flip_flop_pulses(5, 10, 3, 0.0, seed=0) == 0).all()
    assert (flip_flop_pulses(5, 10, 3, 1.0, seed=0) != 0).all()


def test_metric():
    data = flip_flop(32, T=50, pulse_prob=0.1, seed=2)
    assert data.metric(data.target) == {"loss": 0.0, "accuracy": 1.0, "mse": 0.0}
    # flipping the sign on the steps before the first pulse does not count; after it, it does
    started = data.target != 0
    pred = torch.where(started, data.target, torch.ones_like(data.target))
    assert data.metric(pred)["accuracy"] == 1.0
    wrong = data.target.clone()
    wrong[:, :, 0] *= -1
    acc = data.metric(wrong)["accuracy"]
    share0 = started[:, :, 0].sum().item() / started.sum().item()
    assert acc == pytest.approx(1 - share0)
    # loss is gdlens' L: summed over steps and outputs, averaged over trials
    zeros = torch.zeros_like(data.target)
    assert data.metric(zeros)["loss"] == pytest.approx(data.target.pow(2).sum().item() / 32)
