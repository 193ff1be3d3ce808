"""Helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path


def small_overrides(esc_root: Path, backbone: Path | str, cache: Path) -> dict:
    return {
        "data.root": str(esc_root),
        "data.cache": str(cache),
        "data.workers": 1,
        "data.test_fold": 5,
        "model.backbone": str(backbone),
        "augment.variants": 1,
        "train.epochs": 3,
        "train.batch_size": 8,
        "train.unfreeze": {"2": 0, "3": 1},
        "train.threads": 1,
    }


def train_cli_args(esc_root: Path, backbone: Path, out: Path, arm: str, best: str, epochs: int) -> list:
    """``audiogpt2 train`` arguments for one small arm writing under ``out``."""
    return [
        "train",
        "--data",
        str(esc_root),
        "--backbone",
        str(backbone),
        "--epochs",
        str(epochs),
        "--variants",
        "0",
        "--workers",
        "1",
        "--threads",
        "1",
        "--arms",
        arm,
        "--cache",
        str(out / "c.pt"),
        "--set",
        f"paths.{arm}_checkpoint={out}/m/{best}",
        "--set",
        f"paths.notebooks={out}/nb",
    ]


def one_epoch_checkpoint(root: Path, backbone: Path | str, tmp_path: Path) -> tuple:
    """(config, checkpoint path) of a baseline arm trained for one epoch on ``root``."""
    from audiogpt2.config import load_config
    from audiogpt2.preprocess import preprocess
    from audiogpt2.train import train_arm

    config = load_config(overrides={**small_overrides(root, backbone, tmp_path / "e.pt"), "train.epochs": 1})
    cache = preprocess(config, progress=False)
    result = train_arm(config, cache, "baseline", tmp_path / "m" / "best.pt", progress=False)
    return config, result.best_checkpoint
