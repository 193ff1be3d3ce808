#!/usr/bin/env bash
# What one lease of a lent GPU machine runs (it has no network and takes 64 MiB per call):
# - gpucheck: the CUDA path and --amp of issue "Fast inference and deployable exports": the
#   tests (benchmarks/gpu_check.sh), train_step.py against the GPU's bf16 peak, one ESC-10
#   fold end to end in bf16;
# - start/collect: step 13 of benchmarks/esc10_results.sh (the spec's question over three
#   seeds: MiniLM pretrained vs random init under both baseline readings, at each backbone
#   learning rate of the grid), every seed and learning rate as its own process on the GPU.
#   Experiment names end in -h100 (SUFFIX), so GPU rows never mix with CPU rows.
#
# The working tree travels with every call and is now ~46 MB (docs/results), which leaves
# under 18 MB per call: the MiniLM pack (44 MB) no longer travels, so only gpucheck and
# CNN-only steps fit until the figures move out of the tree.
# First, here: bash benchmarks/device/prepare.sh. Then three device `run` calls, each right
# after the last (the machine is given back after 30 s idle):
#   1. carry [".whl", ".device"]:
#        bash benchmarks/device/gpu.sh install
#   2. carry ["data/preprocessed/esc10-seed0.pt", "data/preprocessed/esc10-seed1.pt"]:
#        bash benchmarks/device/gpu.sh gpucheck && bash benchmarks/device/gpu.sh start 0 1
#   3. carry ["data/preprocessed/esc10-seed2.pt"]:
#        bash benchmarks/device/gpu.sh start 2 && bash benchmarks/device/gpu.sh collect 480
# `start` returns at once (the jobs run detached); `collect SECONDS` waits for them at most
# that long, then packs the finished folds (no checkpoints) into $OUT/runs.tar.gz. Here:
#   tar xzf <files_at>/runs.tar.gz && audiogpt2 report runs/esc10-minilm-seeds-lr2e-5-h100 ...
#   python benchmarks/pretraining_table.py --suffix -h100
# A fold still training at the deadline is lost; the next `collect` in the same warm
# lease of the machine packs what finished since. LRS limits the grid (default: all three rates);
# `start 0` also runs the spec's CNN-only CV on the machine's CPU (XMACHINE=0: not).
set -euo pipefail
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
LRS=${LRS:-2e-5 1e-4 5e-4}
EXTRA=${EXTRA:-}  # more cv arguments, e.g. for a dry run here: "--fold 1 --set train.epochs=1 --device cpu"
SUFFIX=${SUFFIX:--h100}
# The CLI on the carried caches (spec features; each seed's cache is esc10-seed<k>.pt).
CACHED_CV=(python3 benchmarks/device/cached.py cv --data none --subset esc10 --cache data/preprocessed/esc10.pt)
case "${1:-}" in
  install)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    python3 -c "import torch, transformers, librosa, audiogpt2; print('torch', torch.__version__, \
torch.cuda.get_device_name(0), 'transformers', transformers.__version__, 'librosa', librosa.__version__)"
    ;;
  gpucheck)
    # The CUDA tests, the whole suite on the GPU and the train-step speed
    # (benchmarks/gpu_check.sh), then one ESC-10 fold end to end in bf16 on the carried cache.
    # A report: whatever fails is printed, and the lease goes on to `start`.
    bash benchmarks/gpu_check.sh "$OUT/gpucheck" || true
    "${CACHED_CV[@]}" --name esc10-gpu-bf16 --backbone minilm --seeds 0 --fold 1 --device cuda \
      --precision bf16 2>&1 | grep -E "device|fold 1" | tee -a "$OUT/gpucheck/esc10-fold1.txt" || true
    ;;
  start)
    shift
    mkdir -p logs
    for SEED in "$@"; do
      for LR in $LRS; do
        for KIND in seeds all-seeds; do
          ARMS=()
          [ "$KIND" = all-seeds ] && ARMS=(--arms baseline --baseline-trainable all)
          # shellcheck disable=SC2086
          setsid nohup "${CACHED_CV[@]}" --name "esc10-minilm-$KIND-lr$LR$SUFFIX" --backbone minilm \
            --lr-backbone "$LR" --seeds "$SEED" --device cuda --threads 1 "${ARMS[@]}" $EXTRA \
            > "logs/$KIND-lr$LR-seed$SEED.log" 2>&1 &
        done
      done
    done
    if [[ " $* " == *" 0 "* ]] && [ "${XMACHINE:-1}" = 1 ]; then
      # The cross-machine spread (issue "Settle the spec's question"): the spec's CNN-only
      # CV, seed 0, on this machine's CPU with 2 threads, as run here by
      #   audiogpt2 cv --name esc10-cnn-only-xmachine --backbone none --arms baseline \
      #     --data data/ESC-10 --subset esc10 --cache data/preprocessed/esc10.pt --seeds 0 --device cpu --threads 2
      # then: audiogpt2 compare runs/esc10-cnn-only-xmachine-device:baseline runs/esc10-cnn-only-xmachine:baseline
      setsid nohup "${CACHED_CV[@]}" --name esc10-cnn-only-xmachine-device --backbone none --arms baseline \
        --seeds 0 --device cpu --threads 2 > logs/cnn-only-xmachine.log 2>&1 &
    fi
    sleep 5
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
    ;;
  collect)
    deadline=$((SECONDS + ${2:-480}))
    while pgrep -f benchmarks/device/cached.py > /dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 15
    done
    for log in logs/*.log; do echo "== $log"; tail -n 2 "$log"; done
    shopt -s nullglob
    runs=(runs/esc10-minilm-*"$SUFFIX" runs/esc10-cnn-only-xmachine-devic[e] runs/esc10-gpu-bf1[6])  # [e], [6]: skipped if absent
    tar czf "$OUT/runs.tar.gz" --exclude='*.pt' "${runs[@]}" logs
    ;;
  *)
    echo "usage: $0 install | gpucheck | start SEED... | collect [SECONDS]" >&2
    exit 2
    ;;
esac
