#!/usr/bin/env bash
# Copy the small outputs of finished folds (metrics, curves, config; no checkpoints) from
# runs/ into docs/results/, then rebuild every report, the ESC-10 summary table, the
# pretrained-vs-random table, the ESC-50 headline tables (docs/results.md, README.md) and the
# ESC-50 seconds per epoch (docs/speed.md).
#   bash benchmarks/publish_results.sh                      # every runs/esc10-* experiment
#   bash benchmarks/publish_results.sh runs/esc10-recipe-band-minilm   # only the ones named
#   bash benchmarks/publish_results.sh runs/esc50-mn04-seeds           # ESC-50 runs: always named
# Name the experiments when others are still training, so no partial run is published.
set -euo pipefail
published=()
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(runs/esc10-*/)
for run in "${runs[@]}"; do
  run="${run%/}/"
  name=$(basename "$run")
  found=0
  for metrics in "$run"fold*/*/metrics.json "$run"seed*/fold*/*/metrics.json; do
    [ -f "$metrics" ] || continue
    found=1
    dir=$(dirname "$metrics")
    dest="docs/results/$name/${dir#"$run"}"
    mkdir -p "$dest"
    cp "$metrics" "$dest/"
    for f in best.history.json best.average.json; do
      [ -f "$dir/$f" ] && cp "$dir/$f" "$dest/"
    done
  done
  if [ -f "${run}validation.md" ]; then  # a recipe search (cv --validation-only)
    mkdir -p docs/searches && cp "${run}validation.md" "docs/searches/$name.md"
    # and what benchmarks/search_table.py reads (--runs docs/searches): config, per-fold records
    mkdir -p "docs/searches/$name" && cp "${run}config.toml" "docs/searches/$name/"
    for record in "$run"fold*/*/best.history.json "$run"fold*/*/best.average.json "$run"fold*/*/validation.json; do
      [ -f "$record" ] || continue
      dest="docs/searches/$name/$(dirname "${record#"$run"}")"
      mkdir -p "$dest" && cp "$record" "$dest/"
    done
  fi
  [ "$found" = 1 ] || continue
  for f in config.toml selection.json; do
    [ -f "$run$f" ] && cp "$run$f" "docs/results/$name/"
  done
  for seed in "$run"seed*/; do  # a repeated CV (cv --seeds): each seed's config too
    dest="docs/results/$name/$(basename "$seed")"
    if [ -f "${seed}config.toml" ] && [ -d "$dest" ]; then  # a seed with no finished fold: skipped
      cp "${seed}config.toml" "$dest/"
    fi
  done
  published+=("docs/results/$name")
done
echo "published: ${published[*]}"
# every experiment kept in docs/results, not only the ones copied now: ESC-10 into its
# summary table, both into the headline tables of docs/results.md and README.md
audiogpt2 report docs/results/esc10-*/ --summary docs/results.md
python "$(dirname "$0")/pretraining_table.py" --runs docs/results --write docs/results.md \
  --figures docs/results/compare
python "$(dirname "$0")/runs_appendix.py" --runs docs/results --write docs/results.md
if compgen -G "docs/results/esc50-*/" > /dev/null; then
  audiogpt2 report docs/results/esc50-*/
  # seconds per epoch of every ESC-50 run, per CPU (docs/speed.md)
  python "$(dirname "$0")/epoch_seconds.py" --write docs/speed.md > /dev/null
fi
python "$(dirname "$0")/headline_tables.py" --runs docs/results --write docs/results.md --write README.md
# the ESC-50 recipe search's ablation table (docs/recipe.md), from its published records
if [ -d docs/searches/esc50-search-base ]; then
  searched=(esc50-search-base)
  for name in esc50-search-mels128 esc50-search-wide esc50-search-mixup02 esc50-search-epochs100 \
    esc50-search-variants0 esc50-search-convs2; do
    [ -d "docs/searches/$name" ] && searched+=("$name")
  done
  python "$(dirname "$0")/search_table.py" --runs docs/searches --write docs/recipe.md \
    --saving esc50-search-variants0 --stopped esc50-search-mels128 "${searched[@]}"
fi
# the mn04 searches (docs/recipe.md): the AudioSet head and weight averaging, each against the
# published seed-0 mn04 run
mn04=()
for name in esc50-search-mn04-head esc50-search-mn04-average3; do
  [ -d "docs/searches/$name" ] && mn04+=("$name")
done
if [ ${#mn04[@]} -gt 0 ]; then
  python "$(dirname "$0")/search_table.py" --runs docs/searches --write docs/recipe.md \
    --marker mn04-pooled-search docs/results/esc50-mn04-seeds/seed0 "${mn04[@]}"
fi
