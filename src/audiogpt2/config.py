"""The single source of defaults: one tree of dataclasses holding every number of the
seed README (docs/seed-README.md, the original description of the system; "the seed
README" in comments means that file).

Layering is default < config file (TOML) < command-line flags. Every run writes the
fully resolved tree next to its outputs (``config.toml``), so a result can always be
traced back to the settings that produced it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from audiogpt2.errors import AudioGPT2Error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


PRECISIONS = ("auto", "fp32", "bf16")  # train.precision: see audiogpt2/precision.py


class ConfigError(AudioGPT2Error, ValueError):
    """A config key or value that cannot be used; the message names the key."""


def flag(default: Any, name: str, text: str, training: bool = False) -> Any:
    """A config field that the CLI also offers as ``name`` (with ``text`` as its help);
    ``training`` marks flags only commands that train accept."""
    return field(default=default, metadata={"flag": name, "help": text, "training": training})


@dataclass(frozen=True)
class CliFlag:
    flag: str
    key: str
    type: Any
    help: str
    default: Any
    training: bool


def cli_flags() -> list[CliFlag]:
    """Every config field that is also a command-line flag."""
    out = []
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        types = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "flag" in f.metadata:
                m = f.metadata
                key = f"{section.name}.{f.name}"
                out.append(CliFlag(m["flag"], key, types[f.name], m["help"], f.default, m["training"]))
    return out


@dataclass
class AudioConfig:
    sample_rate: int = 16000
    clip_seconds: float = 5.0
    # "mfcc" (the seed README: n_mfcc coefficients of an n_mels-band log-mel spectrogram),
    # "logmel" (the n_mels log-mel bands themselves), or "efficientat" (the preprocessing the
    # AudioSet MobileNets were trained with: pre-emphasis, centred STFT, Kaldi mel bands,
    # log(x + 1e-5), then (x + 4.5) / 5; `normalize` does not apply).
    features: str = "mfcc"
    n_mfcc: int = 40
    # Samples between frames: 800 = 50 ms at 16 kHz, so a 5 s clip has exactly 100 frames
    # (n_frames follows from the hop). The clip is padded by (n_fft - hop) / 2 at each end,
    # so the frames tile the whole clip: frame i is centred at (i + 0.5) * hop.
    hop_length: int = 800
    n_fft: int = 1600  # analysis window in samples
    # "efficientat" only: the Hann window's length inside n_fft (0 = n_fft); EfficientAT's
    # AudioSet networks were trained with 800 in 1024.
    win_length: int = 0
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    # "clip" (the seed README): each clip scaled to mean 0, std 1 on its own, which also
    # removes its contrast. "band": only the clip's mean level is removed, and the model
    # scales each band with statistics of the training data (a BatchNorm over the bands at
    # its input, as PANNs' CNNs do), so contrast and spectral tilt reach the CNN.
    normalize: str = "clip"

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        return self.clip_samples // self.hop_length

    @property
    def n_bins(self) -> int:
        """Feature values per frame: n_mfcc for MFCCs, n_mels for log-mel."""
        return self.n_mfcc if self.features == "mfcc" else self.n_mels

    def validate(self) -> None:
        _positive(self, "audio", "sample_rate", "clip_seconds", "n_mfcc", "hop_length", "n_mels", "n_fft")
        if self.features not in ("mfcc", "logmel", "efficientat"):
            raise ConfigError(f"audio.features={self.features!r}: use 'mfcc', 'logmel' or 'efficientat'")
        if not 0 <= self.win_length <= self.n_fft:
            raise ConfigError(f"audio.win_length={self.win_length} must be in 0..n_fft ({self.n_fft})")
        if self.normalize not in ("clip", "band"):
            raise ConfigError(f"audio.normalize={self.normalize!r}: use 'clip' or 'band'")
        if self.clip_samples % self.hop_length:
            raise ConfigError(
                f"audio.hop_length={self.hop_length} must divide the clip length "
                f"({self.clip_samples} samples) so the frames tile the clip exactly"
            )
        if self.n_frames < 4:
            raise ConfigError(
                f"audio.hop_length={self.hop_length} leaves {self.n_frames} frames; the CNN needs >= 4"
            )
        if self.n_fft < self.hop_length:
            raise ConfigError(f"audio.n_fft={self.n_fft} must be >= the hop ({self.hop_length})")
        if self.features == "mfcc" and self.n_mfcc > self.n_mels:
            raise ConfigError(
                f"audio.n_mfcc={self.n_mfcc} must be <= audio.n_mels={self.n_mels} "
                "(MFCCs are computed from the mel bands)"
            )
        if not 0 <= self.fmin < self.fmax:
            raise ConfigError(f"audio.fmin={self.fmin} / fmax={self.fmax}: need 0 <= fmin < fmax")


@dataclass
class AugmentConfig:
    # SpecAugment for the second input channel: freq_masks masks of <= freq_mask bins and
    # time_masks masks of <= time_mask frames (the seed README: one of each).
    freq_mask: int = 5
    time_mask: int = 10
    freq_masks: int = 1
    time_masks: int = 1
    # Waveform augmentation of training clips, stored as extra variants in the cache.
    variants: int = flag(2, "--variants", "augmented waveform variants per clip")
    noise_sigma: float = 0.005
    pitch_semitones: float = 2.0
    stretch_min: float = 0.8
    stretch_max: float = 1.2
    # Training-time augmentation, fresh every epoch (0 = off, the seed README):
    # circular time shift of each clip by up to this fraction of its length either way,
    time_shift: float = 0.0
    # and mixup of two training clips with lambda ~ Beta(alpha, alpha) and soft targets.
    mixup_alpha: float = 0.0
    # Test-time averaging over this many time-shifted copies (evaluate, cv and predict),
    # spread evenly over +-time_shift. 1 = off.
    tta: int = 1

    def validate(self) -> None:
        for name in ("freq_mask", "time_mask", "freq_masks", "time_masks", "variants"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.time_shift <= 0.5:
            raise ConfigError(f"augment.time_shift={self.time_shift} must be in [0, 0.5]")
        if self.mixup_alpha < 0:
            raise ConfigError(f"augment.mixup_alpha={self.mixup_alpha} must be >= 0 (0 = off)")
        if self.tta < 1:
            raise ConfigError(f"augment.tta={self.tta} must be >= 1 (1 = off)")
        if self.tta > 1 and self.time_shift == 0:
            raise ConfigError(
                f"augment.tta={self.tta} averages time-shifted copies: set augment.time_shift > 0"
            )
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
    root: str = flag("data/ESC-50", "--data", "ESC-50 folder, manifest CSV or class-per-folder tree")
    subset: str = flag("all", "--subset", "all | esc10 (ESC-50 only)")
    cache: str = flag("data/preprocessed/preprocessed.pt", "--cache", "feature cache path")
    n_folds: int = 5
    test_fold: int = flag(5, "--test-fold", "fold held out for testing")
    # Share of the training folds held out (grouped by source, stratified by class) as the
    # validation set that picks checkpoints, drives the scheduler and stops early.
    # 0: no validation set, every training-fold clip trains (a refit once a recipe is fixed;
    # needs train.schedule = "cosine" and train.average_epochs > 0, as nothing is picked).
    val_fraction: float = 0.2
    workers: int = flag(0, "--workers", "preprocessing processes (0 = all cores)")

    def validate(self) -> None:
        if self.subset not in ("all", "esc10"):
            raise ConfigError(f"data.subset={self.subset!r}: use 'all' or 'esc10'")
        if self.n_folds < 2:
            raise ConfigError(f"data.n_folds={self.n_folds} must be >= 2")
        if not 1 <= self.test_fold <= self.n_folds:
            raise ConfigError(f"data.test_fold={self.test_fold} must be in 1..{self.n_folds}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction={self.val_fraction} must be in [0, 1)")
        if self.workers < 0:
            raise ConfigError(f"data.workers={self.workers} must be >= 0")


@dataclass
class ModelConfig:
    # A GPT-2 id or local directory, "minilm" (the offline all-MiniLM-L6-v2 package),
    # any Hugging Face encoder that accepts inputs_embeds, or "none" (CNN-only ablation).
    backbone: str = flag("gpt2", "--backbone", "gpt2 | HF id or local dir | minilm | none", training=True)
    # How the token outputs become one vector: their mean, or the last one.
    pooling: str = flag("mean", "--pooling", "mean | last", training=True)
    head_hidden: int = 256
    # The seed README's 50 (ESC-50). A trained model's output size always follows the dataset's
    # class list (10 for --subset esc10, yours for a manifest); this value sizes models
    # built without a dataset, as in benchmarks/.
    num_classes: int = 50
    # Width of the projection when backbone = "none" (GPT-2 small's width, for comparability).
    cnn_only_hidden: int = 768
    # Output channels of the CNN's conv blocks (conv 3x3 + BatchNorm + ReLU + max-pool).
    # The first two blocks pool time and frequency by 2, later ones frequency only, so
    # there are always n_frames / 4 tokens (25 for the seed README's [64, 128]).
    cnn_channels: list[int] = field(default_factory=lambda: [64, 128])
    # Conv layers (3x3 + BatchNorm + ReLU) in each block before its max-pool: 1 in the seed
    # README; 2 is the VGG-style block of PANNs' CNN10/14, twice the depth at the same width.
    cnn_convs: int = 1
    dropout: float = 0.0  # before each layer of the head; 0 = none (the seed README)
    # The network that turns features into tokens: "cnn" (the seed README's conv blocks,
    # cnn_channels) or an AudioSet MobileNet of EfficientAT's architecture at width
    # 0.1-3.0 ("mn01" ... "mn30"; needs audio.features = "efficientat"). See frontends/.
    frontend: str = flag(
        "cnn", "--frontend", "cnn | mn01 | mn02 | mn04 | mn05 | mn10 | mn20 | mn30", training=True
    )
    # Its starting weights: "" (random), a release name ("mn04_as": downloaded once, sha256
    # checked) or a local .pt file.
    frontend_weights: str = flag(
        "", "--frontend-weights", "release name (mn04_as) or .pt path", training=True
    )
    frontend_trainable: bool = True  # false: the front end stays as loaded
    # A MobileNet's last map (channels x rows x steps) as tokens: one per time step
    # ("time": channels x rows, projected) or one per time-frequency cell ("cell": channels).
    frontend_tokens: str = "time"
    # With backbone = "none", how a MobileNet's map reaches the classes: "own" (its tokens
    # projected, averaged, then head_hidden) or "audioset" (the released head's pooling and
    # hidden layer, pretrained like the rest, then one new linear layer for the classes).
    frontend_head: str = "own"

    def validate(self) -> None:
        from audiogpt2.frontends import FRONTENDS

        if self.frontend not in FRONTENDS:
            raise ConfigError(f"model.frontend={self.frontend!r}: use one of {', '.join(FRONTENDS)}")
        if self.frontend_tokens not in ("time", "cell") or (
            self.frontend == "cnn" and self.frontend_tokens != "time"
        ):
            raise ConfigError(
                f"model.frontend_tokens={self.frontend_tokens!r}: 'time', or 'cell' with a MobileNet"
            )
        if self.frontend == "cnn" and self.frontend_weights:
            raise ConfigError("model.frontend_weights is for a pretrained front end (--frontend mn04, ...)")
        if self.frontend_head not in ("own", "audioset"):
            raise ConfigError(f"model.frontend_head={self.frontend_head!r}: use 'own' or 'audioset'")
        if self.frontend_head == "audioset" and (self.frontend == "cnn" or self.backbone != "none"):
            raise ConfigError(
                "model.frontend_head='audioset' is the MobileNet's own pooled head: it needs a "
                "MobileNet front end (--frontend mn04, ...) and --backbone none"
            )
        if self.pooling not in ("mean", "last"):
            raise ConfigError(f"model.pooling={self.pooling!r}: use 'mean' or 'last'")
        _positive(self, "model", "head_hidden", "num_classes", "cnn_only_hidden")
        if not 1 <= self.cnn_convs <= 4:
            raise ConfigError(f"model.cnn_convs={self.cnn_convs}: use 1 to 4 conv layers per block")
        if len(self.cnn_channels) < 2 or any(c <= 0 for c in self.cnn_channels):
            raise ConfigError(f"model.cnn_channels={self.cnn_channels}: need at least 2 positive widths")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")


@dataclass
class TrainConfig:
    batch_size: int = flag(16, "--batch-size", "batch size", training=True)
    epochs: int = flag(20, "--epochs", "number of epochs", training=True)
    lr_backbone: float = flag(2e-5, "--lr-backbone", "backbone learning rate", training=True)
    lr_head: float = flag(1e-3, "--lr-head", "CNN/projection/head learning rate", training=True)
    # A pretrained front end's own rate (0 = lr_head); it warms up with the others.
    lr_frontend: float = flag(0.0, "--lr-frontend", "front-end learning rate (0 = --lr-head)", training=True)
    weight_decay: float = 1e-2
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stop_patience: int = 500
    # "plateau" (the seed README: ReduceLROnPlateau on validation accuracy, per epoch) or
    # "cosine" (linear warm-up over warmup_epochs, then cosine decay to 0, per step).
    schedule: str = "plateau"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping
    # 0: the saved model is the epoch with the best validation accuracy (the seed README).
    # N > 0: it is the average of the weights (and BatchNorm statistics) after each of the
    # last N epochs, so no epoch is picked by a small, noisy validation set.
    average_epochs: int = 0
    # epoch (1-based, unfrozen at its start) -> backbone block index
    unfreeze: dict[str, int] = field(default_factory=lambda: {"5": 0, "10": 1, "15": 2})
    # "schedule": the baseline follows the fine-tuned arm's freezing schedule (weights are
    # the only difference); "all": the random backbone trains fully from epoch 1.
    baseline_trainable: str = flag("schedule", "--baseline-trainable", "schedule | all", training=True)
    seed: int = flag(0, "--seed", "random seed")
    device: str = flag("auto", "--device", "auto (MPS, then CUDA, then CPU) | cpu | cuda[:N] | mps")
    # Forward-pass arithmetic: "auto" (bf16 autocast where the CPU or GPU does bf16 natively,
    # else fp32), "fp32" or "bf16". A run stores what it resolved to (audiogpt2/precision.py).
    precision: str = flag("auto", "--precision", "auto (bf16 where native) | fp32 | bf16")
    amp: bool = flag(False, "--amp", "older name for --precision bf16", training=True)
    # torch.compile the training forward/backward: fuses the elementwise work between the
    # matrix products, at the price of compiling first and again at each unfreeze (measured
    # gains: docs/speed.md, "Speed").
    compile: bool = flag(
        False, "--compile", "torch.compile the training step (minutes to compile, then faster)", training=True
    )
    threads: int = flag(0, "--threads", "torch CPU threads (0 = torch's default)")
    # AdamW's implementation: "fused" (one kernel over all parameters), "foreach" (batched
    # tensor ops) or "loop" (one parameter at a time; torch's CPU default). "auto" takes
    # fused where this torch build supports it on the device (speeds: docs/speed.md).
    optimizer_impl: str = "auto"
    # Under torchrun: BatchNorm statistics over the global batch instead of each rank's
    # (off: rank 0's running statistics are broadcast; see audiogpt2/distributed.py).
    sync_batchnorm: bool = flag(
        False, "--sync-batchnorm", "global-batch BatchNorm statistics under torchrun", training=True
    )

    def validate(self) -> None:
        _positive(self, "train", "batch_size", "epochs", "lr_backbone", "lr_head")
        if self.lr_frontend < 0:
            raise ConfigError(f"train.lr_frontend={self.lr_frontend} must be >= 0 (0 = lr_head)")
        if self.threads < 0:
            raise ConfigError(f"train.threads={self.threads} must be >= 0 (0 = torch's default)")
        if self.schedule not in ("plateau", "cosine"):
            raise ConfigError(f"train.schedule={self.schedule!r}: use 'plateau' or 'cosine'")
        if self.warmup_epochs < 0 or self.grad_clip < 0:
            raise ConfigError("train.warmup_epochs and train.grad_clip must be >= 0")
        if not 0 <= self.average_epochs <= self.epochs:
            raise ConfigError(
                f"train.average_epochs={self.average_epochs} must be in 0..train.epochs ({self.epochs}): the "
                f"saved model averages the last {self.average_epochs} epochs' weights. With fewer epochs, "
                f"also pass --set train.average_epochs=N (the recipe averages the last third: "
                f"{max(1, self.epochs // 3)} for {self.epochs} epochs), or 0 for the best-validation epoch"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"train.label_smoothing={self.label_smoothing} must be in [0, 1)")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"train.plateau_factor={self.plateau_factor} must be in (0, 1)")
        if self.weight_decay < 0 or self.plateau_patience < 0 or self.early_stop_patience < 1:
            raise ConfigError(
                "train.weight_decay and train.plateau_patience must be >= 0, train.early_stop_patience >= 1"
            )
        for epoch, block in self.unfreeze.items():
            if (not str(epoch).isdigit() or int(epoch) < 1 or not isinstance(block, int)
                    or isinstance(block, bool) or block < 0):  # fmt: skip
                raise ConfigError(
                    f"train.unfreeze entry {epoch!r} = {block!r}: use epoch (>= 1) = block index"
                )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision={self.precision!r}: use 'auto', 'fp32' or 'bf16'")
        if self.optimizer_impl not in ("auto", "fused", "foreach", "loop"):
            raise ConfigError(
                f"train.optimizer_impl={self.optimizer_impl!r}: use 'auto', 'fused', 'foreach' or 'loop'"
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
        if (self.model.frontend != "cnn") != (self.audio.features == "efficientat"):
            raise ConfigError(
                f"model.frontend={self.model.frontend!r} with audio.features={self.audio.features!r}: "
                "an AudioSet MobileNet front end takes the features it was trained on and only "
                'those (audio.features = "efficientat"; configs/mn04.toml sets both)'
            )
        blocks = len(self.model.cnn_channels)
        if self.model.frontend == "cnn" and self.audio.n_bins >> blocks < 1:
            raise ConfigError(
                f"model.cnn_channels has {blocks} blocks, each halving the {self.audio.n_bins} "
                f"feature bins: use at most {self.audio.n_bins.bit_length() - 1} blocks or more bins"
            )
        if self.data.val_fraction == 0 and (self.train.schedule != "cosine" or not self.train.average_epochs):
            raise ConfigError(
                "data.val_fraction = 0 leaves no validation set to pick an epoch or drive the "
                'plateau schedule: set train.schedule = "cosine" and train.average_epochs > 0 '
                "(the saved model is then the mean of the last epochs), or a val_fraction in (0, 1)"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return to_toml(self.to_dict())


def _positive(obj: Any, section: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{section}.{name}={getattr(obj, name)} must be > 0")


def _parsed(key: str, value: Any, kind: type, what: str) -> Any:
    """A list or table from a file, or its JSON spelling from a flag."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: expected {what}, got {value!r}") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: expected {what}, got {type(value).__name__}")
    return value


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Convert a file or flag value to the field's type, or raise naming the key."""
    origin = typing.get_origin(annotation)
    if origin is list:
        value = _parsed(key, value, list, "a list such as [64, 128]")
        (item,) = typing.get_args(annotation)
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        value = _parsed(key, value, dict, "a table/JSON object")
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
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from exc
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
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
    # Files written before the hop became the setting name the frame count instead.
    legacy_frames = flat.pop("audio.n_frames", None)
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
    if legacy_frames is not None:
        frames = _coerce("audio.n_frames", legacy_frames, int)
        if frames <= 0:
            raise ConfigError(f"audio.n_frames={frames} must be > 0{where}")
        config.audio.hop_length = config.audio.clip_samples // frames
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


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Defaults, then ``base`` (a command's own presets, as the demo's), then the TOML file
    at ``path``, then ``overrides``; validated."""
    config = Config()
    if base:
        apply_overrides(config, base)
    if path is not None:
        apply_overrides(config, read_config_file(path), source=str(path))
    if overrides:
        apply_overrides(config, overrides, source="command line")
    return config.validate()


def flat_keys(tables: dict[str, Any]) -> set[str]:
    """``{"a": {"b": 1}, "c.d": 2}`` -> ``{"a.b", "c.d"}``: the keys a file or flags set."""
    keys: set[str] = set()
    for key, value in tables.items():
        if isinstance(value, dict) and "." not in key and key in _field_types(Config):
            keys.update(f"{key}.{sub}" for sub in value)
        else:
            keys.add(key)
    return keys


def dataset_slug(data: DataConfig) -> str:
    """A short folder-safe name for a dataset: ``ESC-10-esc10`` for an ESC-50 layout (its
    folder name says which copy it is); for a manifest or a folder of class folders, the
    name and a hash of the resolved path (``digits-manifest-3f9a1c``), since two datasets may
    both keep a ``manifest.csv`` or a ``clips/`` folder."""
    root = Path(data.root)
    name = f"{root.parent.name}-{root.stem}" if root.suffix.lower() == ".csv" else root.name
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("-") or "dataset"
    if not (root / "meta" / "esc50.csv").is_file():
        name += "-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:6]
    return f"{name}-{data.subset}" if data.subset != "all" else name


def feature_tag(config: Config) -> str:
    """ "" for the default features, else "-" and a short hash of the feature settings, so
    caches of one dataset with different features live side by side."""
    if config.audio == AudioConfig():
        return ""
    return "-" + hashlib.sha256(json.dumps(asdict(config.audio), sort_keys=True).encode()).hexdigest()[:8]


def separate_outputs(config: Config, explicit: set[str]) -> Config:
    """Keep the seed README's paths for the seed README's own run (ESC-50 at its default root, all
    classes) and give every other dataset its own cache, model and notebook folders, so
    runs on different data never overwrite or mix each other's files. Paths the user set
    are kept as they are."""
    default = DataConfig()
    if (config.data.root, config.data.subset) == (default.root, default.subset):
        return config
    slug = dataset_slug(config.data)
    paths = PathsConfig()
    derived = {
        "data.cache": f"{Path(default.cache).parent}/{slug}{feature_tag(config)}.pt",
        "paths.models": f"{paths.models}/{slug}",
        "paths.finetuned_checkpoint": f"{paths.models}/{slug}/{Path(paths.finetuned_checkpoint).name}",
        "paths.baseline_checkpoint": f"{paths.models}/{slug}/{Path(paths.baseline_checkpoint).name}",
        "paths.notebooks": f"{paths.notebooks}/{slug}",
    }
    for key, value in derived.items():
        if key not in explicit:
            section, _, name = key.partition(".")
            setattr(getattr(config, section), name, value)
    return config


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config saved in a checkpoint or run folder (unknown keys are an error)."""
    return apply_overrides(Config(), data).validate()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
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
