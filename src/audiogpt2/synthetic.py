"""A small synthetic dataset in the exact ESC-50 layout, for the demo and the tests.

Ten sound classes (tones, chirps, noise bursts, clicks, modulated and harmonic sounds)
with random pitch, timing, loudness and background noise, so the task is learnable but
not trivial. Files are written at 22.05 kHz so the pipeline's resampling is exercised.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050
Generator = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _envelope(rng: np.random.Generator, t: np.ndarray, min_len: float = 0.5) -> np.ndarray:
    dur = t[-1] + 1 / SR
    length = rng.uniform(min(min_len, dur * 0.5), dur * 0.8)
    start = rng.uniform(0, dur - length)
    env = ((t >= start) & (t < start + length)).astype(np.float32)
    ramp = int(0.02 * SR)
    return np.convolve(env, np.ones(ramp) / ramp, mode="same")


def _tone(rng, t):
    return np.sin(2 * np.pi * rng.uniform(300, 1500) * t) * _envelope(rng, t)


def _chirp_up(rng, t):
    f0, f1 = rng.uniform(200, 600), rng.uniform(1500, 4000)
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))) * _envelope(rng, t, 2.0)


def _chirp_down(rng, t):
    f0, f1 = rng.uniform(1500, 4000), rng.uniform(200, 600)
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))) * _envelope(rng, t, 2.0)


def _noise_bursts(rng, t):
    out = np.zeros_like(t)
    for _ in range(rng.integers(2, 6)):
        start = rng.integers(0, len(t) - SR // 4)
        n = rng.integers(SR // 20, SR // 4)
        out[start : start + n] += rng.normal(0, 1, n) * np.hanning(n)
    return out


def _clicks(rng, t):
    out = np.zeros_like(t)
    period = int(SR / rng.uniform(2, 8))
    out[rng.integers(0, period) :: period] = 1.0
    return np.convolve(out, np.exp(-np.arange(200) / 20), mode="same")


def _am_tone(rng, t):
    carrier = np.sin(2 * np.pi * rng.uniform(400, 1200) * t)
    return carrier * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 12) * t)) * _envelope(rng, t, 2.0)


def _harmonic(rng, t):
    f0 = rng.uniform(100, 300)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 7))
    return tone * _envelope(rng, t)


def _fm_warble(rng, t):
    fc, dev, rate = rng.uniform(600, 1500), rng.uniform(50, 300), rng.uniform(2, 8)
    phase = 2 * np.pi * fc * t + dev / rate * np.sin(2 * np.pi * rate * t)
    return np.sin(phase) * _envelope(rng, t, 1.5)


def _lowpass_rumble(rng, t):
    noise = rng.normal(0, 1, len(t))
    k = int(rng.uniform(20, 60))
    return np.convolve(noise, np.ones(k) / k, mode="same") * 4 * _envelope(rng, t, 2.0)


def _dual_tone(rng, t):
    f = rng.uniform(400, 1000)
    beeps = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0).astype(float)
    return (np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * f * 1.5 * t)) * beeps * 0.5


CLASSES: dict[str, Generator] = {
    "tone": _tone,
    "chirp_up": _chirp_up,
    "chirp_down": _chirp_down,
    "noise_bursts": _noise_bursts,
    "clicks": _clicks,
    "am_tone": _am_tone,
    "harmonic": _harmonic,
    "fm_warble": _fm_warble,
    "rumble": _lowpass_rumble,
    "dual_tone": _dual_tone,
}


def synth_clip(label: str, rng: np.random.Generator, seconds: float = 5.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = CLASSES[label](rng, t)
    y = y / (np.abs(y).max() + 1e-9) * rng.uniform(0.2, 0.9)
    y = y + rng.normal(0, rng.uniform(0.01, 0.08), len(t))  # background noise, varied SNR
    return np.clip(y, -1, 1).astype(np.float32)


def make_dataset(
    root: str | Path,
    n_classes: int = 10,
    clips_per_class: int = 40,
    n_folds: int = 5,
    seconds: float = 5.0,
    seed: int = 0,
) -> Path:
    """Write ``root/audio/*.wav`` and ``root/meta/esc50.csv`` (ESC-50 columns) and return root.

    Two takes share each source recording (``src_file``) and its fold, as in ESC-50.
    """
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = list(CLASSES)[:n_classes]
    rows = []
    for target, label in enumerate(labels):
        for i in range(clips_per_class):
            fold = (i // 2) % n_folds + 1
            src = f"{target:02d}{i // 2:04d}"
            take = "AB"[i % 2]
            name = f"{fold}-{src}-{take}-{target}.wav"
            sf.write(root / "audio" / name, synth_clip(label, rng, seconds), SR, subtype="PCM_16")
            rows.append([name, fold, target, label, "True", src, take])
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    return root
