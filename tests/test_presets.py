"""course_lib.presets: count_parameters against PyTorch's own count of instantiated models, and
the presets against the parameter counts their papers and releases publish.

References: sum(p.numel() for p in GPT(config).parameters()) for small models (and for the big
presets built on the `meta` device, which allocates no memory); the published sizes (GPT-2 as
released: 124M, 355M, 774M, 1558M; GPT-3 Table 2.1; Llama 3's 8B, 70B, 405B); the exact counts
of the released GPT-2 checkpoints (Hugging Face's gpt2, gpt2-medium, gpt2-large, gpt2-xl).
"""

import dataclasses

import pytest
import torch

from course_lib.model import GPT, GPTConfig
from course_lib.presets import PRESETS, count_parameters, parameter_breakdown
from pairwise import all_pairs

SMALL = dict(vocab_size=37, block_size=16, n_layers=2, d_model=32, n_heads=4)

# The switches that change the count, every pair of their settings together in some configuration
# (11 configurations where every combination would be 320), plus odd widths.
COUNT_CONFIGS = [
    dict(SMALL, **row)
    for row in all_pairs(
        {
            "norm": ["layernorm", "rmsnorm"],
            "mlp": ["gelu", "gelu_tanh", "relu", "silu", "swiglu"],
            "rope_theta": [None, 10000.0],
            "n_kv_heads": [None, 1],
            "tie_weights": [True, False],
            "bias": [True, False],
            "d_ff": [None, 50],
        }
    )
] + [dict(vocab_size=11, block_size=5, n_layers=3, d_model=24, n_heads=6, n_kv_heads=3, mlp="relu")]


def numel(model: torch.nn.Module) -> int:
    """PyTorch's count: parameters() lists a tied tensor once."""
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("overrides", COUNT_CONFIGS)
def test_count_equals_the_instantiated_model(overrides):
    config = GPTConfig(**overrides)
    assert count_parameters(config) == numel(GPT(config))


@pytest.mark.parametrize("name", ["gpt2-xl", "gpt3-175b", "llama3-405b"])
def test_count_equals_a_big_preset_built_on_the_meta_device(name):
    """The meta device records shapes without allocating memory: a 405B model in a second."""
    with torch.device("meta"):
        model = GPT(PRESETS[name].config)
    assert count_parameters(PRESETS[name].config) == numel(model)


def test_breakdown_of_gpt2_small_by_hand():
    """d = 768, V = 50257, 12 layers, 4d hidden; biases everywhere; tied head."""
    d, V, L = 768, 50257, 12
    parts = parameter_breakdown(PRESETS["gpt2"].config)
    assert parts == {
        "embeddings": V * d + 1024 * d,
        "attention": L * (4 * d * d + 4 * d),  # q, k, v, out: (d, d) weights and d biases each
        "feed_forward": L * (2 * 4 * d * d + 4 * d + d),  # up (4d, d) + 4d, down (d, 4d) + d
        "norms": (2 * L + 1) * 2 * d,  # LayerNorm: weight and bias
        "head": 0,
    }


def test_gpt2_counts_equal_the_released_checkpoints():
    """The exact counts of the released GPT-2 weights (vocab 50257, context 1024, tied head)."""
    released = {
        "gpt2": 124_439_808,
        "gpt2-medium": 354_823_168,
        "gpt2-large": 774_030_080,
        "gpt2-xl": 1_557_611_200,
    }
    assert {name: count_parameters(PRESETS[name].config) for name in released} == released


def test_llama3_8b_by_hand():
    """Untied 128256 x 4096 embedding and head; per layer q, o (4096²), k, v (4096 x 1024, 8 kv
    heads of 128), SwiGLU 3 x 4096 x 14336, two RMSNorm weights; a final RMSNorm."""
    d, V, L = 4096, 128256, 32
    per_layer = 2 * d * d + 2 * d * 1024 + 3 * d * 14336 + 2 * d
    assert count_parameters(PRESETS["llama3-8b"].config) == 2 * V * d + L * per_layer + d == 8_030_261_248


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_land_within_2_percent_of_the_published_counts(name):
    preset = PRESETS[name]
    assert count_parameters(preset.config) == pytest.approx(preset.published, rel=0.02)
    assert preset.source


def test_every_family_is_there():
    assert [n for n in PRESETS if n.startswith("gpt2")] == ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
    gpt3 = [PRESETS[n] for n in PRESETS if n.startswith("gpt3")]
    assert [p.published for p in gpt3] == [125e6, 350e6, 760e6, 1.3e9, 2.7e9, 6.7e9, 13e9, 175e9]
    assert all(p.config.block_size == 2048 and p.config.vocab_size == 50257 for p in gpt3)
    llama = [PRESETS[n].config for n in ("llama3-8b", "llama3-70b", "llama3-405b")]
    assert [(c.n_layers, c.d_model, c.n_heads, c.kv_heads, c.hidden_dim) for c in llama] == [
        (32, 4096, 32, 8, 14336),
        (80, 8192, 64, 8, 28672),
        (126, 16384, 128, 8, 53248),
    ]
    for c in llama:
        assert (c.vocab_size, c.norm, c.mlp, c.rope_theta, c.tie_weights, c.bias) == (
            128256,
            "rmsnorm",
            "swiglu",
            500000.0,
            False,
            False,
        )


def test_gpt2_papers_counts_differ_and_the_note_explains():
    """The paper's 117M and 345M are more than 2% off the released models; the note says why."""
    small, medium = PRESETS["gpt2"], PRESETS["gpt2-medium"]
    for preset in (small, medium):
        count = count_parameters(preset.config)
        assert count != pytest.approx(preset.paper_count, rel=0.02)
    assert "wrong due to an error" in small.note and "117M" in small.note


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_gpt2_papers_counts_match_gpt1s_vocabulary(name):
    """The note's reconstruction: with GPT-1's 40,478-token vocabulary, each released shape has
    the paper's count to within 0.1%."""
    preset = PRESETS[name]
    with_gpt1_vocab = dataclasses.replace(preset.config, vocab_size=40478)
    assert count_parameters(with_gpt1_vocab) == pytest.approx(preset.paper_count, rel=0.001)
    assert "40,478" in preset.note
