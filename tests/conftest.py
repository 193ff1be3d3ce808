"""Shared fixtures: a tiny synthetic ESC-50-style dataset, a tiny GPT-2 saved with
save_pretrained (loaded back through the real from_pretrained path) and a small config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import small_overrides

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def package_log_lines_on_stdout():
    """Library code logs through ``logging``; show its lines as the CLI does, whichever
    test runs first, so tests can read them from stdout."""
    from audiogpt2.cli import setup_logging

    setup_logging()


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
