"""Exercise 05_generation: typical mistakes lose the points of exactly the checks that name them,
correct code written another way keeps them, and torch's attention or course_lib in an answer costs
its task. What every exercise must do (the solution passes every check, the released stub none) is
tested in tests/test_exercises.py.

References: the checks compare with course_lib (its sample_next_token from the same seed, its
generation loop on the same TinyGPT, its KVCache, its attention with causal_mask); the tests below
hold those references to independent ones: probabilities worked out by hand and drawn with
torch.multinomial from the same seed, a greedy and a sampling loop written here, torch.cat, and
the last rows of F.scaled_dot_product_attention over the whole sequence.

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_05_generation.py --submission ~/Downloads/generation.ipynb
"""

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_testing import assert_comparisons_say_false, assert_variants_pass, check_named, check_points
from exercise_testing import grade_in_process, judged, with_answer
from submission_notebooks import ASSIGNMENTS, solution_answers

from grading import grade_submission
from grading.checks import built
from grading.exercises.generation_calls import TinyGPT
from grading.in_process import format_report

EXERCISE = "05_generation"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TASK_POINTS = ASSIGNMENTS[EXERCISE].task_points

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- the references against independent ones --------------------------------------------------


def hand_draws(weights: list[float], seed: int, calls: int) -> list[list[int]]:
    """`calls` draws from the unnormalised `weights` (worked out by hand) with torch.multinomial and
    one generator seeded `seed`: what sample_next_token must draw, one [id] per call."""
    generator = torch.Generator().manual_seed(seed)
    probs = torch.tensor([weights], dtype=torch.float32)
    return [torch.multinomial(probs, 1, generator=generator)[0].tolist() for _ in range(calls)]


E = math.exp


def test_sampling_references_are_hand_worked_probabilities_drawn_by_multinomial() -> None:
    (greedy,) = check_named(EXERCISE, "sample_next_token with temperature=0 takes each row's largest logit").expected()
    assert greedy["values"] == [[0, 1]]
    both = check_named(EXERCISE, "sample_next_token with top_k=1 or top_p=0.5 keeps only the best token").expected()
    assert [draw["values"] for draw in both] == [[[0]] * 12] * 2
    cases = {  # check -> the weights of [2, 1, 0] after each call's options, by hand
        "sample_next_token divides the logits by the temperature": [([E(4), E(2), 1], 3), ([E(1), E(0.5), 1], 0)],
        "sample_next_token with top_k=2 never draws the third token": [([E(2), E(1), 0], 3)],
        # 0.665 < 0.8 <= 0.665 + 0.245: the first two tokens stay
        "sample_next_token with top_p=0.8 keeps the fewest likeliest tokens that reach 0.8": [([E(2), E(1), 0], 3)],
        # after top-k, 0.731 >= 0.7: the best token alone
        "sample_next_token applies top_p to the probabilities left after top_k": [([1, 0, 0], 3)],
    }
    for name, calls in cases.items():
        expected = check_named(EXERCISE, name).expected()
        assert [draw["values"] for draw in expected] == [hand_draws(w, seed, 12) for w, seed in calls], name
    (two_rows,) = check_named(EXERCISE, "sample_next_token draws with torch.multinomial and the generator").expected()
    generator = torch.Generator().manual_seed(3)
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    assert two_rows["values"] == [torch.multinomial(logits.exp(), 1, generator=generator)[:, 0].tolist()
                                  for _ in range(12)]


def test_visible_draws_differ_from_the_draws_of_the_mistakes_they_catch() -> None:
    # Each visible draw would come out differently without the step it checks (the same seed,
    # temperature 1 and no filter): a check that cannot fail would catch nothing.
    def unfiltered(seed: int) -> list[list[int]]:
        return hand_draws([E(2), E(1), 1], seed, 12)

    for name in ["sample_next_token divides the logits by the temperature",
                 "sample_next_token with top_k=2 never draws the third token",
                 "sample_next_token with top_p=0.8 keeps the fewest likeliest tokens that reach 0.8"]:
        check = check_named(EXERCISE, name)
        for each, expected in zip(check.calls, check.expected()):
            assert expected["values"] != unfiltered(each.then["seed"]), name
    # top-p read from the probabilities before top-k keeps two tokens: [0.665, 0.245] < 0.7 + ...
    after = check_named(EXERCISE, "sample_next_token applies top_p to the probabilities left after top_k")
    (after_top_k,) = after.expected()
    assert after_top_k["values"] != hand_draws([E(2), E(1), 0], 3, 12)


def test_generate_references_are_a_loop_written_here() -> None:
    # Greedy: the argmax of the last position's logits, the context cropped to block_size;
    # sampling: softmax and torch.multinomial with the generator, one draw per step.
    def loop(model: TinyGPT, idx: torch.Tensor, steps: int, seed: int | None) -> list:
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _ in range(steps):
                last = model(idx[:, -model.config.block_size:])[0][:, -1]  # (B, V)
                if generator is None:
                    chosen = last.argmax(-1, keepdim=True)
                else:
                    chosen = torch.multinomial(torch.softmax(last, -1), 1, generator=generator)
                idx = torch.cat([idx, chosen], dim=1)
        return idx.tolist()

    cases = {
        "generate with temperature=0 appends the likeliest next token at every step": None,
        "generate crops the context to the last block_size tokens": None,
        "generate draws every token with sample_next_token and the generator": 0,
        "generate with max_new_tokens=0 and with a prompt longer than block_size": 44,
    }
    for name, seed in cases.items():
        check = check_named(EXERCISE, name)
        for each, expected in zip(check.calls, check.expected()):
            then = built(dict(each.then))
            model = TinyGPT(**then["model"])
            assert expected["values"] == loop(model, then["idx"], then["max_new_tokens"], seed), name
    greedy = check_named(EXERCISE, "generate with temperature=0 appends the likeliest next token at every step")
    assert greedy.expected()[0]["values"][0] == [1, 2, 3, 9, 8, 2, 6]  # the notebook's worked example


def test_course_lib_generate_draws_what_the_solution_draws(solution_namespace: dict) -> None:
    # The reference is course_lib's GPT.generate without the cache; on a real course_lib GPT it
    # draws the same ids as the solution's loop from the same seed, with the cache and without.
    from course_lib.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=8, n_layers=2, d_model=16, n_heads=2)).eval()
    prompt = torch.randint(0, 30, (2, 3), generator=torch.Generator().manual_seed(1))
    options = {"temperature": 0.9, "top_k": 12, "top_p": 0.85}
    ours = solution_namespace["generate"](model, prompt, 12, **options, generator=torch.Generator().manual_seed(2))
    for use_cache in (False, True):
        theirs = model.generate(prompt, 12, **options, generator=torch.Generator().manual_seed(2), use_cache=use_cache)
        assert torch.equal(ours, theirs), use_cache


def test_tiny_gpt_is_causal_and_refuses_more_than_block_size() -> None:
    model = TinyGPT(vocab_size=10, block_size=8, width=8, seed=0)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    changed = ids.clone()
    changed[0, 4] = 9
    first, second = model(ids)[0], model(changed)[0]
    assert torch.equal(first[:, :4], second[:, :4]) and not torch.allclose(first[:, 4:], second[:, 4:])
    with pytest.raises(ValueError, match="sequence of length 9 exceeds the context length block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_kv_cache_references_are_torch_cat() -> None:
    check = check_named(EXERCISE, "KVCache over many updates, with a batch and several heads")
    (expected,) = check.expected()
    steps = built(check.calls[0].then["steps"])
    for i, (k, v) in enumerate(expected):
        assert k["values"] == torch.cat([step[0] for step in steps[: i + 1]], dim=2).tolist()
        assert v["values"] == torch.cat([step[1] for step in steps[: i + 1]], dim=2).tolist()
    ((k, v),) = check_named(EXERCISE, "KVCache.update appends the new positions along the time axis").expected()[0][1:]
    assert k["shape"] == [1, 2, 3, 2] and k["values"][0][0] == [[0, 1], [2, 3], [10, 10]]


def test_cached_attention_references_are_the_last_rows_of_full_causal_attention() -> None:
    for name in ["cached_attention step by step after a prompt, with a batch and heads",
                 "cached_attention with chunks of new positions, and with large scores"]:
        check = check_named(EXERCISE, name)
        for each, expected in zip(check.calls, check.expected()):
            past, steps = built(each.then["past"]), built(each.then["steps"])
            # The cached positions' queries are never used by the new rows: zeros stand in for them.
            cached = [] if past is None else [[torch.zeros_like(past[0]), *past]]
            q, k, v = (torch.cat([chunk[i] for chunk in cached + steps], dim=2) for i in range(3))
            full = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
            ours = torch.cat([torch.tensor(out["values"]) for out in expected], dim=2)  # the new positions
            torch.testing.assert_close(ours, full[:, :, full.shape[2] - ours.shape[2]:], rtol=1e-5, atol=1e-5)


def test_cached_attention_worked_examples_are_the_notebooks_numbers() -> None:
    def values(name: str) -> list:
        return [out["values"] for out in check_named(EXERCISE, name).expected()[0]]

    # softmax([1, 0, 2]) . [10, 20, 30]; then query 0 weighs [10, 20, 30, 40] equally.
    first = (E(1) * 10 + 20 + E(2) * 30) / (E(1) + 1 + E(2))
    (((one,),),) = values("cached_attention of one new position attends to every cached one")[0]
    assert one == [pytest.approx(first)]
    assert round(first, 4) == 24.2051
    two = values("cached_attention of two new positions after two cached ones")[0][0][0]
    assert two == [pytest.approx([first]), pytest.approx([25.0])]
    prefill = values("cached_attention on an empty cache is causal self-attention")[0][0][0]
    assert prefill == [[10.0], [15.0], pytest.approx([(E(2) * 10 + 20 + E(4) * 30) / (E(2) + 1 + E(4))])]
    (scaled,) = values("cached_attention divides the scores by sqrt(D)")[0][0][0]
    assert scaled == pytest.approx([E(2) / (E(2) + 2), 1 / (E(2) + 2), 1 / (E(2) + 2), 0.0])
    assert [round(x, 4) for x in scaled] == [0.787, 0.1065, 0.1065, 0.0]


# ---- typical mistakes -----------------------------------------------------------------------

ANSWERS = solution_answers(ASSIGNMENTS[EXERCISE])


def edit(task: str, old: str, new: str) -> str:
    """The solution's answer for `task` with the one occurrence of `old` replaced by `new`."""
    assert ANSWERS[task].count(old) == 1, (task, old)
    return ANSWERS[task].replace(old, new)


SAMPLE = "def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):\n"
VALIDATE = ("    if temperature < 0 or (top_k is not None and top_k < 1) or (\n"
            "            top_p is not None and not 0 < top_p <= 1):\n"
            "        raise ValueError('bad argument')\n"
            "    if temperature == 0:\n        return logits.argmax(dim=-1)\n")
TOP_P_DECISION = "        drop_sorted = before >= top_p  # the first token (nothing before it) always stays\n"
CONTEXT = "model(idx[:, -block_size:])"
TIES_STAY = "        logits = logits.masked_fill(logits < kth, float(\"-inf\"))  # ties with the k-th stay\n"
MASK = "    scores = scores.masked_fill(~allowed, float(\"-inf\"))  # (B, H, T_new, T_k)\n"

TEMPERATURE = "sample_next_token divides the logits by the temperature"
RANDOM_LOGITS = "sample_next_token on random logits with temperature, top_k and top_p"
DEGENERATE = "sample_next_token with one row, one token, top_k = V, top_p = 1 and tied logits"
ALL_DRAWS = {"sample_next_token with top_k=1 or top_p=0.5 keeps only the best token",
             "sample_next_token draws with torch.multinomial and the generator", TEMPERATURE,
             "sample_next_token with top_k=2 never draws the third token",
             "sample_next_token with top_p=0.8 keeps the fewest likeliest tokens that reach 0.8",
             "sample_next_token applies top_p to the probabilities left after top_k", RANDOM_LOGITS, DEGENERATE}
GENERATED = {"generate with temperature=0 appends the likeliest next token at every step",
             "generate draws every token with sample_next_token and the generator",
             "generate crops the context to the last block_size tokens",
             "generate on random prompts with temperature, top_k and top_p",
             "generate with max_new_tokens=0 and with a prompt longer than block_size"}
CACHE_GROWS = {"KVCache.update appends the new positions along the time axis",
               "KVCache over many updates, with a batch and several heads",
               "two KVCaches keep their own keys and values"}
ONE_NEW = "cached_attention of one new position attends to every cached one"
EMPTY = "cached_attention on an empty cache is causal self-attention"
TWO_NEW = "cached_attention of two new positions after two cached ones"
SCALE = "cached_attention divides the scores by sqrt(D)"
STEPS = "cached_attention step by step after a prompt, with a batch and heads"
CHUNKS = "cached_attention with chunks of new positions, and with large scores"

# (answer cells replaced, exactly the checks that must fail). Each is a mistake learners make.
WRONG = {
    "temperature applied after softmax": (
        {"sample_next_token": edit("sample_next_token", "    logits = logits / temperature  # (B, V)\n", "").replace(
            "    probs = torch.softmax(logits, dim=-1)  # (B, V)\n",
            "    probs = torch.softmax(logits, dim=-1) / temperature\n")},
        {TEMPERATURE, RANDOM_LOGITS},
    ),
    "top_p drops the token that crosses p": (
        {"sample_next_token": edit("sample_next_token", TOP_P_DECISION,
                                   "        drop_sorted = sorted_probs.cumsum(dim=-1) > top_p\n"
                                   "        drop_sorted[:, 0] = False\n")},
        {"sample_next_token with top_p=0.8 keeps the fewest likeliest tokens that reach 0.8", RANDOM_LOGITS},
    ),
    "top_k zeroes probabilities after softmax, then top_p reads them unrenormalised": (
        {"sample_next_token": SAMPLE + VALIDATE + "    probs = torch.softmax(logits / temperature, dim=-1)\n"
         "    if top_k is not None:\n"
         "        kth = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1).values[:, -1:]\n"
         "        probs = probs.masked_fill(probs < kth, 0.0)\n"
         "    if top_p is not None:\n"
         "        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)\n"
         "        drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p\n"
         "        probs = probs.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), 0.0)\n"
         "    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)\n"},
        {"sample_next_token applies top_p to the probabilities left after top_k"},
    ),
    "top_k keeps exactly k tokens, dropping ties": (
        {"sample_next_token": edit("sample_next_token", TIES_STAY,
                                   "        best = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).indices\n"
                                   "        kept = logits.gather(-1, best)\n"
                                   "        logits = torch.full_like(logits, -math.inf).scatter(-1, best, kept)\n")},
        {DEGENERATE},
    ),
    "sample_next_token ignores the generator": (
        {"sample_next_token": edit("sample_next_token", "num_samples=1, generator=generator)", "num_samples=1)")},
        # (the checks whose every draw is the best token pass whatever the random numbers)
        ALL_DRAWS - {"sample_next_token with top_k=1 or top_p=0.5 keeps only the best token",
                     "sample_next_token applies top_p to the probabilities left after top_k"},
    ),
    "sample_next_token returns (B, 1)": (
        {"sample_next_token": edit("sample_next_token", "generator=generator).squeeze(-1)", "generator=generator)")},
        ALL_DRAWS,
    ),
    "sample_next_token accepts top_p above 1": (
        {"sample_next_token": edit("sample_next_token", "    if top_p is not None and not 0 < top_p <= 1:\n",
                                   "    if top_p is not None and top_p <= 0:\n")},
        {"sample_next_token raises ValueError for temperature < 0, top_k < 1, top_p outside (0, 1]"},
    ),
    "generate without the context crop": (
        {"generate": edit("generate", CONTEXT, "model(idx)")},
        {"generate crops the context to the last block_size tokens",
         "generate on random prompts with temperature, top_k and top_p",
         "generate with max_new_tokens=0 and with a prompt longer than block_size"},
    ),
    "generate feeds the model the last token only": (
        {"generate": edit("generate", CONTEXT, "model(idx[:, -1:])")},
        GENERATED,
    ),
    "generate samples from the first position's logits": (
        {"generate": edit("generate", "logits[:, -1, :]", "logits[:, 0, :]")},
        GENERATED,
    ),
    "KVCache concatenates along the heads": (
        {"KVCache": edit("KVCache", "self.k = torch.cat([self.k, k_new], dim=2)",
                         "self.k = torch.cat([self.k, k_new], dim=1)")
         .replace("self.v = torch.cat([self.v, v_new], dim=2)", "self.v = torch.cat([self.v, v_new], dim=1)")},
        CACHE_GROWS,
    ),
    "KVCache returns only the new keys and values": (
        {"KVCache": edit("KVCache", "        return self.k, self.v\n", "        return k_new, v_new\n")},
        CACHE_GROWS,
    ),
    "cached_attention with the square causal mask": (
        {"cached_attention": edit("cached_attention", ".tril(diagonal=T_k - T_new)", ".tril()")},
        {ONE_NEW, TWO_NEW, SCALE, STEPS, CHUNKS},
    ),
    "cached_attention without a mask": (
        {"cached_attention": edit("cached_attention", MASK, "")},
        {EMPTY, TWO_NEW, STEPS, CHUNKS},
    ),
    "cached_attention attends to the new positions only": (
        {"cached_attention": edit("cached_attention", "    k, v = cache.update(k_new, v_new)  # (B, H, T_k, D) each\n",
                                  "    cache.update(k_new, v_new)\n    k, v = k_new, v_new\n")},
        {ONE_NEW, TWO_NEW, SCALE, STEPS, CHUNKS},
    ),
    "cached_attention without the scale": (
        {"cached_attention": edit("cached_attention", " / math.sqrt(q_new.shape[-1])", "")},
        {SCALE, STEPS, CHUNKS},
    ),
    "cached_attention's softmax without the largest score subtracted": (
        {"cached_attention": edit("cached_attention", "    return torch.softmax(scores, dim=-1) @ v",
                                  "    weights = torch.exp(scores)\n"
                                  "    return weights / weights.sum(dim=-1, keepdim=True) @ v")},
        {CHUNKS},
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_exactly_the_checks_it_breaks(notebook_with, mistake: str) -> None:
    answers, must_fail = WRONG[mistake]
    (task,) = answers
    results = grade_in_process(notebook_with(answers, base=SOLUTION), EXERCISE, task)
    failed = {result.name for result in results if not result.passed}
    assert failed == must_fail, format_report(results, mistake)
    report = format_report(results, EXERCISE)
    for result in results:
        if not result.passed:  # the message names the call that went wrong, in the report too
            assert f"FAIL {result.name}" in report or f"FAIL [hidden] {result.name}" in report
            called = "KVCache()" if task == "KVCache" else f"{task}("
            assert result.message.startswith("Called ") and called in result.message.split(":")[0], result.message


# Other ways to be right: each passes every check of its task.
RIGHT = {
    "top_p by sorting the logits and indexing back": {
        "sample_next_token": SAMPLE + VALIDATE + "    logits = logits / temperature\n"
        "    if top_k is not None:\n"
        "        kth = logits.sort(dim=-1, descending=True).values[:, min(top_k, logits.shape[-1]) - 1, None]\n"
        "        logits = torch.where(logits >= kth, logits, torch.tensor(float('-inf')))\n"
        "    if top_p is not None:\n"
        "        sorted_logits, order = logits.sort(dim=-1, descending=True)\n"
        "        cumulative = sorted_logits.softmax(-1).cumsum(-1)\n"
        "        keep_sorted = torch.cat([torch.ones_like(cumulative[:, :1], dtype=torch.bool),\n"
        "                                 cumulative[:, :-1] < top_p], dim=-1)\n"
        "        keep = torch.empty_like(keep_sorted)\n"
        "        keep[torch.arange(len(keep))[:, None], order] = keep_sorted\n"
        "        logits = logits.masked_fill(~keep, float('-inf'))\n"
        "    probs = torch.exp(logits - logits.max(-1, keepdim=True).values)\n"
        "    return torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, generator=generator)[:, 0]\n"},
    "generate with a list of ids per step": {
        "generate": "def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,\n"
        "             generator=None):\n"
        "    out = idx\n"
        "    for _ in range(max_new_tokens):\n"
        "        size = model.config.block_size\n"
        "        context = out if out.shape[1] <= size else out[:, out.shape[1] - size:]\n"
        "        logits = model(context)[0]\n"
        "        out = torch.cat((out, sample_next_token(logits[:, -1], temperature=temperature, top_k=top_k,\n"
        "                                                top_p=top_p, generator=generator).unsqueeze(1)), dim=1)\n"
        "    return out\n"},
    "KVCache keeping a list of chunks": {
        "KVCache": "class KVCache:\n    def __init__(self):\n        self.keys, self.values = [], []\n\n"
        "    def update(self, k_new, v_new):\n        self.keys.append(k_new)\n        self.values.append(v_new)\n"
        "        return torch.cat(self.keys, dim=-2), torch.cat(self.values, dim=-2)\n"},
    "cached_attention with the mask from positions": {
        "cached_attention": "def cached_attention(q_new, k_new, v_new, cache):\n"
        "    k, v = cache.update(k_new, v_new)\n"
        "    start = k.shape[2] - q_new.shape[2]\n"
        "    query_positions = torch.arange(start, k.shape[2])[:, None]\n"
        "    scores = (q_new / math.sqrt(q_new.shape[-1])) @ k.transpose(2, 3)\n"
        "    scores = scores.masked_fill(torch.arange(k.shape[2]) > query_positions, -math.inf)\n"
        "    return scores.softmax(dim=-1) @ v\n"},
}


@pytest.mark.parametrize("variant", list(RIGHT))
def test_correct_variants_pass(notebook_with, variant: str) -> None:
    assert_variants_pass(notebook_with, EXERCISE, RIGHT[variant], variant)


def test_comparisons_never_raise_on_tampered_values() -> None:
    # What comes back from the sandbox is plain data of any shape; a comparison says False to
    # anything that is not the result it expects (it must never crash the grader).
    ragged = {"shape": [1, 7], "dtype": "int64", "values": [[1, 2], "x"]}
    garbage = [None, 1, "x", [], [[None]], {"shape": [1], "dtype": "int64"}, ragged,
               {"shape": [1, 7], "dtype": "int64", "values": "abc"}]
    assert_comparisons_say_false(EXERCISE, garbage)


USES_TORCH_ATTENTION = ("def cached_attention(q_new, k_new, v_new, cache):\n"
                        "    k, v = cache.update(k_new, v_new)\n"
                        "    mask = torch.ones(q_new.shape[2], k.shape[2], dtype=torch.bool)\n"
                        "    mask = mask.tril(k.shape[2] - q_new.shape[2])\n"
                        "    return torch.nn.functional.scaled_dot_product_attention(q_new, k, v, attn_mask=mask)\n")
USES_COURSE_LIB = "from course_lib.attention import KVCache\n"


def test_torch_attention_course_lib_and_a_mistake_graded_in_the_sandbox(notebook_with) -> None:
    # cached_attention calls F.scaled_dot_product_attention (its values are right): 0 for that task.
    # KVCache is course_lib's: 0 for that task (and the import fails in the sandbox). generate
    # forgets the crop: exactly those checks fail. sample_next_token is right and keeps its points.
    answers, must_fail = WRONG["generate without the context crop"]
    notebook = notebook_with({"cached_attention": USES_TORCH_ATTENTION, "KVCache": USES_COURSE_LIB} | answers,
                             base=SOLUTION)
    report = grade_submission(EXERCISE, notebook)
    assert len(report.problems) == 1 and "ModuleNotFoundError" in report.problems[0], report.problems
    for result in report.results:
        if result.task == "cached_attention":
            assert result.score == 0 and result.message.startswith("Not allowed"), result.name
            assert "torch.nn.functional.scaled_dot_product_attention" in result.message
        elif result.task == "KVCache":
            assert result.score == 0 and result.message.startswith("Not allowed"), result.name
            assert "imports course_lib" in result.message
        else:
            assert result.passed == (result.name not in must_fail), result.name
    kept = TASK_POINTS["sample_next_token"] + TASK_POINTS["generate"]
    assert report.score == kept - check_points(EXERCISE, must_fail)


def test_visible_failures_show_expected_and_got(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["top_p drops the token that crosses p"][0]["sample_next_token"])
    assert judged(EXERCISE, "sample_next_token with top_p=0.8 keeps the fewest likeliest tokens that reach 0.8",
                  namespace).message == (
        "Called sample_next_token(tensor([[2.0, 1.0, 0.0]]), top_p=0.8), with generator = "
        "torch.Generator().manual_seed(3), 12 times:\n"
        "  expected row 0 drew [0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0]\n"
        "  got      row 0 drew [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"
    )
    square = WRONG["cached_attention with the square causal mask"][0]["cached_attention"]
    namespace = with_answer(solution_namespace, square)
    message = judged(EXERCISE, ONE_NEW, namespace).message
    assert message.endswith("\n  expected tensor([[[[24.2051]]]])\n  got      tensor([[[[10.]]]])")


def test_shape_and_crop_mistakes_are_explained(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["sample_next_token returns (B, 1)"][0]["sample_next_token"])
    message = judged(EXERCISE, "sample_next_token draws with torch.multinomial and the generator", namespace).message
    assert message.endswith("sample_next_token should return one id per row of logits, shape (2,), got shape (2, 1): "
                            "take the one draw per row out with .squeeze(-1).")
    namespace = with_answer(solution_namespace, WRONG["generate without the context crop"][0]["generate"])
    message = judged(EXERCISE, "generate crops the context to the last block_size tokens", namespace).message
    assert message.startswith("Called generate(model, tensor([[1, 2, 3, 4, 5, 6]]), 6, temperature=0, generator)")
    assert "sequence of length 9 exceeds the context length block_size=8; keep only the last 8 tokens" in message


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["cached_attention without the scale"][0]["cached_attention"])
    assert judged(EXERCISE, STEPS, namespace).message == (
        "Called cached_attention(q_new, k_new, v_new, cache) for each (q_new, k_new, v_new) in <random chunks, "
        "(B, H, T_new, D) = (2, 3, [5, 1, 1, 1], 8)>, in turn, with a cache that holds <nothing (an empty cache)> "
        "at first: the result differs from the reference."
    )


def test_cached_attention_must_update_the_cache_once(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, "def cached_attention(q_new, k_new, v_new, cache):\n"
                            "    return q_new\n")
    assert judged(EXERCISE, ONE_NEW, namespace).message.endswith(
        "cached_attention should call cache.update(k_new, v_new) exactly once per call (it made 0 calls).")
