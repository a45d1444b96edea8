"""The schedulable probes inside gd.train: recorded keys, and values equal to the pure functions
applied by hand to the same model state. The tests of each probe live beside its module's
(test_condensation, test_frequency, test_ntk, test_sharpness, test_representation, test_training)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gdlens as gd
from gdlens.probes import (
    CondensationProbe,
    FrequencyProbe,
    NTKProbe,
    ProbeContext,
    RepresentationProbe,
    Schedule,
    SharpnessProbe,
)
from gdlens.probes.sharpness import top_hessian_eig

F64 = torch.float64


def test_probes_follow_the_protocol_with_log_schedules_by_default():
    for cls in (CondensationProbe, FrequencyProbe, SharpnessProbe, NTKProbe, RepresentationProbe):
        probe = cls()
        assert gd.probes.base.is_probe(probe)  # stateful Probe once moved to init/compute(ctx, state)
        assert probe.schedule.log_points is not None
    assert CondensationProbe(schedule="every:5").schedule == Schedule(every=5)
    assert gd.probes.SharpnessProbe is SharpnessProbe


# ---------------------------------------------------------------------- tied weights
# (the SharpnessProbe's own tests live in test_sharpness.py)
class TiedAutoencoder(nn.Module):
    """``y = W tanh(W x + b) + c``: one weight W held by two modules (``dec.weight`` is ``enc.weight``)."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(d, d), nn.Linear(d, d)
        self.dec.weight = self.enc.weight

    def forward(self, x):
        return self.dec(torch.tanh(self.enc(x)))


def tied_output(p, x):
    """The tied model's output from explicit parameters, W used twice."""
    W = p["enc.weight"]
    return torch.nn.functional.linear(torch.tanh(torch.nn.functional.linear(x, W, p["enc.bias"])), W, p["dec.bias"])


def test_probes_swap_tied_weights_together():
    """Sharpness of a model with one weight in two modules: both uses of W move (a swap of one
    slot only would give other second derivatives; the NTK's: tests/probes/test_ntk.py)."""
    torch.manual_seed(0)
    model = TiedAutoencoder().to(F64)
    params = dict(model.named_parameters())
    assert set(params) == {"enc.weight", "enc.bias", "dec.bias"}
    data = gd.tasks.teacher_student(20, input_dim=3, output_dim=3, dtype=F64)
    torch.testing.assert_close(tied_output(params, data.x), model(data.x))
    ctx = ProbeContext(0, model, batch=data)
    probe = SharpnessProbe(tol=1e-10)
    sharp = probe.compute(ctx, probe.init(ctx))[0]["lambda_max"]
    ref = float(top_hessian_eig(lambda p: data.loss_value(tied_output(p, data.x)), params, tol=1e-10)[0])
    assert sharp == pytest.approx(ref, rel=1e-8)
