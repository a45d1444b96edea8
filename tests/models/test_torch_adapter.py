from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gdlens.models import StackedRNN, from_torch

F64 = torch.float64
I, H, B, T = 3, 4, 5, 6

KINDS = {
    "rnn_tanh": lambda **kw: nn.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: nn.RNN(I, H, nonlinearity="relu", **kw),
    "rnn_nobias": lambda **kw: nn.RNN(I, H, bias=False, **kw),
    "gru": lambda **kw: nn.GRU(I, H, **kw),
    "gru_nobias": lambda **kw: nn.GRU(I, H, bias=False, **kw),
    "lstm": lambda **kw: nn.LSTM(I, H, **kw),
    "lstm_nobias": lambda **kw: nn.LSTM(I, H, bias=False, **kw),
}


def torch_module(kind: str, num_layers: int = 1, batch_first: bool = True, **kw: Any) -> nn.RNNBase:
    torch.manual_seed(0)
    return KINDS[kind](num_layers=num_layers, batch_first=batch_first, **kw).double()


def x_batch() -> torch.Tensor:
    return torch.randn(B, T, I, generator=torch.Generator().manual_seed(3), dtype=F64)


def run_torch(module: nn.RNNBase, x: torch.Tensor, state=None):
    """torch's (output (B, T, H), h_n, c_n or None) for a batch-first x."""
    out, hn = module(x if module.batch_first else x.transpose(0, 1), state)
    out = out if module.batch_first else out.transpose(0, 1)
    h_n, c_n = hn if isinstance(hn, tuple) else (hn, None)
    return out, h_n, c_n


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [True, False])
def test_identical_outputs(kind: str, num_layers: int, batch_first: bool) -> None:
    module = torch_module(kind, num_layers, batch_first)
    model = from_torch(module)
    x = x_batch()
    y, z = model(x)
    out, h_n, c_n = run_torch(module, x)
    torch.testing.assert_close(y, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(z[:, -1], model.state_from_torch(h_n, c_n), rtol=0, atol=1e-12)
    if num_layers == 1:
        expected = out if c_n is None else torch.cat([out, z[..., H:]], dim=-1)
        torch.testing.assert_close(z, expected, rtol=0, atol=1e-12)
        if c_n is not None:
            torch.testing.assert_close(z[:, -1, H:], c_n[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn_tanh", "gru", "lstm"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_initial_state_from_torch(kind: str, batch_first: bool) -> None:
    module = torch_module(kind, 2, batch_first)
    model = from_torch(module)
    gen = torch.Generator().manual_seed(4)
    h0, c0 = torch.randn(2, 2, B, H, generator=gen, dtype=F64)
    state = (h0, c0) if kind == "lstm" else h0
    y, z = model(x_batch(), model.state_from_torch(h0, c0 if kind == "lstm" else None))
    out, h_n, c_n = run_torch(module, x_batch(), state)
    torch.testing.assert_close(y, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(z[:, -1], model.state_from_torch(h_n, c_n), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_nobias", "gru", "lstm"])
def test_parameters_one_to_one_and_same_gradients(kind: str) -> None:
    module = torch_module(kind, 2)
    model = from_torch(module)
    torch_params = dict(module.named_parameters())
    assert set(model.state_params()) == set(torch_params)
    for name, p in model.state_params().items():
        assert torch.equal(p, torch_params[name]) and p.data_ptr() != torch_params[name].data_ptr()
    x = x_batch()
    model(x)[0].sin().sum().backward()
    run_torch(module, x)[0].sin().sum().backward()
    for name, p in model.state_params().items():
        torch.testing.assert_close(p.grad, torch_params[name].grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_readout_is_copied(bias: bool) -> None:
    module = torch_module("gru", 2)
    readout = nn.Linear(H, 7, bias=bias).double()
    model = from_torch(module, readout)
    x = x_batch()
    y, _ = model(x)
    torch.testing.assert_close(y, readout(run_torch(module, x)[0]), rtol=0, atol=1e-12)
    assert set(model.readout_params()) == ({"readout.weight", "readout.bias"} if bias else {"readout.weight"})
    with torch.no_grad():
        model.readout_params()["readout.weight"].add_(1.0)
    assert not torch.allclose(model(x)[0], y)  # ours changed, torch's readout did not
    torch.testing.assert_close(readout(run_torch(module, x)[0]), y)


def test_default_readout_is_learnable_identity() -> None:
    model = from_torch(torch_module("lstm", 2))
    phi = model.readout_params()
    torch.testing.assert_close(phi["readout.weight"], torch.eye(H, dtype=F64))
    torch.testing.assert_close(phi["readout.bias"], torch.zeros(H, dtype=F64))
    assert all(p.requires_grad for p in phi.values())
    assert model.output_size == H


def test_dtype_follows_module() -> None:
    module = nn.GRU(I, H, batch_first=True)
    model = from_torch(module)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    y, _ = model(x_batch().float())
    torch.testing.assert_close(y, module(x_batch().float())[0], rtol=1e-5, atol=1e-6)


def test_dropout_in_eval_mode_is_fine() -> None:
    module = torch_module("lstm", 2, dropout=0.5).eval()
    y, _ = from_torch(module)(x_batch())
    torch.testing.assert_close(y, run_torch(module, x_batch())[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kind", "kw", "attribute"),
    [
        ("gru", {"bidirectional": True}, "bidirectional"),
        ("rnn_tanh", {"bidirectional": True}, "bidirectional"),
        ("lstm", {"proj_size": 2}, "proj_size"),
        ("gru", {"num_layers": 2, "dropout": 0.5}, "dropout"),
    ],
)
def test_unsupported_options_raise(kind: str, kw: dict, attribute: str) -> None:
    module = torch_module(kind, **kw)
    with pytest.raises(ValueError, match=attribute):
        from_torch(module.train())


def test_bad_modules_and_readouts() -> None:
    with pytest.raises(TypeError, match="Linear"):
        from_torch(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="in_features"):
        from_torch(torch_module("gru"), nn.Linear(H + 1, 2).double())
    with pytest.raises(TypeError, match="readout"):
        from_torch(torch_module("gru"), nn.Tanh())


def test_returns_batch_first_model() -> None:
    model = from_torch(torch_module("gru", batch_first=False))
    assert isinstance(model, StackedRNN)
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        model(torch.zeros(T, I, dtype=F64))
