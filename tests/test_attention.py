"""course_lib.attention against PyTorch's attention: F.scaled_dot_product_attention for the
function, nn.MultiheadAttention (given the same weights) for the module, and F.scaled_dot_product_attention
with enable_gqa=True for grouped-query attention; hand-computed values for the small examples.

Tolerance: float32, ATOL = RTOL = 1e-5. The references use fused or differently ordered kernels
(scaling q before the product, a fused softmax), which differ from ours in the last few bits.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import (
    KVCache,
    MultiHeadSelfAttention,
    apply_rotary,
    causal_mask,
    rotary_cos_sin,
    scaled_dot_product_attention,
)
from course_lib.device import get_device

DEVICE = get_device()
ATOL = 1e-5
RTOL = 1e-5
# Leading (batch, head) dimensions in front of (T, d): none, then 1 to 4 of them.
LEADING = [(), (3,), (2, 3), (2, 1, 3), (2, 1, 2, 2)]


@pytest.fixture(autouse=True)
def seeded():
    """Every test draws the same random numbers on every run."""
    torch.manual_seed(0)


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)


def random_qkv(leading: tuple[int, ...], T_q: int = 5, T_k: int = 7, d_k: int = 4, d_v: int = 3):
    """q, k, v with different lengths and widths, so that a swapped dimension cannot go unnoticed."""
    q = torch.randn(*leading, T_q, d_k, device=DEVICE, requires_grad=True)
    k = torch.randn(*leading, T_k, d_k, device=DEVICE, requires_grad=True)
    v = torch.randn(*leading, T_k, d_v, device=DEVICE, requires_grad=True)
    return q, k, v


def outputs_and_grads(fn, q, k, v, upstream=None):
    """fn(q, k, v), and the gradients of sum(output * upstream) with respect to q, k and v."""
    out = fn(q, k, v)
    upstream = torch.randn_like(out) if upstream is None else upstream
    grads = torch.autograd.grad((out * upstream).sum(), (q, k, v))
    return out, grads, upstream


def assert_matches_torch_sdpa(q, k, v, mask=None):
    ours, ours_grads, upstream = outputs_and_grads(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, mask), q, k, v
    )
    ref, ref_grads, _ = outputs_and_grads(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), q, k, v, upstream
    )
    close(ours, ref)
    for g, g_ref in zip(ours_grads, ref_grads):
        close(g, g_ref)


# --------------------------------------------------------------------------------------------
# causal_mask and scaled_dot_product_attention
# --------------------------------------------------------------------------------------------


def test_causal_mask_is_lower_triangular():
    expected = torch.tensor([[True, False, False], [True, True, False], [True, True, True]], device=DEVICE)
    mask = causal_mask(3, device=DEVICE)
    assert mask.dtype == torch.bool and mask.device.type == DEVICE.type
    assert torch.equal(mask, expected)
    assert torch.equal(causal_mask(1), torch.tensor([[True]]))


def test_causal_mask_for_queries_after_a_cache_is_bottom_right_aligned():
    """2 new queries after 2 cached positions: they sit at positions 2 and 3 of 4."""
    expected = torch.tensor([[True, True, True, False], [True, True, True, True]])
    assert torch.equal(causal_mask(2, 4), expected)
    assert torch.equal(causal_mask(3, T_k=3), causal_mask(3))
    with pytest.raises(ValueError, match=r"3 queries cannot be the newest of only T_k=2"):
        causal_mask(3, 2)


def test_attention_hand_example():
    """One query [1, 0] against keys [1, 0] and [0, 1]: scores [1, 0]/sqrt(2), values 10 and 20."""
    q = torch.tensor([[1.0, 0.0]], device=DEVICE)
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]], device=DEVICE)
    v = torch.tensor([[10.0], [20.0]], device=DEVICE)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    e = math.exp(1 / math.sqrt(2))
    w0, w1 = e / (e + 1), 1 / (e + 1)
    close(weights, torch.tensor([[w0, w1]], device=DEVICE))
    close(out, torch.tensor([[10 * w0 + 20 * w1]], device=DEVICE))
    # Masking the first key leaves all the weight on the second.
    mask = torch.tensor([[False, True]], device=DEVICE)
    close(scaled_dot_product_attention(q, k, v, mask), torch.tensor([[20.0]], device=DEVICE))


@pytest.mark.parametrize("leading", LEADING)
def test_attention_matches_torch_without_mask(leading):
    assert_matches_torch_sdpa(*random_qkv(leading))


@pytest.mark.parametrize("leading", LEADING)
def test_attention_matches_torch_with_causal_mask(leading):
    assert_matches_torch_sdpa(*random_qkv(leading, T_q=6, T_k=6), mask=causal_mask(6, device=DEVICE))


@pytest.mark.parametrize("leading", LEADING)
def test_attention_matches_torch_with_full_shape_random_mask(leading):
    mask = torch.rand(*leading, 5, 7, device=DEVICE) < 0.6
    mask[..., 0] = True  # every query may attend somewhere (the empty case has its own test)
    assert_matches_torch_sdpa(*random_qkv(leading), mask=mask)


def test_attention_broadcasts_a_padding_mask():
    """A (B, 1, 1, T_k) mask (hide padded keys) broadcasts over heads and queries."""
    q, k, v = random_qkv((2, 3))
    lengths = torch.tensor([7, 4], device=DEVICE)
    mask = (torch.arange(7, device=DEVICE) < lengths[:, None])[:, None, None, :]  # (2, 1, 1, 7)
    assert_matches_torch_sdpa(q, k, v, mask=mask)


def test_query_with_nothing_to_attend_to_gets_zeros():
    """Our documented choice: zero weights and a zero output, with finite gradients (no NaN)."""
    q, k, v = random_qkv((2,))
    mask = torch.ones(2, 5, 7, dtype=torch.bool, device=DEVICE)
    mask[0, 1] = False  # query 1 of batch 0 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.equal(weights[0, 1], torch.zeros(7, device=DEVICE))
    assert torch.equal(out[0, 1], torch.zeros(3, device=DEVICE))
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    assert all(torch.isfinite(g).all() for g in grads)
    assert torch.equal(grads[0][0, 1], torch.zeros(4, device=DEVICE))  # the empty query learns nothing
    # Every other query is unaffected: the same as torch on the rows that can attend.
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    keep = mask.any(dim=-1)  # (2, 5)
    close(out[keep], ref[keep])


def test_attention_is_stable_for_large_scores():
    """Scores around 1e4 would overflow exp() in float32 without subtracting the row maximum."""
    q, k, v = random_qkv((2,), d_k=8)
    q = (q.detach() * 1e4).requires_grad_()
    out, weights = scaled_dot_product_attention(
        q, k, v, causal_mask(7, device=DEVICE)[:5], return_weights=True
    )
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    close(weights.sum(dim=-1), torch.ones(2, 5, device=DEVICE))
    torch.testing.assert_close(
        out,
        F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(7, device=DEVICE)[:5]),
        atol=1e-4,
        rtol=1e-4,
    )  # near one-hot softmax: both pick the same value rows


def test_returned_weights_are_the_softmax_rows():
    q, k, v = random_qkv((2, 3))
    mask = torch.rand(5, 7, device=DEVICE) < 0.5
    mask[:, 0] = True
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert weights.shape == (2, 3, 5, 7)
    close(weights.sum(dim=-1), torch.ones(2, 3, 5, device=DEVICE))
    assert (weights[..., ~mask] == 0).all()  # masked keys get exactly zero weight
    close(weights @ v, out)


def test_attention_errors_say_what_is_wrong():
    q, k, v = random_qkv((2,))
    with pytest.raises(ValueError, match=r"q and k must have the same last dimension d_k"):
        scaled_dot_product_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"k and v must have the same length T_k"):
        scaled_dot_product_attention(q, k, v[:, :6])
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., T, d\), got \(4,\)"):
        scaled_dot_product_attention(q[0, 0], k, v)
    with pytest.raises(
        TypeError, match=r"mask must be a boolean tensor \(True = may attend\), got torch.float32"
    ):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 7, device=DEVICE))
    with pytest.raises(ValueError, match=r"mask of shape \(7, 5\) does not broadcast .* \(2, 5, 7\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(7, 5, dtype=torch.bool, device=DEVICE))


# --------------------------------------------------------------------------------------------
# MultiHeadSelfAttention
# --------------------------------------------------------------------------------------------


def torch_mha_with_our_weights(ours: MultiHeadSelfAttention) -> nn.MultiheadAttention:
    """nn.MultiheadAttention holding the same weights: q, k, v stacked in in_proj, then out_proj."""
    bias = ours.q_proj.bias is not None
    ref = nn.MultiheadAttention(ours.d_model, ours.n_heads, bias=bias, batch_first=True, device=DEVICE)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fast", [True, False])
def test_mhsa_matches_torch_multihead_attention(bias, fast):
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(16, 4, bias=bias, fast=fast, device=DEVICE)
    ref = torch_mha_with_our_weights(ours)
    x = torch.randn(3, 9, 16, device=DEVICE, requires_grad=True)
    T = x.shape[1]
    # nn.MultiheadAttention's boolean attn_mask means the opposite: True = may NOT attend.
    expected, expected_weights = ref(
        x, x, x, attn_mask=~causal_mask(T, device=DEVICE), need_weights=True, average_attn_weights=False
    )
    close(ours(x), expected)
    y, weights = ours(x, return_weights=True)
    close(y, expected)
    close(weights, expected_weights)  # (B, n_heads, T, T)
    # Gradients with respect to the input agree too.
    upstream = torch.randn_like(expected)
    (grad,) = torch.autograd.grad((ours(x) * upstream).sum(), x)
    (grad_ref,) = torch.autograd.grad((expected * upstream).sum(), x)
    close(grad, grad_ref)


@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(4, None), (4, 4), (4, 2), (4, 1), (6, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_fast_and_teaching_paths_agree(n_heads, n_kv_heads, bias):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(24, n_heads, n_kv_heads=n_kv_heads, bias=bias, device=DEVICE)
    x = torch.randn(2, 11, 24, device=DEVICE)
    results = {}
    for fast in (True, False):
        attn.fast = fast
        attn.zero_grad()
        y = attn(x)
        (y * torch.linspace(-1, 1, y.numel(), device=DEVICE).view_as(y)).sum().backward()
        results[fast] = (y, {name: p.grad.clone() for name, p in attn.named_parameters()})
    close(results[True][0], results[False][0])
    for name, grad in results[True][1].items():
        close(grad, results[False][1][name])


@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(4, 2), (4, 1), (6, 3), (6, 2)])
def test_grouped_query_attention_matches_torch(n_heads, n_kv_heads):
    """Reference: the projections done with F.linear, then F.scaled_dot_product_attention(enable_gqa=True),
    which shares key/value head j with query heads j*g .. j*g + g - 1, g = n_heads / n_kv_heads."""
    torch.manual_seed(0)
    d_model, B, T = 24, 2, 7
    attn = MultiHeadSelfAttention(d_model, n_heads, n_kv_heads=n_kv_heads, fast=False, device=DEVICE)
    hs = d_model // n_heads
    assert attn.k_proj.weight.shape == attn.v_proj.weight.shape == (n_kv_heads * hs, d_model)
    x = torch.randn(B, T, d_model, device=DEVICE)

    def heads(proj, n):
        return F.linear(x, proj.weight, proj.bias).view(B, T, n, hs).transpose(1, 2)

    q, k, v = heads(attn.q_proj, n_heads), heads(attn.k_proj, n_kv_heads), heads(attn.v_proj, n_kv_heads)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = F.linear(y.transpose(1, 2).reshape(B, T, d_model), attn.out_proj.weight, attn.out_proj.bias)
    close(attn(x), expected)


@pytest.mark.parametrize("fast", [True, False])
def test_no_information_flows_from_the_future(fast):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 4, fast=fast, device=DEVICE)
    x = torch.randn(2, 10, 16, device=DEVICE)
    t = 6
    x_changed = x.clone()
    x_changed[:, t] += 1.0  # change position t only
    y, y_changed = attn(x), attn(x_changed)
    close(y_changed[:, :t], y[:, :t])  # the past cannot see it
    assert (y_changed[:, t:] - y[:, t:]).abs().amax(dim=-1).min() > 1e-3  # position t and later do

    # The same through gradients: output t depends on inputs 0..t, and on no later input.
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(attn(x)[:, t].sum(), x)
    per_position = grad.abs().sum(dim=(0, 2))  # (T,)
    assert (per_position[t + 1 :] == 0).all()
    assert (per_position[: t + 1] > 0).all()


def test_mhsa_parameters_have_the_exercise_names():
    attn = MultiHeadSelfAttention(16, 4, n_kv_heads=2)
    shapes = {name: tuple(p.shape) for name, p in attn.named_parameters()}
    assert shapes == {
        "q_proj.weight": (16, 16),
        "q_proj.bias": (16,),
        "k_proj.weight": (8, 16),
        "k_proj.bias": (8,),
        "v_proj.weight": (8, 16),
        "v_proj.bias": (8,),
        "out_proj.weight": (16, 16),
        "out_proj.bias": (16,),
    }
    assert [name for name, _ in MultiHeadSelfAttention(16, 4, bias=False).named_parameters()] == [
        "q_proj.weight",
        "k_proj.weight",
        "v_proj.weight",
        "out_proj.weight",
    ]


def test_mhsa_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"d_model=10 must be divisible by n_heads=4"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(ValueError, match=r"n_heads=6 must be divisible by n_kv_heads=4"):
        MultiHeadSelfAttention(12, 6, n_kv_heads=4)
    attn = MultiHeadSelfAttention(16, 4, device=DEVICE)
    with pytest.raises(ValueError, match=r"expected x of shape \(\.\.\., T, 16\), got \(16,\).*x.unsqueeze\(-2\)"):
        attn(torch.randn(16, device=DEVICE))
    with pytest.raises(ValueError, match=r"expected x of shape \(\.\.\., T, 16\), got \(2, 5, 8\)"):
        attn(torch.randn(2, 5, 8, device=DEVICE))
    with pytest.raises(ValueError, match=r"positions only turn rotary embeddings.*rope_theta=None"):
        attn(torch.randn(2, 5, 16, device=DEVICE), positions=torch.arange(5, device=DEVICE))


# --------------------------------------------------------------------------------------------
# Rotary position embeddings
# --------------------------------------------------------------------------------------------


def rotary_by_complex_numbers(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Reference: pair i of x is the complex number x[i] + j·x[i + d/2], and turning it by φ is
    multiplying by e^(jφ) (the formulation of the RoFormer paper and Meta's Llama code), in float64."""
    d = x.shape[-1]
    pairs = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())  # (..., T, d/2)
    i = torch.arange(d // 2, dtype=torch.float64, device=x.device)
    angles = positions.double()[:, None] * theta ** (-2 * i / d)  # (T, d/2)
    turned = pairs * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([turned.real, turned.imag], dim=-1).float()


def test_rotary_hand_example():
    cos, sin = rotary_cos_sin(torch.tensor([1], device=DEVICE), head_dim=2)  # one pair, 1 radian
    turned = apply_rotary(torch.tensor([[1.0, 0.0]], device=DEVICE), cos, sin)
    close(turned, torch.tensor([[math.cos(1.0), math.sin(1.0)]], device=DEVICE))
    cos, _ = rotary_cos_sin(torch.tensor([0, 1], device=DEVICE), head_dim=4, theta=100.0)
    c1, c01 = math.cos(1.0), math.cos(0.1)  # pair 0 turns 1 rad per position, pair 1 100^(-1/2)
    close(cos, torch.tensor([[1.0, 1.0, 1.0, 1.0], [c1, c01, c1, c01]], device=DEVICE))


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
@pytest.mark.parametrize("leading", [(), (3,), (2, 3)])
def test_rotary_matches_complex_multiplication(theta, leading):
    positions = torch.arange(40, device=DEVICE)
    x = torch.randn(*leading, 40, 16, device=DEVICE)
    turned = apply_rotary(x, *rotary_cos_sin(positions, 16, theta))
    # float32 angles up to 40 rad are off by a few 1e-6 rad: hence the looser tolerance.
    torch.testing.assert_close(turned, rotary_by_complex_numbers(x, positions, theta), atol=5e-5, rtol=1e-5)


def test_rotary_keeps_lengths_and_sees_only_relative_positions():
    q, k = torch.randn(2, 1, 8, device=DEVICE).unbind(0)  # one query, one key, head_dim 8

    def score(m: int, n: int) -> torch.Tensor:
        q_m = apply_rotary(q, *rotary_cos_sin(torch.tensor([m], device=DEVICE), 8))
        k_n = apply_rotary(k, *rotary_cos_sin(torch.tensor([n], device=DEVICE), 8))
        close(q_m.norm(), q.norm())
        return (q_m * k_n).sum()

    close(score(3, 1), score(10, 8))  # both 2 positions apart
    close(score(5, 5), (q * k).sum())  # same position: as if not rotated at all
    assert (score(3, 1) - score(3, 2)).abs() > 1e-3  # a different offset gives a different score


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_mhsa_with_rotary_paths_agree_and_stay_causal(n_kv_heads):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 4, n_kv_heads=n_kv_heads, rope_theta=10000.0, device=DEVICE)
    x = torch.randn(2, 9, 16, device=DEVICE)
    y_fast = attn(x)
    attn.fast = False
    close(attn(x), y_fast)
    x_changed = x.clone()
    x_changed[:, 5] += 1.0
    close(attn(x_changed)[:, :5], y_fast[:, :5])
    attn.rope_theta = None  # the same weights without rotation attend differently
    assert (attn(x) - y_fast).abs().max() > 1e-3


def test_mhsa_with_rotary_matches_a_torch_reference():
    """Queries and keys turned by the complex-number reference, then torch's attention."""
    torch.manual_seed(0)
    d_model, n_heads, B, T = 16, 4, 2, 7
    attn = MultiHeadSelfAttention(d_model, n_heads, rope_theta=10000.0, device=DEVICE)
    x = torch.randn(B, T, d_model, device=DEVICE)
    ref = torch_mha_with_our_weights(attn)
    hs = d_model // n_heads

    def heads(proj, turn):
        h = F.linear(x, proj.weight, proj.bias).view(B, T, n_heads, hs).transpose(1, 2)
        return rotary_by_complex_numbers(h, torch.arange(T, device=DEVICE), 10000.0) if turn else h

    q, k, v = heads(attn.q_proj, True), heads(attn.k_proj, True), heads(attn.v_proj, False)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d_model)
    close(attn(x), ref.out_proj(y))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(("n_kv_heads", "rope_theta"), [(None, None), (2, None), (None, 10000.0), (2, 500000.0)])
def test_mhsa_with_a_kv_cache_equals_one_pass_over_the_whole_sequence(fast, n_kv_heads, rope_theta):
    """Feeding 4, 1, 3 and 1 positions through a KVCache gives the outputs of one pass over 9.

    (The one pass is checked against torch above; a top-left aligned mask, or rotary angles
    restarting at 0, would make the later pieces differ.)"""
    attn = MultiHeadSelfAttention(16, 4, n_kv_heads=n_kv_heads, fast=fast, rope_theta=rope_theta, device=DEVICE)
    x = torch.randn(2, 9, 16, device=DEVICE)
    cache = KVCache()
    pieces = [attn(x[:, lo:hi], kv_cache=cache) for lo, hi in [(0, 4), (4, 5), (5, 8), (8, 9)]]
    close(torch.cat(pieces, dim=1), attn(x))
    assert cache.length == 9
    assert cache.k.shape == cache.v.shape == (2, n_kv_heads or 4, 9, 4)  # stored before the GQA repeat


def test_mhsa_weights_after_a_cache_cover_every_key():
    attn = MultiHeadSelfAttention(16, 4, device=DEVICE)
    x = torch.randn(1, 6, 16, device=DEVICE)
    cache = KVCache()
    attn(x[:, :4], kv_cache=cache)
    _, weights = attn(x[:, 4:], kv_cache=cache, return_weights=True)
    assert weights.shape == (1, 4, 2, 6)  # (B, nh, T new, T_k all)
    assert (weights[..., 0, 5] == 0).all()  # position 4 does not see position 5
    close(weights.sum(dim=-1), torch.ones(1, 4, 2, device=DEVICE))


def test_rotary_needs_an_even_head_size():
    with pytest.raises(ValueError, match=r"head_dim=5 must be even"):
        rotary_cos_sin(torch.arange(3), 5)
    with pytest.raises(ValueError, match=r"even head size, got d_model / n_heads = 3"):
        MultiHeadSelfAttention(12, 4, rope_theta=10000.0)


def test_mhsa_runs_under_autocast():
    """Mixed precision: float32 weights, bfloat16 matmuls; both paths agree to bfloat16 precision."""
    attn = MultiHeadSelfAttention(32, 4, n_kv_heads=2, rope_theta=10000.0, device=DEVICE)
    x = torch.randn(2, 8, 32, device=DEVICE)
    expected = attn(x)  # float32
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        y_fast = attn(x)
        attn.fast = False
        y_teaching = attn(x)
    assert y_fast.dtype == y_teaching.dtype == torch.bfloat16
    for y in (y_fast, y_teaching):
        torch.testing.assert_close(y.float(), expected, atol=2e-2, rtol=2e-2)  # bfloat16 keeps 8 bits


# --------------------------------------------------------------------------------------------
# Any leading dimensions, and explicit positions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("leading", [(), (6,), (2, 3)])
def test_mhsa_accepts_any_leading_dimensions(leading, fast):
    """x (..., T, C): against nn.MultiheadAttention on the same sequences as one flat batch (or, for a
    single sequence, nn.MultiheadAttention's own unbatched (T, C) form)."""
    ours = MultiHeadSelfAttention(16, 4, fast=fast, device=DEVICE)
    ref = torch_mha_with_our_weights(ours)
    T = 7
    x = torch.randn(*leading, T, 16, device=DEVICE)
    flat = x.reshape(-1, T, 16) if leading else x
    expected, expected_weights = ref(
        flat, flat, flat, attn_mask=~causal_mask(T, device=DEVICE), need_weights=True, average_attn_weights=False
    )
    y, weights = ours(x, return_weights=True)
    assert y.shape == x.shape and weights.shape == (*leading, 4, T, T)
    close(ours(x), expected.reshape(x.shape))
    close(weights, expected_weights.reshape(weights.shape))


def test_rotary_cos_sin_keeps_the_leading_dimensions_of_positions():
    positions = torch.tensor([[0, 1, 2], [5, 6, 7]], device=DEVICE)  # (B, T): two sequences' positions
    cos, sin = rotary_cos_sin(positions, 8)
    assert cos.shape == sin.shape == (2, 3, 8)
    for row in range(2):
        row_cos, row_sin = rotary_cos_sin(positions[row], 8)  # (T, 8)
        close(cos[row], row_cos)
        close(sin[row], row_sin)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_mhsa_with_explicit_positions_matches_a_torch_reference(n_kv_heads, fast):
    """positions (B, T), a different start for each sequence: queries and keys turned by the
    complex-number reference at those positions, then torch's causal attention (enable_gqa)."""
    torch.manual_seed(0)
    d_model, n_heads, B, T, hs = 16, 4, 2, 6, 4
    nkv = n_kv_heads or n_heads
    attn = MultiHeadSelfAttention(d_model, n_heads, n_kv_heads=n_kv_heads, rope_theta=10000.0, fast=fast, device=DEVICE)
    x = torch.randn(B, T, d_model, device=DEVICE)
    positions = torch.stack([torch.arange(3, 3 + T), torch.arange(40, 40 + 2 * T, 2)]).to(DEVICE)  # (B, T)

    def heads(proj, n, turn):
        h = F.linear(x, proj.weight, proj.bias).view(B, T, n, hs).transpose(1, 2)  # (B, n, T, hs)
        if not turn:
            return h
        return torch.stack([rotary_by_complex_numbers(h[b], positions[b], 10000.0) for b in range(B)])

    q, k, v = heads(attn.q_proj, n_heads, True), heads(attn.k_proj, nkv, True), heads(attn.v_proj, nkv, False)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = F.linear(y.transpose(1, 2).reshape(B, T, d_model), attn.out_proj.weight, attn.out_proj.bias)
    torch.testing.assert_close(attn(x, positions=positions), expected, atol=5e-5, rtol=1e-5)


def test_mhsa_positions_default_to_0_to_T_and_only_their_differences_matter():
    """Rotary attention sees relative positions only: shifting every position by the same amount
    changes nothing, while spreading them apart does."""
    attn = MultiHeadSelfAttention(16, 4, rope_theta=10000.0, device=DEVICE)
    x = torch.randn(3, 2, 5, 16, device=DEVICE)  # two leading dimensions
    y = attn(x)
    close(attn(x, positions=torch.arange(5, device=DEVICE)), y)
    torch.testing.assert_close(attn(x, positions=torch.arange(100, 105, device=DEVICE)), y, atol=1e-4, rtol=1e-4)
    assert (attn(x, positions=torch.arange(0, 10, 2, device=DEVICE)) - y).abs().max() > 1e-3
