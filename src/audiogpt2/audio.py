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


# Sample rates a real recording has. Outside them, resampling costs far more than the
# file does (a 1 Hz WAV took 1.4 s of CPU per second of output) and means nothing.
MIN_RATE, MAX_RATE = 1000, 768_000
MAX_CHANNELS = 64
BLOCK = 1 << 16  # frames decoded at a time: memory stays one block of every channel


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,), averaging channels."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2 and samples.shape[1] > min(samples.shape[0], MAX_CHANNELS):
        raise AudioError(
            f"got an array of shape {samples.shape}, read as {samples.shape[0]} frames of "
            f"{samples.shape[1]} channels; pass (frames, channels), e.g. waveform.T for (channels, frames)"
        )
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
    ``target_sr``. The header's rate, channels and (with ``max_seconds``) duration are
    checked before anything is decoded; then blocks are decoded, mixed to mono and
    resampled as they come, so memory follows the mono output, not the file's channels."""
    try:
        with sf.SoundFile(source) as f:
            check_header(f.samplerate, f.channels, f.frames, max_seconds)
            return _stream_mono(f, target_sr, max_seconds)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        if isinstance(exc, AudioError):
            raise
        # libsndfile names the handle ("Error opening <_io.BytesIO ...>: "); keep the reason
        message = re.sub(r"^Error opening <[^>]*>: ", "", str(exc).split("\n")[0])
        raise AudioError(f"not readable as audio ({message})") from exc


def check_header(rate: int, channels: int, frames: int, max_seconds: float | None) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"its sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"it declares {channels} channels; at most {MAX_CHANNELS} are accepted")
    if max_seconds is not None and frames > max_seconds * rate:
        raise AudioTooLongError(f"the audio lasts {frames / rate:.0f} s; the limit is {max_seconds:.0f} s")


def _stream_mono(f: sf.SoundFile, target_sr: int, max_seconds: float | None) -> np.ndarray:
    stream = (
        None
        if f.samplerate == target_sr
        else soxr.ResampleStream(f.samplerate, target_sr, 1, "float32", "HQ")
    )
    limit = None if max_seconds is None else int(max_seconds * f.samplerate)
    out, seen = [], 0
    for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
        seen += len(block)
        if limit is not None and seen > limit:  # a header that understated the length
            raise AudioTooLongError(f"the audio lasts over {max_seconds:.0f} s, the limit")
        mono = block.mean(axis=1, dtype=np.float32)
        if not np.isfinite(mono).all():
            raise AudioError("the audio contains NaN or infinite sample values")
        out.append(stream.resample_chunk(mono) if stream else mono)
    if stream is not None:
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if seen == 0:
        raise AudioError("the file holds no samples")
    return np.concatenate(out).astype(np.float32, copy=False)


def fix_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or trim to exactly ``length`` samples."""
    if samples.shape[-1] >= length:
        return samples[..., :length]
    return np.pad(samples, (0, length - samples.shape[-1]))
