"""The single source of defaults: one tree of dataclasses holding every number of the spec.

Layering is default < config file (TOML) < command-line flags. Every run writes the
fully resolved tree next to its outputs (``config.toml``), so a result can always be
traced back to the settings that produced it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names the key."""


@dataclass
class AudioConfig:
    sample_rate: int = 16000
    clip_seconds: float = 5.0
    n_mfcc: int = 40
    n_frames: int = 100
    # Analysis window in samples. The hop is clip_samples / n_frames (800 = 50 ms at 16 kHz)
    # and the clip is padded by (n_fft - hop) / 2 at each end, so the 100 frames tile the
    # whole 5 s exactly: frame i is centred at (i + 0.5) * 50 ms and nothing is cut off.
    n_fft: int = 1600
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    # "clip": each clip's MFCC matrix is scaled to mean 0, std 1 using that clip alone,
    # so no statistic can come from a held-out fold.
    normalize: str = "clip"

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def hop_length(self) -> int:
        return self.clip_samples // self.n_frames

    def validate(self) -> None:
        _positive(self, "audio", "sample_rate", "clip_seconds", "n_mfcc", "n_frames", "n_mels")
        if self.clip_samples % self.n_frames:
            raise ConfigError(
                f"audio.n_frames={self.n_frames} must divide the clip length "
                f"({self.clip_samples} samples) so the frames tile the clip exactly"
            )
        if self.n_fft < self.hop_length:
            raise ConfigError(f"audio.n_fft={self.n_fft} must be >= the hop ({self.hop_length})")
        if self.normalize != "clip":
            raise ConfigError(f"audio.normalize={self.normalize!r}: only 'clip' is supported")


@dataclass
class AugmentConfig:
    # SpecAugment for the second input channel.
    freq_mask: int = 5
    time_mask: int = 10
    # Waveform augmentation of training clips, stored as extra variants in the cache.
    variants: int = 2
    noise_sigma: float = 0.005
    pitch_semitones: float = 2.0
    stretch_min: float = 0.8
    stretch_max: float = 1.2

    def validate(self) -> None:
        for name in ("freq_mask", "time_mask", "variants"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name}={getattr(self, name)} must be >= 0")
        if self.noise_sigma < 0 or self.pitch_semitones < 0:
            raise ConfigError("augment.noise_sigma and augment.pitch_semitones must be >= 0")
        if not 0 < self.stretch_min <= self.stretch_max:
            raise ConfigError(
                f"augment.stretch_min={self.stretch_min} / stretch_max={self.stretch_max}: "
                "need 0 < stretch_min <= stretch_max"
            )


@dataclass
class DataConfig:
    # An ESC-50 root (meta/esc50.csv + audio/), a manifest CSV, or a class-per-folder tree.
    root: str = "data/ESC-50"
    subset: str = "all"  # "all" or "esc10" (ESC-50 only)
    cache: str = "data/preprocessed/preprocessed.pt"
    n_folds: int = 5
    test_fold: int = 5
    # Share of the training folds held out (grouped by source, stratified by class) as the
    # validation set that picks checkpoints, drives the scheduler and stops early.
    val_fraction: float = 0.2
    workers: int = 0  # 0 = all CPU cores

    def validate(self) -> None:
        if self.subset not in ("all", "esc10"):
            raise ConfigError(f"data.subset={self.subset!r}: use 'all' or 'esc10'")
        if self.n_folds < 2:
            raise ConfigError(f"data.n_folds={self.n_folds} must be >= 2")
        if not 1 <= self.test_fold <= self.n_folds:
            raise ConfigError(f"data.test_fold={self.test_fold} must be in 1..{self.n_folds}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction={self.val_fraction} must be in (0, 1)")
        if self.workers < 0:
            raise ConfigError(f"data.workers={self.workers} must be >= 0")


@dataclass
class ModelConfig:
    # A GPT-2 id or local directory, "minilm" (the offline all-MiniLM-L6-v2 package),
    # any Hugging Face encoder that accepts inputs_embeds, or "none" (CNN-only ablation).
    backbone: str = "gpt2"
    pooling: str = "mean"  # how the 25 token outputs become one vector: "mean" or "last"
    head_hidden: int = 256
    # The spec's 50 (ESC-50). A trained model's output size always follows the dataset's
    # class list (10 for --subset esc10, yours for a manifest); this value sizes models
    # built without a dataset, as in benchmarks/.
    num_classes: int = 50
    # Width of the projection when backbone = "none" (GPT-2 small's width, for comparability).
    cnn_only_hidden: int = 768

    def validate(self) -> None:
        if self.pooling not in ("mean", "last"):
            raise ConfigError(f"model.pooling={self.pooling!r}: use 'mean' or 'last'")
        _positive(self, "model", "head_hidden", "num_classes", "cnn_only_hidden")


@dataclass
class TrainConfig:
    batch_size: int = 16
    epochs: int = 20
    lr_backbone: float = 2e-5
    lr_head: float = 1e-3
    weight_decay: float = 1e-2
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stop_patience: int = 500
    # epoch (1-based, unfrozen at its start) -> backbone block index
    unfreeze: dict[str, int] = field(default_factory=lambda: {"5": 0, "10": 1, "15": 2})
    # "schedule": the baseline follows the fine-tuned arm's freezing schedule (weights are
    # the only difference); "all": the random backbone trains fully from epoch 1.
    baseline_trainable: str = "schedule"
    seed: int = 0
    device: str = "auto"  # auto = MPS, then CUDA, then CPU
    amp: bool = False  # mixed precision, CUDA only
    # torch.compile the training forward/backward: fuses the elementwise work between the
    # matrix products. On 2 CPU cores the gain (0-10 % per step) is within run-to-run noise
    # and compiling costs 1-2 minutes plus a recompile at each unfreeze; GPUs gain more.
    compile: bool = False
    threads: int = 0  # torch CPU threads; 0 = leave torch's default

    def validate(self) -> None:
        _positive(self, "train", "batch_size", "epochs", "lr_backbone", "lr_head")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"train.plateau_factor={self.plateau_factor} must be in (0, 1)")
        if self.weight_decay < 0 or self.plateau_patience < 0 or self.early_stop_patience < 1:
            raise ConfigError(
                "train.weight_decay and train.plateau_patience must be >= 0, train.early_stop_patience >= 1"
            )
        for epoch, block in self.unfreeze.items():
            if not str(epoch).isdigit() or int(epoch) < 1 or not isinstance(block, int):
                raise ConfigError(
                    f"train.unfreeze entry {epoch!r} = {block!r}: use epoch (>= 1) = block index"
                )
        if self.baseline_trainable not in ("schedule", "all"):
            raise ConfigError(
                f"train.baseline_trainable={self.baseline_trainable!r}: use 'schedule' or 'all'"
            )
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"train.device={self.device!r}: use auto, cpu, cuda[:N] or mps")

    def unfreeze_schedule(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.unfreeze.items()}


@dataclass
class PathsConfig:
    models: str = "models"
    finetuned_checkpoint: str = "models/best_model.pt"
    baseline_checkpoint: str = "models/best_baseline_model.pt"
    notebooks: str = "notebooks"
    runs: str = "runs"


@dataclass
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def validate(self) -> Config:
        for section in dataclasses.fields(self):
            validate = getattr(getattr(self, section.name), "validate", None)
            if validate:
                validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return to_toml(self.to_dict())


def _positive(obj: Any, section: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{section}.{name}={getattr(obj, name)} must be > 0")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Convert a file or flag value to the field's type, or raise naming the key."""
    origin = typing.get_origin(annotation)
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key}: expected a table/JSON object, got {value!r}") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return {str(k): _coerce(f"{key}.{k}", v, int) for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from exc
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from exc
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def apply_overrides(config: Config, overrides: dict[str, Any], source: str = "") -> Config:
    """Apply ``{"section.key": value}`` or nested ``{"section": {"key": value}}`` overrides."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and key in _field_types(Config):
            for sub, subvalue in value.items():
                flat[f"{key}.{sub}"] = subvalue
        else:
            flat[key] = value
    where = f" (in {source})" if source else ""
    for key, value in flat.items():
        section_name, _, name = key.partition(".")
        sections = _field_types(Config)
        if section_name not in sections:
            raise ConfigError(f"unknown config section {section_name!r}{where}; known: {', '.join(sections)}")
        section = getattr(config, section_name)
        types = _field_types(type(section))
        if name not in types:
            raise ConfigError(
                f"unknown config key {key!r}{where}; known in [{section_name}]: {', '.join(types)}"
            )
        setattr(section, name, _coerce(key, value, types[name]))
    return config


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw tables of a TOML config file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file at ``path``, then ``overrides``; validated."""
    config = Config()
    if path is not None:
        apply_overrides(config, read_config_file(path), source=str(path))
    if overrides:
        apply_overrides(config, overrides, source="command line")
    return config.validate()


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config saved in a checkpoint or run folder (unknown keys are an error)."""
    return apply_overrides(Config(), data).validate()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return json.dumps(str(value))


def to_toml(data: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def write_config(config: Config, directory: str | Path) -> Path:
    from audiogpt2.io import atomic_write_text

    path = Path(directory) / "config.toml"
    atomic_write_text(path, config.to_toml())
    return path
