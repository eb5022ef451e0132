#!/usr/bin/env bash
# The GPU checks in one run, for a CUDA machine that is lent for a few minutes.
#
#   1. the tests whose tensors live on get_device() (layers, attention, model): on a GPU they run
#      the CUDA kernels, flash attention and bf16 autocast against torch.nn;
#   2. the training CLI on the GPU: a short shakespeare-char-tiny run (bf16 autocast, the fused
#      AdamW) that writes a checkpoint, then a sample from that checkpoint;
#   3. bench_gpu_gpt2.py: GPT-2 small (124M), bf16, flash attention, torch.compile: tokens/s, MFU,
#      and a profile of where a step's time goes;
#   4. bench_generate.py on the GPU: generate with and without the key-value cache, beside
#      transformers' GPT2LMHeadModel.generate (the image has transformers).
#
# Everything it prints also goes to files in $OUT (default: gpu-session-out/), one per part.
# Without a GPU it runs the same parts at toy size on the CPU, as a check of the script itself.
#
# What the machine needs besides PyTorch: regex, tiktoken, tqdm, matplotlib and pytest (the
# course's GPU machines have them), pooch and platformdirs (carry them as wheels if missing), and
# Tiny Shakespeare for part 2: set COURSE_LIB_DATA to a folder holding tinyshakespeare.txt.
#
#     COURSE_LIB_DATA=/path/to/data OUT=/tmp/out bash benchmarks/gpu_session.sh

set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-session-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
status=0

if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=cuda
    BENCH_ARGS=()
    TRAIN_ITERS=200
else
    DEVICE=cpu
    BENCH_ARGS=(--tiny --no-compile --device cpu --steps 2 --warmup-steps 1)
    TRAIN_ITERS=20
fi

"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/device.txt"
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}: {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs,"
          f" bf16 {torch.cuda.is_bf16_supported()}")
else:
    print("no CUDA device: running every part at toy size on the CPU")
EOF

echo "== 1. tests on $DEVICE" | tee "$OUT/tests.txt"
"$PYTHON" -m pytest -q -p no:cacheprovider --noconftest \
    tests/test_layers.py tests/test_attention.py tests/test_model.py 2>&1 | tee -a "$OUT/tests.txt" | tail -3 \
    || status=1

echo "== 2. training CLI on $DEVICE" | tee "$OUT/train.txt"
CKPT_DIR=$(mktemp -d)
{
    "$PYTHON" -m course_lib.cli.train --preset shakespeare-char-tiny --device "$DEVICE" \
        --max-iters "$TRAIN_ITERS" --out "$CKPT_DIR" --no-progress &&
    "$PYTHON" -m course_lib.cli.sample --checkpoint "$CKPT_DIR/ckpt.pt" --device "$DEVICE" \
        --prompt "ROMEO:" --max-new-tokens 100
} 2>&1 | tee -a "$OUT/train.txt" | tail -8 || status=1
rm -rf "$CKPT_DIR"

echo "== 3. bench_gpu_gpt2.py on $DEVICE" | tee "$OUT/bench_gpu_gpt2.txt"
"$PYTHON" benchmarks/bench_gpu_gpt2.py --profile "${BENCH_ARGS[@]}" 2>&1 | tee -a "$OUT/bench_gpu_gpt2.txt" || status=1

echo "== 4. bench_generate.py on $DEVICE" | tee "$OUT/bench_generate.txt"
GEN_ARGS=(--device "$DEVICE" --repeats 3)
[ "$DEVICE" = cpu ] && GEN_ARGS=(--quick)
"$PYTHON" benchmarks/bench_generate.py "${GEN_ARGS[@]}" 2>&1 | tee -a "$OUT/bench_generate.txt" || status=1

exit $status
