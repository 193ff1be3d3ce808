"""Prediction on any audio: ``Classifier.from_checkpoint(path).predict(waveform, sr)``.

It computes features with :func:`audiogpt2.features.mfcc`, the same function preprocessing
uses. Clips longer than the training clip length are scored in half-overlapping windows
whose probabilities are averaged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiogpt2.audio import AudioError, load_audio, prepare_waveform
from audiogpt2.augment import time_shift, tta_shifts
from audiogpt2.checkpoint import Checkpoint, load_checkpoint
from audiogpt2.config import AugmentConfig
from audiogpt2.data import AUDIO_EXTENSIONS
from audiogpt2.device import select_device
from audiogpt2.errors import AudioGPT2Error
from audiogpt2.features import compute_features, limit_blas_threads, model_input
from audiogpt2.precision import Precision, prepare_for_inference, resolve_precision


class NoAudioError(AudioGPT2Error):
    """Nothing to classify: the inputs hold no audio files."""


FP32 = Precision("fp32", "default")


class PredictionError(AudioGPT2Error, RuntimeError):
    """A model that cannot give a usable answer."""


class EnsembleError(AudioGPT2Error, ValueError):
    """Models that cannot be averaged (other classes or front end)."""


@dataclass
class Prediction:
    labels: list[str]  # all classes, most probable first
    probabilities: list[float]  # aligned with labels
    windows: list[dict[str, Any]] = field(default_factory=list)  # start/end seconds, label, prob

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        return list(zip(self.labels[:k], self.probabilities[:k]))


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module,
    features: torch.Tensor | np.ndarray,
    aug: AugmentConfig,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    precision: Precision | None = None,
) -> np.ndarray:
    """(rows, n_frames, n_bins) features -> (rows, classes) probabilities, eval mode; the
    forward pass in ``precision`` (fp32 when None), the softmax in fp32.

    Channel 2 uses each clip's deterministic mask, so a clip always gets one prediction.
    With ``aug.tta > 1`` the probabilities are averaged over that many time-shifted copies.
    """
    was_training = model.training
    model.eval()
    features = np.asarray(features, dtype=np.float32)
    shifts = tta_shifts(features.shape[1], aug) if len(features) else [0]
    out = []
    for start in range(0, len(features), batch_size):
        batch = features[start : start + batch_size]
        probs = 0.0
        for shift in shifts:
            x = np.stack([model_input(time_shift(f, shift), aug) for f in batch])
            with (precision or FP32).autocast(device):
                logits = model(torch.from_numpy(x).to(device))
            probs = probs + torch.softmax(logits.float(), dim=1).cpu().numpy()
        out.append(probs / len(shifts))
    model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    probs = np.concatenate(out)
    if not np.isfinite(probs).all():  # never a NaN in a result (or invalid JSON)
        raise PredictionError(
            "the model's output is not finite (NaN or infinity): its weights are damaged or its "
            "training diverged; use another checkpoint or export"
        )
    return probs


class Classifier:
    def __init__(
        self, model: torch.nn.Module, info: Checkpoint, device: str = "cpu", precision: str = "auto"
    ) -> None:
        limit_blas_threads()
        self.model = model.to(device).eval()
        # ONNX Runtime runs its own graph (fp32 or int8): autocast would not reach it.
        onnx = type(model).__name__ == "OnnxModel"
        if precision == "auto" and getattr(model, "backbone", None) is None:
            # Without a transformer a model is mostly convolutions; bf16 measured slower than
            # fp32 for one file there (docs/speed.md), so auto keeps fp32.
            precision = "fp32"
        self.precision = FP32 if onnx else resolve_precision(precision, device)
        prepare_for_inference(self.model, self.precision)
        self.info = info
        self.config = info.config
        self.classes: list[str] = list(info.classes)
        self.device = device
        # (model, its augment settings, its arithmetic): one, or several averaged (ensemble)
        self.members: list[tuple[torch.nn.Module, AugmentConfig, Precision]] = [
            (self.model, self.config.augment, self.precision)
        ]

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", precision: str = "auto", prefer_onnx: bool = True
    ) -> Classifier:
        """A checkpoint file, or a folder written by ``audiogpt2 export`` (ONNX Runtime when
        it holds an ONNX model and onnxruntime is installed, PyTorch otherwise)."""
        if Path(path).is_dir():
            from audiogpt2.export import load_export

            select_device(device)
            model, info = load_export(path, prefer_onnx)
            return cls(model, info, device, precision)
        return cls.from_checkpoint(path, device, precision)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", precision: str = "auto") -> Classifier:
        select_device(device)  # one clear line when the device does not exist here
        model, info = load_checkpoint(path)
        return cls(model, info, device, precision)

    @classmethod
    def ensemble(
        cls, paths: list[str | Path], device: str = "cpu", precision: str = "auto", prefer_onnx: bool = True
    ) -> Classifier:
        """Checkpoints or exports of one task (for example a repeated CV's seeds for one
        fold) whose probabilities are averaged; they must share classes and audio settings."""
        first = cls.from_pretrained(paths[0], device, precision, prefer_onnx)
        for path in paths[1:]:
            other = cls.from_pretrained(path, device, precision, prefer_onnx)
            if other.classes != first.classes or other.config.audio != first.config.audio:
                what = "classes" if other.classes != first.classes else "audio settings"
                raise EnsembleError(
                    f"{path} has other {what} than {paths[0]}; an ensemble needs models of one "
                    "task with one front end (train them with the same config and data)"
                )
            first.members += other.members  # each keeps its own runtime and precision
        return first

    def window_starts(self, n_samples: int) -> list[int]:
        window = self.config.audio.clip_samples
        if n_samples <= window:
            return [0]
        hop = window // 2
        starts = list(range(0, n_samples - window + 1, hop))
        if starts[-1] + window < n_samples:
            starts.append(n_samples - window)  # cover the tail
        return starts

    def predict(self, waveform: np.ndarray, sample_rate: int, batch_size: int = 32) -> Prediction:
        """Mono or (frames, channels) audio at any rate -> class probabilities."""
        feats, starts, n_samples = self.window_features(waveform, sample_rate)
        probs = self.window_proba(feats, batch_size)
        return self.prediction(probs, starts, n_samples)

    def window_features(self, waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, list[int], int]:
        """(windows, n_frames, n_bins) features of half-overlapping windows, their start
        samples and the length at the model's rate. Raises AudioError on unusable audio."""
        audio = self.config.audio
        y = prepare_waveform(np.asarray(waveform), sample_rate, audio.sample_rate)
        starts = self.window_starts(len(y))
        feats = np.stack([compute_features(y[s : s + audio.clip_samples], audio) for s in starts])
        return feats, starts, len(y)

    def window_proba(self, feats: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Probabilities of each window's features (a batch may mix several recordings),
        averaged over the ensemble's members."""
        return np.mean(
            [
                predict_proba(model, feats, aug, self.device, batch_size, precision)
                for model, aug, precision in self.members
            ],
            axis=0,
        )

    def prediction(self, probs: np.ndarray, starts: list[int], n_samples: int) -> Prediction:
        """One recording's result from its windows' probabilities."""
        mean = probs.mean(axis=0)
        order = np.argsort(-mean)
        audio = self.config.audio
        sr = audio.sample_rate
        windows = [
            {
                "start": s / sr,
                "end": min(s + audio.clip_samples, n_samples) / sr,
                "label": self.classes[int(p.argmax())],
                "probability": float(p.max()),
            }
            for s, p in zip(starts, probs)
        ]
        return Prediction([self.classes[i] for i in order], [float(mean[i]) for i in order], windows)

    def predict_file(self, path: str | Path) -> Prediction:
        y = load_audio(path, self.config.audio.sample_rate)
        return self.predict(y, self.config.audio.sample_rate)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; directories expanded to the audio files below them."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            )
        else:
            out.append(path)
    return out


def predict_paths(
    classifier: Classifier, paths: list[Path]
) -> tuple[list[tuple[Path, Prediction]], list[tuple[Path, str]]]:
    """Predictions for readable files and (path, reason) for the ones skipped."""
    done, skipped = [], []
    for path in paths:
        if not path.is_file():
            skipped.append((path, "no such file"))
            continue
        try:
            done.append((path, classifier.predict_file(path)))
        except AudioError as exc:
            skipped.append((path, str(exc)))
    return done, skipped


def timeline_figure(prediction: Prediction, title: str = "") -> Any:
    """A long recording's per-window labels as a matplotlib figure: one coloured band per
    window, its label and probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = prediction.windows
    labels = sorted({w["label"] for w in windows}, key=prediction.labels.index)
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    end = max((w["end"] for w in windows), default=1.0)
    fig, (strip, probs) = plt.subplots(2, 1, figsize=(max(6.0, min(20.0, end / 3)), 3.2), sharex=True,
                                       gridspec_kw={"height_ratios": [1, 2]})  # fmt: skip
    # Windows overlap by half: each one is drawn over the stretch nearer its centre than
    # any other's, so the bands tile the recording.
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    edges = [0.0, *((a + b) / 2 for a, b in zip(centres, centres[1:])), end]
    for w, left, right in zip(windows, edges, edges[1:]):
        strip.axvspan(left, right, color=colours[w["label"]], alpha=0.3 + 0.7 * w["probability"], lw=0)
        probs.hlines(w["probability"], left, right, color=colours[w["label"]], lw=3)
    strip.set_yticks([])
    strip.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[lab]) for lab in labels], labels=labels,
                 loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)  # fmt: skip
    strip.set_title(title or "label of each window (half-overlapping windows)", fontsize=9)
    probs.set_ylim(0, 1)
    probs.set_ylabel("probability")
    probs.set_xlabel("time (s)")
    probs.set_xlim(0, end)
    fig.tight_layout()
    return fig


def write_timeline(prediction: Prediction, path: str | Path, title: str = "") -> tuple[Path, Path]:
    """The timeline picture as PNG and the same windows as CSV (start, end, label,
    probability) beside it."""
    import csv
    import io

    import matplotlib.pyplot as plt

    from audiogpt2.io import atomic_savefig, atomic_write_text

    path = Path(path)
    fig = timeline_figure(prediction, title)
    png = atomic_savefig(fig, path.parent / f"{path.name}.png", dpi=110)  # "a.b" keeps its ".b"
    plt.close(fig)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["start_s", "end_s", "label", "probability"])
    for w in prediction.windows:
        label = spreadsheet_text(w["label"])
        writer.writerow([f"{w['start']:.3f}", f"{w['end']:.3f}", label, f"{w['probability']:.4f}"])
    return png, atomic_write_text(path.parent / f"{path.name}.csv", rows.getvalue())


def spreadsheet_text(cell: str) -> str:
    """A text cell that a spreadsheet shows as text: class names come from a user's manifest,
    and one starting with = + - @ (or a tab or carriage return) would open as a formula."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def timeline_names(paths: list[Path]) -> list[str]:
    """One file name per input for its timeline, made from its stem: confined to one folder
    (no separators, no leading dots) and never the same for two inputs."""
    names: list[str] = []
    taken: set[str] = set()
    for path in paths:
        base = re.sub(r"[^\w.-]+", "_", path.stem).lstrip(".") or "audio"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names
