"""TransformerStack: forward against a plain reference and torch's encoder, shapes and views,
torch.func and torch's functional tools, conversion, and bad input."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, jvp, stack_module_state, vjp, vmap

from gdlens.models import TransformerStack, from_torch_transformer

F64 = torch.float64
B, N, D, HEADS = 2, 3, 4, 2


def make(**kw: Any) -> TransformerStack:
    """A float64 stack (d=4, 2 heads, n=3) with every parameter perturbed (biases start at 0)."""
    args: dict[str, Any] = dict(d_model=D, n_heads=HEADS, depth=2, output_size=3, seq_len=N, vocab_size=5, d_mlp=6)
    args.update(kw)
    if "input_size" in kw:
        args.pop("vocab_size")
    torch.manual_seed(0)
    model = TransformerStack(**args).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=F64))
    return model


def tokens(model: TransformerStack, seed: int = 2) -> Tensor:
    return torch.randint(0, model.vocab_size, (B, model.seq_len), generator=torch.Generator().manual_seed(seed))


def embeddings(model: TransformerStack, seed: int = 2) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, model.seq_len, model.input_size, generator=gen, dtype=F64)


def inputs(model: TransformerStack) -> Tensor:
    return tokens(model) if model.vocab_size is not None else embeddings(model)


def _ln(u: Tensor, w: Tensor, b: Tensor | None, eps: float) -> Tensor:
    mu = u.mean(-1, keepdim=True)
    var = ((u - mu) ** 2).mean(-1, keepdim=True)
    out = (u - mu) / torch.sqrt(var + eps) * w
    return out if b is None else out + b


def reference(model: TransformerStack, x: Tensor, blocked: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The textbook multi-head computation: heads' weights concatenated, torch.softmax, an
    additive −∞ mask, LayerNorm from its formula; returns y and the states (B, L, n, d).
    ``blocked`` (B, n, n) bool: more (query, key) pairs to mask, on top of the causal mask."""
    p = dict(model.named_parameters())
    n, d, H, dh = x.shape[1], model.d_model, model.n_heads, model.d_head
    get = lambda name: p.get(name)  # noqa: E731
    if model.vocab_size is not None:
        r = p["embed.weight"][x]
    elif model.embed_input:
        r = x @ p["embed.weight"].T + (p["embed.bias"] if "embed.bias" in p else 0)
    else:
        r = x
    if model.max_len:
        r = r + p["pos_embed"][:n]
    mask = torch.zeros(n, n, dtype=F64)
    if model.causal:
        mask = mask.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    if blocked is not None:
        mask = mask.masked_fill(blocked, float("-inf")).unsqueeze(1)  # (B, 1, n, n): every head
    states = []
    for ell in range(model.depth):
        pre = f"blocks.{ell}."
        u = _ln(r, p[pre + "ln1.weight"], get(pre + "ln1.bias"), model.eps)
        cat = lambda part: torch.cat([p[f"{pre}head{h}.{part}"] for h in range(H)], dim=0)  # noqa: E731
        split = lambda a: a.reshape(B, n, H, dh).transpose(1, 2)  # noqa: E731
        bias = lambda part: cat(part + "_bias") if model.bias else 0  # noqa: E731
        Q, K, V = (split(u @ cat(c).T + bias(c)) for c in ("q", "k", "v"))
        A = torch.softmax(Q @ K.transpose(-1, -2) / math.sqrt(dh) + mask, dim=-1)
        heads = (A @ V).transpose(1, 2).reshape(B, n, d)
        Wo = torch.cat([p[f"{pre}head{h}.o"] for h in range(H)], dim=1)
        attn = heads @ Wo.T + (p[pre + "o_bias"] if model.bias else 0)
        r = r + attn if model.residual else attn
        if model.mlp:
            u = _ln(r, p[pre + "ln2.weight"], get(pre + "ln2.bias"), model.eps)
            act = torch.relu if model.activation == "relu" else F.gelu
            hid = act(u @ p[pre + "mlp.fc_in.weight"].T + (p[pre + "mlp.fc_in.bias"] if model.bias else 0))
            ff = hid @ p[pre + "mlp.fc_out.weight"].T + (p[pre + "mlp.fc_out.bias"] if model.bias else 0)
            r = r + ff if model.residual else ff
        states.append(r)
    out = r[:, -1:] if model.readout_mode == "last" else r
    if model.final_norm:
        out = _ln(out, p["readout.ln.weight"], get("readout.ln.bias"), model.eps)
    y = out @ p["readout.unembed.weight"].T + (p["readout.unembed.bias"] if model.bias else 0)
    return y, torch.stack(states, dim=1)


VARIANTS = {
    "tokens-causal-last": {},
    "tokens-full-all": dict(causal=False, readout="all", activation="relu"),
    "embeddings": dict(input_size=3, readout="all", depth=3),
    "attention-only": dict(mlp=False),
    "no-skip": dict(residual=False, readout="all"),
    "attention-only-no-skip": dict(mlp=False, residual=False),
    "no-bias-no-final-norm": dict(bias=False, final_norm=False, input_size=2),
    "longer-table": dict(max_len=7),
}


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_forward_equals_reference(kw: dict[str, Any]) -> None:
    model = make(**kw)
    x = inputs(model)
    y, z = model(x)
    y_ref, states = reference(model, x)
    O = 1 if model.readout_mode == "last" else N
    assert z.shape == (B, model.depth, N * D) and y.shape == (B, O, 3)
    torch.testing.assert_close(model.unflatten_state(z), states, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)


def test_state_layout_is_token_major() -> None:
    model = make()
    _, z = model(tokens(model))
    Z = model.unflatten_state(z)
    assert Z.shape == (B, 2, N, D)
    assert torch.equal(Z[:, :, 1, 2], z[:, :, 1 * D + 2])
    assert torch.equal(model.flatten_state(Z), z)
    with pytest.raises(ValueError, match="n·d = 12"):
        model.unflatten_state(z[..., :-1])
    with pytest.raises(ValueError, match=r"\(n, d\) = \(3, 4\)"):
        model.flatten_state(Z[..., :-1, :])


def test_parameter_names_and_split() -> None:
    model = make(depth=2)
    theta, phi = model.state_params(), model.readout_params()
    for ell in range(2):
        for h in range(HEADS):
            assert theta[f"blocks.{ell}.head{h}.q"].shape == (D // HEADS, D)
            assert theta[f"blocks.{ell}.head{h}.o"].shape == (D, D // HEADS)
        for name in ("ln1.weight", "ln2.bias", "mlp.fc_in.weight", "mlp.fc_out.bias", "o_bias"):
            assert f"blocks.{ell}.{name}" in theta
    assert {"embed.weight", "pos_embed"} <= set(theta)
    assert set(phi) == {"readout.ln.weight", "readout.ln.bias", "readout.unembed.weight", "readout.unembed.bias"}
    groups = model.parameter_groups()
    assert sorted(n for names in groups.values() for n in names) == sorted(dict(model.named_parameters()))
    assert groups["blocks.1.head0"] == [f"blocks.1.head0.{p}" for p in ("q", "k", "v", "o", "q_bias", "k_bias",
                                                                          "v_bias")]
    assert set(groups["embedding"]) == {"embed.weight", "pos_embed"}


def test_attention_only_has_no_mlp_parameters() -> None:
    names = dict(make(mlp=False).named_parameters())
    assert not any(".mlp." in n or ".ln2." in n for n in names)


@pytest.mark.parametrize("causal", [True, False])
def test_causality(causal: bool) -> None:
    """Changing the last token moves earlier positions only under full attention."""
    model = make(causal=causal)
    x = tokens(model)
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % model.vocab_size
    Z, Z2 = (model.unflatten_state(model(t)[1]) for t in (x, x2))
    same_earlier = torch.allclose(Z[:, :, :-1], Z2[:, :, :-1], rtol=0, atol=0)
    assert same_earlier == causal
    assert not torch.allclose(Z[:, :, -1], Z2[:, :, -1])


def test_set_seq_len() -> None:
    model = make(max_len=5)
    model.set_seq_len(5)
    x = torch.randint(0, 5, (B, 5), generator=torch.Generator().manual_seed(0))
    y, z = model(x)
    assert z.shape == (B, 2, 5 * D) and model.state_size == 20
    torch.testing.assert_close(y, reference(model, x)[0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="seq_len = 6 .*max_len = 5"):
        model.set_seq_len(6)


def test_initialisation_scales() -> None:
    torch.manual_seed(0)
    model = TransformerStack(64, 4, 8, 2, 4, vocab_size=10)
    th = model.state_params()
    assert th["blocks.0.head0.q"].std().item() == pytest.approx(1 / 8, rel=0.1)
    o = torch.cat([th[f"blocks.{i}.head{h}.o"] for i in range(8) for h in range(4)])
    assert o.std().item() == pytest.approx(1 / math.sqrt(64 * 8), rel=0.1)
    assert th["blocks.3.mlp.fc_out.weight"].std().item() == pytest.approx(1 / math.sqrt(256 * 8), rel=0.1)
    assert (th["blocks.0.o_bias"] == 0).all() and (th["blocks.0.ln1.weight"] == 1).all()


# ---------------------------------------------------------------------- torch.func
@pytest.mark.parametrize("kw", [{}, dict(causal=False, mlp=False, input_size=3)], ids=["tokens", "attn-only"])
def test_step_under_torch_func(kw: dict[str, Any]) -> None:
    model = make(**kw)
    theta = {n: p.detach() for n, p in model.state_params().items()}
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(B, model.state_size, generator=gen, dtype=F64)
    z_copy = z.clone()
    x_t = model.step_inputs(inputs(model))[1]
    f = lambda zz: model.step(theta, zz, x_t, 2)  # noqa: E731
    out = f(z)
    assert torch.equal(z, z_copy)
    V = torch.randn(4, *z.shape, generator=gen, dtype=F64)
    looped = torch.stack([jvp(f, (z,), (v,))[1] for v in V])
    torch.testing.assert_close(vmap(lambda v: jvp(f, (z,), (v,))[1])(V), looped, rtol=1e-12, atol=1e-12)
    jac = jacrev(f)(z).reshape(z.numel(), z.numel())
    torch.testing.assert_close(jac @ V.reshape(4, -1).T, looped.reshape(4, -1).T, rtol=1e-10, atol=1e-12)
    # finite differences confirm the jvp
    eps = 1e-6
    fd = (f(z + eps * V[0]) - f(z - eps * V[0])) / (2 * eps)
    torch.testing.assert_close(fd, looped[0], rtol=1e-6, atol=1e-8)
    _, pull = vjp(lambda th: model.step(th, z, x_t, 2), theta)
    batched = vmap(pull)(V)[0]
    for i, v in enumerate(V):
        for name, g in pull(v)[0].items():
            torch.testing.assert_close(batched[name][i], g, rtol=1e-12, atol=1e-12)
    # step reads θ, not the module
    theta2 = {n: p + 0.1 for n, p in theta.items()}
    assert not torch.allclose(model.step(theta2, z, x_t, 2), out)
    # the whole unroll (z_0 from θ included) under vmap over θ-tangents
    x = inputs(model)
    tangents = {n: torch.randn(3, *p.shape, generator=gen, dtype=F64) for n, p in theta.items()}
    run = lambda tg: jvp(lambda th: model.unroll(th, x), (theta,), (tg,))[1]  # noqa: E731
    looped = torch.stack([run({n: t[i] for n, t in tangents.items()}) for i in range(3)])
    torch.testing.assert_close(vmap(run)(tangents), looped, rtol=1e-12, atol=1e-12)


def test_functional_call_and_grad() -> None:
    model = make(readout="all")
    x = tokens(model)
    own = {n: p.detach() for n, p in model.named_parameters()}
    y, z = functional_call(model, own, (x,))
    torch.testing.assert_close(y, model(x)[0], rtol=0, atol=0)
    new = {n: p + 0.05 * torch.randn_like(p) for n, p in own.items()}
    y_new, _ = functional_call(model, new, (x,))
    other = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in other.named_parameters():
            p.copy_(new[n])
    torch.testing.assert_close(y_new, other(x)[0], rtol=0, atol=0)
    assert not torch.allclose(y_new, y)
    loss = lambda p: functional_call(model, p, (x,))[0].sin().square().sum()  # noqa: E731
    grads = grad(loss)(own)
    model(x)[0].sin().square().sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-12, atol=1e-12)


def test_vmap_over_stacked_ensemble() -> None:
    members = [make() for _ in range(3)]
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for m in members[1:]:
            for p in m.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=F64))
    x = tokens(members[0])
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    ys, zs = vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    for i, m in enumerate(members):
        y, z = m(x)
        torch.testing.assert_close(ys[i], y, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(zs[i], z, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ys[0], ys[1])


# ---------------------------------------------------------------------- torch conversion
def _encoder(activation: str = "relu", bias: bool = True, norm: bool = True, depth: int = 3) -> nn.TransformerEncoder:
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(D, HEADS, 5, dropout=0.1, activation=activation, batch_first=True,
                                       norm_first=True, bias=bias)
    enc = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(D, bias=bias) if norm else None,
                                enable_nested_tensor=False).double().eval()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=F64))
    return enc


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("activation", "bias", "norm"), [("relu", True, True), ("gelu", False, False),
                                                          ("gelu", True, False)])
def test_from_torch_matches_encoder(causal: bool, activation: str, bias: bool, norm: bool) -> None:
    enc = _encoder(activation, bias, norm)
    x = torch.randn(B, N, D, generator=torch.Generator().manual_seed(5), dtype=F64)
    mask = nn.Transformer.generate_square_subsequent_mask(N, dtype=F64) if causal else None
    with torch.no_grad():
        want = enc(x, mask=mask, is_causal=causal)
    model = TransformerStack.from_torch(enc, N, causal=causal)
    y, z = model(x)
    assert model.readout_mode == "all" and y.shape == (B, N, D)
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    if not norm:  # then the last state is the encoder's output itself
        torch.testing.assert_close(model.unflatten_state(z)[:, -1], want, rtol=1e-12, atol=1e-12)
    # layer by layer, through a list of layers, with a head read at the last position
    head = nn.Linear(D, 2, bias=bias).double()
    layers = list(enc.layers)
    model = from_torch_transformer(layers, N, head=head, causal=causal, readout="last")
    y, z = model(x)
    h = x
    for ell, layer in enumerate(layers):
        with torch.no_grad():
            h = layer(h, src_mask=mask, is_causal=causal)
        torch.testing.assert_close(model.unflatten_state(z)[:, ell], h, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(y, head(h[:, -1:]), rtol=1e-12, atol=1e-12)
    assert model.state_params()["blocks.0.head1.q"].data_ptr() != layers[0].self_attn.in_proj_weight.data_ptr()


def test_from_torch_refusals() -> None:
    enc = _encoder()
    with pytest.raises(ValueError, match="active dropout"):
        TransformerStack.from_torch(copy.deepcopy(enc).train(), N)
    post = nn.TransformerEncoderLayer(D, HEADS, 5, dropout=0.0, batch_first=True, norm_first=False)
    with pytest.raises(ValueError, match="norm_first=False"):
        from_torch_transformer([post], N)
    seq_first = nn.TransformerEncoderLayer(D, HEADS, 5, dropout=0.0, batch_first=False, norm_first=True)
    with pytest.raises(ValueError, match="batch_first=False"):
        from_torch_transformer([seq_first], N)
    with pytest.raises(TypeError, match="TransformerDecoderLayer"):
        from_torch_transformer([nn.TransformerDecoderLayer(D, HEADS, batch_first=True, norm_first=True)], N)
    with pytest.raises(TypeError, match="encoder must be"):
        from_torch_transformer(nn.Linear(D, D), N)
    silu = nn.TransformerEncoderLayer(D, HEADS, 5, dropout=0.0, activation=F.silu, batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="activation"):
        from_torch_transformer([silu], N)
    with pytest.raises(ValueError, match="head must be"):
        TransformerStack.from_torch(enc, N, head=nn.Linear(D + 1, 2).double())
    # p = 0 dropout in training mode is inactive, hence fine
    zero = nn.TransformerEncoderLayer(D, HEADS, 5, dropout=0.0, batch_first=True, norm_first=True).train()
    assert from_torch_transformer([zero], N).depth == 1


# ---------------------------------------------------------------------- masks and padding
@pytest.mark.parametrize("causal", [True, False])
def test_attn_mask_and_pad_token_equal_the_reference(causal: bool) -> None:
    """attn_mask (bool True = masked) and keys holding pad_token are −∞ in the scores."""
    am = torch.zeros(N, N, dtype=torch.bool)
    am[2, 1] = True
    model = make(causal=causal, readout="all", attn_mask=am, pad_token=4)
    x = torch.tensor([[1, 4, 2], [3, 0, 4]])
    pad = x == 4
    blocked = am.unsqueeze(0) | pad.unsqueeze(1)  # (B, n, n): query i, key j
    y, z = model(x)
    y_ref, states = reference(model, x, blocked)
    torch.testing.assert_close(model.unflatten_state(z), states, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    # a float mask with −∞ at the same places is the same model
    float_mask = torch.zeros(N, N, dtype=F64).masked_fill(am, float("-inf"))
    same = make(causal=causal, readout="all", attn_mask=float_mask, pad_token=4)
    torch.testing.assert_close(same(x)[0], y, rtol=0, atol=0)
    assert model.step_inputs(x).shape == (model.depth, B, N)


@pytest.mark.parametrize("causal", [True, False])
def test_from_torch_with_masks_matches_encoder(causal: bool) -> None:
    """torch's mask and src_key_padding_mask, through attn_mask and the key-padding channel."""
    enc = _encoder("gelu", True, True)
    n = 4
    x = torch.randn(3, n, D, generator=torch.Generator().manual_seed(6), dtype=F64)
    pad = torch.zeros(3, n, dtype=torch.bool)
    pad[0, 2:] = True
    pad[2, 3] = True
    extra = torch.zeros(n, n, dtype=torch.bool)
    extra[3, 0] = True
    mask = extra | torch.ones(n, n, dtype=torch.bool).triu(1) if causal else extra
    with torch.no_grad():
        want = enc(x, mask=mask, src_key_padding_mask=pad)
    model = TransformerStack.from_torch(enc, n, causal=causal, attn_mask=extra, key_padding=True)
    y, _ = model(model.with_padding(x, pad))
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    # the padded keys are ignored: changing what they hold moves no unpadded position
    x2 = x.clone()
    x2[pad] += 1.0
    y2, _ = model(model.with_padding(x2, pad))
    torch.testing.assert_close(y2[~pad], y[~pad], rtol=1e-12, atol=1e-12)


def test_bad_masks_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(n, n\) = \(3, 3\)"):
        make(attn_mask=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask must have shape"):
        make(attn_mask=torch.zeros(2 * HEADS, 3, 3, dtype=torch.bool))  # torch's per-head masks
    with pytest.raises(ValueError, match="attn_mask must be bool"):
        make(attn_mask=torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="attn_mask masks every key for query 1"):
        make(attn_mask=torch.tensor([[False] * 3, [True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match="attn_mask with causal attention masks every key for query 0"):
        make(attn_mask=torch.eye(3, dtype=torch.bool))
    assert make(attn_mask=torch.eye(3, dtype=torch.bool), causal=False).attn_mask.shape == (3, 3)
    with pytest.raises(ValueError, match="attn_mask must be a torch.Tensor"):
        make(attn_mask=[[0, 0, 0]] * 3)
    with pytest.raises(ValueError, match="pad_token needs token inputs"):
        make(input_size=3, pad_token=0)
    with pytest.raises(ValueError, match=r"pad_token must be an int in \[0, vocab_size\)"):
        make(pad_token=5)
    with pytest.raises(ValueError, match="key_padding=True needs embedding inputs"):
        make(key_padding=True)
    model = make(attn_mask=torch.zeros(3, 3, dtype=torch.bool), max_len=5)
    with pytest.raises(ValueError, match="seq_len = 4 does not fit attn_mask"):
        model.set_seq_len(4)
    padded = make(pad_token=0)  # causal: a padded first token leaves query 0 blind
    with pytest.raises(ValueError, match="query 0 of example 1 sees no unpadded key"):
        padded(torch.tensor([[1, 2, 0], [0, 1, 2]]))
    emb = make(input_size=3, key_padding=True)
    x = torch.randn(B, N, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, n\)"):
        emb.with_padding(x, torch.zeros(B, N + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, n, 3 \+ 1"):
        emb(x)
    with pytest.raises(ValueError, match="must hold 0 or 1"):
        emb(torch.cat([x, torch.full((B, N, 1), 0.5, dtype=F64)], dim=-1))
    with pytest.raises(ValueError, match="with_padding is for models built with key_padding=True"):
        make(input_size=3).with_padding(x, torch.zeros(B, N, dtype=torch.bool))


# ---------------------------------------------------------------------- bad input
def test_bad_construction_arguments() -> None:
    with pytest.raises(ValueError, match="n_heads = 3 must divide d_model = 4"):
        TransformerStack(4, 3, 1, 2, 3, vocab_size=5)
    with pytest.raises(ValueError, match="seq_len = 6 is longer than the positional table, max_len = 4"):
        TransformerStack(4, 2, 1, 2, 6, vocab_size=5, max_len=4)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        TransformerStack(4, 2, 1, 2, 3)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        TransformerStack(4, 2, 1, 2, 3, vocab_size=5, input_size=2)
    with pytest.raises(ValueError, match="readout"):
        TransformerStack(4, 2, 1, 2, 3, vocab_size=5, readout="first")
    with pytest.raises(ValueError, match="activation"):
        TransformerStack(4, 2, 1, 2, 3, vocab_size=5, activation="tanh")
    for arg in ("d_model", "n_heads", "depth", "output_size", "seq_len"):
        args = dict(d_model=4, n_heads=2, depth=1, output_size=2, seq_len=3)
        args[arg] = 0
        with pytest.raises(ValueError, match=arg):
            TransformerStack(**args, vocab_size=5)
    with pytest.raises(ValueError, match="embed=False needs input_size"):
        TransformerStack(4, 2, 1, 2, 3, input_size=3, embed=False)


def test_bad_inputs_name_the_argument() -> None:
    model = make(max_len=4)
    with pytest.raises(ValueError, match=r"outside \[0, vocab_size\) = \[0, 5\)"):
        model(torch.tensor([[0, 1, 5], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"outside \[0, vocab_size\)"):
        model(torch.tensor([[0, -1, 2], [0, 1, 2]]))
    with pytest.raises(ValueError, match="longer than the positional table"):
        model(torch.zeros(B, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"seq_len is 3 .*set_seq_len\(2\)"):
        model(torch.zeros(B, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tokens shaped"):
        model(torch.zeros(B, 3, dtype=F64))
    with pytest.raises(ValueError, match="integer tokens shaped"):
        model(torch.zeros(B, 3, 1, dtype=torch.long))
    emb = make(input_size=3)
    with pytest.raises(ValueError, match=r"embeddings shaped \(B, n, 3\)"):
        emb(torch.zeros(B, 3, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"embeddings shaped"):
        emb(torch.zeros(B, 3, dtype=F64))
    with pytest.raises(ValueError, match="step index t"):
        model.step(model.state_params(), torch.zeros(B, 12, dtype=F64), torch.zeros(B, 0, dtype=F64), 3)


def test_float32() -> None:
    torch.manual_seed(0)
    model = TransformerStack(D, HEADS, 2, 3, N, input_size=3, readout="all")
    x = torch.randn(B, N, 3)
    y, z = model(x)
    assert y.dtype == torch.float32 and z.dtype == torch.float32 and torch.isfinite(y).all()
    assert model.step_inputs(x).dtype == torch.float32
    y64, _ = model.double()(x.double())
    torch.testing.assert_close(y.double(), y64, rtol=1e-4, atol=1e-5)


def test_registry_and_config_build_it() -> None:
    from gdlens.config import normalize
    from gdlens.config.build import build_model
    from gdlens.models import build

    tok = build("transformer_stack", 3, 8, 5, n_heads=2, depth=2, seq_len=4, vocab_size=7)
    assert tok.vocab_size == 7 and tok.input_size == 0 and tok.d_model == 8 and tok.output_size == 5
    emb = build("transformer_stack", 3, 8, 5, n_heads=4, depth=1, seq_len=4, readout="all")
    assert emb.input_size == 3 and emb.n_heads == 4
    with pytest.raises(ValueError, match="n_heads, depth, seq_len"):
        build("transformer_stack", 3, 8, 5)
    with pytest.raises(ValueError, match="n_heads = 3 must divide d_model = 8"):
        build("transformer_stack", 3, 8, 5, n_heads=3, depth=1, seq_len=4)
    config = normalize({"task": {"name": "flip_flop"},
                        "model": {"name": "transformer_stack", "hidden": 8, "n_heads": 2, "depth": 2, "seq_len": 6}})
    assert config["model"]["causal"] is True and config["model"]["pad_token"] is None
    model = build_model(config)
    assert isinstance(model, TransformerStack) and model.depth == 2 and model.seq_len == 6
