"""How many of a saved model's head hidden units fire, on its own training clips (originals,
no augmentation; the test fold is not read). 0 means a dead head (dying ReLU): every unit
is off for every clip, no layer below the head gets a gradient and the loss stays at
ln(number of classes). Training records the same count per epoch (`head_units_active` in
each run's history) and warns when it is 0; this reads it off any saved model.

    python benchmarks/head_units.py runs/esc50-minilm-seeds/seed2/fold2/finetuned/best.pt \
        --data data/ESC-50-16k
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from audiogpt2.checkpoint import load_checkpoint
from audiogpt2.config import load_config
from audiogpt2.predict import predict_proba
from audiogpt2.preprocess import preprocess
from audiogpt2.train import split_of


def live_units(best: Path, data_root: str) -> tuple[int, int, int, float]:
    """(units that fire for at least one training clip, all units, clips scored, spread of
    the head's input: the norm of its per-dimension std over clips / the norm of its mean;
    near 0, every clip looks the same to the head)."""
    model, info = load_checkpoint(best)
    config = load_config(best.parent / "config.toml", {"data.root": data_root})
    cache = preprocess(config, progress=False)
    config.data.test_fold = info.test_fold
    rows = cache.rows_for(split_of(config, cache).train, with_variants=False)
    fired = torch.zeros(model.head[0].out_features, dtype=torch.bool)
    pooled = []

    def mark(module: torch.nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        fired.logical_or_(out.detach().flatten(0, -2).gt(0).any(0))

    hooks = [
        model.head[1].register_forward_hook(mark),
        model.head[0].register_forward_hook(lambda m, inputs, out: pooled.append(inputs[0].detach())),
    ]
    # one copy per clip (no test-time shifts): every forward the hooks see is a training clip
    predict_proba(model, cache.features[rows], dataclasses.replace(config.augment, tta=1), batch_size=64)
    for hook in hooks:
        hook.remove()
    h = torch.cat(pooled).float()
    return int(fired.sum()), len(fired), len(rows), float(h.std(0).norm() / h.mean(0).norm())


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="best.pt or best.last.pt of runs")
    parser.add_argument("--data", required=True, help="the dataset root the runs trained on")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for best in args.checkpoints:
        alive, units, clips, spread = live_units(best, args.data)
        verdict = "DEAD: no unit fires" if alive == 0 else "alive"
        print(
            f"{best}: {alive} of {units} head units fire on {clips} training clips ({verdict}); "
            f"head input spread over clips {spread:.2%} of its mean's norm"
        )


if __name__ == "__main__":
    main()
