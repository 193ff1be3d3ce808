"""Choose the number of test-time shifts on validation only, without training: every fold's
saved model of finished `audiogpt2 cv` runs is scored on its own validation split (drawn
again exactly as training drew it: same folds, groups, share and seed) with each count of
time-shifted copies. Test folds are not read.

    python benchmarks/validation_tta.py runs/esc50-mn04-seeds/seed0 runs/esc50-mn04-seeds/seed1 \
        --data data/ESC-50-16k --tta 1,3,5 [--out runs/esc50-mn04-tta.json]

Each run's feature cache is the one its config.toml names (built again if absent). Prints
the validation accuracy per fold and count and their mean; the rule for a choice belongs
with the experiment (docs/recipe.md states it before the numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from audiogpt2.checkpoint import load_checkpoint
from audiogpt2.config import load_config
from audiogpt2.precision import resolve_precision
from audiogpt2.predict import predict_proba
from audiogpt2.preprocess import preprocess
from audiogpt2.train import split_of


def validation_scores(best: Path, data_root: str, ttas: list[int]) -> dict[int, float]:
    """Validation accuracy of one saved model for each TTA count."""
    model, info = load_checkpoint(best)
    config = load_config(best.parent / "config.toml", {"data.root": data_root})
    cache = preprocess(config, progress=False)
    if info.data_key not in (None, cache.key):
        raise SystemExit(f"{best}: its cache {config.data.cache} holds other data or features")
    config.data.test_fold = info.test_fold
    split = split_of(config, cache)  # drawn as training drew it
    if len(split.val) == 0:
        raise SystemExit(f"{best}: trained without a validation split (data.val_fraction = 0)")
    rows = cache.rows_for(split.val, with_variants=False)
    labels = cache.labels_of(rows).numpy()
    arithmetic = resolve_precision(config.train.precision, "cpu")
    scores = {}
    for tta in ttas:
        aug = dataclasses.replace(info.config.augment, tta=tta)
        probs = predict_proba(model, cache.features[rows], aug, precision=arithmetic)
        scores[tta] = float((probs.argmax(1) == labels).mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="cv folders (one seed each)")
    parser.add_argument("--data", required=True, help="the dataset root the runs trained on")
    parser.add_argument("--tta", default="1,5", help="comma-separated counts of time-shifted copies")
    parser.add_argument("--out", type=Path, help="also write the scores here as JSON")
    args = parser.parse_args()
    ttas = [int(t) for t in args.tta.split(",")]
    table = {}
    for run in args.runs:
        for best in sorted(run.glob("fold*/*/best.pt")):
            name = str(best.parent)
            table[name] = validation_scores(best, args.data, ttas)
            cells = ", ".join(f"tta {t}: {a:.4f}" for t, a in table[name].items())
            # the split is drawn again: the count it trained with must give the recorded score
            recorded = json.loads((best.parent / "metrics.json").read_text()).get("best_val_acc")
            print(f"{name}: validation accuracy {cells} (recorded in training: {recorded})", flush=True)
    if not table:
        raise SystemExit("no fold*/<arm>/best.pt under the given runs")
    means = {t: float(np.mean([s[t] for s in table.values()])) for t in ttas}
    print(f"mean over {len(table)} saved models: " + ", ".join(f"tta {t}: {a:.4f}" for t, a in means.items()))
    if args.out:
        args.out.write_text(json.dumps({"per_model": table, "mean": means}, indent=2))


if __name__ == "__main__":
    main()
