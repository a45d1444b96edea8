"""gdlens.losses, the one loss L: against torch's own losses with explicit reductions and a
hand-written masked sum, in float64; class and probability targets; bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gdlens as gd
from gdlens.losses import check_target, cross_entropy_loss, loss_value, mse_loss, per_step_loss, resolve_loss

F64 = torch.float64
B, T, O = 3, 5, 4


def draw(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def classes(*shape, seed=1):
    return torch.randint(0, O, shape, generator=torch.Generator().manual_seed(seed))


def probabilities(*shape, seed=2):
    return torch.softmax(draw(*shape, seed=seed), dim=-1)


def hand_masked(ell_of_step, mask):
    """(1/B) Σ_b Σ_t m_bt ℓ_bt written as loops over trials and steps."""
    total = 0.0
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            total += float(mask[b, t]) * float(ell_of_step(b, t))
    return total / mask.shape[0]


@pytest.mark.parametrize("shape", [(B, T, O), (B, O)])
def test_mse_is_torch_sum_over_everything_divided_by_the_batch(shape):
    y, target = draw(*shape), draw(*shape, seed=3)
    expected = F.mse_loss(y, target, reduction="sum") / shape[0]
    torch.testing.assert_close(loss_value(y, target, "mse"), expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(mse_loss(y, target), expected, rtol=1e-14, atol=0)
    # per step: torch's unreduced squares summed over outputs; and "mean" rescaled by the entries per trial
    torch.testing.assert_close(per_step_loss(y, target, "mse"), F.mse_loss(y, target, reduction="none").sum(-1))
    per_trial = torch.tensor(shape[1:]).prod()
    torch.testing.assert_close(mse_loss(y, target), F.mse_loss(y, target, reduction="mean") * per_trial)


@pytest.mark.parametrize("shape", [(B, T, O), (B, O)])
def test_cross_entropy_with_classes_and_probabilities_is_torch_sum_divided_by_the_batch(shape):
    y = draw(*shape)
    c, p = classes(*shape[:-1]), probabilities(*shape)
    flat_y = y.reshape(-1, O)
    expected_c = F.cross_entropy(flat_y, c.reshape(-1), reduction="sum") / shape[0]
    expected_p = F.cross_entropy(flat_y, p.reshape(-1, O), reduction="sum") / shape[0]
    torch.testing.assert_close(loss_value(y, c, "cross_entropy"), expected_c, rtol=1e-14, atol=0)
    torch.testing.assert_close(cross_entropy_loss(y, p), expected_p, rtol=1e-14, atol=0)
    unreduced = F.cross_entropy(flat_y, c.reshape(-1), reduction="none").reshape(shape[:-1])
    torch.testing.assert_close(per_step_loss(y, c, "cross_entropy"), unreduced)


def test_one_hot_probabilities_give_the_class_loss():
    y, c = draw(B, T, O), classes(B, T)
    one_hot = F.one_hot(c, O).to(F64)
    mask = draw(B, T, seed=5) > 0
    for m in (None, mask):
        torch.testing.assert_close(loss_value(y, one_hot, "cross_entropy", m), loss_value(y, c, "cross_entropy", m),
                                   rtol=1e-14, atol=0)
    # a one-hot target is not the same as a smoothed one: the test can tell them apart
    smoothed = 0.9 * one_hot + 0.1 / O
    assert abs(float(cross_entropy_loss(y, smoothed) - cross_entropy_loss(y, c))) > 1e-3


def test_masked_loss_is_the_hand_written_masked_sum_over_the_batch():
    y, target, c, p = draw(B, T, O), draw(B, T, O, seed=3), classes(B, T), probabilities(B, T, O)
    mask = torch.tensor([[1, 1, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)
    got = loss_value(y, target, "mse", mask)
    assert float(got) == pytest.approx(hand_masked(lambda b, t: ((y[b, t] - target[b, t]) ** 2).sum(), mask), rel=1e-14)
    logp = torch.log_softmax(y, -1)
    got = loss_value(y, c, "cross_entropy", mask)
    assert float(got) == pytest.approx(hand_masked(lambda b, t: -logp[b, t, c[b, t]], mask), rel=1e-14)
    got = loss_value(y, p, "cross_entropy", mask)
    assert float(got) == pytest.approx(hand_masked(lambda b, t: -(p[b, t] * logp[b, t]).sum(), mask), rel=1e-14)
    # the divisor is B (not the number of unmasked steps), and real weights count as weights
    weights = mask.to(F64) * 0.5
    torch.testing.assert_close(loss_value(y, target, "mse", weights), 0.5 * loss_value(y, target, "mse", mask))
    assert float(loss_value(y, target, "mse", mask)) < float(loss_value(y, target, "mse"))


def test_the_gradient_of_the_masked_loss_and_vmap():
    y, target = draw(B, T, O), draw(B, T, O, seed=3)
    mask = draw(B, T, seed=4) > 0
    grad = torch.func.grad(lambda out: mse_loss(out, target, mask))(y)
    torch.testing.assert_close(grad, 2 * (y - target) * mask[..., None] / B, rtol=1e-14, atol=1e-15)
    # vmapped over members (as the ensemble does): each member's own L
    ys, ts = draw(2, B, T, O, seed=6), draw(2, B, T, O, seed=7)
    got = torch.vmap(lambda a, b: loss_value(a, b, "mse", mask))(ys, ts)
    torch.testing.assert_close(got, torch.stack([loss_value(ys[i], ts[i], "mse", mask) for i in range(2)]))


def test_every_layer_uses_the_one_loss():
    from gdlens.flow import losses as flow_losses
    from gdlens.tasks import base as task_base

    assert task_base.loss_value is loss_value
    assert flow_losses.mse_loss is mse_loss and gd.flow.cross_entropy_loss is cross_entropy_loss
    assert flow_losses.resolve_loss("mse") == ("mse", mse_loss)
    data = gd.tasks.flip_flop(batch_size=4, T=6, seed=0, dtype=F64)
    pred = draw(*data.target.shape)
    torch.testing.assert_close(data.loss_value(pred), loss_value(pred, data.target, data.loss, data.mask))


def test_bad_input_names_the_argument_and_the_shapes():
    y, target, c = draw(B, T, O), draw(B, T, O), classes(B, T)
    with pytest.raises(ValueError, match=r"mask must have the steps' shape .*\(3, 5\).*got mask \(3, 4\)"):
        loss_value(y, target, "mse", torch.ones(B, T - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must have the steps' shape"):
        loss_value(y, target, "mse", torch.ones(B, T, O, dtype=torch.bool))  # per output: not a step mask
    with pytest.raises(ValueError, match=r"loss='mse' needs a target shaped like the output y \(3, 5, 4\)"):
        mse_loss(y, target[:, :-1])
    with pytest.raises(ValueError, match=r"integer class targets of shape y.shape\[:-1\] = \(3, 5\)"):
        cross_entropy_loss(y, c[:, :-1])
    with pytest.raises(ValueError, match="class probabilities needs a target shaped like the logits"):
        cross_entropy_loss(y, probabilities(B, T, O + 1))
    with pytest.raises(ValueError, match="integer classes or real probabilities, got dtype torch.bool"):
        cross_entropy_loss(y, c > 0)
    with pytest.raises(ValueError, match="loss must be one of"):
        loss_value(y, target, "l1")
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        loss_value(y, target.tolist(), "mse")
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        loss_value(y, target, "mse", [[True] * T] * B)
    with pytest.raises(ValueError, match="batch axis"):
        loss_value(torch.tensor(1.0), torch.tensor(1.0), "mse")
    with pytest.raises(ValueError, match="or a callable"):
        resolve_loss("hinge")
    with pytest.raises(TypeError, match="string or a callable"):
        resolve_loss(3)


def test_check_target_checks_once_and_converts():
    y = draw(B, T, O)
    assert check_target("cross_entropy", y, classes(B, T).to(torch.int32)).dtype == torch.long
    assert check_target("mse", y, draw(B, T, O).float()).dtype == F64
    with pytest.raises(ValueError, match=r"must lie in 0..3 \(O = 4\), got values in 4..4"):
        check_target("cross_entropy", y, torch.full((B, T), 4))
    with pytest.raises(ValueError, match="real-valued target"):
        check_target("mse", y, classes(B, T, O))
    with pytest.raises(ValueError, match=r"target shaped like the output y"):
        check_target("mse", y, draw(B + 1, T, O))
    odd = object()
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        check_target("callable", y, odd)
