"""course_lib.generation.sample_next_token and course_lib.training.perplexity.

Sampling is checked against distributions worked out by hand (softmax of small logit vectors)
and against torch.multinomial's own draws; perplexity against torch.nn.functional.cross_entropy
computed window by window.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.device import get_device
from course_lib.generation import outside_nucleus, sample_next_token
from course_lib.model import GPT, GPTConfig
from course_lib.training import perplexity

DEVICE = get_device()
N = 20000  # draws per frequency estimate: the standard error of a frequency is below 0.004


def frequencies(logits: torch.Tensor, seed: int = 0, **kwargs) -> torch.Tensor:
    """How often each token is drawn from N copies of one row of logits."""
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    draws = sample_next_token(logits.expand(N, -1), generator=generator, **kwargs)
    assert draws.shape == (N,) and draws.dtype == torch.int64
    return (torch.bincount(draws, minlength=logits.shape[-1]).double() / N).cpu()


def test_greedy_top_k_temperature_and_top_p_give_the_hand_computed_distributions():
    logits = torch.tensor([[2.0, 1.0, 0.0]], device=DEVICE)
    assert sample_next_token(logits, temperature=0).tolist() == [0]
    assert sample_next_token(logits, top_k=1).tolist() == [0]
    # softmax([2, 1]) = [e/(e+1), 1/(e+1)] = [0.7311, 0.2689]; token 2 is cut by top_k.
    two_best = torch.tensor([math.e / (math.e + 1), 1 / (math.e + 1), 0.0], dtype=torch.float64)
    torch.testing.assert_close(frequencies(logits, top_k=2), two_best, atol=0.015, rtol=0)
    # Temperature 2 halves the logits: softmax([1, 0.5, 0]) = [0.5065, 0.3072, 0.1863].
    expected = torch.softmax(torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), dim=0)
    torch.testing.assert_close(frequencies(logits, temperature=2.0), expected, atol=0.015, rtol=0)
    # softmax([2, 1, 0]) = [0.665, 0.245, 0.090]: p = 0.8 needs the first two, p = 0.6 the first
    # alone, p = 0.95 all three, p = 1 all three.
    torch.testing.assert_close(frequencies(logits, top_p=0.8), two_best, atol=0.015, rtol=0)
    assert frequencies(logits, top_p=0.6).tolist() == [1.0, 0.0, 0.0]
    everything = torch.softmax(logits.double().cpu()[0], dim=0)
    for p in (0.95, 1.0):
        torch.testing.assert_close(frequencies(logits, top_p=p), everything, atol=0.015, rtol=0)
    # top_k first, then top_p among what is left: k = 2 leaves [0.731, 0.269]; p = 0.7 keeps one.
    assert frequencies(logits, top_k=2, top_p=0.7).tolist() == [1.0, 0.0, 0.0]


def test_draws_are_torch_multinomial_of_the_kept_probabilities():
    """With the same generator, sample_next_token draws exactly what torch.multinomial draws from
    the filtered, renormalised distribution (so a seed gives the same text everywhere)."""
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    got = sample_next_token(logits, temperature=0.7, top_k=20, top_p=0.9, generator=torch.Generator(DEVICE).manual_seed(5))
    scaled = (logits / 0.7).double()
    kept = torch.zeros_like(scaled, dtype=torch.bool)
    for row in range(64):  # written out per row: sort, keep the top 20, then the nucleus of 0.9
        order = scaled[row].argsort(descending=True)[:20]
        probs = torch.softmax(scaled[row, order], dim=0)
        before = torch.cumsum(probs, 0) - probs
        kept[row, order[before < 0.9]] = True
    probs = torch.softmax(scaled.masked_fill(~kept, float("-inf")), dim=-1).float()
    want = torch.multinomial(probs, 1, generator=torch.Generator(DEVICE).manual_seed(5)).squeeze(-1)
    assert torch.equal(got, want)


def test_the_nucleus_ranks_only_the_candidates_yet_drops_what_a_ranking_of_the_whole_row_drops():
    """outside_nucleus ranks only the tokens still finite (about k after top-k); the tokens it drops
    are those a stable ranking of the whole row by probability drops, ties (by token id) included.

    On the CPU, whose cumsum adds in order, the two running sums are the same numbers to the bit,
    so the rows' sums that land exactly on top_p (frequent with these tied logits) must agree too;
    a GPU's parallel scan may round such a sum the other way, so this runs on the CPU.
    """
    generator = torch.Generator().manual_seed(7)
    for trial in range(200):
        B, V = (1, 50257) if trial == 0 else (3, int(torch.randint(1, 300, (1,), generator=generator)))
        # Integer logits in a narrow range: many exact ties, also at the edge of the nucleus.
        logits = torch.randint(-3, 3, (B, V), generator=generator).float()
        k = int(torch.randint(1, V + 1, (1,), generator=generator))
        if trial % 3:  # as after top-k: all but the k best (and their ties) are -inf
            kth_best = torch.topk(logits, k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth_best, float("-inf"))
        top_p = [0.05, 0.5, 0.9, 0.95, 1.0][trial % 5]
        probs = torch.softmax(logits, dim=-1)
        ranked = torch.sort(probs, dim=-1, descending=True, stable=True)  # the whole row
        mass_before = ranked.values.cumsum(dim=-1) - ranked.values
        want = torch.empty_like(logits, dtype=torch.bool).scatter(-1, ranked.indices, mass_before >= top_p)
        removed = logits == float("-inf")  # by top-k: out either way
        got = outside_nucleus(logits, top_p)
        assert torch.equal(got | removed, want | removed), (trial, B, V, k, top_p)
        assert not got.all(dim=-1).any()  # at least one token stays in every row


def test_top_k_then_top_p_draws_what_a_whole_row_implementation_draws_with_and_without_ties():
    """sample_next_token hands top-k's ids to top-p only when no tie with the k-th best leaves an
    extra token; with ties or without, its draws are torch.multinomial's draws from the
    probabilities a plain whole-row implementation of the rules keeps (on the CPU, as above)."""
    generator = torch.Generator().manual_seed(11)
    tied_rows = untied_rows = 0
    for trial in range(60):
        if trial % 2:  # integer logits: many ties, also with the k-th best
            logits = torch.randint(-4, 4, (64, 300), generator=generator).float()
        else:
            logits = torch.randn(64, 300, generator=generator)
        # Small k half the time, where each kept token is likely enough to be drawn in some row.
        k = int(torch.randint(1, 9 if trial % 4 < 2 else 301, (1,), generator=generator))
        top_p = [0.3, 0.9, 1.0][trial % 3]
        kth_best = torch.sort(logits, dim=-1, descending=True).values[:, k - 1 : k]  # (64, 1)
        tied = (logits == kth_best).sum(dim=-1) > 1
        tied_rows, untied_rows = tied_rows + int(tied.sum()), untied_rows + int((~tied).sum())
        after_k = logits.masked_fill(logits < kth_best, float("-inf"))
        probs = torch.softmax(after_k, dim=-1)
        ranked = torch.sort(probs, dim=-1, descending=True, stable=True)
        mass_before = ranked.values.cumsum(dim=-1) - ranked.values
        dropped = torch.empty_like(logits, dtype=torch.bool).scatter(-1, ranked.indices, mass_before >= top_p)
        kept_probs = torch.softmax(after_k.masked_fill(dropped, float("-inf")), dim=-1)
        want = torch.multinomial(kept_probs, 1, generator=torch.Generator().manual_seed(trial)).squeeze(-1)
        got = sample_next_token(logits, top_k=k, top_p=top_p, generator=torch.Generator().manual_seed(trial))
        assert torch.equal(got, want), (trial, k, top_p)
    assert tied_rows > 20 and untied_rows > 20  # both ways through sample_next_token were taken


def test_degenerate_inputs_and_bad_arguments():
    one_token = torch.tensor([[0.3]], device=DEVICE)  # V = 1: every method picks token 0
    for kwargs in ({}, {"temperature": 0}, {"top_k": 5}, {"top_p": 0.01}):
        assert sample_next_token(one_token, **kwargs).tolist() == [0]
    logits = torch.tensor([[0.0, 5.0, 5.0, -1.0]], device=DEVICE)
    assert sample_next_token(logits, temperature=0).tolist() == [1]  # argmax keeps the first tie
    # Two tied best tokens and k = 1: both are "at least as large as the k-th largest".
    assert set(frequencies(logits, top_k=1).nonzero().flatten().tolist()) == {1, 2}
    for kwargs, message in (
        ({"temperature": -0.5}, "temperature must be >= 0"),
        ({"top_k": 0}, "top_k must be a positive integer"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ):
        with pytest.raises(ValueError, match=message):
            sample_next_token(logits, **kwargs)
    with pytest.raises(ValueError, match=r"shape \(B, V\)"):
        sample_next_token(logits[0])


@pytest.mark.parametrize("n_tokens", [2, 9, 10, 100])
def test_perplexity_is_exp_of_the_cross_entropy_over_every_predicted_token(n_tokens):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=1, d_model=16, n_heads=2)).to(DEVICE)
    ids = torch.randint(0, 11, (n_tokens,))
    total = 0.0
    for start in range(0, n_tokens - 1, 8):  # windows of 9 tokens sharing their edge token
        window = ids[start : start + 9].to(DEVICE)
        logits, _ = model(window[None, :-1])
        total += F.cross_entropy(logits[0].double(), window[1:], reduction="sum").item()
    assert perplexity(model, ids, batch_size=3) == pytest.approx(math.exp(total / (n_tokens - 1)), rel=1e-5)
    assert model.training  # left as it was found
    with pytest.raises(ValueError, match="at least 2 tokens"):
        perplexity(model, ids[:1])
