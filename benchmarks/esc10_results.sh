#!/usr/bin/env bash
# Regenerates the ESC-10 results in docs/results.md and docs/recipe.md (hours on 2 CPU
# cores; run in the background). Every step resumes where it stopped: rerun the script
# after an interruption.
#   bash benchmarks/esc10_results.sh [dataset root]
# FOLDS_GPT2 and FOLDS_GRID limit the two slowest steps to some folds (published: all five,
# as by default). Published folds 2-5 of the grid and 2-4 of GPT-2 ran as two jobs side by
# side with `--threads 1` each (recorded in every report's hardware line); thread count
# changes float summation order, and over 20 epochs that can move a fold by a few clips.
# Long steps ran over several stretches on machines that did not keep runs/: each stretch's
# finished folds were published (benchmarks/publish_results.sh) and put back with
# benchmarks/restore_runs.sh before the step was resumed.
# Every published ESC-10 run trained in fp32, before train.precision existed. On a CPU with
# native bf16, `--precision auto` now trains in bf16: add `--precision fp32` to a step to
# regenerate its published figures exactly (step 15 measures what bf16 changes).
set -euo pipefail
DATA=${1:-data/ESC-10}
COMMON=(--data "$DATA" --subset esc10 --cache data/preprocessed/esc10.pt)
FOLDS_GPT2=${FOLDS_GPT2-}
FOLDS_GRID=${FOLDS_GRID-}
# 1. CNN-only ablation
audiogpt2 cv --name esc10-cnn-only --backbone none --arms baseline "${COMMON[@]}"
#    and over three seeds (the README's headline for the spec's recipe; one thread, as a
#    third job beside step 13's two)
audiogpt2 cv --name esc10-cnn-only-seeds --backbone none --arms baseline "${COMMON[@]}" \
  --threads 1 --seeds 0,1,2
# 3. MiniLM (a pretrained backbone that loads offline) vs the same network from random
#    init, spec procedure and learning rates
audiogpt2 cv --name esc10-minilm-lr2e-5 --backbone minilm "${COMMON[@]}"
# 2. GPT-2-small-sized backbone (12 layers, 768 wide) with random weights, spec procedure
#    (about 22 min per fold on 2 CPU cores)
# shellcheck disable=SC2086
audiogpt2 cv --name esc10-gpt2-random --backbone gpt2 --arms baseline "${COMMON[@]}" $FOLDS_GPT2
# 4. the MiniLM pair at other backbone learning rates; `select` then picks, per fold and
#    arm, the learning rate with the best *validation* accuracy
for LR in 1e-4 5e-4; do
  # shellcheck disable=SC2086
  audiogpt2 cv --name "esc10-minilm-lr$LR" --backbone minilm --lr-backbone "$LR" "${COMMON[@]}" $FOLDS_GRID
done
audiogpt2 select runs/esc10-minilm-lr2e-5 runs/esc10-minilm-lr1e-4 runs/esc10-minilm-lr5e-4 \
  --out runs/esc10-minilm-tuned
# 5. The recipe as first fixed (16 kHz; configs/ablation/6-recipe-16k.toml), CNN only;
#    published folds ran as two single-thread jobs side by side.
RECIPE16=configs/ablation/6-recipe-16k.toml
RECIPE=(--data "$DATA" --subset esc10 --cache data/preprocessed/esc10-recipe.pt --backbone none --arms baseline)
audiogpt2 cv --name esc10-recipe-cnn-only --config "$RECIPE16" "${RECIPE[@]}"
#    the same checkpoints scored without test-time averaging (no retraining)
python benchmarks/reevaluate_tta.py runs/esc10-recipe-cnn-only runs/esc10-recipe-cnn-only-no-tta \
  --config "$RECIPE16" --data "$DATA" --subset esc10 --cache data/preprocessed/esc10-recipe.pt --tta 1
# 6. Ablation: the spec's recipe plus the recipe's levers one at a time (20 epochs,
#    ReduceLROnPlateau, batch 16, as the spec), each on all five folds
for STEP in 1-frontend 2-shift 3-mixup 4-specaug; do
  audiogpt2 cv --name "esc10-ablation-$STEP" --config "configs/ablation/$STEP.toml" "${RECIPE[@]}"
done
# 7. The recipe with MiniLM: pretrained (spec schedule) and random init trained fully from
#    epoch 1 (--baseline-trainable all); published folds ran as two single-thread jobs
#    side by side (folds 1-3 and 4-5).
for ARM in pretrained random; do
  if [ "$ARM" = pretrained ]; then SEL=(--arms finetuned); else SEL=(--arms baseline --baseline-trainable all); fi
  audiogpt2 cv --name "esc10-recipe-minilm-$ARM" --config "$RECIPE16" --data "$DATA" --subset esc10 \
    --cache data/preprocessed/esc10-recipe.pt --backbone minilm --threads 1 "${SEL[@]}"
done
# 8. The final recipe (configs/recipe.toml: step 5 at 32 kHz, chosen on folds 1-2's
#    validation splits), CNN only, two seeds on every fold, and their ensemble (report.md).
#    Published: folds split over two single-thread jobs side by side.
#    (recipe.toml has since gained weight averaging, the refit and per-band normalisation:
#    all switched off here)
audiogpt2 cv --name esc10-recipe-32k --config configs/recipe.toml --data "$DATA" --subset esc10 \
  --cache data/preprocessed/esc10-recipe-32k.pt --backbone none --arms baseline --threads 1 --seeds 0,1 \
  --set train.average_epochs=0 --set data.val_fraction=0.2 --set audio.normalize=clip
# 9. Third round: weight averaging. The search (folds 1-2, validation only, test folds
#    never scored; the rule is in configs/search/average.toml), then the final recipe
#    (configs/recipe.toml: step 8 plus the mean of the last 20 epochs' weights), three
#    seeds on every fold, and their ensemble (report.md). Published: seed 0's folds 1-2 are
#    the search runs, scored afterwards; folds split over two single-thread jobs.
audiogpt2 cv --name esc10-search-average --config configs/search/average.toml --data "$DATA" --subset esc10 \
  --cache data/preprocessed/esc10-search-average.pt --backbone none --arms baseline --threads 1 \
  --fold 1 --fold 2 --validation-only
audiogpt2 cv --name esc10-recipe-avg --config configs/recipe.toml --data "$DATA" --subset esc10 \
  --cache data/preprocessed/esc10-recipe-avg.pt --backbone none --arms baseline --threads 1 --seeds 0,1,2 \
  --set data.val_fraction=0.2 --set audio.normalize=clip
# 10. Fourth round: the same recipe refit on every training-fold clip (no validation set;
#     configs/recipe.toml now), same features and seeds as step 9. Published: one job at
#     2 threads, seed after seed.
audiogpt2 cv --name esc10-recipe-refit --config configs/recipe.toml --data "$DATA" --subset esc10 \
  --cache data/preprocessed/esc10-recipe-avg.pt --backbone none --arms baseline --threads 2 --seeds 0,1,2 \
  --set audio.normalize=clip
# 11. Fifth round: per-band normalisation. The search (folds 1-2, validation only; the rule
#     is in configs/search/band.toml), then the recipe with it (configs/recipe.toml now),
#     refit on every training-fold clip. Published: one job at 2 threads, seed after seed.
audiogpt2 cv --name esc10-search-band --config configs/search/band.toml --data "$DATA" --subset esc10 \
  --cache data/preprocessed/esc10-search-band.pt --backbone none --arms baseline --threads 2 \
  --fold 1 --fold 2 --validation-only
audiogpt2 cv --name esc10-recipe-band --config configs/recipe.toml --data "$DATA" --subset esc10 \
  --cache data/preprocessed/esc10-recipe-band.pt --backbone none --arms baseline --threads 2 --seeds 0,1,2
# 12. The final recipe with the MiniLM transformer: pretrained (spec's gradual unfreezing)
#     against the same network from random weights, fully trainable from epoch 1
#     (--baseline-trainable all), paired by fold and seed. Per seed on 2 CPU cores, measured
#     over seed 0's five folds: about 26 minutes per fold pretrained, 25 random (4.3 hours
#     for both arms). Seed 0 ran as one job with --threads 2; seeds 1 and 2 as two parallel
#     jobs, one per seed, with --threads 1 each: on 2 cores that trains both in about the
#     time one 2-thread job trains one (per job, 23-29 min per fold pretrained, 27-31
#     random). Each seed has its own cache, so the two jobs share nothing but the folder.
RECIPE_MINILM=(--name esc10-recipe-band-minilm --config configs/recipe.toml --data "$DATA" --subset esc10
  --cache data/preprocessed/esc10-recipe-band.pt --backbone minilm --baseline-trainable all)
audiogpt2 cv "${RECIPE_MINILM[@]}" --threads 2 --seeds 0
for seed in 1 2; do
  audiogpt2 cv "${RECIPE_MINILM[@]}" --threads 1 --seeds "$seed" &
done
wait
# 13. The spec's question at the spec's recipe, repeated over seeds (issue "Settle the spec's
#     question"): MiniLM pretrained (spec schedule) vs random init, under both readings of
#     the baseline (the spec's `schedule` and fully trainable `all`), three seeds each (the
#     same seeds for every arm, so the comparisons pair by fold and seed). About 9 minutes
#     per arm and fold as one of two single-thread jobs side by side on 2 CPU cores.
#     Published: as two such jobs, so train times are under contention; each fold's thread
#     count is in its report's hardware line. On a lent GPU machine with no network:
#     benchmarks/device/gpu.sh (names end in -h100).
#     a) the spec's learning rates
audiogpt2 cv --name esc10-minilm-seeds-lr2e-5 --backbone minilm --lr-backbone 2e-5 "${COMMON[@]}" \
  --threads 1 --seeds 0,1,2
audiogpt2 cv --name esc10-minilm-all-seeds-lr2e-5 --backbone minilm --arms baseline \
  --baseline-trainable all --lr-backbone 2e-5 "${COMMON[@]}" --threads 1 --seeds 0,1,2
#     b) each arm's backbone learning rate chosen on validation: one rate per arm, the
#     highest validation accuracy averaged over the five folds of a seed-0 grid (`select
#     --scope arm`; ties: lower validation loss). Pretrained and `schedule` from step 4's
#     grid; `all` from its own seed-0 grid. Then three seeds at each arm's rate (published:
#     two single-thread jobs side by side over 2026-11-28 to 2026-12-02, the pretrained arm's seed 2
#     split between them with --fold, which trains the same folds as one command).
chosen_lr() {  # the learning rate of the run chosen for arm $2 in $1/selection.json
  python -c 'import sys; sys.path.insert(0, "benchmarks"); from pathlib import Path
from pretraining_table import chosen_lr; print(chosen_lr(Path(sys.argv[1]) / "selection.json", sys.argv[2]))' "$1" "$2"
}
audiogpt2 select runs/esc10-minilm-lr2e-5 runs/esc10-minilm-lr1e-4 runs/esc10-minilm-lr5e-4 --scope arm \
  --out runs/esc10-minilm-lr-per-arm
for LR in 1e-4 5e-4; do
  audiogpt2 cv --name "esc10-minilm-all-seeds-lr$LR" --backbone minilm --arms baseline \
    --baseline-trainable all --lr-backbone "$LR" "${COMMON[@]}" --threads 1 --seeds 0
done
audiogpt2 select runs/esc10-minilm-all-seeds-lr{2e-5,1e-4,5e-4}/seed0 --scope arm \
  --out runs/esc10-minilm-all-lr-per-arm
LR=$(chosen_lr runs/esc10-minilm-lr-per-arm finetuned)
audiogpt2 cv --name "esc10-minilm-seeds-lr$LR" --backbone minilm --arms finetuned --lr-backbone "$LR" \
  "${COMMON[@]}" --threads 1 --seeds 0,1,2
LR=$(chosen_lr runs/esc10-minilm-lr-per-arm baseline)
audiogpt2 cv --name "esc10-minilm-seeds-lr$LR" --backbone minilm --arms baseline --lr-backbone "$LR" \
  "${COMMON[@]}" --threads 1 --seeds 0,1,2
LR=$(chosen_lr runs/esc10-minilm-all-lr-per-arm baseline)
audiogpt2 cv --name "esc10-minilm-all-seeds-lr$LR" --backbone minilm --arms baseline \
  --baseline-trainable all --lr-backbone "$LR" "${COMMON[@]}" --threads 1 --seeds 0,1,2
# 14. Cross-machine spread (issue "Settle the spec's question"): esc10-recipe-avg seed 1,
#     folds 1-3, rerun at the commit, resolved config, seed and thread count it was
#     published with. Meaningful on a different CPU model than the published one's (Intel
#     Xeon); published: an AMD EPYC, 2026-11-27, beside two other jobs.
MAIN=$PWD DATA_ABS=$(cd "$DATA" && pwd)
XDIR=$(realpath -m ../audiogpt2-3a6014f)
[ -d "$XDIR" ] || git worktree add --detach "$XDIR" 3a6014f
(cd "$XDIR" && PYTHONPATH="$XDIR/src" audiogpt2 cv --name esc10-recipe-avg-xmachine \
  --config "$MAIN/docs/results/esc10-recipe-avg/seed1/config.toml" --data "$DATA_ABS" \
  --subset esc10 --cache data/preprocessed/esc10-recipe-avg-x.pt --backbone none --arms baseline \
  --threads 1 --seeds 1 --fold 1 --fold 2 --fold 3)
mkdir -p runs && cp -r "$XDIR/runs/esc10-recipe-avg-xmachine" runs/
# 15. bf16 against fp32 (issue "bf16 where the CPU has it"): the final recipe, CNN only and
#     with MiniLM pretrained, two seeds on every fold in bf16, compared with the published
#     fp32 runs (paired by fold and seed; the mean difference must lie within +-0.02 with an
#     interval that contains 0). Needs a CPU with avx512_bf16 or amx_bf16.
audiogpt2 cv --name esc10-recipe-band-bf16 --config configs/recipe.toml --data "$DATA" --precision bf16 \
  --subset esc10 --cache data/preprocessed/esc10-recipe-band.pt --backbone none --arms baseline --threads 1 --seeds 0,1
audiogpt2 cv --name esc10-recipe-band-minilm-bf16 --config configs/recipe.toml --precision bf16 \
  --data "$DATA" --subset esc10 --cache data/preprocessed/esc10-recipe-band.pt --backbone minilm --arms finetuned \
  --threads 1 --seeds 0,1
audiogpt2 compare runs/esc10-recipe-band-bf16/seed0,runs/esc10-recipe-band-bf16/seed1 \
  docs/results/esc10-recipe-band/seed0,docs/results/esc10-recipe-band/seed1 --out runs/compare-bf16-cnn
audiogpt2 compare runs/esc10-recipe-band-minilm-bf16/seed0,runs/esc10-recipe-band-minilm-bf16/seed1:finetuned \
  docs/results/esc10-recipe-band-minilm/seed0,docs/results/esc10-recipe-band-minilm/seed1:finetuned \
  --out runs/compare-bf16-minilm
# 16. The AudioSet front end repeated on ESC-10 (issue "A pretrained audio front end"):
#     mn04 fine-tuned with a pooled head, three seeds on every fold. ESC-10 is 44.1 kHz
#     audio, so the band the weights were trained with (fmax 15 kHz) exists and stays.
#     External data: AudioSet. MN04_WEIGHTS: a local copy of the weights (default: the
#     release name, downloaded once).
audiogpt2 cv --name esc10-mn04-seeds --config configs/mn04.toml --data "$DATA" --subset esc10 \
  --frontend-weights "${MN04_WEIGHTS:-mn04_as}" --backbone none --arms baseline --threads 1 --seeds 0,1,2
# 17. Step 16 refit, as on ESC-50 (benchmarks/esc50_results.sh mn04-refit): trained once more,
#     unchanged, on every clip of the four training folds (no validation split), saving the
#     last epoch's weights (the cosine schedule ends there; nothing is picked). Same rule,
#     written before it ran: the refit is the final ESC-10 mn04 row whatever its score, and
#     its difference from step 16 (paired by fold and seed) is reported either way.
audiogpt2 cv --name esc10-mn04-refit-seeds --config configs/mn04.toml --data "$DATA" --subset esc10 \
  --frontend-weights "${MN04_WEIGHTS:-mn04_as}" --backbone none --arms baseline --threads 1 --seeds 0,1,2 \
  --set data.val_fraction=0 --set train.average_epochs=1
