"""Rebuild a backbone from the config saved in a checkpoint or export, treating it as data.

A model file names its transformer by a Hugging Face config. Handed to transformers as is,
that config could ask for remote code (``auto_map``), a download (``use_pretrained_backbone``)
or an absurd size (``n_layer: 4000``). Only the types this package builds are accepted, with
their own keys and bounded sizes; anything else is one line of error.
"""

from __future__ import annotations

import json
import math
from typing import Any

from audiogpt2.io import UnsafeFileError

# Keys that make transformers fetch or run something: never taken from a file.
FORBIDDEN = {"auto_map", "use_pretrained_backbone", "backbone", "backbone_config", "trust_remote_code",
             "custom_pipelines", "quantization_config", "attn_implementation"}  # fmt: skip
# Upper bounds: GPT-2 XL (48 x 1600) and BERT-large are inside them.
LIMITS = {
    "n_layer": 48, "num_hidden_layers": 48, "n_embd": 1600, "hidden_size": 1600,
    "n_head": 32, "num_attention_heads": 32, "n_inner": 6400, "intermediate_size": 6400,
    "n_positions": 2048, "max_position_embeddings": 2048, "vocab_size": 60_000, "type_vocab_size": 16,
}  # fmt: skip
EXTRA_KEYS = {"audiogpt2_weights", "model_type"}  # written by this package
SCALARS = (bool, int, float, str, type(None))


def _config_class(model_type: Any, source: str) -> Any:
    from transformers import BertConfig, GPT2Config

    classes = {"gpt2": GPT2Config, "bert": BertConfig}
    if model_type not in classes:
        raise UnsafeFileError(
            f"{source}: backbone model_type {model_type!r} is not one this package builds "
            f"({', '.join(classes)}); the file was not written by audiogpt2 or was edited"
        )
    return classes[model_type]


def checked_backbone_config(config_json: str, source: str = "model file") -> Any | None:
    """The transformers config that ``config_json`` describes, or None for no backbone.
    Raises :class:`UnsafeFileError` for anything this package would not have written."""
    try:
        data = json.loads(config_json)
    except (TypeError, ValueError) as exc:
        raise UnsafeFileError(f"{source}: its backbone config is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UnsafeFileError(f"{source}: its backbone config is not a JSON object")
    if not data:
        return None
    cls = _config_class(data.get("model_type"), source)
    known = set(cls().to_dict()) | EXTRA_KEYS
    # Settings of other transformers versions (plain values) pass; private keys (an attention
    # kernel from the Hub, ...) and unknown structured ones do not.
    bad = sorted(
        k
        for k in data
        if k in FORBIDDEN or k.startswith("_") or (k not in known and not isinstance(data[k], SCALARS))
    )
    if bad:
        raise UnsafeFileError(
            f"{source}: its backbone config sets {', '.join(map(repr, bad))}, which a model file may "
            "not set (remote code, downloads or unknown settings); re-export it with audiogpt2"
        )
    for key, limit in LIMITS.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise UnsafeFileError(
                f"{source}: backbone {key} = {value!r} is outside 1..{limit}; the file is damaged or edited"
            )
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UnsafeFileError(f"{source}: backbone {key} = {value!r} is not a finite number")
    data.pop("model_type")
    return cls(**data)
