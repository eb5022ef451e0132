"""course_lib.memory against hand-computed numbers.

References: bytes per parameter (fp32: 4 weights + 4 gradients + 8 AdamW moments; mixed
precision: 2 + 2 + 4 fp32 master weights + 8, ZeRO's 16 bytes); the lecture's 405e9 · 4 bytes
= 1.62 TB; Korthikanti et al. 2022's activations per layer, 34·s·b·h + 5·a·s²·b bytes, worked
by hand for small numbers; PyTorch's own AdamW, whose state we measure for a small model; the
key-value cache worked by hand (2 · layers · kv heads · head dim · bytes per token) and measured
on the KVCache objects GPT.generate fills.
"""

import doctest

import pytest
import torch

import course_lib.memory
from course_lib.memory import (
    GB,
    H100_MEMORY,
    TB,
    MemoryBreakdown,
    activation_bytes_per_layer,
    format_bytes,
    gpus_needed,
    kv_cache_bytes,
    training_memory,
)
from course_lib.model import GPT, GPTConfig
from course_lib.presets import PRESETS, count_parameters


def test_the_lectures_figure_405b_fp32_weights_take_1_6_tb():
    memory = training_memory(405e9, precision="fp32")
    assert memory.weights == 405 * 10**9 * 4 == 1_620_000_000_000
    assert format_bytes(memory.weights) == "1.62 TB"
    # The Llama 3 405B preset's own count gives the same figure to three digits.
    llama = training_memory(PRESETS["llama3-405b"].config)
    assert llama.weights == count_parameters(PRESETS["llama3-405b"].config) * 4
    assert format_bytes(llama.weights) == "1.62 TB"
    assert gpus_needed(memory.weights, H100_MEMORY) == 21  # 1620 GB / 80 GB = 20.25


def test_one_billion_parameters_in_fp32_with_adamw():
    memory = training_memory(10**9, precision="fp32", optimizer="adamw")
    assert memory == MemoryBreakdown(
        weights=4 * GB, gradients=4 * GB, master_weights=0, optimizer_states=8 * GB, activations=0
    )
    assert memory.total == 16 * GB


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_mixed_precision_keeps_fp32_master_weights_and_moments(precision):
    memory = training_memory(10**9, precision=precision)
    assert (memory.weights, memory.gradients, memory.master_weights, memory.optimizer_states) == (
        2 * GB,
        2 * GB,
        4 * GB,
        8 * GB,
    )
    assert memory.total == 16 * GB  # ZeRO's 16 bytes per parameter


@pytest.mark.parametrize(("optimizer", "state_bytes"), [("adamw", 8), ("sgd-momentum", 4), ("sgd", 0)])
def test_optimizer_states(optimizer, state_bytes):
    assert training_memory(1000, optimizer=optimizer).optimizer_states == 1000 * state_bytes


def test_adamw_state_matches_what_torch_allocates():
    """torch.optim.AdamW keeps exp_avg and exp_avg_sq, each the size of its parameter, in fp32."""
    model = GPT(GPTConfig(vocab_size=37, block_size=8, n_layers=1, d_model=16, n_heads=2))
    optimizer = torch.optim.AdamW(model.parameters())
    _, loss = model(torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long))
    loss.backward()
    optimizer.step()
    moment_bytes = sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for name, t in state.items()
        if name in ("exp_avg", "exp_avg_sq")
    )
    assert training_memory(model.config).optimizer_states == moment_bytes


def test_activations_per_layer_by_hand():
    """s=2, b=1, h=4, a=2: s·b·h = 8; 34·8 = 272; 5·a·s²·b = 5·2·4·1 = 40."""
    assert activation_bytes_per_layer(2, 1, 4, 2) == 272 + 40
    assert activation_bytes_per_layer(2, 1, 4, 2, recompute="selective") == 272
    assert activation_bytes_per_layer(2, 1, 4, 2, recompute="full") == 2 * 8
    with pytest.raises(ValueError, match=r"recompute must be one of \('none', 'selective', 'full'\)"):
        activation_bytes_per_layer(2, 1, 4, 2, recompute="some")


def test_activations_of_gpt2_small_by_hand():
    """GPT-2 small, batch 8 of 1024 tokens: 12 · (34·1024·8·768 + 5·12·1024²·8) bytes in 16 bits."""
    config = PRESETS["gpt2"].config
    per_layer = 34 * 1024 * 8 * 768 + 5 * 12 * 1024**2 * 8  # 213,909,504 + 503,316,480
    mixed = training_memory(config, precision="bf16-mixed", batch_size=8)
    assert mixed.activations == 12 * per_layer == 8_606_711_808
    fp32 = training_memory(config, precision="fp32", batch_size=8)
    assert fp32.activations == 2 * 12 * per_layer  # 4-byte activations
    shorter = training_memory(config, precision="bf16-mixed", batch_size=8, seq_len=512, recompute="full")
    assert shorter.activations == 12 * 2 * 512 * 8 * 768


def test_activations_need_the_models_shape():
    assert training_memory(10**9).activations == 0
    with pytest.raises(ValueError, match=r"pass a GPTConfig"):
        training_memory(10**9, batch_size=8)


def test_unknown_precision_or_optimizer_is_named():
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16-mixed', 'fp16-mixed'\)"):
        training_memory(10, precision="int8")
    with pytest.raises(ValueError, match=r"optimizer must be one of"):
        training_memory(10, optimizer="adam")


def test_gpus_needed_rounds_up():
    assert gpus_needed(80 * GB) == 1
    assert gpus_needed(80 * GB + 1) == 2
    assert gpus_needed(6.48 * TB, 80 * GB) == 81
    assert gpus_needed(100, gpu_memory_bytes=30) == 4
    with pytest.raises(ValueError, match="gpu_memory_bytes must be positive"):
        gpus_needed(100, 0)


def test_table_in_gb_and_tb():
    table = str(training_memory(10**9, precision="bf16-mixed"))
    lines = table.splitlines()
    assert lines[0].split() == ["weights", "2", "GB"]
    assert lines[2].split() == ["master", "weights", "4", "GB"]
    assert lines[-1].split() == ["total", "16", "GB"]
    assert (
        format_bytes(1.62e12) == "1.62 TB"
        and format_bytes(312) == "312 bytes"
        and format_bytes(2.5e6) == "2.5 MB"
    )


def test_docstring_examples_run_as_written():
    result = doctest.testmod(course_lib.memory)
    assert result.attempted > 0 and result.failed == 0


def test_kv_cache_of_llama3_8b_by_hand():
    """2 (k and v) × 32 layers × 8 kv heads × 128 dims × 2 bytes = 131,072 bytes = 128 KiB per token."""
    config = PRESETS["llama3-8b"].config
    assert kv_cache_bytes(config, seq_len=1) == 2 * 32 * 8 * 128 * 2 == 128 * 1024
    assert kv_cache_bytes(config) == 8192 * 128 * 1024 == 2**30  # the full 8,192-token context: 1 GiB
    assert kv_cache_bytes(config, batch_size=4, seq_len=100, bytes_per_value=4) == 4 * 100 * 2 * 32 * 8 * 128 * 4


def test_kv_cache_shrinks_by_the_grouped_query_factor():
    """Llama 3 405B: 126 layers, 128 query heads, 8 kv heads of 128 dims, context 131,072."""
    config = PRESETS["llama3-405b"].config
    assert kv_cache_bytes(config, seq_len=1) == 2 * 126 * 8 * 128 * 2 == 516_096
    assert kv_cache_bytes(config) == 516_096 * 131_072 == 67_645_734_912  # 67.6 GB
    every_head = GPTConfig(**{**config.__dict__, "n_kv_heads": None})  # one kv head per query head
    assert kv_cache_bytes(every_head) == 16 * kv_cache_bytes(config)  # 128 / 8 = 16 times more


def test_kv_cache_of_gpt2_small_by_hand():
    """12 layers × 12 heads × 64 dims, no grouping: 2 · 12 · 12 · 64 · 2 = 36,864 bytes per token."""
    config = PRESETS["gpt2"].config
    assert kv_cache_bytes(config) == 36_864 * 1024
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        kv_cache_bytes(config, batch_size=0)
    with pytest.raises(ValueError, match="seq_len must be >= 0"):
        kv_cache_bytes(config, seq_len=-1)


def test_kv_cache_bytes_match_the_caches_generate_fills():
    """The tensors in a real KVCache after a forward of T positions, counted by their sizes."""
    config = GPTConfig(vocab_size=11, block_size=16, n_layers=3, d_model=24, n_heads=6, n_kv_heads=2)
    model = GPT(config)
    caches = model.new_kv_caches()
    with torch.no_grad():
        model(torch.zeros(2, 5, dtype=torch.long), kv_caches=caches)  # B = 2 sequences of T = 5
    stored = sum(t.numel() * t.element_size() for cache in caches for t in (cache.k, cache.v))
    assert kv_cache_bytes(config, batch_size=2, seq_len=5, bytes_per_value=4) == stored
