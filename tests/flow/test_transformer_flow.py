"""KPFlow on TransformerStack (generic torch.func path) against dense float64 jacrev references:
P = (I − D)⁻¹ with D the block sub-diagonal of the step Jacobians, K = J Jᵀ with J the immediate
Jacobian, G = (dz/dθ)(dz/dθ)ᵀ, the output NTK; per-head K_groups; the SGD-step identity."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import Case, flat_jacobian, output_jacobian, params, rel, state_jacobian
from torch import Tensor, nn

from gdlens.flow import KPFlow
from gdlens.models import TransformerStack

F64 = torch.float64
TOL = 1e-10
B, N, D, HEADS = 2, 3, 4, 2


def _randomise(model: nn.Module, seed: int) -> None:
    """Every parameter gets a random perturbation (biases and LayerNorm affines start at 0/1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(0.4 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def make_transformer_case(kind: str, seed: int = 0, depth: int = 2) -> Case:
    """``"tokens"``: causal, tokens, last-position readout; ``"embed-all"``: full attention,
    embeddings, every position read; ``"attn-only"``: no MLP, relu; ``"no-skip"``: no skip
    connections; ``"torch"``: converted from an nn.TransformerEncoder (z_0 = x, no θ in z_0);
    ``"padded"``: full attention with a fixed attention mask and a padded key (pad_token)."""
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "tokens":
            model = TransformerStack(D, HEADS, depth, 3, N, vocab_size=5, max_len=N + 1, d_mlp=6)
        elif kind == "embed-all":
            model = TransformerStack(D, HEADS, depth, 2, N, input_size=3, d_mlp=5, causal=False, readout="all")
        elif kind == "attn-only":
            model = TransformerStack(D, HEADS, depth, 2, N, input_size=3, mlp=False, activation="relu")
        elif kind == "no-skip":
            model = TransformerStack(D, HEADS, depth, 2, N, vocab_size=4, d_mlp=5, residual=False, readout="all")
        elif kind == "padded":
            mask = torch.zeros(N, N, dtype=torch.bool)
            mask[2, 0] = True  # query 2 may not see key 0
            model = TransformerStack(D, HEADS, depth, 2, N, vocab_size=5, d_mlp=5, causal=False, readout="all",
                                     pad_token=0, attn_mask=mask)
        elif kind == "torch":
            layer = nn.TransformerEncoderLayer(D, HEADS, 6, dropout=0.0, batch_first=True, norm_first=True)
            encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(D), enable_nested_tensor=False)
            model = TransformerStack.from_torch(encoder, N, head=nn.Linear(D, 2), causal=True)
        else:
            raise ValueError(kind)
    model = model.double()
    _randomise(model, seed + 1)
    if model.vocab_size is not None:
        x = torch.randint(0, model.vocab_size, (B, N), generator=gen)
        if kind == "padded":  # example 0 pads its last key; every query still sees a key
            x[:, :2] = torch.randint(1, model.vocab_size, (B, 2), generator=gen)
            x[0, 2], x[1, 2] = 0, 3
    else:
        x = torch.randn(B, N, model.input_size if kind != "torch" else D, generator=gen, dtype=F64)
    out_steps = 1 if model.readout_mode == "last" else N
    target = torch.randn(B, out_steps, model.output_size, generator=gen, dtype=F64)
    return Case(kind, model, x, target, None)


KINDS = ["tokens", "embed-all", "attn-only", "no-skip", "torch", "padded"]


def _hidden(case: Case) -> Tensor:
    theta, _ = params(case.model)
    return case.model.unroll(theta, case.x)


def step_map(case: Case, theta: dict[str, Tensor]):
    """h (B, T, H) ↦ [f_t(h_{t-1})]_t with f_1 applied to z_0(θ) (held at θ): its Jacobian in h
    is the sub-diagonal D, its Jacobian in θ (at h = z*) the immediate Jacobian J."""
    m = case.model
    T = m.depth
    xs = m.step_inputs(case.x)  # empty, or the key padding

    def F(h: Tensor, th: dict[str, Tensor]) -> Tensor:
        outs = [m.step(th, m.initial_state(th, case.x), xs[0], 1)]
        outs += [m.step(th, h[:, t - 2], xs[t - 1], t) for t in range(2, T + 1)]
        return torch.stack(outs, dim=1)

    return F


def dense_P_and_J(case: Case) -> tuple[Tensor, Tensor]:
    theta, _ = params(case.model)
    h = _hidden(case)
    F = step_map(case, theta)
    n = h.numel()
    Dmat = torch.func.jacrev(lambda hh: F(hh, theta))(h).reshape(n, n)
    P = torch.linalg.inv(torch.eye(n, dtype=F64) - Dmat)
    J = flat_jacobian(torch.func.jacrev(lambda th: F(h, th))(theta), n)
    return P, J


@pytest.fixture(scope="module", params=KINDS)
def flow(request: pytest.FixtureRequest) -> tuple[Case, KPFlow, Tensor, Tensor]:
    case = make_transformer_case(request.param)
    kp = KPFlow(case.model, case.x, case.target)
    P, J = dense_P_and_J(case)
    return case, kp, P, J


def test_the_references_agree(flow) -> None:
    """The two dense references are consistent: dz/dθ = P J (checks the test's own D)."""
    case, _, P, J = flow
    assert rel(P @ J, state_jacobian(case)) <= TOL


def test_P_and_its_adjoint(flow) -> None:
    _, kp, P, _ = flow
    assert kp.shape == (B, kp.model.depth, N * D)
    assert rel(kp.P.dense(), P) <= TOL
    assert rel(kp.P.T.dense(), P.T) <= TOL
    # the BPTT adjoint a = Pᵀ e
    assert rel(kp.adjoint.reshape(-1), P.T @ kp.error.reshape(-1)) <= TOL


def test_K_is_immediate_jacobian_gram(flow) -> None:
    _, kp, _, J = flow
    assert rel(kp.K.dense(), J @ J.T) <= TOL


def test_G_and_ntk(flow) -> None:
    case, kp, P, J = flow
    Jz = state_jacobian(case)
    assert rel(kp.G.dense(), Jz @ Jz.T) <= TOL
    assert rel(kp.G.dense(), P @ J @ J.T @ P.T) <= TOL
    Jy = output_jacobian(case)
    assert rel(kp.ntk.dense(), Jy @ Jy.T) <= TOL
    # gradient flow moves the states by −G e
    assert rel(kp.velocity().reshape(-1), -(Jz @ (Jz.T @ kp.error.reshape(-1)))) <= TOL


def test_K_groups_per_head(flow) -> None:
    case, kp, _, J = flow
    theta = case.model.state_params()
    assert set(kp.K_groups) == set(theta)
    for layer in range(case.model.depth):
        for h in range(HEADS):
            for part in ("q", "k", "v", "o"):
                assert f"blocks.{layer}.head{h}.{part}" in kp.K_groups
    # on a stack of random probes V (k, B, T, H): the groups sum to K, and each group is the Gram
    # of its own columns of J, to TOL relative to ‖K V‖ (some groups are zero up to rounding: the
    # key bias shifts every score of a query alike, which softmax ignores)
    V = torch.randn((5, *kp.shape), generator=torch.Generator().manual_seed(3), dtype=F64)
    Vf = V.reshape(5, -1).T
    scale = float(torch.linalg.vector_norm(J @ (J.T @ Vf)))
    applied = {name: op @ V for name, op in kp.K_groups.items()}
    assert rel(sum(applied.values()), kp.K @ V) <= TOL
    start = 0
    for name, p in theta.items():
        block = J[:, start : start + p.numel()]
        start += p.numel()
        got, want = applied[name].reshape(5, -1).T, block @ (block.T @ Vf)
        assert float(torch.linalg.vector_norm(got - want)) <= TOL * scale, name
        if name.endswith("k_bias"):
            assert float(torch.linalg.vector_norm(got)) <= TOL * scale, name
        elif name.endswith((".v", ".o")):  # every head writes into the stream
            assert float(torch.linalg.vector_norm(want)) > 1e-6 * scale, name


def test_a_silenced_head_carries_no_gradient_through_q_k_v() -> None:
    """With W^O_h = 0 head h writes nothing into the stream: its q, k, v groups of K vanish
    while its o group and the other head's groups do not."""
    case = make_transformer_case("embed-all")
    with torch.no_grad():
        case.model.blocks[1].head0.o.zero_()
    kp = KPFlow(case.model, case.x, case.target)
    for part in ("q", "k", "v", "q_bias", "k_bias", "v_bias"):
        assert kp.K_groups[f"blocks.1.head0.{part}"].dense().abs().max() == 0, part
        if part != "k_bias":  # (the key bias has no gradient in any head: softmax ignores it)
            assert kp.K_groups[f"blocks.1.head1.{part}"].dense().abs().max() > 1e-6, part
    assert kp.K_groups["blocks.1.head0.o"].dense().abs().max() > 1e-6


@pytest.mark.parametrize("kind", ["tokens", "embed-all", "torch", "padded"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_sgd_step_identity(kind: str, loss: str) -> None:
    case = make_transformer_case(kind, depth=3)
    target = case.target
    if loss == "cross_entropy":
        gen = torch.Generator().manual_seed(7)
        target = torch.randint(0, case.model.output_size, target.shape[:-1], generator=gen)
    kp = KPFlow(case.model, case.x, target, loss=loss)
    lr = 1e-6  # the perturbed parameters give large gradients: a small step keeps O(lr²) small
    big, small = kp.step_check(lr), kp.step_check(lr / 2)
    assert rel(big.predicted, -lr * (kp.G @ kp.error)) <= 1e-12
    assert 0 < big.rel_error < 0.05
    assert 0.4 <= small.rel_error / big.rel_error <= 0.6


def test_token_view_and_partial_traces(flow) -> None:
    """The operators seen on (B, L, n, d): the same matrix, and the partial trace over batch,
    layers and features equals the dense reduction Σ G[(b, l, i, f), (b, l, j, f)]."""
    from gdlens.operators import partial_effective_rank

    case, kp, P, _ = flow
    m = case.model
    G = m.token_view(kp.G)
    assert G.shape_in == (B, m.depth, N, D) and G.is_symmetric
    dense = kp.G.dense()
    assert rel(G.dense(), dense) <= 1e-12
    assert rel(m.token_view(kp.P).T.dense(), P.T) <= TOL
    want = torch.einsum("blifBLjF->ij", dense.reshape(B, m.depth, N, D, B, m.depth, N, D) *
                        (torch.eye(B)[:, None, None, None, :, None, None, None]
                         * torch.eye(m.depth)[None, :, None, None, None, :, None, None]
                         * torch.eye(D)[None, None, None, :, None, None, None, :]).to(F64))
    assert rel(G.partial_trace((0, 1, 3)).dense(), want) <= 1e-12
    est = partial_effective_rank(G, keep=2, method="exact")
    eig = torch.linalg.eigvalsh(want)
    assert est.value == pytest.approx(float(eig.sum() ** 2 / (eig**2).sum()), rel=1e-9)
    assert 1 - 1e-9 <= est.value <= N + 1e-9
