"""Every gdlens model works with torch's own tools, with the plain forward's numbers (float64):
``torch.func.functional_call``, ``stack_module_state`` + ``vmap`` over an ensemble,
``torch.func.grad`` through ``functional_call``, and ``torch.compile``."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, stack_module_state, vmap

from gdlens import models as M

F64 = torch.float64
B, T, I, H, O, P = 4, 3, 2, 5, 3, 7  # batch, steps, input, hidden, output widths; tokens


def _seq(gen: torch.Generator) -> Tensor:
    return torch.randn(B, T, I, generator=gen, dtype=F64)


def _static(gen: torch.Generator) -> Tensor:
    return torch.randn(B, I, generator=gen, dtype=F64)


def _tokens(gen: torch.Generator) -> Tensor:
    return torch.randint(0, P, (B, 2), generator=gen)


# name -> (model factory, input factory); the factories draw from torch's global generator
CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Generator], Tensor]]] = {
    "rnn": (lambda: M.RNN(I, H, O, learn_z0=True), _seq),
    "gru": (lambda: M.GRU(I, H, O), _seq),
    "lstm": (lambda: M.LSTM(I, H, O), _seq),
    "neural_ode": (lambda: M.NeuralODE(I, H, O, depth=2), _seq),
    "residual": (lambda: M.ResidualStack(I, H, O, depth=3, width=4), _static),
    "stacked": (lambda: M.StackedRNN("lstm", I, H, O, num_layers=2), _seq),
    "from_torch": (lambda: M.from_torch(nn.GRU(I, H, num_layers=2, batch_first=True), nn.Linear(H, O)), _seq),
    "lru": (lambda: M.LRU(I, H, O, learn_z0=True), _seq),
    "selective_lru": (lambda: M.SelectiveLRU(I, H, O), _seq),
    "mlp": (lambda: M.MLP(I, H, O, depth=2), _static),
    "embedding_mlp": (lambda: M.EmbeddingMLP(P, embedding=4, width=H), _tokens),
    "transformer": (lambda: M.Transformer1L(P, d_model=8, n_heads=2, d_mlp=16), _tokens),
    "deep_linear": (lambda: M.DeepLinear(I, H, O, depth=3, bias=True), _static),
}


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return CASES[name][0]().to(F64)


def inputs(name: str) -> Tensor:
    return CASES[name][1](torch.Generator().manual_seed(1))


def outputs(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Every output as a tuple: (y,) for static models, (y, z) for state-space models."""
    return out if isinstance(out, tuple) else (out,)


def assert_same(got: Tensor | tuple[Tensor, ...], want: Tensor | tuple[Tensor, ...], tol: float = 0.0) -> None:
    got, want = outputs(got), outputs(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == F64
        torch.testing.assert_close(g, w, rtol=tol, atol=tol)


def perturbed(model: nn.Module, seed: int = 2) -> dict[str, Tensor]:
    """New tensors for every parameter: p + 0.1·N(0, 1), detached."""
    gen = torch.Generator().manual_seed(seed)
    return {n: p.detach() + 0.1 * torch.randn(p.shape, generator=gen, dtype=F64) for n, p in model.named_parameters()}


def loaded(model: nn.Module, params: dict[str, Tensor]) -> nn.Module:
    """A copy of ``model`` holding ``params``."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in other.named_parameters():
            p.copy_(params[n])
    return other


def loss(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    """A scalar that reads the first output nonlinearly: Σ sin(y)²."""
    return torch.sin(outputs(out)[0]).square().sum()


@pytest.mark.parametrize("name", CASES)
def test_functional_call_equals_forward(name: str) -> None:
    model, x = make(name), inputs(name)
    own = dict(model.named_parameters())
    assert_same(functional_call(model, own, (x,)), model(x))
    new = perturbed(model)
    out = functional_call(model, new, (x,))
    assert_same(out, loaded(model, new)(x))
    assert not torch.allclose(outputs(out)[0], outputs(model(x))[0])  # the given tensors were used
    assert_same(functional_call(model, own, (x,)), model(x))  # and the model's own are back


@pytest.mark.parametrize("name", CASES)
def test_vmap_over_a_stacked_ensemble(name: str) -> None:
    members = [make(name, seed) for seed in range(3)]
    x = inputs(name)
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    batched = vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    for i, member in enumerate(members):
        one = tuple(o[i] for o in outputs(batched))
        assert_same(one, member(x), tol=1e-12)
    assert not torch.allclose(outputs(batched)[0][0], outputs(batched)[0][1])


@pytest.mark.parametrize("name", CASES)
def test_grad_through_functional_call(name: str) -> None:
    model, x = make(name), inputs(name)
    params = {n: p.detach() for n, p in model.named_parameters()}
    grads = grad(lambda p: loss(functional_call(model, p, (x,))))(params)
    loss(model(x)).backward()
    assert set(grads) == set(params)
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-12, atol=1e-12)
    assert any(g.abs().max() > 0 for g in grads.values())


@pytest.mark.parametrize("name", CASES)
def test_compile(name: str) -> None:
    """One graph (``fullgraph=True``) through AOT autograd (``aot_eager``: inductor's code
    generation costs 8-30 s a model on a CPU and checks nothing more about the model)."""
    torch._dynamo.reset()  # the state-space models share one forward: start under the recompile limit
    model, x = make(name), inputs(name)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    assert_same(compiled(x), model(x), tol=1e-12)
    loss(compiled(x)).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in CASES if isinstance(make(n), M.StateSpaceModel)])
def test_readout_is_the_submodule(name: str) -> None:
    model, x = make(name), inputs(name)
    assert isinstance(model.readout, nn.Linear)
    assert model.readout.weight is model.readout_params()["readout.weight"]
    z = model(x)[1]
    assert_same(model.read(model.readout_params(), z), model(x)[0])
