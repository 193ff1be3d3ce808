#!/usr/bin/env bash
# Copy the small outputs of finished runs (metrics, curves, config; no checkpoints) from
# runs/ into docs/results/, then rebuild every report and the table in docs/results.md.
set -euo pipefail
for run in runs/esc10-*/; do
  name=$(basename "$run")
  for f in "$run"config.toml "$run"selection.json "$run"fold*/*/metrics.json "$run"fold*/*/best.history.json; do
    [ -f "$f" ] || continue
    dest="docs/results/$name/${f#"$run"}"
    mkdir -p "$(dirname "$dest")"
    cp "$f" "$dest"
  done
done
audiogpt2 report docs/results/*/ --summary docs/results.md
