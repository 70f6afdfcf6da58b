#!/usr/bin/env bash
# The dp checks that need a GPU (H100/H200), as one script for a lent device: the CUDA tests
# (Triton kernels compiled, not interpreted), then the bench at batch 64 and 256 in fp32 and bf16,
# PyTorch kernels vs Triton's, with the same run's Opacus rows. JSON under tools/bench/results/gpu/.
#   PYTHON=.venv/bin/python bash tools/bench/dp_gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
out=tools/bench/results/gpu
mkdir -p "$out"
"$python" -m pytest packages/dp/tests -m gpu -q -p no:cacheprovider 2>&1 | tail -15
methods=non_private,privaudit_bookkeeping,privaudit_bookkeeping_triton,opacus_hooks,opacus_ghost
for precision in fp32 bf16; do
  for batch in 64 256; do
    "$python" tools/bench/dp_ghost.py --device cuda --steps 20 --rounds 1 --batch "$batch" \
      --precision "$precision" --models resnet18_gn,vgg_gn --methods "$methods" \
      --out "$out/dp_ghost_images_b${batch}_${precision}.json" 2>/dev/null | tail -12
  done
  "$python" tools/bench/dp_ghost.py --device cuda --steps 20 --rounds 1 --precision "$precision" \
    --models gpt2_6x512 --methods "$methods" --out "$out/dp_ghost_gpt2_${precision}.json" 2>/dev/null | tail -7
done
