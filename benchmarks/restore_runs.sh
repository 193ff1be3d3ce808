#!/usr/bin/env bash
# Put the published per-fold outputs of experiments back under runs/, so that rerunning
# their `audiogpt2 cv` command (benchmarks/esc10_results.sh) skips every fold already
# published and trains only the rest: more seeds or folds for a published experiment, or
# an experiment that a lost machine left part-done (its finished folds were published).
# Nothing under runs/ is overwritten.
#   bash benchmarks/restore_runs.sh esc10-minilm-seeds-lr2e-5 ...   # the ones named
#   bash benchmarks/restore_runs.sh esc50-search-base               # a recipe search's folds
#   bash benchmarks/restore_runs.sh                                   # every published one
set -euo pipefail
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in docs/results/*/; do names+=("$(basename "$d")"); done
fi
for name in "${names[@]}"; do
  # a finished fold's marker: metrics.json of a scored run, validation.json of a recipe
  # search (cv --validation-only, published under docs/searches/NAME without a test score)
  src="docs/results/$name" done_file=metrics.json
  if [ ! -d "$src" ] && [ -d "docs/searches/$name" ]; then
    src="docs/searches/$name" done_file=validation.json
  fi
  [ -d "$src" ] || { echo "no $src or docs/searches/$name: nothing published under that name" >&2; exit 1; }
  restored=0
  while IFS= read -r marker; do
    dir=$(dirname "$marker")
    dest="runs/$name/${dir#"$src"/}"
    [ -f "$dest/$done_file" ] && continue
    mkdir -p "$dest"
    cp -n "$dir"/*.json "$dest/"
    restored=$((restored + 1))
  done < <(find "$src" -path '*fold*' -name "$done_file" | sort)
  # each experiment's (or seed's) config, so the report names the backbone
  while IFS= read -r config; do
    dest="runs/$name/${config#"$src"/}"
    [ -d "$(dirname "$dest")" ] && cp -n "$config" "$dest"
  done < <(find "$src" -name config.toml)
  echo "$name: $restored fold(s) restored under runs/$name"
done
