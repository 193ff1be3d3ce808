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
# A recipe search (cv --validation-only) publishes under docs/searches/NAME: each finished
# fold's validation.json (what makes a rerun skip it) and curves, and the search's config.
restore_search() {
  local src="docs/searches/$1" restored=0 record dest
  while IFS= read -r record; do
    dest="runs/$1/$(dirname "${record#"$src"/}")"
    [ -f "$dest/validation.json" ] && continue
    mkdir -p "$dest"
    cp -n "$(dirname "$record")"/*.json "$dest/"
    restored=$((restored + 1))
  done < <(find "$src" -path '*fold*' -name validation.json | sort)
  [ -f "$src/config.toml" ] && cp -n "$src/config.toml" "runs/$1/" 2>/dev/null || true
  echo "$1: $restored search fold(s) restored under runs/$1"
}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in docs/results/*/; do names+=("$(basename "$d")"); done
fi
for name in "${names[@]}"; do
  src="docs/results/$name"
  if [ ! -d "$src" ] && [ -d "docs/searches/$name" ]; then
    restore_search "$name"
    continue
  fi
  [ -d "$src" ] || { echo "no $src or docs/searches/$name: nothing published under that name" >&2; exit 1; }
  restored=0
  while IFS= read -r metrics; do
    dir=$(dirname "$metrics")
    dest="runs/$name/${dir#"$src"/}"
    [ -f "$dest/metrics.json" ] && continue
    mkdir -p "$dest"
    cp -n "$dir"/*.json "$dest/"
    restored=$((restored + 1))
  done < <(find "$src" -path '*fold*' -name metrics.json | sort)
  # each experiment's (or seed's) config, so the report names the backbone
  while IFS= read -r config; do
    dest="runs/$name/${config#"$src"/}"
    [ -d "$(dirname "$dest")" ] && cp -n "$config" "$dest"
  done < <(find "$src" -name config.toml)
  echo "$name: $restored fold(s) restored under runs/$name"
done
