"""gdlens.probes.wrappers is a deprecation shim: every name it held still imports, with a
DeprecationWarning naming the new home. The tests of each probe live beside its module's
(test_condensation, test_frequency, test_ntk, test_sharpness, test_representation, test_training)."""

from __future__ import annotations

import importlib
import warnings

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


OLD_PUBLIC = ["CondensationProbe", "FrequencyProbe", "SharpnessProbe", "NTKProbe", "RepresentationProbe",
              "resolve_layer", "layer_activations", "ntk_matrix", "ntk_entries", "spread_indices"]
OLD_PRIVATE = {"_check_data_choice": "check_data_choice", "_functional_loss": "functional_loss",
               "_functional_model": "functional_model", "_data": "probe_data", "_submodule": "submodule",
               "_trainable": "trainable_params"}


def test_probes_follow_the_protocol_with_log_schedules_by_default():
    for cls in (CondensationProbe, FrequencyProbe, SharpnessProbe, NTKProbe, RepresentationProbe):
        probe = cls()
        assert gd.probes.base.is_probe(probe) and callable(probe.init)  # init/compute(ctx, state)
        assert probe.schedule.log_points is not None
        assert probe.title and probe.metric_specs and probe.panels
    assert CondensationProbe(schedule="every:5").schedule == Schedule(every=5)
    assert gd.probes.SharpnessProbe is SharpnessProbe


@pytest.mark.parametrize("name", OLD_PUBLIC + list(OLD_PRIVATE))
def test_the_wrappers_shim_warns_and_names_the_new_home(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrappers = importlib.import_module("gdlens.probes.wrappers")  # importing the module itself is quiet
    with pytest.warns(DeprecationWarning, match=r"import \w+ from gdlens\.probes\.\w+") as record:
        obj = getattr(wrappers, name)
    module, attr = str(record[0].message).split("import ", 1)[1].split(" (")[0].split(" from ")[::-1]
    assert obj is getattr(importlib.import_module(module), attr)
    assert module != "gdlens.probes.wrappers" and attr == OLD_PRIVATE.get(name, name)
    assert record[0].filename == __file__  # the warning points at the caller


def test_the_wrappers_shim_covers_its_all_and_refuses_other_names():
    wrappers = importlib.import_module("gdlens.probes.wrappers")
    assert sorted(wrappers.__all__) == sorted(OLD_PUBLIC)
    assert set(OLD_PUBLIC) | set(OLD_PRIVATE) <= set(dir(wrappers))
    with pytest.warns(DeprecationWarning, match="gdlens.probes.ntk"):
        from gdlens.probes.wrappers import NTKProbe as Old  # the import statement warns too
    assert Old is NTKProbe
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wrappers.nope  # noqa: B018
    with pytest.raises(ImportError):
        from gdlens.probes.wrappers import nope  # noqa: F401


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
