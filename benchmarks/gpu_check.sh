#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run (a few minutes on one data-centre GPU):
#   bash benchmarks/gpu_check.sh [output folder]      (default runs/gpu-check)
# 1. tests/test_cuda.py: training on the GPU with precision auto (bf16 where the GPU has
#    it), checkpoints that load on the CPU as fp32, the GPU and the CPU scoring a
#    GPU-trained model alike, predict and export from it, a bf16 step's gradients, and the
#    MobileNet front end under bf16 autocast. On a machine without CUDA these tests skip.
# 2. The whole test suite with device auto, so every test that trains or predicts runs on
#    the GPU (over 8 processes where pytest-xdist is installed; the serve tests need the
#    [serve] extra).
# 3. Training-step speed on the GPU: fp32 against bf16 autocast, side by side, against the
#    bf16 matrix-multiply peak measured in the same run.
# Each part's output is kept in the output folder.
set -uo pipefail
OUT=${1:-runs/gpu-check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
python -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py 2>&1 | tee "$OUT/cuda-tests.txt"
PARALLEL=()
python -c "import xdist" 2>/dev/null && PARALLEL=(-n 8)  # pytest-xdist, where installed
python -m pytest -q -p no:cacheprovider "${PARALLEL[@]}" --continue-on-collection-errors tests 2>&1 \
  | tee "$OUT/all-tests.txt"
python benchmarks/train_step.py --device cuda --steps 20 2>&1 | tee "$OUT/train-step.txt"
python benchmarks/train_step.py --device cuda --steps 20 --batch 128 2>&1 | tee "$OUT/train-step-b128.txt"
