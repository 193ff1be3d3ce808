"""Shared fixtures: a tiny synthetic ESC-50-style dataset, a tiny GPT-2 saved with
save_pretrained (loaded back through the real from_pretrained path) and a small config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    from transformers import GPT2Config, GPT2Model

    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2Model(GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=32)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def esc_root(tmp_path_factory) -> Path:
    from audiogpt2.synthetic import make_dataset

    return make_dataset(
        tmp_path_factory.mktemp("esc") / "ESC-50", n_classes=4, clips_per_class=10, seconds=1.5, seed=1
    )


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


@pytest.fixture()
def small_config(esc_root, tiny_gpt2_dir, tmp_path):
    from audiogpt2.config import load_config

    return load_config(overrides=small_overrides(esc_root, tiny_gpt2_dir, tmp_path / "cache.pt"))


@pytest.fixture(scope="session")
def small_cache(esc_root, tiny_gpt2_dir, tmp_path_factory):
    from audiogpt2.config import load_config
    from audiogpt2.preprocess import preprocess

    cache_path = tmp_path_factory.mktemp("cache") / "cache.pt"
    config = load_config(overrides=small_overrides(esc_root, tiny_gpt2_dir, cache_path))
    return preprocess(config, progress=False)
