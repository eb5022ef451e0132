"""Attention: each position gathers information from the positions it is allowed to look at.

Every position emits a query ("what am I looking for?"), a key ("what do I contain?") and a
value ("what do I pass on?"). A query's dot product with each key, scaled by 1/sqrt(d_k) and put
through a softmax, gives weights that sum to 1; the output is the weighted sum of the values.

    >>> q = torch.tensor([[1.0, 0.0]])                 # one query,   (T_q=1, d_k=2)
    >>> k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])     # two keys,    (T_k=2, d_k=2)
    >>> v = torch.tensor([[10.0], [20.0]])             # two values,  (T_k=2, d_v=1)
    >>> out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    >>> weights      # softmax([1, 0] / sqrt(2)) = softmax([0.7071, 0])
    tensor([[0.6698, 0.3302]])
    >>> out          # 0.6698 * 10 + 0.3302 * 20
    tensor([[13.3024]])

A language model may not look ahead: position t attends to positions 0..t only, which a
boolean `causal_mask` enforces. `MultiHeadSelfAttention` runs several such attentions ("heads")
side by side on learned projections of the same sequence, each free to track a different
relation, and mixes their outputs with one more projection. Llama tells attention where each
token is by rotating queries and keys (`rotary_cos_sin`, `apply_rotary`); GPT-2 instead adds
a learned position embedding to the input, outside this module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Linear


def causal_mask(T: int, T_k: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """The (T, T) boolean mask of a causal model: True where query i may attend to key j, i.e. j <= i.

    causal_mask(3) ->
        [[ True, False, False],
         [ True,  True, False],
         [ True,  True,  True]]

    With a key-value cache the T queries are the newest of T_k positions: query i sits at
    position T_k - T + i and may attend to keys 0..T_k - T + i. The mask is then (T, T_k):

    causal_mask(2, T_k=4) ->
        [[ True,  True,  True, False],
         [ True,  True,  True,  True]]
    """
    T_k = T if T_k is None else T_k
    if T_k < T:
        raise ValueError(f"causal_mask: {T} queries cannot be the newest of only T_k={T_k} positions")
    # tril(diagonal=d) keeps j <= i + d; with d = T_k - T query i keeps keys up to its own position.
    return torch.ones(T, T_k, dtype=torch.bool, device=device).tril(diagonal=T_k - T)  # (T, T_k)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / sqrt(d_k)) v, the from-scratch version of F.scaled_dot_product_attention.

    Shapes: q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v) -> output (..., T_q, d_v).
    The leading dimensions (batch, heads) broadcast as in matrix multiplication.

    `mask` is a boolean tensor broadcastable to (..., T_q, T_k): True where the query may attend
    to the key. Masked scores become -inf, so their softmax weight is exactly 0.

    A query whose row of the mask is all False (it may attend to nothing, as happens with
    padding) gets all-zero weights and so an all-zero output, where a plain softmax over a row
    of -inf would give 0/0 = NaN. F.scaled_dot_product_attention has done the same since
    PyTorch 2.5; earlier versions returned NaN.

    With return_weights=True it returns (output, weights), the weights (..., T_q, T_k) being
    what a heatmap of attention shows; each row sums to 1 (or is all 0, as above).

    Why divide by sqrt(d_k): if q and k have independent entries of variance 1, q·k is a sum of
    d_k such products and has variance d_k. Dividing by sqrt(d_k) brings it back to 1, so the
    softmax does not saturate into a one-hot as d_k grows. (torch.softmax subtracts each row's
    maximum before exponentiating, so large scores do not overflow.)
    """
    _check_qkv(q, k, v)
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, d_k) @ (..., d_k, T_k) -> (..., T_q, T_k)
    if mask is not None:
        _check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., T_q, T_k), each row sums to 1
    if mask is not None:
        # Rows with nothing to attend to came out NaN (0/0); make them 0. Backward, such a row
        # is NaN again inside the softmax, but the masked_fill on the scores overwrote all of
        # it and passes none of its gradient back: the gradients of q, k and v stay finite.
        attends_to_nothing = ~mask.any(dim=-1, keepdim=True)  # (..., T_q, 1)
        weights = weights.masked_fill(attends_to_nothing, 0.0)
    out = weights @ v  # (..., T_q, T_k) @ (..., T_k, d_v) -> (..., T_q, d_v)
    return (out, weights) if return_weights else out


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise ValueError(f"attention: {name} must have shape (..., T, d), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention: q and k must have the same last dimension d_k (queries are compared with"
            f" keys by a dot product), got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"attention: k and v must have the same length T_k (one value per key),"
            f" got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )


def _check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(
            f"attention: mask must be a boolean tensor (True = may attend), got {mask.dtype};"
            f" for a 0/1 mask use mask.bool(), for an additive -inf mask use mask == 0"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"attention: mask of shape {tuple(mask.shape)} does not broadcast to the scores'"
            f" shape (..., T_q, T_k) = {tuple(scores_shape)}"
        )


def fused_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PyTorch's fused attention for T queries that are the newest of T_k positions: (..., T, hs).

    The fused twin of `scaled_dot_product_attention(q, k, v, causal_mask(T, T_k))`, with the
    cheapest mask for each case: without a cache (T_k = T) F.scaled_dot_product_attention's own
    causal mask, which on a GPU selects flash attention; for one new token after a cache no mask
    (it may attend to every position); for several new tokens after a cache the bottom-right
    `causal_mask` (is_causal=True would align the mask to the top left, letting query 0 see
    key 0 only).
    """
    T, T_k = q.shape[-2], k.shape[-2]
    if T_k == T:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, T_k, device=q.device))


# --------------------------------------------------------------------------------------------
# Rotary position embeddings (RoPE, Su et al. 2021), as in Llama
# --------------------------------------------------------------------------------------------


def rotary_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosines and sines of the rotary angles at each position: positions (..., T) -> two (..., T, head_dim).

    The head's dimensions form head_dim/2 pairs, pair i being dimensions (i, i + head_dim/2).
    At position m, pair i is turned by the angle m · theta^(-2i/head_dim): pair 0 by 1 radian
    per position, the last pairs so slowly that they can tell apart positions far apart.
    With head_dim=4, theta=100 and positions [0, 1] the angles are [[0, 0], [1, 0.1]], repeated
    for the two halves:

        >>> cos, sin = rotary_cos_sin(torch.tensor([0, 1]), head_dim=4, theta=100.0)
        >>> cos
        tensor([[1.0000, 1.0000, 1.0000, 1.0000],
                [0.5403, 0.9950, 0.5403, 0.9950]])

    `positions` may have leading dimensions, e.g. (B, T) for sequences that start at different
    positions; they carry over to the result.

    Computed in float32 on every call rather than stored as a buffer, which `model.to(torch.bfloat16)`
    would round to bfloat16's two to three significant digits. The cost is small: T · head_dim
    cosines and sines per layer, against the T² · head_dim products of attention itself.
    """
    if head_dim % 2 != 0:
        raise ValueError(f"rotary embeddings turn pairs of dimensions: head_dim={head_dim} must be even")
    pair = torch.arange(head_dim // 2, device=positions.device, dtype=torch.float32)  # (hs/2,)
    frequencies = theta ** (-2 * pair / head_dim)  # (hs/2,) radians per position
    angles = positions.float()[..., None] * frequencies  # (..., T, 1) * (hs/2,) -> (..., T, hs/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., T, hs): dimensions i and i + hs/2 share an angle
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each pair (x[i], x[i + d/2]) of x's last dimension by its angle: x (..., T, d) -> same shape.

    cos and sin come from `rotary_cos_sin` and broadcast against x: (T, d) for every sequence
    alike, (B, 1, T, d) for per-sequence positions of x (B, heads, T, d). A pair (a, b) turned
    by φ becomes (a cos φ - b sin φ, a sin φ + b cos φ). With d=2, x=[1, 0] and φ=1:

        >>> apply_rotary(torch.tensor([[1.0, 0.0]]), *rotary_cos_sin(torch.tensor([1]), head_dim=2))
        tensor([[0.5403, 0.8415]])

    A rotation keeps lengths, and the dot product of a query turned by m·f with a key turned by
    n·f depends on m - n only: attention scores see relative positions. (This is the "rotate half" layout of Hugging Face's Llama. Meta's own
    checkpoints pair neighbouring dimensions (2i, 2i + 1); Hugging Face's conversion permutes
    the rows of q_proj and k_proj to this layout.)
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (..., T, d/2) each: the two members of every pair
    quarter_turn = torch.cat([-x2, x1], dim=-1)  # (..., T, d): each pair (a, b) -> (-b, a)
    # cos and sin are float32, so a bfloat16 x is turned in float32 and rounded once at the end.
    return (x * cos + quarter_turn * sin).to(x.dtype)  # (..., T, d)


class KVCache:
    """The keys and values one attention layer has computed so far, kept for generation.

    Generating token t+1 needs the keys and values of positions 0..t, and those of 0..t-1
    have not changed since the previous step (a causal model never revises the past). So each
    step computes k and v for the new token only and appends them here: the work per token
    stays the same instead of growing with the length of the text.

        >>> cache = KVCache()
        >>> k, v = cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))  # 3 positions
        >>> k, v = cache.update(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))     # 1 more
        >>> cache.length, tuple(k.shape)
        (4, (1, 2, 4, 4))

    The cache stores the n_kv_heads heads of grouped-query attention before they are repeated,
    which is why grouped-query attention shrinks it. One cache per layer, one per generation.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, nkv, T_past, hs)
        self.v: torch.Tensor | None = None  # (B, nkv, T_past, hs)

    @property
    def length(self) -> int:
        """How many positions are stored: the position the next token will have."""
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' k and v (B, nkv, T, hs); return all of them (B, nkv, T_past + T, hs)."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)  # (B, nkv, T_past + T, hs)
            self.v = torch.cat([self.v, v], dim=-2)  # (B, nkv, T_past + T, hs)
        return self.k, self.v


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention over sequences x of shape (..., T, d_model), e.g. (B, T, d_model).

    Each of the `n_heads` heads attends with its own d_model / n_heads dimensions of the
    query, key and value projections; the heads' outputs are concatenated and mixed by
    `out_proj`. GPT-2 small: d_model=768, n_heads=12, so 12 heads of 64 dimensions.

    Grouped-query attention (Llama 3): with n_kv_heads < n_heads, keys and values have only
    n_kv_heads heads, each shared by n_heads / n_kv_heads consecutive query heads (query heads
    0..g-1 use key/value head 0, and so on). This shrinks k_proj and v_proj, and a KV cache, by
    that factor. n_kv_heads=None means n_heads: ordinary multi-head attention.

    Two paths compute the same thing:
    - fast=True (the default) calls `fused_causal_attention`, i.e. F.scaled_dot_product_attention,
      which on a GPU runs a fused kernel (flash attention) that never stores the (T, T) weights.
    - fast=False runs this module's `scaled_dot_product_attention` with a `causal_mask`: the
      computation the chapter explains, kept for reading and for drawing the weights.
    forward(x, return_weights=True) always takes the second path and also returns the weights.
    The four projections take `fast` too (`F.linear` or the written-out `linear`).

    rope_theta: None for no rotary embeddings (GPT-2); a base such as 10000.0 (Llama 2) or
    500000.0 (Llama 3) to turn queries and keys by `apply_rotary` before attending. The tokens
    of x are at positions 0..T-1, or `positions` (T,) or (..., T) when given (forward(x,
    positions=...)): the angles follow them, while the causal mask follows the order in x.

    forward(x, kv_cache=cache) treats x as the positions that follow those in `cache` (a
    `KVCache`): it appends their keys and values, lets each new query attend to every cached
    position and to the new ones up to itself, and turns them by their true positions.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        bias: bool = True,
        fast: bool = True,
        rope_theta: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if d_model % n_heads != 0:
            raise ValueError(
                f"MultiHeadSelfAttention: d_model={d_model} must be divisible by n_heads={n_heads}"
                f" (each head gets d_model / n_heads dimensions)"
            )
        if n_heads % n_kv_heads != 0:
            raise ValueError(
                f"MultiHeadSelfAttention: n_heads={n_heads} must be divisible by"
                f" n_kv_heads={n_kv_heads} (each key/value head serves an equal group of query heads)"
            )
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        if rope_theta is not None and self.head_dim % 2 != 0:
            raise ValueError(
                f"MultiHeadSelfAttention: rotary embeddings need an even head size,"
                f" got d_model / n_heads = {self.head_dim}"
            )
        self.fast = fast
        self.rope_theta = rope_theta
        kv_dim = n_kv_heads * self.head_dim
        self.q_proj = Linear(d_model, d_model, bias=bias, fast=fast, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, kv_dim, bias=bias, fast=fast, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, kv_dim, bias=bias, fast=fast, device=device, dtype=dtype)
        self.out_proj = Linear(d_model, d_model, bias=bias, fast=fast, device=device, dtype=dtype)

    def forward(
        self,
        x: torch.Tensor,
        return_weights: bool = False,
        kv_cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (..., T, d_model) -> (..., T, d_model); return_weights=True adds the weights (..., nh, T, T_k).

        T_k = T without a cache; with `kv_cache`, T_k = cached positions + T.
        """
        self._check_input(x, positions)
        batch_shape, (T, C) = x.shape[:-2], x.shape[-2:]
        x = x.reshape(-1, T, C)  # (B, T, C): the leading dimensions, flattened into one batch
        B = x.shape[0]
        nh, nkv, hs = self.n_heads, self.n_kv_heads, self.head_dim
        # Project, then split the channels into heads and move heads before time, so that the
        # attention below is a batch of (T, hs) problems, one per (batch, head).
        q = self.q_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, nkv, hs).transpose(1, 2)  # (B, T, nkv*hs) -> (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if self.rope_theta is not None:
            # Positions enter here: turn queries and keys (never values) by their position's angles.
            cos, sin = self._rotary_angles(positions, batch_shape, T, kv_cache, x.device)  # (T, hs) or (B, 1, T, hs)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (B, nh, T, hs), (B, nkv, T, hs)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, nkv, T_k, hs), T_k = cached positions + T
        T_k = k.shape[2]
        if nkv != nh:
            # Grouped-query attention: repeat each key/value head for its group of query heads.
            k = k.repeat_interleave(nh // nkv, dim=1)  # (B, nkv, T_k, hs) -> (B, nh, T_k, hs)
            v = v.repeat_interleave(nh // nkv, dim=1)  # (B, nh, T_k, hs)
        if self.fast and not return_weights:  # the fused kernel never forms the weights
            y, weights = fused_causal_attention(q, k, v), None  # (B, nh, T, hs)
        else:
            mask = causal_mask(T, T_k, device=x.device)  # (T, T_k), broadcast over (B, nh)
            y, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)  # (B, nh, T, hs)
        # Put the heads side by side again: (B, nh, T, hs) -> (B, T, nh, hs) -> (B, T, C).
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        y = self.out_proj(y).view(*batch_shape, T, C)  # (..., T, C)
        return (y, weights.view(*batch_shape, nh, T, T_k)) if return_weights else y

    def _check_input(self, x: torch.Tensor, positions: torch.Tensor | None) -> None:
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"MultiHeadSelfAttention expected x of shape (..., T, {self.d_model}), got"
                f" {tuple(x.shape)} (for a single token, add a time dimension: x.unsqueeze(-2))"
            )
        if positions is not None and self.rope_theta is None:
            raise ValueError(
                "MultiHeadSelfAttention: positions only turn rotary embeddings, and this module has"
                " none (rope_theta=None); a learned position embedding is added to x beforehand"
            )

    def _rotary_angles(
        self, positions: torch.Tensor | None, batch_shape: torch.Size, T: int, kv_cache: KVCache | None,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin at `positions`, by default the T positions after those in the cache.

        Positions (T,) give (T, hs), the same angles for every sequence; positions with leading
        dimensions (broadcastable to x's) give (B, 1, T, hs), the same angles for every head.
        """
        if positions is None:
            start = 0 if kv_cache is None else kv_cache.length  # position of x's first token
            positions = torch.arange(start, start + T, device=device)  # (T,)
        elif positions.ndim > 1:
            positions = positions.expand(*batch_shape, T).reshape(-1, 1, T)  # (..., T) -> (B, 1, T)
        return rotary_cos_sin(positions, self.head_dim, self.rope_theta)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads},"
            f" fast={self.fast}, rope_theta={self.rope_theta}"
        )
