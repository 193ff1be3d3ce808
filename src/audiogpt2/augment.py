"""Augmentation: waveform variants of training clips and SpecAugment for input channel 2."""

from __future__ import annotations

import librosa
import numpy as np

from audiogpt2.audio import fix_length, resample
from audiogpt2.config import AugmentConfig


def waveform_variant(
    waveform: np.ndarray, sample_rate: int, cfg: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """One random variant: time stretch, pitch shift and Gaussian noise, same length as input.

    Pitch shift and stretch share one phase-vocoder pass followed by one resampling
    (what ``librosa.effects.pitch_shift`` does internally), which halves the cost of
    applying the two effects one after the other.
    """
    n = waveform.shape[-1]
    stretch = rng.uniform(cfg.stretch_min, cfg.stretch_max)
    semitones = rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones)
    ratio = 2.0 ** (-semitones / 12.0)
    y = waveform.astype(np.float32)
    if n >= 2048 and (abs(stretch - 1) > 1e-6 or abs(semitones) > 1e-6):
        y = time_stretch(y, ratio * stretch)
        # Resampling from sr/ratio to sr restores the pitch change as a frequency shift.
        y = resample(y, int(round(sample_rate / ratio)), sample_rate)
    y = y + rng.normal(0.0, cfg.noise_sigma, size=y.shape).astype(np.float32)
    return fix_length(y, n).astype(np.float32)


STRETCH_N_FFT, STRETCH_HOP = 2048, 512  # librosa.effects.time_stretch's defaults


def time_stretch(y: np.ndarray, rate: float) -> np.ndarray:
    """``librosa.effects.time_stretch(y, rate=rate)`` with the phase vocoder computed for all
    frames at once instead of one frame at a time (faster; docs/speed.md, "Speed").

    Same STFT, magnitude interpolation and phase advance; the phase is accumulated in float64
    (librosa's float32 accumulator rounds by up to 0.01 rad per frame at high bins), so the
    output differs from librosa's by that rounding only. Length: ``round(len(y) / rate)``.
    """
    stft = librosa.stft(y, n_fft=STRETCH_N_FFT, hop_length=STRETCH_HOP)
    steps = np.arange(0, stft.shape[-1], rate, dtype=np.float64)
    advance = STRETCH_HOP * librosa.fft_frequencies(sr=2 * np.pi, n_fft=STRETCH_N_FFT)[:, None]
    padded = np.pad(stft, [(0, 0), (0, 2)])  # frames past the end count as silence
    mags, angles = np.abs(padded), np.angle(padded).astype(np.float64)
    left = steps.astype(np.int64)
    alpha = (steps - left).astype(np.float32)
    mag = (1.0 - alpha) * mags[:, left] + alpha * mags[:, left + 1]
    dphase = angles[:, left + 1] - angles[:, left] - advance
    dphase -= 2.0 * np.pi * np.round(dphase / (2.0 * np.pi))  # wrap to [-pi, pi]
    phase = np.empty_like(dphase)
    phase[:, :1] = angles[:, :1]
    np.cumsum(advance + dphase[:, :-1], axis=1, out=phase[:, 1:])
    phase[:, 1:] += angles[:, :1]
    stretched = librosa.util.phasor(phase.astype(np.float32), mag=mag)
    length = int(round(y.shape[-1] / rate))
    return librosa.istft(stretched, hop_length=STRETCH_HOP, n_fft=STRETCH_N_FFT, dtype=y.dtype, length=length)


def spec_augment(feats: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A copy of (frames, bins) with ``freq_masks`` frequency masks (each <= freq_mask bins)
    and ``time_masks`` time masks (each <= time_mask frames) set to 0, the mean of
    normalised features. The seed README's setting is one mask of each."""
    out = feats.copy()
    frames, bins = out.shape
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, min(cfg.freq_mask, bins) + 1))
        start = int(rng.integers(0, bins - width + 1))
        out[:, start : start + width] = 0.0
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, min(cfg.time_mask, frames) + 1))
        start = int(rng.integers(0, frames - width + 1))
        out[start : start + width, :] = 0.0
    return out


def max_shift(frames: int, cfg: AugmentConfig) -> int:
    """The largest time shift in frames, either way."""
    return int(round(cfg.time_shift * frames))


def time_shift(feats: np.ndarray, shift: int) -> np.ndarray:
    """(frames, bins) rolled by ``shift`` frames along time: same length, nothing lost.
    A circular shift suits ESC-style clips, whose events can start anywhere."""
    return np.roll(feats, shift, axis=0) if shift else feats


def random_shift(feats: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A fresh training-time shift of up to +-time_shift of the clip."""
    limit = max_shift(len(feats), cfg)
    return time_shift(feats, int(rng.integers(-limit, limit + 1))) if limit else feats


def tta_shifts(frames: int, cfg: AugmentConfig) -> list[int]:
    """The ``tta`` shifts averaged at test time: evenly spread over +-time_shift, always
    including 0 when tta is odd."""
    if cfg.tta <= 1:
        return [0]
    limit = max_shift(frames, cfg)
    return sorted({int(round(s)) for s in np.linspace(-limit, limit, cfg.tta)})


def mixup(
    x_a: np.ndarray, x_b: np.ndarray, y_a: int, y_b: int, n_classes: int, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mixup of two whole inputs (every channel with the one ``lam``) and their soft targets."""
    target = np.zeros(n_classes, dtype=np.float32)
    target[y_a] += lam
    target[y_b] += 1.0 - lam
    return (lam * x_a + (1.0 - lam) * x_b).astype(np.float32), target
