"""Write all-MiniLM-L6-v2 without its token-embedding matrix, small enough to travel to a
lent GPU machine (44 MB instead of 91 MB; the machine has no network and takes 64 MiB a call).

The matrix (30522 x 384) is never used: audio tokens enter the encoder as ``inputs_embeds``,
and ``model._drop_unused_parts`` removes it after loading anyway. Every weight the model
uses is copied unchanged; the vocabulary is cut to one row so the folder still loads with
``AutoModel.from_pretrained`` without missing keys.

    python benchmarks/device/pack_minilm.py .device/minilm
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from audiogpt2.model import resolve_backbone_path


def main(out: str) -> None:
    src = Path(resolve_backbone_path("minilm"))
    dst = Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    weights = load_file(src / "model.safetensors")
    key = "embeddings.word_embeddings.weight"
    weights[key] = weights[key][:1].clone()
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["vocab_size"] = 1
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    size = (dst / "model.safetensors").stat().st_size / 1e6
    print(f"{dst}: all-MiniLM-L6-v2 from {src} without its token embeddings, {size:.0f} MB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".device/minilm")
