"""Decode any audio file soundfile can read into mono float32 at the model's sample rate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from audiogpt2.errors import AudioGPT2Error


class AudioError(AudioGPT2Error, ValueError):
    """A file that cannot be used as audio; the message says why."""


class AudioTooLongError(AudioError):
    """Audio longer than the caller accepts."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,), averaging channels."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    elif samples.ndim != 1:
        raise AudioError(f"expected 1-D or 2-D audio, got shape {samples.shape}")
    return samples


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, orig_sr, target_sr, quality="HQ").astype(np.float32)


def prepare_waveform(samples: np.ndarray, sample_rate: int, target_sr: int) -> np.ndarray:
    """Mono, finite, resampled to ``target_sr``. Raises AudioError on unusable input."""
    if sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate}")
    mono = to_mono(samples)
    if mono.size == 0:
        raise AudioError("the file holds no samples")
    if not np.isfinite(mono).all():
        raise AudioError("the audio contains NaN or infinite sample values")
    return resample(mono, sample_rate, target_sr)


def load_audio(path: str | Path, target_sr: int) -> np.ndarray:
    """Read ``path`` (wav, flac, ogg, ... any rate and channel count) as mono at ``target_sr``."""
    # Opened by Python, not by name: libsndfile cannot open names that are not UTF-8.
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise AudioError(f"not readable as audio ({exc})") from exc
    with handle:
        return decode_audio(handle, target_sr)


def decode_audio(source: BinaryIO, target_sr: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode an open binary file or in-memory bytes (``io.BytesIO``) as mono at
    ``target_sr``; with ``max_seconds``, longer audio is refused before it is decoded."""
    try:
        with sf.SoundFile(source) as f:
            if max_seconds is not None and f.frames > max_seconds * f.samplerate:
                raise AudioTooLongError(
                    f"the audio lasts {f.frames / f.samplerate:.0f} s; the limit is {max_seconds:.0f} s"
                )
            samples, sr = f.read(dtype="float32", always_2d=True), f.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        if isinstance(exc, AudioTooLongError):
            raise
        # libsndfile names the handle ("Error opening <_io.BytesIO ...>: "); keep the reason
        message = re.sub(r"^Error opening <[^>]*>: ", "", str(exc).split("\n")[0])
        raise AudioError(f"not readable as audio ({message})") from exc
    return prepare_waveform(samples, sr, target_sr)


def fix_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or trim to exactly ``length`` samples."""
    if samples.shape[-1] >= length:
        return samples[..., :length]
    return np.pad(samples, (0, length - samples.shape[-1]))
