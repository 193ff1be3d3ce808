"""Accuracy of exported models on their test folds: each fold's checkpoint is exported to
ONNX (fp32 and dynamically quantised int8) and scored on its own test fold next to PyTorch.

Prints, per fold and in total: the largest |probability difference| between ONNX fp32 and
PyTorch, the share of clips where int8's top-1 equals fp32's, and the three accuracies.

    python benchmarks/export_parity.py RUN_DIR CACHE [--arm baseline]

The published figures used runs/esc10-recipe-cnn-only (cv of configs/recipe.toml) and
data/preprocessed/esc10-recipe.pt (its feature cache; features are model inputs here, so
the comparison is of the models alone, with test-time averaging as configured).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from audiogpt2.cache import load_cache
from audiogpt2.checkpoint import load_checkpoint
from audiogpt2.export import OnnxModel, export
from audiogpt2.predict import predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--arm", default="baseline")
    args = parser.parse_args()
    cache = load_cache(args.cache)
    print("| fold | clips | max abs diff, ONNX fp32 vs PyTorch | int8 top-1 = fp32 | accuracy PyTorch | "
          "ONNX fp32 | ONNX int8 |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    totals = {"n": 0, "agree": 0, "torch": 0, "fp32": 0, "int8": 0, "diff": 0.0}
    for ckpt in sorted(args.run_dir.glob(f"fold*/{args.arm}/best.pt")):
        model, info = load_checkpoint(ckpt)
        rows = cache.rows_for(np.flatnonzero(cache.folds.numpy() == info.test_fold), with_variants=False)
        feats, labels = cache.features[rows], cache.labels_of(rows).numpy()
        aug = info.config.augment
        with tempfile.TemporaryDirectory() as tmp:
            export(ckpt, tmp, "onnx", int8=True)
            probs = {
                "torch": predict_proba(model, feats, aug),
                "fp32": predict_proba(OnnxModel(Path(tmp) / "model.onnx"), feats, aug),
                "int8": predict_proba(OnnxModel(Path(tmp) / "model.int8.onnx"), feats, aug),
            }
        top = {k: p.argmax(1) for k, p in probs.items()}
        acc = {k: float((t == labels).mean()) for k, t in top.items()}
        diff = float(np.abs(probs["fp32"] - probs["torch"]).max())
        agree = int((top["int8"] == top["fp32"]).sum())
        print(f"| {info.test_fold} | {len(labels)} | {diff:.1e} | {agree / len(labels):.1%} | "
              f"{acc['torch']:.3f} | {acc['fp32']:.3f} | {acc['int8']:.3f} |")  # fmt: skip
        totals["n"] += len(labels)
        totals["agree"] += agree
        totals["diff"] = max(totals["diff"], diff)
        for k in ("torch", "fp32", "int8"):
            totals[k] += int((top[k] == labels).sum())
    n = totals["n"]
    print(f"| all | {n} | {totals['diff']:.1e} | {totals['agree'] / n:.1%} | {totals['torch'] / n:.3f} | "
          f"{totals['fp32'] / n:.3f} | {totals['int8'] / n:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
