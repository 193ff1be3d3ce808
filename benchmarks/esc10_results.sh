#!/usr/bin/env bash
# Regenerates the ESC-10 results in docs/results.md (hours on 2 CPU cores; run in background).
# Usage: bash benchmarks/esc10_results.sh [path/to/ESC-10-or-ESC-50 root]
set -euo pipefail
DATA=${1:-../shared/data/ESC-10}
COMMON=(--data "$DATA" --subset esc10 --cache data/preprocessed/esc10.pt)
# 1. CNN-only ablation
audiogpt2 cv --name esc10-cnn-only --backbone none --arms baseline "${COMMON[@]}"
# 3. MiniLM (the pretrained backbone that loads offline) vs the same network from random init
audiogpt2 cv --name esc10-minilm --backbone minilm "${COMMON[@]}"
# 2. GPT-2-small-sized random-init baseline, spec procedure (about 30 min per fold on 2 cores)
audiogpt2 cv --name esc10-gpt2-random --backbone gpt2 --arms baseline "${COMMON[@]}" ${GPT2_FOLDS:-}
