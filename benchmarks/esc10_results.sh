#!/usr/bin/env bash
# Regenerates the ESC-10 results in docs/results.md (hours on 2 CPU cores; run in background).
# Every step resumes where it stopped: rerun the script after an interruption.
# Usage: bash benchmarks/esc10_results.sh [dataset root]   (env GRID_FOLDS, GPT2_FOLDS: e.g. "--fold 1")
set -euo pipefail
DATA=${1:-../shared/data/ESC-10}
COMMON=(--data "$DATA" --subset esc10 --cache data/preprocessed/esc10.pt)
# 1. CNN-only ablation
audiogpt2 cv --name esc10-cnn-only --backbone none --arms baseline "${COMMON[@]}"
# 3. MiniLM (a pretrained backbone that loads offline) vs the same network from random init,
#    spec procedure and learning rates
audiogpt2 cv --name esc10-minilm-lr2e-5 --backbone minilm "${COMMON[@]}"
# 4. the same pair at other backbone learning rates; `audiogpt2 select` then picks, per fold
#    and arm, the learning rate with the best validation accuracy
for LR in 1e-4 5e-4; do
  audiogpt2 cv --name "esc10-minilm-lr$LR" --backbone minilm --lr-backbone "$LR" "${COMMON[@]}" ${GRID_FOLDS:-}
done
audiogpt2 select runs/esc10-minilm-lr2e-5 runs/esc10-minilm-lr1e-4 runs/esc10-minilm-lr5e-4 \
  --out runs/esc10-minilm-tuned
# 2. GPT-2-small-sized backbone (12 layers, 768 wide) with random weights, spec procedure
#    (about 30 min per fold on 2 CPU cores)
audiogpt2 cv --name esc10-gpt2-random --backbone gpt2 --arms baseline "${COMMON[@]}" ${GPT2_FOLDS:-}
