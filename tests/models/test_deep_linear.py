"""DeepLinear: the forward is the end-to-end map, factors and groups, initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.models import DeepLinear, build


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_forward_is_the_end_to_end_map(depth):
    torch.manual_seed(depth)
    m = DeepLinear(5, 7, 3, depth=depth).double()
    W = m.end_to_end()
    assert W.shape == (3, 5) and len(m.factors()) == depth
    x = torch.randn(6, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), x @ W.T)
    shapes = [tuple(w.shape) for w in m.factors()]
    assert shapes[0][1] == 5 and shapes[-1][0] == 3
    assert list(m.parameter_groups()) == [f"layer_{i + 1}" for i in range(depth)]


def test_bias_and_init_scale():
    torch.manual_seed(0)
    m = DeepLinear(400, 300, 2, depth=3, init_scale=0.5, bias=True)
    assert m.layers[1].weight.std().item() == pytest.approx(0.5 / math.sqrt(300), rel=0.03)
    assert m.layers[0].bias is None and m.layers[2].bias is not None
    assert m.parameter_groups()["layer_3"] == ["layers.2.weight", "layers.2.bias"]
    assert isinstance(build("deep_linear", 4, 8, 2, depth=3), DeepLinear)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        DeepLinear(3, 4, 2, depth=0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        DeepLinear(3, 4, 2)(torch.zeros(5, 4))
