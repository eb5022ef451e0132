"""What a trained model does with its next-token probabilities: choose the next token.

A language model gives, at every position, one score per vocabulary entry for the token that
comes next (the logits). Generating text is a loop: score, choose one token, append it, again
(`GPT.generate`). This module holds the choice, `sample_next_token(logits, temperature, top_k,
top_p)`: logits (B, V) -> ids (B,). How good the scores are is measured by
`course_lib.training.perplexity`.

For the logits [2, 1, 0]: softmax gives the probabilities [0.665, 0.245, 0.090].

- temperature divides the logits first: 0.5 sharpens them to [0.867, 0.117, 0.016], 2 flattens
  them to [0.506, 0.307, 0.186]; temperature 0 always takes the likeliest token (greedy).
- top_k=2 keeps the two best tokens: [0.731, 0.269, 0].
- top_p=0.8 keeps the fewest likeliest tokens whose probabilities add up to at least 0.8:
  0.665 alone is not enough, 0.665 + 0.245 = 0.910 is, so again [0.731, 0.269, 0]. Unlike
  top-k, the number of tokens kept follows the model's confidence.
"""

from __future__ import annotations

import torch


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose one token id per row of logits (B, V): returns (B,) int64 ids.

    In this order: temperature 0 returns the argmax (greedy). Otherwise divide the logits by the
    temperature; top_k keeps every logit at least as large as the k-th largest; top_p then keeps
    the smallest set of the likeliest remaining tokens whose probabilities sum to at least p
    (at least one token); the rest become -inf, and one token per row is drawn from the softmax
    with `torch.multinomial`. Pass a seeded `torch.Generator` (on the logits' device) for
    reproducible draws.

        >>> logits = torch.tensor([[2.0, 1.0, 0.0]])
        >>> sample_next_token(logits, temperature=0).tolist()
        [0]
        >>> sample_next_token(logits, top_k=1).tolist()     # only the best token survives
        [0]
        >>> sample_next_token(logits, top_p=0.5).tolist()   # 0.665 >= 0.5: the best alone
        [0]
    """
    if temperature < 0:
        raise ValueError(f"sample_next_token: temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"sample_next_token: top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"sample_next_token: top_p must be in (0, 1] or None, got {top_p}")
    if logits.dim() != 2:
        raise ValueError(f"sample_next_token expected logits of shape (B, V), got {tuple(logits.shape)}")
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    if temperature != 1:  # dividing by 1 would only copy the row
        logits = logits / temperature  # (B, V)
    survivors = None  # (B, k): the ids top-k leaves, when it leaves exactly k in every row
    if top_k is not None:
        V, k = logits.shape[-1], min(top_k, logits.shape[-1])
        best = torch.topk(logits, k, dim=-1)  # (B, k) values and ids, best first
        cut = logits < best.values[:, -1:]  # (B, V): below the k-th best (a tie with it stays)
        logits = logits.masked_fill(cut, float("-inf"))  # (B, V)
        if top_p is not None and int(cut.sum(dim=-1).min()) == V - k:
            survivors = best.indices  # no tie left an extra token: top-p needs to rank only these
    if top_p is not None:
        logits = logits.masked_fill(outside_nucleus(logits, top_p, survivors), float("-inf"))  # (B, V)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


def outside_nucleus(logits: torch.Tensor, top_p: float, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """The tokens top-p sampling drops: (B, V) logits -> (B, V) bool, True where dropped.

    Rank each row's tokens from likeliest to least likely (equal probabilities by token id);
    a token stays if the tokens ranked before it have less than top_p probability together,
    so the first always stays and the kept set is the smallest that reaches top_p.

        >>> outside_nucleus(torch.tensor([[2.0, 1.0, 0.0]]), top_p=0.8).tolist()  # 0.665 + 0.245 >= 0.8
        [[False, False, True]]

    Only tokens with a finite logit can stay. After top-k that is about k of the V entries, and
    ranking those instead of all 50,257 of GPT-2's vocabulary takes most of the cost out of a
    step. `candidates` (B, n), when given, are ids that include every finite logit of each row
    (the ids top-k kept); otherwise they are found here.
    """
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    B, V = logits.shape
    if candidates is not None:
        candidates = candidates.sort(dim=-1).values  # (B, n) ids, in id order
    else:
        n = int((logits != float("-inf")).sum(dim=-1).max())  # finite logits in the fullest row
        if n < V:
            candidates = torch.topk(logits, n, dim=-1).indices.sort(dim=-1).values  # (B, n) ids, in id order
        else:
            candidates = torch.arange(V, device=logits.device).expand(B, V)  # (B, V): every id, in id order
    # A stable sort of candidates in id order ranks equal probabilities by id (topk would not).
    sorted_probs, rank = torch.sort(probs.gather(-1, candidates), dim=-1, descending=True, stable=True)  # (B, n)
    drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p  # (B, n): mass ranked before >= p
    drop = torch.ones_like(logits, dtype=torch.bool)  # (B, V): a token that is no candidate is out
    return drop.scatter(-1, candidates.gather(-1, rank), drop_sorted)  # back to vocabulary order
