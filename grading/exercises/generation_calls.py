"""What 05_generation's checks do beyond a plain call (the learner's side: the standard library and
torch only, copied into the sandbox next to learner_side.py).

A torch.Generator cannot cross the sandbox, so a check sends its seed and `draws` makes the
generator here; the grader's reference makes the same calls with course_lib's code in place of
the learner's, from the same seed. `generate` needs a language model: `TinyGPT`, a one-layer,
one-head causal transformer small enough to run in milliseconds, built here from its sizes and a
seed, so that the grader runs course_lib's generation loop on exactly the same model:

    >>> import torch
    >>> greedy = lambda logits, temperature=1.0, top_k=None, top_p=None, generator=None: logits.argmax(-1)
    >>> draws(greedy, [torch.tensor([[0.0, 3.0, 1.0]])], {}, seed=0, calls=2).tolist()
    [[1], [1]]
    >>> model = TinyGPT(vocab_size=10, block_size=8, width=8, seed=0)
    >>> logits, loss = model(torch.tensor([[1, 2, 3]]))
    >>> tuple(logits.shape), loss
    ((1, 3, 10), None)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..learner_side import CheckFailure, quote, returns_tensor

# Why attention's output can hold NaN or infinity.
NOT_FINITE = ("does an exponential overflow? torch.softmax subtracts each row's largest score first; or does a "
              "row of the mask allow nothing?")

# ---- sample_next_token ------------------------------------------------------------------------


def _ids(ids: Any, batch: int, function: str) -> torch.Tensor:
    """`ids` if it is a (batch,) int64 tensor, else a CheckFailure that says what is wrong."""
    if not isinstance(ids, torch.Tensor):
        raise CheckFailure(f"{function} should return a torch.Tensor of ids, got {type(ids).__name__} {quote(ids, 80)}")
    if ids.dtype != torch.int64:
        raise CheckFailure(f"{function} should return int64 ids (what torch.multinomial and argmax give), "
                           f"got dtype {ids.dtype}")
    if tuple(ids.shape) != (batch,):
        hint = ": take the one draw per row out with .squeeze(-1)" if tuple(ids.shape) == (batch, 1) else ""
        raise CheckFailure(f"{function} should return one id per row of logits, shape ({batch},), "
                           f"got shape {tuple(ids.shape)}{hint}")
    return ids


def draws(sample_next_token: Callable, args: list, kwargs: dict, seed: int, calls: int = 1) -> torch.Tensor:
    """(calls, B): the ids of `calls` successive sample_next_token(logits, **kwargs, generator=...)
    with one generator seeded `seed`, one row per call."""
    generator = torch.Generator().manual_seed(seed)
    (logits,) = args
    rows = [_ids(sample_next_token(logits.clone(), **kwargs, generator=generator), len(logits), "sample_next_token")
            for _ in range(calls)]
    return torch.stack(rows)  # (calls, B)


def error_raised(sample_next_token: Callable, args: list, kwargs: dict) -> str:
    """The name of the exception sample_next_token(*args, **kwargs) raised, or "no exception"
    (NotImplementedError goes on: the stub has not been written yet, whatever its arguments)."""
    try:
        sample_next_token(*args, **kwargs, generator=torch.Generator().manual_seed(0))
    except NotImplementedError:
        raise
    except Exception as err:  # the learner's code may raise anything: its name is the answer
        return type(err).__name__
    return "no exception"


# ---- generate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyConfig:
    """What generate may read of the model's configuration, as of course_lib's GPTConfig."""

    vocab_size: int
    block_size: int


class TinyGPT(nn.Module):
    """A causal transformer with one layer and one head: ids (B, T) -> (logits (B, T, V), loss).

    Like course_lib's GPT, it returns (logits, loss) (loss None without targets), has
    `config.block_size`, and refuses a sequence longer than block_size; every position's logits
    depend on the whole context before it and on the positions, so a context cropped wrongly
    changes them. Its weights come from `seed` with a generator of its own (not torch's global
    one): the same seed gives the same model in every process.
    """

    def __init__(self, vocab_size: int, block_size: int, width: int, seed: int):
        super().__init__()
        self.config = TinyConfig(vocab_size, block_size)
        generator = torch.Generator().manual_seed(seed)
        self.tok_emb = nn.Parameter(torch.randn(vocab_size, width, generator=generator))
        self.pos_emb = nn.Parameter(torch.randn(block_size, width, generator=generator))
        self.qkv = nn.Parameter(torch.randn(3, width, width, generator=generator) * width**-0.5)
        self.head = nn.Parameter(torch.randn(vocab_size, width, generator=generator) * width**-0.5)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                kv_caches: None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if kv_caches is not None:
            raise ValueError("TinyGPT has no key-value cache: call it with the token ids only")
        if not isinstance(idx, torch.Tensor) or idx.ndim != 2:
            raise ValueError(f"TinyGPT expected token ids of shape (B, T), got {quote(idx, 80)}")
        T = idx.shape[1]
        block_size = self.config.block_size
        if T > block_size:
            raise ValueError(f"TinyGPT: sequence of length {T} exceeds the context length block_size={block_size}; "
                             f"keep only the last {block_size} tokens, e.g. idx[:, -{block_size}:]")
        x = self.tok_emb[idx] + self.pos_emb[:T]  # (B, T, W)
        q, k, v = (x @ weight for weight in self.qkv)  # (B, T, W) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])  # (B, T, T)
        future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # (T, T): True above the diagonal
        x = x + torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v  # (B, T, W)
        logits = x @ self.head.T  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def generated(generate: Callable, args: list, kwargs: dict, model: dict, idx: torch.Tensor, max_new_tokens: int,
              seed: int) -> dict:
    """generate(TinyGPT(**model), idx, max_new_tokens, **kwargs, generator=a generator seeded
    `seed`), as plain data; the model's weights are those of its seed."""
    returned = generate(TinyGPT(**model), idx.clone(), max_new_tokens, **kwargs,
                        generator=torch.Generator().manual_seed(seed))
    out = returns_tensor(returned, "generate")
    if out["dtype"] != "int64":
        raise CheckFailure(f"generate should return int64 token ids, got dtype {out['dtype']}")
    return out


# ---- the key-value cache ----------------------------------------------------------------------


def updates(cache_class: type, args: list, kwargs: dict, steps: list) -> list:
    """[k, v] returned by each cache.update(k_new, v_new) of `steps`, on one fresh cache_class()."""
    cache = cache_class(*args, **kwargs)
    returned = []
    for k_new, v_new in steps:
        pair = cache.update(k_new, v_new)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise CheckFailure(f"KVCache.update should return a pair (k, v), got {type(pair).__name__} "
                               f"{quote(pair, 80)}")
        # A copy now: a cache that later changes its tensors in place must not change what it returned.
        returned.append([returns_tensor(pair[0], "KVCache.update", what="the keys update returned"),
                         returns_tensor(pair[1], "KVCache.update", what="the values update returned")])
    return returned


def two_caches(cache_class: type, args: list, kwargs: dict, first: list, second: list) -> list:
    """What each of two caches returns for its last update, with their updates interleaved: two
    generations at once (or two layers) must not share what they store."""
    caches = [cache_class(*args, **kwargs), cache_class(*args, **kwargs)]
    last: list[Any] = [None, None]
    for step in range(max(len(first), len(second))):
        for which, steps in enumerate((first, second)):
            if step < len(steps):
                last[which] = caches[which].update(*steps[step])
    return [[returns_tensor(pair[0], "KVCache.update", what="the keys update returned"),
             returns_tensor(pair[1], "KVCache.update", what="the values update returned")] for pair in last]


class GradersCache:
    """The cache the checks hand to the learner's cached_attention (a correct one, so that its
    points do not depend on the learner's KVCache); it also counts the calls to update."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.updates = 0

    def update(self, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(k_new, torch.Tensor) or not isinstance(v_new, torch.Tensor):
            raise CheckFailure("cache.update expects the new keys and values as tensors (B, H, T_new, D)")
        self.updates += 1
        self.k = k_new if self.k is None else torch.cat([self.k, k_new], dim=2)  # (B, H, T_past + T_new, D)
        self.v = v_new if self.v is None else torch.cat([self.v, v_new], dim=2)
        return self.k, self.v


def cached_steps(cached_attention: Callable, args: list, kwargs: dict, past: list | None, steps: list) -> list:
    """The output of cached_attention(q, k, v, cache) for each [q, k, v] of `steps`, in order, with
    one cache that already holds the keys and values `past` ([k, v], or None for an empty cache)."""
    cache = GradersCache()
    if past is not None:
        cache.update(*past)
    outputs = []
    for q, k, v in steps:
        before = cache.updates
        out = cached_attention(q, k, v, cache)
        if cache.updates != before + 1:
            raise CheckFailure(f"cached_attention should call cache.update(k_new, v_new) exactly once per call "
                               f"(it made {cache.updates - before} calls)")
        shown = returns_tensor(out, "cached_attention", hint=NOT_FINITE)
        expected_shape = [*q.shape[:-1], v.shape[-1]]
        if shown["shape"] != expected_shape:
            raise CheckFailure(f"cached_attention should return (B, H, T_new, D) = {tuple(expected_shape)}, "
                               f"got shape {tuple(shown['shape'])}")
        outputs.append(shown)
    return outputs
