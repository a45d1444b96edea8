"""teacher_student: y is the returned teacher applied to x."""

from __future__ import annotations

import pytest
import torch

from gdlens.tasks import Teacher, teacher_student


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_targets_are_the_teacher_of_x(activation, bias):
    data = teacher_student(200, input_dim=7, teacher_width=5, activation=activation, output_dim=3, bias=bias,
                           seed=1, dtype=torch.float64)
    teacher = data.info["teacher"]
    assert isinstance(teacher, Teacher) and teacher.activation == activation
    assert teacher.W1.shape == (5, 7) and teacher.b1.shape == (5,) and teacher.W2.shape == (3, 5)
    assert data.x.shape == (200, 7) and data.target.shape == (200, 3)
    assert bool((teacher.b1 != 0).any()) == bias
    # written out by hand
    pre = data.x @ teacher.W1.T + teacher.b1
    h = pre.clamp(min=0) if activation == "relu" else pre.tanh()
    torch.testing.assert_close(data.target, h @ teacher.W2.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(data.target, teacher(data.x), rtol=0, atol=0)


def test_reused_teacher_gives_fresh_samples_and_noise():
    train = teacher_student(100, input_dim=4, teacher_width=3, seed=0, dtype=torch.float64)
    teacher = train.info["teacher"]
    test = teacher_student(100, teacher=teacher, seed=1, dtype=torch.float64)
    assert test.info["teacher"] is teacher
    assert not torch.equal(train.x, test.x)
    torch.testing.assert_close(test.target, teacher(test.x), rtol=0, atol=0)
    noisy = teacher_student(4000, teacher=teacher, noise=0.2, seed=2, dtype=torch.float64)
    assert 0.18 < (noisy.target - teacher(noisy.x)).std().item() < 0.22
    same = teacher_student(100, input_dim=4, teacher_width=3, seed=5, dtype=torch.float64)
    assert torch.equal(same.info["teacher"].W1, teacher.W1)  # the sample seed does not move the teacher
    assert not torch.equal(same.x, train.x)
    other = teacher_student(100, input_dim=4, teacher_width=3, seed=0, teacher_seed=1, dtype=torch.float64)
    assert not torch.equal(other.info["teacher"].W1, teacher.W1)
    assert torch.equal(other.x, train.x)
    with pytest.raises(ValueError, match="Teacher"):
        teacher_student(10, teacher={"W1": teacher.W1})


def test_weight_scales_and_metric():
    data = teacher_student(10, input_dim=400, teacher_width=300, seed=3)
    t = data.info["teacher"]
    assert t.W1.std().item() == pytest.approx(400**-0.5, rel=0.05)
    assert t.W2.std().item() == pytest.approx(300**-0.5, rel=0.2)
    assert data.metric(data.target)["mse"] == 0.0
    assert data.metric(data.target + 0.5)["mse"] == pytest.approx(0.25)
