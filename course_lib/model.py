"""The decoder-only transformer: GPT-2's shape, with Llama 3's changes as switches.

Token ids go in, one vector of scores over the vocabulary ("logits") per position comes out:

    ids (B, T) -> token embedding (+ position embedding) -> Block × n_layers -> norm -> head
               -> logits (B, T, vocab_size)

The logits at position t score every possible token t + 1, having seen tokens 0..t only.

    >>> config = GPTConfig(vocab_size=10, block_size=8, n_layers=2, d_model=16, n_heads=4)
    >>> logits, loss = GPT(config)(torch.tensor([[1, 2, 3]]))
    >>> tuple(logits.shape)                                   # (B, T, vocab_size)
    (1, 3, 10)

The switches that turn GPT-2 into Llama 3 (each one independent of the others):

| GPTConfig field | GPT-2 (default) | Llama 3 |
|---|---|---|
| norm | "layernorm" | "rmsnorm" |
| mlp | "gelu_tanh" (a 4x MLP) | "swiglu" (a gated SiLU MLP) |
| rope_theta | None (learned position embedding) | 500000.0 (rotary embeddings) |
| n_kv_heads | None (= n_heads) | 8 (grouped-query attention) |
| bias | True | False |
| tie_weights | True (head = token embedding) | False |

Initialisation follows GPT-2 (Radford et al. 2019, section 2.3, and its released code): every
weight matrix and embedding ~ Normal(0, 0.02), biases 0, norms' weights 1; and the two
projections that write into the residual stream in each block (attention's out_proj and the
MLP's down_proj) ~ Normal(0, 0.02 / sqrt(2 · n_layers)). The residual stream is a sum of
2 · n_layers such contributions; scaling each by 1/sqrt(2 · n_layers) keeps the variance of the
sum from growing with depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import KVCache, MultiHeadSelfAttention
from .generation import sample_next_token
from .layers import ACTIVATIONS, MLP, Embedding, LayerNorm, Linear, RMSNorm, SwiGLU
from .loss import cross_entropy

NORMS = ("layernorm", "rmsnorm")
MLPS = (*ACTIVATIONS, "swiglu")  # an MLP with one of the ACTIVATIONS, or Llama's SwiGLU
INIT_STD = 0.02  # GPT-2's standard deviation for weights and embeddings


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are GPT-2 small (124M parameters).

    d_model is the width of the residual stream (GPT-2's n_embd); each of the n_heads attention
    heads gets head_dim = d_model / n_heads of it. d_ff is the feed-forward block's hidden width:
    None means 4 · d_model for an MLP, and for SwiGLU 8/3 · d_model rounded up to a multiple of 8,
    which spends about as many parameters with three matrices as the MLP does with two.
    See the module docstring for the switches (norm, mlp, rope_theta, n_kv_heads, bias,
    tie_weights). fast=False runs the written-out code of chapters 2 and 3 (linear layers, attention,
    norms, activations) instead of PyTorch's fused kernels (F.scaled_dot_product_attention,
    F.layer_norm, F.gelu, ...): slower, the same numbers to float32 rounding.
    """

    vocab_size: int = 50257
    block_size: int = 1024  # the context length: the most positions the model can see
    n_layers: int = 12
    d_model: int = 768
    n_heads: int = 12
    n_kv_heads: int | None = None  # None: as many as n_heads (no grouped-query attention)
    d_ff: int | None = None  # None: see hidden_dim
    mlp: str = "gelu_tanh"  # "gelu_tanh" (GPT-2), "gelu", "relu", "silu", or "swiglu" (Llama)
    norm: str = "layernorm"  # or "rmsnorm" (Llama)
    norm_eps: float = 1e-5
    bias: bool = True  # biases in the linear layers and LayerNorms (the head never has one)
    rope_theta: float | None = None  # None: learned position embeddings; else rotary with this base
    tie_weights: bool = True  # the head reuses the token embedding's matrix
    fast: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"GPTConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}"
                f" (each head gets d_model / n_heads dimensions)"
            )
        if self.n_heads % self.kv_heads != 0:
            raise ValueError(
                f"GPTConfig: n_heads={self.n_heads} must be divisible by n_kv_heads={self.n_kv_heads}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"GPTConfig: norm must be one of {NORMS}, got {self.norm!r}")
        if self.mlp not in MLPS:
            raise ValueError(f"GPTConfig: mlp must be one of {MLPS}, got {self.mlp!r}")
        if self.rope_theta is not None and self.head_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig: rotary embeddings need an even head_dim, got d_model / n_heads = {self.head_dim}"
            )

    @property
    def head_dim(self) -> int:
        """The width of one attention head: d_model / n_heads (GPT-2 small: 768 / 12 = 64)."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """n_kv_heads, or n_heads when it is None."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hidden_dim(self) -> int:
        """d_ff, or its default: 4 · d_model for an MLP, 8/3 · d_model (up to a multiple of 8) for SwiGLU."""
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "swiglu":
            return 8 * math.ceil(8 * self.d_model / 3 / 8)
        return 4 * self.d_model


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, eps=config.norm_eps, fast=config.fast)
    return LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias, fast=config.fast)


class Block(nn.Module):
    """One transformer block, pre-norm: x + attention(norm(x)), then x + MLP(norm(x)).

    Attention is where positions exchange information; the MLP then transforms each position on
    its own. Each adds its result to the residual stream x instead of replacing it, so the
    input reaches the last block unchanged plus corrections, and gradients flow straight back.
    Normalising the input of each branch (pre-norm, GPT-2 onwards) rather than the sum (as the
    original transformer did) keeps deep stacks stable to train.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm = _norm(config)
        self.attn = MultiHeadSelfAttention(
            config.d_model,
            config.n_heads,
            n_kv_heads=config.n_kv_heads,
            bias=config.bias,
            fast=config.fast,
            rope_theta=config.rope_theta,
        )
        self.mlp_norm = _norm(config)
        if config.mlp == "swiglu":
            self.mlp: nn.Module = SwiGLU(config.d_model, config.hidden_dim, bias=config.bias, fast=config.fast)
        else:
            self.mlp = MLP(
                config.d_model, config.hidden_dim, activation=config.mlp, bias=config.bias, fast=config.fast
            )

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), kv_cache=kv_cache)  # (B, T, C)
        x = x + self.mlp(self.mlp_norm(x))  # (B, T, C)
        return x


class GPT(nn.Module):
    """A decoder-only transformer language model; see the module docstring for its parts.

    forward(ids, targets) returns the logits and, given targets, the next-token cross-entropy.
    generate(ids, max_new_tokens) extends ids one sampled token at a time, with a key-value cache.

    The token embedding checks that every id is below vocab_size and raises a readable error if
    not. On a GPU that check makes the CPU wait for the GPU once per forward; a training loop
    whose ids are known to be valid can turn it off with `model.tok_emb.check_range = False`.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(config.vocab_size, config.d_model)
        # GPT-2 learns one vector per position; with rotary embeddings attention handles positions.
        self.pos_emb = Embedding(config.block_size, config.d_model) if config.rope_theta is None else None
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layers)])
        self.final_norm = _norm(config)
        self.lm_head = Linear(config.d_model, config.vocab_size, bias=False, fast=config.fast)
        if config.tie_weights:
            # One (vocab_size, d_model) matrix both reads tokens in and scores them out.
            self.lm_head.weight = self.tok_emb.weight
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation (see the module docstring), replacing the layers' PyTorch defaults."""
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layers)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, Linear):
                    module.weight.normal_(0.0, INIT_STD)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, Embedding):
                    module.weight.normal_(0.0, INIT_STD)
            for block in self.blocks:
                block.attn.out_proj.weight.normal_(0.0, residual_std)
                block.mlp.down_proj.weight.normal_(0.0, residual_std)

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_caches: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab_size) for token ids (B, T), and the loss if targets (B, T) are given.

        The loss is the mean cross-entropy of predicting targets[b, t] from logits[b, t]; for
        language modelling targets is ids shifted left by one. An untrained model, spreading its
        bets evenly, scores about ln(vocab_size). fast=False computes it with the course's
        `cross_entropy`, fast=True with F.cross_entropy (both in float32, even under autocast).

        kv_caches (one `KVCache` per block, from `new_kv_caches`) makes ids the continuation of the
        positions already cached; generate uses it.
        """
        if ids.ndim != 2:
            raise ValueError(
                f"GPT expected token ids of shape (B, T), got {tuple(ids.shape)}"
                f" (for a single sequence, add a batch dimension: ids.unsqueeze(0))"
            )
        B, T = ids.shape
        start = 0 if kv_caches is None else kv_caches[0].length  # position of the first token in ids
        if start + T > self.config.block_size:
            raise ValueError(
                f"GPT: sequence of length {start + T} exceeds the context length block_size="
                f"{self.config.block_size}; keep only the last {self.config.block_size} tokens,"
                f" e.g. ids[:, -{self.config.block_size}:]"
            )
        x = self.tok_emb(ids)  # (B, T) -> (B, T, C)
        if self.pos_emb is not None:
            # Rows start..start+T-1 of the table: pos_emb(arange(start, start + T)) without the
            # range check, which the test above already made.
            x = x + self.pos_emb.weight[start : start + T]  # (B, T, C) + (T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache=None if kv_caches is None else kv_caches[i])  # (B, T, C)
        x = self.final_norm(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, C) -> (B, T, vocab_size)
        if targets is None:
            return logits, None
        # B·T independent predictions, each over vocab_size classes (F.cross_entropy wants them flat).
        flat = (logits.view(B * T, -1).float(), targets.reshape(B * T))
        loss = F.cross_entropy(*flat) if self.config.fast else cross_entropy(*flat)
        return logits, loss

    def new_kv_caches(self) -> list[KVCache]:
        """One empty KVCache per block, for a new generation."""
        return [KVCache() for _ in self.blocks]

    def generate(
        self,
        ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """Extend ids (B, T) by max_new_tokens sampled tokens: returns (B, T + max_new_tokens).

        Each step turns the last position's logits into probabilities and draws the next token
        (see `course_lib.generation.sample_next_token` for temperature, top_k and top_p). With
        the key-value cache (use_cache=True) a step runs the model on the one new token; without
        it a step reruns the whole sequence. Both give the same tokens.

        The context is cropped as in nanoGPT: once the sequence is longer than block_size, the
        model sees its last block_size tokens only. The cache cannot simply drop its oldest
        position (every position's vector would then shift), so from then on the cache is
        rebuilt from the cropped window at each step, which costs as much as not caching.
        """
        if max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
        block_size = self.config.block_size
        kv_caches = None
        # inference_mode: no autograd bookkeeping at all, which makes each of a step's ~200 small
        # operations cheaper than under no_grad.
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                if kv_caches is not None and kv_caches[0].length < block_size:
                    # Only the newest token goes through the model; the cache holds the rest.
                    logits, _ = self(ids[:, -1:], kv_caches=kv_caches)  # (B, 1, vocab_size)
                else:
                    kv_caches = self.new_kv_caches() if use_cache else None
                    logits, _ = self(ids[:, -block_size:], kv_caches=kv_caches)  # (B, T', vocab_size)
                next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B,)
                ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, T + 1)
        # A tensor made in inference mode cannot enter autograd later (say, as training data);
        # its copy made out here can.
        return ids.clone()

