"""The checks of exercise 05_generation: sample_next_token, generate, KVCache, cached_attention.

The learner writes, in exercises/05_generation/generation.ipynb:

    sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None)
        # logits (B, V) -> (B,) int64 ids: temperature 0 = argmax; else logits / temperature, then
        # top-k (keep logits >= the k-th largest), then top-p (the fewest likeliest tokens whose
        # probabilities reach p), softmax, torch.multinomial(probs, 1, generator=generator)
    generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None)
        # idx (B, T) -> (B, T + max_new_tokens); model(idx) -> (logits, loss); context cropped
        # to model.config.block_size
    class KVCache: update(k_new, v_new) -> (k, v)     # appends (B, H, T_new, D) along time
    cached_attention(q_new, k_new, v_new, cache)      # the new positions' causal attention
                                                      # over every cached position

without torch's own attention in cached_attention (FORBIDDEN). The references are course_lib's:
course_lib.generation.sample_next_token drawing from the same seed, course_lib's GPT.generate
(use_cache=False) run on the same TinyGPT, course_lib.attention.KVCache, and
course_lib.attention.scaled_dot_product_attention with causal_mask(T_new, T_k). The tests check
those references against hand-worked numbers, torch.multinomial and full causal attention.
Visible checks use the notebook's worked examples; hidden ones random inputs from fixed seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from course_lib.attention import KVCache, causal_mask, scaled_dot_product_attention
from course_lib.generation import sample_next_token
from course_lib.model import GPT
from grading import seeds
from grading.checks import Call, Check, Input, Substitute, describe, plain_equal
from grading.compare import show_tensors, tensors_close
from grading.exercises.generation_calls import GradersCache

NOTEBOOK = "generation.ipynb"
# torch's attention would do cached_attention's work for it.
FORBIDDEN: dict[str, list[str]] = {
    "cached_attention": ["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
                         "torch.nn.functional.multi_head_attention_forward"],
}
CALLS = "exercises.generation_calls"

# ---- inputs -----------------------------------------------------------------------------------


def randn(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seeds.seed(seed)))


def sample(logits: torch.Tensor, seed: int = 0, calls: int = 1, **options: Any) -> Call:
    """sample_next_token(logits, **options, generator=...) `calls` times with one generator."""
    seed = seeds.seed(seed)
    steps = "with generator = torch.Generator().manual_seed({seed})" + (", {calls} times" if calls > 1 else "")
    return Call("sample_next_token", (logits,), options, returns={"kind": "tensor"}, adapter=f"{CALLS}.draws",
                then={"seed": seed, "calls": calls}, steps=steps)


def bad_arguments(**options: Any) -> Call:
    return Call("sample_next_token", (torch.tensor([[2.0, 1.0, 0.0]]),), options, returns={"kind": "text"},
                adapter=f"{CALLS}.error_raised", steps="then the name of the exception it raised")


@dataclass(frozen=True, eq=False)
class Described(Call):
    """A call whose message is `steps` with its `then` inputs filled in, for calls that are not
    function(args): "KVCache() as cache, then cache.update(k_new, v_new) for each ..."."""

    def describe(self, hidden: bool) -> str:
        return self.steps.format(**{key: describe(value, hidden) for key, value in self.then.items()})


def generate(model: dict, idx: torch.Tensor, max_new_tokens: int, seed: int = 0, **options: Any) -> Call:
    """generate(TinyGPT(**model), idx, max_new_tokens, **options, generator seeded `seed`)."""
    seed = seeds.seed(seed)
    shown = "".join(f", {key}={value}" for key, value in options.items())
    return Described("generate", (), options, adapter=f"{CALLS}.generated",
                     then={"model": model, "idx": idx, "max_new_tokens": max_new_tokens, "seed": seed},
                     steps=f"generate(model, {{idx}}, {max_new_tokens}{shown}, generator) with model = "
                           f"TinyGPT(vocab_size={model['vocab_size']}, block_size={model['block_size']}, "
                           f"width={model['width']}, seed={model['seed']}), generator = "
                           f"torch.Generator().manual_seed({seed})")


def random_model(seed: int, vocab_size: int = 20, block_size: int = 16, width: int = 12) -> dict:
    return {"vocab_size": vocab_size, "block_size": block_size, "width": width, "seed": seeds.seed(seed)}


def random_ids(seed: int, shape: tuple[int, int], vocab_size: int) -> torch.Tensor:
    return torch.randint(0, vocab_size, shape, generator=torch.Generator().manual_seed(seeds.seed(seed)))


def updates(steps: Any) -> Call:
    return Described("KVCache", (), adapter=f"{CALLS}.updates", then={"steps": steps},
                     steps="KVCache() as cache, then k, v = cache.update(k_new, v_new) for each (k_new, v_new) in "
                           "{steps}")


def random_kv(seed: int, B: int, H: int, lengths: list[int], D: int) -> Input:
    """[k_new, v_new] of shape (B, H, T_new, D) for each T_new in `lengths`."""
    return Input(lambda: [[randn(seed + 2 * i, (B, H, T, D)), randn(seed + 2 * i + 1, (B, H, T, D))]
                          for i, T in enumerate(lengths)],
                 f"{len(lengths)} random updates, (B, H, T_new, D) = ({B}, {H}, {lengths}, {D})")


def attend(cache: Any, steps: Any) -> Call:
    """cached_attention(q_new, k_new, v_new, cache) for each [q_new, k_new, v_new] of `steps`, in
    turn, with one cache that holds `cache` ([k, v] or None) at first."""
    return Described("cached_attention", (), adapter=f"{CALLS}.cached_steps", then={"past": cache, "steps": steps},
                     steps="cached_attention(q_new, k_new, v_new, cache) for each (q_new, k_new, v_new) in {steps}, "
                           "in turn, with a cache that holds {past} at first")


def random_steps(seed: int, B: int, H: int, past: int, lengths: list[int], D: int, scale: float = 1.0) -> Call:
    """cached_attention on `lengths` new positions at a time, after `past` cached positions."""
    cached = Input(lambda: [randn(seed, (B, H, past, D), scale), randn(seed + 1, (B, H, past, D))],
                   f"the keys and values of {past} random positions") if past else NOTHING
    steps = Input(lambda: [[randn(seed + 3 * i + 2, (B, H, T, D), scale), randn(seed + 3 * i + 3, (B, H, T, D), scale),
                            randn(seed + 3 * i + 4, (B, H, T, D))] for i, T in enumerate(lengths)],
                  f"random chunks, (B, H, T_new, D) = ({B}, {H}, {lengths}, {D})")
    return attend(cached, steps)


# ---- references (grader's side) ---------------------------------------------------------------


def course_generate(model: Any, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """course_lib's generation loop, GPT.generate without the cache, run on the check's model: it
    only needs model(idx) -> (logits, loss) and model.config.block_size, which TinyGPT has."""
    return GPT.generate(model, idx, max_new_tokens, temperature, top_k, generator, use_cache=False, top_p=top_p)


def course_cached_attention(q_new: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                            cache: GradersCache) -> torch.Tensor:
    """course_lib's attention of the T new queries against all T_k cached positions."""
    k, v = cache.update(k_new, v_new)  # (B, H, T_k, D) each
    return scaled_dot_product_attention(q_new, k, v, causal_mask(q_new.shape[-2], k.shape[-2]))


SAMPLE = Substitute(sample_next_token)
GENERATE = Substitute(course_generate)
CACHE = Substitute(KVCache)
ATTENTION = Substitute(course_cached_attention)

# ---- comparisons and what a message shows -----------------------------------------------------


def show_draws(value: dict) -> str:
    """A (calls, B) tensor of ids as each row of logits drew them: 'row 0 drew [0, 1, 0]'."""
    rows = torch.tensor(value["values"], dtype=torch.long).T.tolist()  # (B, calls)
    return "; ".join(f"row {i} drew {row}" for i, row in enumerate(rows))


def extends_idx(expected: dict, actual: Any) -> bool:
    """The shape (B, T + max_new_tokens) and int64 dtype of the reference's result, and idx at the
    start of every row (the new ids may differ: another check compares them)."""
    if type(actual) is not dict or set(actual) != {"shape", "dtype", "values"}:
        return False
    if not (plain_equal(expected["shape"], actual["shape"]) and actual["dtype"] == "int64"):
        return False
    T = len(GENERATE_PROMPT[0])
    rows = actual["values"]
    return type(rows) is list and all(type(row) is list and row[:T] == GENERATE_PROMPT[0] for row in rows)


def show_shape(value: dict) -> str:
    """'shape (1, 7) int64: tensor([[1, 2, 3, 9, 2, 9, 2]])'"""
    return f"shape {tuple(value['shape'])} {value['dtype']}: {show_tensors(value)}"


# ---- the checks -------------------------------------------------------------------------------

# The notebook's worked example: softmax([2, 1, 0]) = [0.665, 0.245, 0.090].
THREE = torch.tensor([[2.0, 1.0, 0.0]])
TWO_ROWS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
MODEL = {"vocab_size": 10, "block_size": 8, "width": 8, "seed": 0}
GENERATE_PROMPT = [[1, 2, 3]]
# KVCache's worked example: (B, H, T, D) = (1, 2, 2, 2), then one more position.
K0, V0 = torch.arange(8.0).reshape(1, 2, 2, 2), -torch.arange(8.0).reshape(1, 2, 2, 2)
K1, V1 = torch.full((1, 2, 1, 2), 10.0), torch.full((1, 2, 1, 2), -10.0)


def column(*values: float) -> torch.Tensor:
    """(1, 1, T, 1): one batch, one head, T positions of dimension 1, as the worked examples."""
    return torch.tensor(values).reshape(1, 1, -1, 1)


# cached_attention's worked examples (D = 1, so the scale is 1): two cached positions with keys
# [1, 0] and values [10, 20], then a new position with query 1, key 2 and value 30.
NOTHING = Input(lambda: None, "nothing (an empty cache)")
PAST = Input(lambda: [column(1.0, 0.0), column(10.0, 20.0)], "keys [1, 0] and values [10, 20], (1, 1, 2, 1) each")
ONE_NEW = Input(lambda: [[column(1.0), column(2.0), column(30.0)]],
                "one call: q_new = [1], k_new = [2], v_new = [30], (1, 1, 1, 1) each")
TWO_NEW = Input(lambda: [[column(1.0, 0.0), column(2.0, -1.0), column(30.0, 40.0)]],
                "one call: q_new = [1, 0], k_new = [2, -1], v_new = [30, 40], (1, 1, 2, 1) each")
PREFILL = Input(lambda: [[column(1.0, 0.0, 2.0), column(1.0, 0.0, 2.0), column(10.0, 20.0, 30.0)]],
                "one call: q_new = k_new = [1, 0, 2], v_new = [10, 20, 30], (1, 1, 3, 1) each")
# With D = 4 the scale shows: scores [4, 0, 0] / sqrt(4) = [2, 0, 0].
SCALED_PAST = Input(lambda: [torch.tensor([[[[2.0, 0, 0, 0], [0, 0, 0, 0]]]]), torch.eye(4)[None, None, :2]],
                    "keys [[2, 0, 0, 0], [0, 0, 0, 0]] and values [[1, 0, 0, 0], [0, 1, 0, 0]]")
SCALED_NEW = Input(lambda: [[torch.tensor([[[[2.0, 0, 0, 0]]]]), torch.zeros(1, 1, 1, 4),
                             torch.eye(4)[None, None, 2:3]]],
                   "one call: q_new = [[2, 0, 0, 0]], k_new = [[0, 0, 0, 0]], v_new = [[0, 0, 1, 0]]")
FIRST_UPDATE = Input(lambda: [[K0, V0]], "one update: k_new = torch.arange(8.0).reshape(1, 2, 2, 2), v_new = -k_new")
TWO_UPDATES = Input(lambda: [[K0, V0], [K1, V1]],
                    "that one, then k_new = torch.full((1, 2, 1, 2), 10.0), v_new = -k_new")


def draws_check(name: str, calls: Call | tuple[Call, ...], **options: Any) -> Check:
    return Check("sample_next_token", name, calls, reference=SAMPLE, compare=tensors_close, show=show_draws, **options)


def generate_check(name: str, calls: Call | tuple[Call, ...], **options: Any) -> Check:
    return Check("generate", name, calls, reference=GENERATE, compare=tensors_close, show=show_shape, **options)


def cache_check(name: str, calls: Call, **options: Any) -> Check:
    return Check("KVCache", name, calls, reference=CACHE, compare=tensors_close, show=show_tensors, **options)


def attention_check(name: str, calls: Call | tuple[Call, ...], **options: Any) -> Check:
    return Check("cached_attention", name, calls, reference=ATTENTION, compare=tensors_close, show=show_tensors,
                 **options)


CHECKS: list[Check] = [
    # sample_next_token: 10 points
    Check("sample_next_token", "sample_next_token with temperature=0 takes each row's largest logit",
          sample(TWO_ROWS, temperature=0), expect=torch.tensor([[0, 1]]), compare=tensors_close, show=show_draws),
    Check("sample_next_token", "sample_next_token with top_k=1 or top_p=0.5 keeps only the best token",
          (sample(THREE, seed=3, calls=12, top_k=1), sample(THREE, seed=3, calls=12, top_p=0.5)),
          expect=[torch.zeros(12, 1, dtype=torch.long)] * 2, compare=tensors_close, show=show_draws),
    draws_check("sample_next_token draws with torch.multinomial and the generator", sample(TWO_ROWS, seed=3, calls=12)),
    draws_check("sample_next_token divides the logits by the temperature",
                (sample(THREE, seed=3, calls=12, temperature=0.5), sample(THREE, seed=0, calls=12, temperature=2.0))),
    draws_check("sample_next_token with top_k=2 never draws the third token", sample(THREE, seed=3, calls=12, top_k=2)),
    draws_check("sample_next_token with top_p=0.8 keeps the fewest likeliest tokens that reach 0.8",
                sample(THREE, seed=3, calls=12, top_p=0.8)),
    draws_check("sample_next_token applies top_p to the probabilities left after top_k",
                sample(THREE, seed=3, calls=12, top_k=2, top_p=0.7)),
    Check("sample_next_token",
          "sample_next_token raises ValueError for temperature < 0, top_k < 1, top_p outside (0, 1]",
          (bad_arguments(temperature=-1.0), bad_arguments(top_k=0), bad_arguments(top_p=0.0),
           bad_arguments(top_p=1.5)), expect=["ValueError"] * 4),
    draws_check("sample_next_token on random logits with temperature, top_k and top_p",
                (sample(randn(10, (4, 40), 2.0), seed=11, calls=6, temperature=0.8, top_k=10),
                 sample(randn(12, (4, 40), 2.0), seed=13, calls=6, temperature=1.3, top_p=0.9),
                 sample(randn(14, (4, 40), 2.0), seed=15, calls=6, temperature=0.7, top_k=20, top_p=0.6),
                 sample(randn(16, (5, 40), 2.0), seed=17, calls=40),
                 sample(randn(18, (3, 40)), temperature=0)), hidden=True),
    draws_check("sample_next_token with one row, one token, top_k = V, top_p = 1 and tied logits",
                (sample(torch.tensor([[0.5], [-3.0]]), seed=21, calls=3, temperature=2.0, top_k=1, top_p=0.3),
                 sample(randn(22, (1, 6)), seed=23, calls=8, top_k=6),
                 sample(randn(24, (1, 6)), seed=25, calls=8, top_p=1.0),
                 sample(randn(26, (1, 6)), temperature=0, top_k=2, top_p=0.5),
                 sample(torch.tensor([[3.0, 1.0, 1.0, 0.0]]), seed=27, calls=12, top_k=2)), hidden=True),
    # generate: 6 points
    Check("generate", "generate returns idx followed by max_new_tokens new ids",
          generate(MODEL, torch.tensor(GENERATE_PROMPT), 4), reference=GENERATE, compare=extends_idx, show=show_shape),
    generate_check("generate with temperature=0 appends the likeliest next token at every step",
                   generate(MODEL, torch.tensor([[1, 2, 3], [4, 5, 6]]), 4, temperature=0)),
    generate_check("generate draws every token with sample_next_token and the generator",
                   generate(MODEL, torch.tensor(GENERATE_PROMPT), 5, seed=0)),
    generate_check("generate crops the context to the last block_size tokens",
                   generate(MODEL, torch.tensor([[1, 2, 3, 4, 5, 6]]), 6, temperature=0)),
    generate_check("generate on random prompts with temperature, top_k and top_p",
                   (generate(random_model(30), random_ids(31, (3, 5), 20), 10, seed=32, temperature=0.9, top_k=8,
                             top_p=0.9),
                    generate(random_model(33, block_size=6), random_ids(34, (2, 4), 20), 9, seed=35, temperature=1.2,
                             top_p=0.7)), hidden=True),
    generate_check("generate with max_new_tokens=0 and with a prompt longer than block_size",
                   (generate(random_model(40), random_ids(41, (2, 5), 20), 0),
                    generate(random_model(42, block_size=8), random_ids(43, (1, 12), 20), 5, seed=44)), hidden=True),
    # KVCache: 4 points
    cache_check("KVCache.update returns the first keys and values as they are", updates(FIRST_UPDATE)),
    cache_check("KVCache.update appends the new positions along the time axis", updates(TWO_UPDATES)),
    cache_check("KVCache over many updates, with a batch and several heads",
                updates(random_kv(50, 2, 3, [4, 1, 1, 2, 1], 5)), hidden=True),
    cache_check("two KVCaches keep their own keys and values",
                Described("KVCache", (), adapter=f"{CALLS}.two_caches",
                          then={"first": random_kv(60, 2, 2, [3, 1], 4), "second": random_kv(70, 2, 2, [2, 1, 1], 4)},
                          steps="two KVCache()s updated in turn, the first with {first}, the second with {second}: "
                                "what each one's last update returned"),
                hidden=True),
    # cached_attention: 6 points
    attention_check("cached_attention of one new position attends to every cached one", attend(PAST, ONE_NEW)),
    attention_check("cached_attention on an empty cache is causal self-attention", attend(NOTHING, PREFILL)),
    attention_check("cached_attention of two new positions after two cached ones", attend(PAST, TWO_NEW)),
    attention_check("cached_attention divides the scores by sqrt(D)", attend(SCALED_PAST, SCALED_NEW)),
    attention_check("cached_attention step by step after a prompt, with a batch and heads",
                    random_steps(80, 2, 3, 0, [5, 1, 1, 1], 8), hidden=True),
    attention_check("cached_attention with chunks of new positions, and with large scores",
                    (random_steps(90, 1, 2, 3, [2, 3, 1], 4), random_steps(100, 2, 2, 4, [2, 1], 8, scale=30.0)),
                    hidden=True),
]
