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
        y = librosa.effects.time_stretch(y, rate=ratio * stretch)
        # Resampling from sr/ratio to sr restores the pitch change as a frequency shift.
        y = resample(y, int(round(sample_rate / ratio)), sample_rate)
    y = y + rng.normal(0.0, cfg.noise_sigma, size=y.shape).astype(np.float32)
    return fix_length(y, n).astype(np.float32)


def spec_augment(feats: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A copy of (frames, bins) with one frequency mask (<= freq_mask bins) and one time
    mask (<= time_mask frames) set to 0, the mean of normalised features."""
    out = feats.copy()
    frames, bins = out.shape
    width = int(rng.integers(0, min(cfg.freq_mask, bins) + 1))
    start = int(rng.integers(0, bins - width + 1))
    out[:, start : start + width] = 0.0
    width = int(rng.integers(0, min(cfg.time_mask, frames) + 1))
    start = int(rng.integers(0, frames - width + 1))
    out[start : start + width, :] = 0.0
    return out
