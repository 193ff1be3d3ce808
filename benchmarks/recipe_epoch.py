"""Where the time of one training epoch goes, for any config (default: configs/recipe.toml,
CNN only), at the size of one ESC-10 fold: the 320 clips of the training folds x (1 +
variants) versions, less the config's validation share (data.val_fraction: 64 clips at
the spec's 0.2, none for the recipe's refit), which is scored with its TTA shifts.

Prints seconds for batch production (time shift, SpecAugment, mixup, collate), the
training steps (forward + backward + optimizer), validation (with the config's TTA) and
the checkpoint writes, and the implied minutes for a whole 5-fold cross-validation.

    python benchmarks/recipe_epoch.py [--config configs/recipe.toml] [--backbone none] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from audiogpt2.cache import FeatureCache
from audiogpt2.checkpoint import CHECKPOINT_FORMAT
from audiogpt2.config import load_config
from audiogpt2.model import build_model
from audiogpt2.train import (
    Run,
    TrainingSet,
    TrainState,
    configure_optimizer,
    make_scheduler,
    save_checkpoints,
)
from audiogpt2.train import validate as run_validation

ROOT = Path(__file__).resolve().parents[1]


def fake_cache(clips: int, versions: int, frames: int, bins: int, classes: int = 10) -> FeatureCache:
    rows = clips * versions
    return FeatureCache(
        features=torch.randn(rows, frames, bins),
        row_clip=torch.arange(clips).repeat_interleave(versions),
        row_variant=torch.arange(versions).repeat(clips),
        labels=torch.arange(clips) % classes,
        folds=torch.ones(clips, dtype=torch.long),
        groups=[str(i) for i in range(clips)],
        names=[str(i) for i in range(clips)],
        classes=[str(i) for i in range(classes)],
        failed=[],
        key="benchmark",
    )


def time_steps(model, optimizer, loss_fn, batches, grad_clip: float | None) -> float:
    """Seconds for one pass of training steps over ``batches``."""
    model.train()
    t = time.perf_counter()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
        optimizer.step()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "recipe.toml"))
    parser.add_argument("--backbone", default="none")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config, {"model.backbone": args.backbone})
    versions = 1 + config.augment.variants
    cache = fake_cache(320, versions, config.audio.n_frames, config.audio.n_bins)
    n_train = 320 - int(round(320 * config.data.val_fraction))  # the config's validation share
    train_rows = np.flatnonzero(cache.row_clip.numpy() < n_train)
    val_rows = np.flatnonzero((cache.row_clip.numpy() >= n_train) & (cache.row_variant.numpy() == 0))
    torch.manual_seed(0)
    model, backbone = build_model(config.model, config.audio, False, len(cache.classes))
    optimizer = configure_optimizer(model, config)
    dataset = TrainingSet(cache, train_rows, config.augment, 0)
    dataset.epoch = 1
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True)
    header = {"format": CHECKPOINT_FORMAT, "config": config.to_dict()}  # all a checkpoint write needs
    scheduler = make_scheduler(optimizer, config.train, len(loader))
    cpu = torch.device("cpu")
    run = Run(model, model, optimizer, scheduler, loader, cpu, 1, 0, "baseline", val_rows, header)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing)

    t = time.perf_counter()
    batches = list(loader)
    produce = time.perf_counter() - t
    steps = time_steps(model, optimizer, loss_fn, batches, config.train.grad_clip)
    t = time.perf_counter()
    acc, loss = run_validation(run, config, cache)
    val = time.perf_counter() - t
    state = TrainState()
    state.update({"epoch": 1, "val_acc": acc, "val_loss": loss})
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        save_checkpoints(run, state, acc is not None, Path(tmp) / "best.pt", lambda *_: None)
        save = time.perf_counter() - t
    epoch = produce + steps + val + save
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; config {args.config}, "
        f"backbone {args.backbone}; {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    print(
        f"one ESC-10 fold epoch: {len(train_rows)} training rows in {len(batches)} batches, "
        f"{len(val_rows)} validation clips x {config.augment.tta} TTA shifts"
    )
    for name, sec in (("batch production", produce), ("training steps", steps),
                      ("validation", val), ("checkpoint writes", save)):  # fmt: skip
        print(f"  {name:18s} {sec:6.2f} s  ({sec / epoch * 100:4.1f} %)")
    print(f"  {'epoch':18s} {epoch:6.2f} s")
    minutes = epoch * config.train.epochs * 5 / 60
    print(f"5-fold CV at {config.train.epochs} epochs, one fold at a time: about {minutes:.0f} min")


if __name__ == "__main__":
    main()
