"""The checkpoint format in one place: what a checkpoint holds, and how it is read back.

A checkpoint is a plain dict saved with ``torch.save`` (nanoGPT's pattern): the weights
plus everything needed to rebuild the model offline and to know what it was trained on.
``*.last.pt`` files add the optimizer, scheduler and training state for exact resume.
Every read uses ``weights_only=True``: nothing in a checkpoint can run code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiogpt2.arms import ARM_NAMES
from audiogpt2.config import Config, config_from_dict
from audiogpt2.io import UnsafeFileError, display, peek, safe_torch_load
from audiogpt2.model import AudioClassifier, backbone_from_config_json, load_weights

CHECKPOINT_FORMAT = "audiogpt2-checkpoint-v1"


@dataclass
class Checkpoint:
    """A checkpoint's description; its weights travel beside it as ``model``."""

    config: Config
    arm: str
    classes: list[str]
    test_fold: int
    backbone: str
    backbone_source: str  # where the starting weights came from, in words
    backbone_config: str  # the Hugging Face config JSON: rebuilds the backbone offline
    data_key: str | None = None  # the feature cache it was trained on (None: older files)
    epoch: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        """The saved fields, weights excluded."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "arm": self.arm,
            "classes": list(self.classes),
            "data_key": self.data_key,
            "backbone": self.backbone,
            "backbone_source": self.backbone_source,
            "backbone_config": self.backbone_config,
            "test_fold": self.test_fold,
            "epoch": self.epoch,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "checkpoint") -> Checkpoint:
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise UnsafeFileError(f"{display(source)} is not an audiogpt2 checkpoint")
        _check_fields(data, source)
        return cls(
            config=config_from_dict(data["config"]),
            arm=data["arm"],
            classes=list(data["classes"]),
            test_fold=data["test_fold"],
            backbone=data["backbone"],
            backbone_source=data["backbone_source"],
            backbone_config=data["backbone_config"],
            data_key=data.get("data_key"),
            epoch=data.get("epoch", 0),
            metrics=data.get("metrics", {}),
        )


def _check_fields(data: dict[str, Any], source: str | Path) -> None:
    """The fields that name things (files, folders, labels) are data: refuse what this package
    never writes, so nothing derived from them can leave its folder or mislabel a result."""
    where = display(source)
    if not isinstance(data.get("config"), dict):
        raise UnsafeFileError(f"{where} holds no config table; the file is damaged or was edited")
    if data.get("arm") not in ARM_NAMES:
        raise UnsafeFileError(f"{where}: arm {data.get('arm')!r} is not one of {', '.join(ARM_NAMES)}; "
                              "the file is damaged or was edited")  # fmt: skip
    classes = data.get("classes")
    if (not isinstance(classes, list) or not classes or len(set(map(str, classes))) != len(classes)
            or not all(isinstance(c, str) and c.strip() for c in classes)):  # fmt: skip
        raise UnsafeFileError(f"{where}: classes must be a list of distinct non-empty names; "
                              "the file is damaged or was edited")  # fmt: skip
    fold = data.get("test_fold")
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
        raise UnsafeFileError(f"{where}: test_fold {fold!r} is not a fold number")


def model_for(info: Checkpoint, source: str | Path = "model file") -> AudioClassifier:
    """The architecture ``info`` describes, with untrained weights (offline)."""
    module = backbone_from_config_json(info.backbone_config, display(source))
    config = info.config
    hidden = module.config.hidden_size if module is not None else config.model.cnn_only_hidden
    return AudioClassifier.from_config(module, hidden, len(info.classes), config.model, config.audio)


def load_checkpoint(path: str | Path) -> tuple[AudioClassifier, Checkpoint]:
    """Rebuild a trained model from a checkpoint, offline, without executing code."""
    data = safe_torch_load(path, "checkpoint")
    info = Checkpoint.from_dict(data, path)
    model = model_for(info, path)
    check_finite(data.get("model"), path)
    try:
        load_weights(model, data["model"])
    except RuntimeError as exc:
        raise UnsafeFileError(
            f"{display(path)}: its weights do not match the architecture its config describes "
            f"({str(exc).splitlines()[0]}); the file is damaged or was edited"
        ) from exc
    return model.eval(), info


def check_finite(state: Any, source: str | Path) -> None:
    """Refuse weights holding NaN or infinity: they can only give NaN probabilities."""
    if not isinstance(state, dict):
        raise UnsafeFileError(f"{display(source)} holds no weights")
    bad = [k for k, v in state.items() if hasattr(v, "is_floating_point") and v.is_floating_point()
           and not bool(v.isfinite().all())]  # fmt: skip
    if bad:
        raise UnsafeFileError(
            f"{display(source)}: weights {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} hold NaN or "
            "infinite values; the file is damaged, or its training diverged. Use another checkpoint"
        )


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The resolved config stored in a checkpoint, read without loading its weights."""
    data = peek(path)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise UnsafeFileError(f"{display(path)} is not an audiogpt2 checkpoint")
    return data["config"]
