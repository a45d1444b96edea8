"""A pre-LayerNorm decoder-style transformer read as a state-space model over depth.

The "time" of the recursion is depth: step ℓ = 1..L applies block ℓ (untied weights θ_ℓ) to the
whole residual stream of each example, n tokens of width d. The state is that stream,
FLATTENED token-major: ``z_ℓ`` has shape (B, n·d) and entry ``i·d + j`` is feature j of token i
(:meth:`TransformerStack.unflatten_state` gives (B, L, n, d) back). With X = z_{ℓ-1} viewed as
(n, d) and LN(u) = γ ⊙ (u − mean u)/√(var u + ε) + β over the feature axis::

    z_0 = E[tokens] + W_pos[:n]         (tokens (B, n); a table in θ)
        | x W_inᵀ + b_in + W_pos[:n]    (embeddings (B, n, d_in); W_pos optional)
    A_ℓ(X) = Σ_h softmax(Q_h K_hᵀ / √d_h + M) V_h W^O_hᵀ + b^O
             Q_h = LN1(X) W^Q_hᵀ + b^Q_h,  K_h, V_h alike            (d_h = d / n_heads)
    X'   = X + A_ℓ(X)                                               (residual=True)
    z_ℓ  = X' + W2 σ(W1 LN2(X') + b1) + b2                           (mlp=True)
    y    = LN_f(z_L[n−1]) Uᵀ + c   (readout="last": (B, 1, O))
         | LN_f(z_L) Uᵀ + c        (readout="all":  (B, n, O))

M is the sum of the causal mask (M_ij = −∞ for j > i; 0 with ``causal=False``), a fixed
attention mask (``attn_mask`` (n, n): torch's ``mask`` convention, a bool True or a float −∞
where query i may not see key j, or any additive float) and the key padding of each example
(M_ij = −∞ for every padded key j: tokens equal to ``pad_token``, or the positions an extra
input channel marks, ``key_padding=True``; torch's ``src_key_padding_mask``). Padded positions
still carry a stream (their queries see the unpadded keys) and count in z, K, P and G; read at
an unpadded position (or mask them in the loss) to ignore them. Every query must see at least
one key (ValueError otherwise: a softmax over nothing). One step of the recursion
is one whole block, attention then MLP (the layout of torch's ``norm_first=True`` encoder
layer), so the flow's P propagates block to block; a per-sub-block split would double T but
leave G on the block outputs unchanged. ``mlp=False`` drops the MLP (attention-only) and
``residual=False`` the skip connections (X' = A(X), z_ℓ = MLP(LN2(X'))): the settings of the
rank-collapse analysis of Dong, Cordonnier & Loukas (arXiv 2103.03404).

Parameters (θ, every one a separate tensor so that ``KPFlow.K_groups`` splits K per head):
``embed.weight`` ((vocab, d) for tokens, (d, d_in) for embeddings, with ``embed.bias``),
``pos_embed`` (max_len, d); per block ℓ and head h ``blocks.ℓ.head{h}.q``, ``.k``, ``.v``
(d_h, d), ``.q_bias``, ``.k_bias``, ``.v_bias`` (d_h,), ``.o`` (d, d_h); ``blocks.ℓ.o_bias`` (d,);
``blocks.ℓ.ln1.weight/bias``, ``blocks.ℓ.ln2.weight/bias`` (d,); ``blocks.ℓ.mlp.fc_in.weight``
(d_mlp, d), ``.bias``, ``blocks.ℓ.mlp.fc_out.weight`` (d, d_mlp), ``.bias``. Readout (φ):
``readout.ln.weight/bias`` (d,) and ``readout.unembed.weight`` (O, d), ``.bias`` (O,).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdlens.models._common import check_positive
from gdlens.models.base import Params, StateSpaceModel
from gdlens.operators.base import LinearOperator

__all__ = ["TransformerStack", "from_torch_transformer"]

_ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu}
_READOUTS = ("last", "all")


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class _Head(nn.Module):
    """The four projections of one attention head (weights (d_h, d), o (d, d_h))."""

    def __init__(self, d_model: int, d_head: int, bias: bool) -> None:
        super().__init__()
        std = 1.0 / math.sqrt(d_model)
        self.q = nn.Parameter(torch.randn(d_head, d_model) * std)
        self.k = nn.Parameter(torch.randn(d_head, d_model) * std)
        self.v = nn.Parameter(torch.randn(d_head, d_model) * std)
        self.o = nn.Parameter(torch.zeros(d_model, d_head))
        if bias:
            self.q_bias = nn.Parameter(torch.zeros(d_head))
            self.k_bias = nn.Parameter(torch.zeros(d_head))
            self.v_bias = nn.Parameter(torch.zeros(d_head))


class _MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, bias: bool) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_mlp, bias=bias)
        self.fc_out = nn.Linear(d_mlp, d_model, bias=bias)


class _Block(nn.Module):
    """One block's parameters; the computation lives in :meth:`TransformerStack.step`."""

    def __init__(self, d_model: int, n_heads: int, d_mlp: int | None, bias: bool, eps: float) -> None:
        super().__init__()
        d_head = d_model // n_heads
        self.ln1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        for h in range(n_heads):
            self.add_module(f"head{h}", _Head(d_model, d_head, bias))
        if bias:
            self.o_bias = nn.Parameter(torch.zeros(d_model))
        if d_mlp is not None:
            self.ln2 = nn.LayerNorm(d_model, eps=eps, bias=bias)
            self.mlp = _MLP(d_model, d_mlp, bias)


class _Readout(nn.Module):
    def __init__(self, d_model: int, output_size: int, final_norm: bool, bias: bool, eps: float) -> None:
        super().__init__()
        if final_norm:
            self.ln = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.unembed = nn.Linear(d_model, output_size, bias=bias)


class _TokenView(LinearOperator):
    """An operator on flattened streams (…, n·d) seen on (…, n, d) (see ``token_view``)."""

    def __init__(self, op: LinearOperator, n: int, d: int) -> None:
        self.op, self._n, self._d = op, n, d
        super().__init__(self._split(op.shape_in), self._split(op.shape_out), dtype=op.dtype, device=op.device,
                         is_symmetric=op.is_symmetric)

    def _split(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) == 3 and shape[-1] == self._n * self._d:
            return (*shape[:-1], self._n, self._d)
        return tuple(shape)

    def _matmat(self, X: Tensor) -> Tensor:
        out = self.op._matmat(X.reshape(X.shape[0], *self.op.shape_in))
        return out.reshape(out.shape[0], *self.shape_out)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        out = self.op._rmatmat(Y.reshape(Y.shape[0], *self.op.shape_out))
        return out.reshape(out.shape[0], *self.shape_in)


class TransformerStack(StateSpaceModel):
    """Pre-LN transformer blocks as a recursion over depth (module docstring for the math).

    Shapes: x is tokens (B, n) (integers in [0, vocab_size)) or embeddings (B, n, input_size),
    with n = ``seq_len``; z (B, L, n·d) are z_1..z_L (z_0, the embedding, excluded), token-major;
    y (B, 1, O) for ``readout="last"``, (B, n, O) for ``"all"``. Steps take no input:
    :meth:`step_inputs` is an empty (L, B, 0) tensor. ``state_size`` = n·d, so the sequence length
    is part of the model: :meth:`set_seq_len` changes it (up to ``max_len``).

    Initialisation: token and positional embeddings N(0, 1); the input map N(0, 1/d_in);
    W^Q, W^K, W^V and W1 N(0, 1/d); W^O ~ N(0, 1/(d·L)) and W2 ~ N(0, 1/(d_mlp·L)), so the
    stream grows by O(1) over the stack (as in :class:`~gdlens.models.ResidualStack`); biases 0,
    LayerNorm gains 1; the unembedding N(0, 1/d).

    Args:
        d_model: d.  n_heads: heads (must divide d).  depth: L, the number of blocks.
        output_size: O.  seq_len: n, the sequence length of every input.
        vocab_size: token inputs from a table of this many rows (exclusive with ``input_size``).
        input_size: d_in, embedding inputs through a linear map (exclusive with ``vocab_size``).
        max_len: rows of the positional table (default n; ``0`` for none, only with
            ``input_size``).  d_mlp: MLP width (default 4d).  mlp: False for attention-only blocks.
        residual: False drops both skip connections.  causal: causal (default) or full attention.
        readout: ``"last"`` or ``"all"`` positions.  activation: ``"relu"`` or ``"gelu"`` (exact).
        bias: biases in every linear map and LayerNorm.  final_norm: the readout's LN_f.
        eps: the LayerNorms' ε.  embed: False (only with ``input_size == d_model``) makes z_0 = x
            (no input map; what :meth:`from_torch` builds).
        attn_mask: a fixed (n, n) attention mask, bool (True = query i may not see key j) or
            float (added to the scores), as torch's ``mask``; combined with ``causal``.
        pad_token: token inputs only: keys holding this token are masked for every query.
        key_padding: embedding inputs only: x carries one extra last channel, 1 at padded
            positions and 0 elsewhere (x (B, n, input_size + 1); :meth:`with_padding` builds it).

    The key padding travels to every step as its input: :meth:`step_inputs` is then (L, B, n),
    1 at the padded keys.
    """

    readout_prefixes = ("readout.",)
    time_invariant = False  # untied θ_ℓ: step t applies block t

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        depth: int,
        output_size: int,
        seq_len: int,
        *,
        vocab_size: int | None = None,
        input_size: int | None = None,
        max_len: int | None = None,
        d_mlp: int | None = None,
        mlp: bool = True,
        residual: bool = True,
        causal: bool = True,
        readout: str = "last",
        activation: str = "gelu",
        bias: bool = True,
        final_norm: bool = True,
        eps: float = 1e-5,
        embed: bool = True,
        attn_mask: Tensor | None = None,
        pad_token: int | None = None,
        key_padding: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("n_heads", n_heads), ("depth", depth),
                            ("output_size", output_size), ("seq_len", seq_len)):
            _check_int(name, value)
        if d_model % n_heads:
            raise ValueError(f"n_heads = {n_heads} must divide d_model = {d_model}")
        if (vocab_size is None) == (input_size is None):
            raise ValueError("give exactly one of vocab_size (token inputs) and input_size (embedding inputs)")
        if vocab_size is not None:
            _check_int("vocab_size", vocab_size)
        if input_size is not None:
            _check_int("input_size", input_size)
        if not embed and input_size != d_model:
            raise ValueError(f"embed=False needs input_size == d_model = {d_model}, got input_size={input_size}")
        max_len = seq_len if max_len is None else max_len
        _check_int("max_len", max_len, minimum=0)
        if max_len == 0 and vocab_size is not None:
            raise ValueError("max_len = 0 (no positional table) needs embedding inputs (input_size)")
        if max_len and seq_len > max_len:
            raise ValueError(f"seq_len = {seq_len} is longer than the positional table, max_len = {max_len}")
        if d_mlp is not None:
            _check_int("d_mlp", d_mlp)
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        check_positive(eps=eps)
        if pad_token is not None:
            if vocab_size is None:
                raise ValueError("pad_token needs token inputs (vocab_size); for embeddings pass key_padding=True")
            if isinstance(pad_token, bool) or not isinstance(pad_token, int) or not 0 <= pad_token < vocab_size:
                raise ValueError(f"pad_token must be an int in [0, vocab_size) = [0, {vocab_size}), got {pad_token!r}")
        if key_padding and input_size is None:
            raise ValueError("key_padding=True needs embedding inputs (input_size); for tokens pass pad_token")
        self.pad_token, self.key_padding = pad_token, bool(key_padding)
        self.register_buffer("attn_mask", None if attn_mask is None else self.additive_mask(attn_mask, seq_len))
        self.d_model, self.n_heads, self.d_head, self.depth = d_model, n_heads, d_model // n_heads, depth
        self.vocab_size, self.max_len, self.seq_len = vocab_size, max_len, seq_len
        self.d_mlp = (4 * d_model if d_mlp is None else d_mlp) if mlp else None
        self.mlp, self.residual, self.causal, self.readout_mode = mlp, residual, causal, readout
        if attn_mask is not None and causal:
            blind = torch.isneginf(self._score_mask(seq_len, None, torch.zeros(()))).all(dim=-1)
            if bool(blind.any()):
                raise ValueError(
                    f"attn_mask with causal attention masks every key for query {int(blind.nonzero()[0])} "
                    f"(a softmax over nothing); pass causal=False or unmask a key j <= i"
                )
        self.activation, self.bias, self.final_norm, self.eps, self.embed_input = activation, bias, final_norm, eps, embed
        self.input_size = 0 if vocab_size is not None else input_size  # per-step inputs are empty either way
        self.output_size = output_size
        if vocab_size is not None:
            self.embed = nn.Embedding(vocab_size, d_model)
            with torch.no_grad():
                self.embed.weight.normal_(0.0, 1.0)
        elif embed:
            self.embed = nn.Linear(input_size, d_model, bias=bias)
            with torch.no_grad():
                self.embed.weight.normal_(0.0, 1.0 / math.sqrt(input_size))
                if bias:
                    self.embed.bias.zero_()
        if max_len:
            self.pos_embed = nn.Parameter(torch.randn(max_len, d_model))
        self.blocks = nn.ModuleList(_Block(d_model, n_heads, self.d_mlp, bias, eps) for _ in range(depth))
        with torch.no_grad():
            for block in self.blocks:
                for h in range(n_heads):
                    getattr(block, f"head{h}").o.normal_(0.0, 1.0 / math.sqrt(d_model * depth))
                if mlp:
                    block.mlp.fc_in.weight.normal_(0.0, 1.0 / math.sqrt(d_model))
                    block.mlp.fc_out.weight.normal_(0.0, 1.0 / math.sqrt(self.d_mlp * depth))
                    if bias:
                        block.mlp.fc_in.bias.zero_()
                        block.mlp.fc_out.bias.zero_()
        self.readout = _Readout(d_model, output_size, final_norm, bias, eps)
        with torch.no_grad():
            self.readout.unembed.weight.normal_(0.0, 1.0 / math.sqrt(d_model))
            if bias:
                self.readout.unembed.bias.zero_()

    # ------------------------------------------------------------------ sizes and views
    @property
    def state_size(self) -> int:  # type: ignore[override]
        """H = n·d, the flattened residual stream of one example."""
        return self.seq_len * self.d_model

    def set_seq_len(self, seq_len: int) -> None:
        """Take inputs of n = ``seq_len`` tokens from now on (state_size becomes n·d)."""
        _check_int("seq_len", seq_len)
        if self.max_len and seq_len > self.max_len:
            raise ValueError(f"seq_len = {seq_len} is longer than the positional table, max_len = {self.max_len}")
        if self.attn_mask is not None and seq_len != self.attn_mask.shape[0]:
            raise ValueError(
                f"seq_len = {seq_len} does not fit attn_mask of shape {tuple(self.attn_mask.shape)}; "
                f"set model.attn_mask = TransformerStack.additive_mask(mask, {seq_len}) for a new (n, n) mask first"
            )
        self.seq_len = seq_len

    def unflatten_state(self, z: Tensor) -> Tensor:
        """(..., n·d) -> (..., n, d): e.g. the states (B, L, n·d) -> (B, L, n, d)."""
        if z.shape[-1] != self.state_size:
            raise ValueError(f"z has last axis {z.shape[-1]}, expected n·d = {self.state_size}")
        return z.reshape(*z.shape[:-1], self.seq_len, self.d_model)

    def flatten_state(self, z: Tensor) -> Tensor:
        """(..., n, d) -> (..., n·d), the inverse of :meth:`unflatten_state`."""
        if tuple(z.shape[-2:]) != (self.seq_len, self.d_model):
            raise ValueError(f"z has trailing axes {tuple(z.shape[-2:])}, expected (n, d) = "
                             f"{(self.seq_len, self.d_model)}")
        return z.reshape(*z.shape[:-2], self.state_size)

    def token_view(self, op: LinearOperator) -> LinearOperator:
        """``op`` (e.g. ``KPFlow``'s K, P, G) on (B, L, n, d) instead of (B, L, n·d): the same
        matrix (the flattening is token-major), with the token axis 2 and the feature axis 3
        apart, so that ``token_view(kp.G).partial_trace((0, 1, 3))`` is G reduced to the tokens
        (n, n) and ``partial_effective_rank(token_view(kp.G), keep=2)`` its effective dimension
        over tokens. An axis of ``op`` that is not (B, L, n·d) is left as it is."""
        return _TokenView(op, self.seq_len, self.d_model)

    @staticmethod
    def additive_mask(mask: Tensor, n: int) -> Tensor:
        """torch's (n, n) ``mask`` as an additive float mask (bool True -> −∞); ValueError naming
        ``attn_mask`` for anything else, or when a query would see no key."""
        if not isinstance(mask, Tensor):
            raise ValueError(f"attn_mask must be a torch.Tensor of shape (n, n) = ({n}, {n}), got {type(mask).__name__}")
        if tuple(mask.shape) != (n, n):
            raise ValueError(
                f"attn_mask must have shape (n, n) = ({n}, {n}) (one mask for every example and head), "
                f"got {tuple(mask.shape)}"
            )
        if mask.dtype == torch.bool:
            mask = torch.zeros(n, n).masked_fill(mask, float("-inf"))
        elif not mask.dtype.is_floating_point:
            raise ValueError(f"attn_mask must be bool (True = masked) or floating point (added), got {mask.dtype}")
        if bool(torch.isnan(mask).any()) or bool((mask == float("inf")).any()):
            raise ValueError("attn_mask holds NaN or +inf; use −inf (or True) for the keys a query may not see")
        blocked = torch.isneginf(mask).all(dim=-1)
        if bool(blocked.any()):
            raise ValueError(f"attn_mask masks every key for query {int(blocked.nonzero()[0])}: a softmax over nothing")
        return mask.clone()

    def with_padding(self, x: Tensor, key_padding_mask: Tensor) -> Tensor:
        """The input of a ``key_padding=True`` model: embeddings x (B, n, input_size) with the
        (B, n) mask (bool, True = padded, torch's ``src_key_padding_mask``) as a last channel."""
        if not self.key_padding:
            raise ValueError("with_padding is for models built with key_padding=True")
        if not isinstance(key_padding_mask, Tensor) or tuple(key_padding_mask.shape) != tuple(x.shape[:2]):
            got = tuple(key_padding_mask.shape) if isinstance(key_padding_mask, Tensor) else type(key_padding_mask)
            raise ValueError(f"key_padding_mask must have shape (B, n) = {tuple(x.shape[:2])}, got {got}")
        return torch.cat([x, key_padding_mask.to(x.dtype).unsqueeze(-1)], dim=-1)

    def _padding(self, x: Tensor) -> Tensor | None:
        """The (B, n) bool key padding of input x, or None."""
        if self.pad_token is not None:
            return x == self.pad_token
        if self.key_padding:
            return x[..., -1] > 0.5
        return None

    def _score_mask(self, n: int, padding: Tensor | None, ref: Tensor) -> Tensor | None:
        """M (…, n, n) added to the scores: causal + attn_mask + key padding (None when 0)."""
        mask = None
        if self.causal:
            mask = torch.zeros(n, n, dtype=ref.dtype, device=ref.device).masked_fill(
                torch.ones(n, n, dtype=torch.bool, device=ref.device).triu(1), float("-inf")
            )
        if self.attn_mask is not None:
            extra = self.attn_mask.to(dtype=ref.dtype, device=ref.device)
            mask = extra if mask is None else mask + extra
        if padding is not None:
            pad = torch.zeros(padding.shape, dtype=ref.dtype, device=ref.device).masked_fill(padding > 0.5, float("-inf"))
            pad = pad.unsqueeze(-2)  # (…, 1, n): the same keys masked for every query
            mask = pad if mask is None else mask + pad
        return mask

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by component: ``"embedding"``, ``"blocks.ℓ.head{h}"`` (q, k, v, o and
        their biases), ``"blocks.ℓ.attn_bias"``, ``"blocks.ℓ.ln1"``, ``"blocks.ℓ.ln2"``,
        ``"blocks.ℓ.mlp"``, ``"readout"``. Sum ``KPFlow.K_groups`` over a group for its share of K."""
        groups: dict[str, list[str]] = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] in ("embed", "pos_embed"):
                key = "embedding"
            elif parts[0] == "readout":
                key = "readout"
            elif parts[2] == "o_bias":
                key = f"blocks.{parts[1]}.attn_bias"
            else:
                key = ".".join(parts[:3])
            groups.setdefault(key, []).append(name)
        return groups

    # ------------------------------------------------------------------ inputs
    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if self.vocab_size is not None:
            if x.dim() != 2 or x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
                raise ValueError(
                    f"TransformerStack expects x of integer tokens shaped (B, n), got {tuple(x.shape)} {x.dtype}"
                )
        elif x.dim() != 3 or x.shape[-1] != self.input_size + self.key_padding:
            extra = " + 1 (the key-padding channel, see with_padding)" if self.key_padding else ""
            raise ValueError(
                f"TransformerStack expects x of embeddings shaped (B, n, {self.input_size}{extra}), got {tuple(x.shape)}"
            )
        n = x.shape[1]
        if self.max_len and n > self.max_len:
            raise ValueError(
                f"x has sequence length n = {n}, longer than the positional table (max_len = {self.max_len})"
            )
        if n != self.seq_len:
            raise ValueError(
                f"x has sequence length n = {n} but the model's seq_len is {self.seq_len} (state_size = n·d); "
                f"call set_seq_len({n}) first"
            )
        if self.vocab_size is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise ValueError(
                f"x holds tokens in [{int(x.min())}, {int(x.max())}], outside [0, vocab_size) = [0, {self.vocab_size})"
            )
        if self.key_padding and x.numel() and not bool(((x[..., -1] == 0) | (x[..., -1] == 1)).all()):
            raise ValueError("x's last channel is the key-padding mask (key_padding=True): it must hold 0 or 1 only")
        padding = self._padding(x)
        if padding is not None and x.numel():
            mask = self._score_mask(n, padding, torch.zeros((), dtype=torch.float64))
            blind = torch.isneginf(mask).all(dim=-1).nonzero()
            if len(blind):
                b, i = (int(v) for v in blind[0])
                what = f"pad_token = {self.pad_token}" if self.pad_token is not None else "the key-padding channel"
                raise ValueError(
                    f"with {what}{' and causal attention' if self.causal else ''}, query {i} of example {b} sees no "
                    f"unpadded key (a softmax over nothing); pad at the end, or use causal=False"
                )

    def step_inputs(self, x: Tensor) -> Tensor:
        """No per-step input: an empty (L, B, 0) tensor in the parameters' dtype; with key
        padding the (B, n) padding (1 = padded key) at every step, (L, B, n)."""
        self._check_input(x)
        dtype = next(iter(self.parameters())).dtype
        padding = self._padding(x)
        if padding is None:
            return torch.zeros(self.depth, x.shape[0], 0, dtype=dtype, device=x.device)
        return padding.to(dtype).unsqueeze(0).expand(self.depth, *padding.shape)

    def num_steps(self, x: Tensor) -> int:
        return self.depth

    # ------------------------------------------------------------------ the recursion
    def initial_state(self, theta: Params, x: Tensor) -> Tensor:
        """z_0 (B, n·d): the token (or input-map) embedding plus the positional one, a
        function of θ (``embed.*``, ``pos_embed``) unless ``embed=False`` and no positions."""
        n = x.shape[1]
        if self.vocab_size is not None:
            stream = theta["embed.weight"][x]
        else:
            if self.key_padding:
                x = x[..., :-1]
            stream = F.linear(x, theta["embed.weight"], theta.get("embed.bias")) if self.embed_input else x
        if self.max_len:
            stream = stream + theta["pos_embed"][:n]
        return stream.reshape(x.shape[0], n * self.d_model)

    def _layer_norm(self, theta: Params, prefix: str, u: Tensor) -> Tensor:
        return F.layer_norm(u, (self.d_model,), theta[f"{prefix}.weight"], theta.get(f"{prefix}.bias"), self.eps)

    def attention(self, theta: Params, layer: int, u: Tensor, padding: Tensor | None = None) -> Tensor:
        """Σ_h softmax(Q_h K_hᵀ/√d_h + M) V_h W^O_hᵀ + b^O for block ``layer`` (0-based) on the
        normalised stream u (..., n, d) -> (..., n, d); softmax written out (exp of the shifted
        scores over their sum), the shift detached (softmax does not depend on it). ``padding``
        (..., n): 1 (or True) at the keys no query may see."""
        n = u.shape[-2]
        scale = 1.0 / math.sqrt(self.d_head)
        mask = self._score_mask(n, padding, u)
        out = theta.get(f"blocks.{layer}.o_bias")
        out = torch.zeros((), dtype=u.dtype, device=u.device) if out is None else out
        for h in range(self.n_heads):
            p = f"blocks.{layer}.head{h}."
            q = F.linear(u, theta[p + "q"], theta.get(p + "q_bias"))  # (..., n, d_h)
            k = F.linear(u, theta[p + "k"], theta.get(p + "k_bias"))
            v = F.linear(u, theta[p + "v"], theta.get(p + "v_bias"))
            scores = (q @ k.transpose(-1, -2)) * scale  # (..., n, n): query i, key j
            if mask is not None:
                scores = scores + mask
            scores = scores - scores.amax(dim=-1, keepdim=True).detach()
            weights = scores.exp()
            weights = weights / weights.sum(dim=-1, keepdim=True)
            out = out + F.linear(weights @ v, theta[p + "o"])
        return out

    def feedforward(self, theta: Params, layer: int, u: Tensor) -> Tensor:
        """W2 σ(W1 u + b1) + b2 for block ``layer`` (0-based): (..., n, d) -> (..., n, d)."""
        p = f"blocks.{layer}.mlp."
        hidden = _ACTIVATIONS[self.activation](F.linear(u, theta[p + "fc_in.weight"], theta.get(p + "fc_in.bias")))
        return F.linear(hidden, theta[p + "fc_out.weight"], theta.get(p + "fc_out.bias"))

    def block(self, theta: Params, layer: int, stream: Tensor, padding: Tensor | None = None) -> Tensor:
        """Block ``layer`` (0-based) on the unflattened stream (..., n, d); ``padding`` (..., n)
        marks the padded keys (1), if any."""
        attn = self.attention(theta, layer, self._layer_norm(theta, f"blocks.{layer}.ln1", stream), padding)
        stream = stream + attn if self.residual else attn
        if self.mlp:
            ff = self.feedforward(theta, layer, self._layer_norm(theta, f"blocks.{layer}.ln2", stream))
            stream = stream + ff if self.residual else ff
        return stream

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        """z_t = block_t(z_{t-1}): (B, n·d) -> (B, n·d); x_t is (B, 0) (ignored) or, with key
        padding, the (B, n) padding of the keys (1 = padded)."""
        if not 1 <= t <= self.depth:
            raise ValueError(f"step index t must be in 1..{self.depth}, got {t}")
        stream = z_prev.reshape(*z_prev.shape[:-1], self.seq_len, self.d_model)
        padding = x_t if x_t is not None and x_t.shape[-1] else None
        return self.block(theta, t - 1, stream, padding).reshape(z_prev.shape)

    def read(self, phi: Params, z: Tensor) -> Tensor:
        """y = LN_f(z_L) Uᵀ + c at the last position (B, 1, O) or every position (B, n, O);
        z (B, L, n·d), only the last layer is read."""
        last = z[..., -1, :].reshape(*z.shape[:-2], self.seq_len, self.d_model)
        if self.readout_mode == "last":
            last = last[..., -1:, :]
        if self.final_norm:
            last = self._layer_norm(phi, "readout.ln", last)
        return F.linear(last, phi["readout.unembed.weight"], phi.get("readout.unembed.bias"))

    #: ``TransformerStack.from_torch(encoder, seq_len, ...)`` is :func:`from_torch_transformer`
    from_torch: staticmethod


def _activation_name(layer: nn.TransformerEncoderLayer, index: int) -> str:
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"layer {index}: activation {act!r} is not supported (relu or exact gelu)")


def _dropouts(layer: nn.TransformerEncoderLayer) -> Iterable[float]:
    yield layer.self_attn.dropout
    for name in ("dropout", "dropout1", "dropout2"):
        module = getattr(layer, name, None)
        if isinstance(module, nn.Dropout):
            yield module.p


def from_torch_transformer(
    encoder: nn.TransformerEncoder | Sequence[nn.TransformerEncoderLayer],
    seq_len: int,
    *,
    head: nn.Linear | None = None,
    causal: bool = True,
    readout: str = "all",
    attn_mask: Tensor | None = None,
    key_padding: bool = False,
) -> TransformerStack:
    """A :class:`TransformerStack` computing what torch's encoder stack computes.

    ``encoder`` is an ``nn.TransformerEncoder`` (its ``norm``, if any, becomes LN_f) or a
    sequence of ``nn.TransformerEncoderLayer``, each with ``norm_first=True``,
    ``batch_first=True``, relu or exact gelu, and no active dropout (eval mode or p = 0). The
    result takes embeddings x (B, n, d) directly (``embed=False``, no positional table; z_0 = x),
    so ``model.unflatten_state(z)[:, -1]`` is ``encoder(x, mask, is_causal=causal)``, and
    y = head(that) (y = that when ``head`` is None: an identity unembedding, O = d).
    ``attn_mask`` (n, n) is torch's ``mask`` beyond the causal one (see :class:`TransformerStack`);
    ``key_padding=True`` takes torch's ``src_key_padding_mask`` as a last input channel
    (``model.with_padding(x, src_key_padding_mask)``).
    ``in_proj_weight`` is split into per-head Q, K, V rows h·d_h:(h+1)·d_h and ``out_proj.weight``
    into per-head columns; linear1/linear2/norm1/norm2 are copied. Parameters are copies, in the
    encoder's dtype.

    Raises:
        TypeError: something other than an encoder or encoder layers (or a head that is not
            an ``nn.Linear``).
        ValueError: norm_first=False, batch_first=False, active dropout, an unsupported
            activation, layers that differ in width, heads, eps or biases, bias_k/bias_v,
            add_zero_attn, a head of the wrong width.
    """
    if isinstance(encoder, nn.TransformerEncoder):
        layers, final = list(encoder.layers), encoder.norm
    elif isinstance(encoder, (list, tuple, nn.ModuleList)):
        layers, final = list(encoder), None
    else:
        raise TypeError(
            f"encoder must be an nn.TransformerEncoder or a sequence of nn.TransformerEncoderLayer, "
            f"got {type(encoder).__name__}"
        )
    if not layers:
        raise ValueError("encoder has no layers")
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"encoder layer {i} is a {type(layer).__name__}, not an nn.TransformerEncoderLayer")
        if not layer.norm_first:
            raise ValueError(f"encoder layer {i} has norm_first=False; only pre-LN layers (norm_first=True) convert")
        if not layer.self_attn.batch_first:
            raise ValueError(f"encoder layer {i} has batch_first=False; build it with batch_first=True")
        if layer.training and any(p > 0 for p in _dropouts(layer)):
            raise ValueError(
                f"encoder layer {i} has active dropout (training mode with p > 0); call .eval() or set p = 0"
            )
        attn = layer.self_attn
        if not attn._qkv_same_embed_dim or attn.bias_k is not None or attn.add_zero_attn:
            raise ValueError(f"encoder layer {i}: separate q/k/v dims, bias_k/bias_v or add_zero_attn do not convert")
    first = layers[0]
    d, n_heads = first.self_attn.embed_dim, first.self_attn.num_heads
    bias = first.self_attn.in_proj_bias is not None
    eps, activation = first.norm1.eps, _activation_name(first, 0)
    d_mlp = first.linear1.out_features
    for i, layer in enumerate(layers):
        got = (layer.self_attn.embed_dim, layer.self_attn.num_heads, layer.self_attn.in_proj_bias is not None,
               layer.norm1.eps, layer.norm2.eps, _activation_name(layer, i), layer.linear1.out_features,
               layer.linear1.bias is not None, layer.norm1.bias is not None)
        want = (d, n_heads, bias, eps, eps, activation, d_mlp, bias, bias)
        if got != want:
            raise ValueError(f"encoder layer {i} differs from layer 0 in (d, heads, bias, eps, activation, d_mlp)")
    if final is not None and (not isinstance(final, nn.LayerNorm) or final.eps != eps
                              or (final.bias is not None) != bias or final.normalized_shape != (d,)):
        raise ValueError("the encoder's final norm must be an nn.LayerNorm(d) with the layers' eps and bias")
    if head is not None and (not isinstance(head, nn.Linear)):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    if head is not None and (head.in_features != d or (head.bias is not None) != bias):
        raise ValueError(f"head must be an nn.Linear({d}, O) with bias={bias}, got {head}")
    output_size = d if head is None else head.out_features
    ref = first.linear1.weight
    model = TransformerStack(
        d, n_heads, len(layers), output_size, seq_len, input_size=d, max_len=0, d_mlp=d_mlp, causal=causal,
        readout=readout, activation=activation, bias=bias, final_norm=final is not None, eps=eps, embed=False,
        attn_mask=attn_mask, key_padding=key_padding,
    ).to(dtype=ref.dtype, device=ref.device)
    dh = d // n_heads
    with torch.no_grad():
        for block, layer in zip(model.blocks, layers):
            attn = layer.self_attn
            Wq, Wk, Wv = attn.in_proj_weight.chunk(3, dim=0)
            bq, bk, bv = attn.in_proj_bias.chunk(3) if bias else (None, None, None)
            for h in range(n_heads):
                rows = slice(h * dh, (h + 1) * dh)
                mine = getattr(block, f"head{h}")
                for part, weight, b in (("q", Wq, bq), ("k", Wk, bk), ("v", Wv, bv)):
                    getattr(mine, part).copy_(weight[rows])
                    if bias:
                        getattr(mine, f"{part}_bias").copy_(b[rows])
                mine.o.copy_(attn.out_proj.weight[:, rows])
            if bias:
                block.o_bias.copy_(attn.out_proj.bias)
            block.ln1.load_state_dict(layer.norm1.state_dict())
            block.ln2.load_state_dict(layer.norm2.state_dict())
            block.mlp.fc_in.load_state_dict(layer.linear1.state_dict())
            block.mlp.fc_out.load_state_dict(layer.linear2.state_dict())
        if final is not None:
            model.readout.ln.load_state_dict(final.state_dict())
        if head is None:
            model.readout.unembed.weight.copy_(torch.eye(d, dtype=ref.dtype))
            if bias:
                model.readout.unembed.bias.zero_()
        else:
            model.readout.unembed.load_state_dict(head.state_dict())
    return model


TransformerStack.from_torch = staticmethod(from_torch_transformer)
