"""Re-evaluate every fold of a finished `audiogpt2 cv` run with another number of
test-time shifts, without training: the "TTA off" row of the ablation in docs/recipe.md.

The same best-on-validation checkpoints are scored on the same test folds; only
``augment.tta`` differs. Writes OUT_DIR/fold*/<arm>/metrics.json (train time and curves
copied from the original run) and OUT_DIR/report.md.

    python benchmarks/reevaluate_tta.py runs/esc10-recipe-cnn-only runs/esc10-recipe-cnn-only-notta \
        --config configs/recipe.toml --data data/ESC-10 --subset esc10 --tta 1
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from audiogpt2.config import load_config
from audiogpt2.evaluate import evaluate_checkpoint
from audiogpt2.io import atomic_write_json
from audiogpt2.preprocess import preprocess
from audiogpt2.report import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--config", required=True, help="the config the run was trained with")
    parser.add_argument("--data", required=True)
    parser.add_argument("--subset", default="all")
    parser.add_argument("--cache", default=None)
    parser.add_argument("--tta", type=int, default=1)
    args = parser.parse_args()
    overrides = {"data.root": args.data, "data.subset": args.subset}
    if args.cache:
        overrides["data.cache"] = args.cache
    cache = preprocess(load_config(args.config, overrides))
    for best in sorted(args.run_dir.glob("fold*/*/best.pt")):
        rel = best.parent.relative_to(args.run_dir)
        original = json.loads((best.parent / "metrics.json").read_text())
        metrics, _ = evaluate_checkpoint(best, cache, tta=args.tta)
        kept = ("fold", "best_epoch", "best_val_acc", "epochs_run", "train_seconds", "classes", "hardware")
        metrics.update({key: original.get(key) for key in kept})
        atomic_write_json(args.out_dir / rel / "metrics.json", metrics)
        shutil.copy(best.parent / "best.history.json", args.out_dir / rel / "best.history.json")
        print(f"{rel}: accuracy {original['accuracy']:.3f} with tta={original.get('tta', '?')}, "
              f"{metrics['accuracy']:.3f} with tta={args.tta}")  # fmt: skip
    shutil.copy(args.run_dir / "config.toml", args.out_dir / "config.toml")
    print(f"Report written to {build_report(args.out_dir)}")


if __name__ == "__main__":
    main()
