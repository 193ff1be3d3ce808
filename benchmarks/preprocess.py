"""Preprocessing throughput on a real dataset, against a plain sequential librosa loop, and
where one clip's time goes.

Prints clips per second of ``audiogpt2``'s parallel preprocessing (features plus the
configured augmented variants) for every clip of the dataset, the same for a plain
sequential loop (librosa.load, librosa.feature.mfcc, librosa.effects.time_stretch and
pitch_shift) over a sample of clips, their ratio, and the extrapolated time of a
2000-clip ESC-50-sized job.

    python benchmarks/preprocess.py data/ESC-10 [--subset esc10] [--sample 40]
"""

from __future__ import annotations

import argparse
import os
import time
from unittest import mock

import librosa
import numpy as np

from audiogpt2 import augment
from audiogpt2.audio import load_audio
from audiogpt2.augment import waveform_variant
from audiogpt2.config import Config, apply_overrides
from audiogpt2.data import load_dataset
from audiogpt2.features import compute_features, limit_blas_threads
from audiogpt2.preprocess import build_cache


def plain_loop(paths: list, config: Config) -> None:
    a, g = config.audio, config.augment
    rng = np.random.default_rng(0)
    for path in paths:
        y, _ = librosa.load(path, sr=a.sample_rate, duration=a.clip_seconds)
        y = librosa.util.fix_length(y, size=a.clip_samples)
        versions = [y]
        for _ in range(g.variants):
            v = librosa.effects.time_stretch(y, rate=rng.uniform(g.stretch_min, g.stretch_max))
            v = librosa.effects.pitch_shift(v, sr=a.sample_rate, n_steps=rng.uniform(-2, 2))
            versions.append(
                librosa.util.fix_length(v + rng.normal(0, g.noise_sigma, len(v)), size=a.clip_samples)
            )
        for v in versions:
            librosa.feature.mfcc(
                y=v,
                sr=a.sample_rate,
                n_mfcc=a.n_mfcc,
                n_fft=a.n_fft,
                hop_length=a.hop_length,
                n_mels=a.n_mels,
            )


def librosa_stretch(y: np.ndarray, rate: float) -> np.ndarray:
    return librosa.effects.time_stretch(y, rate=rate)


def stages(paths: list, config: Config) -> dict[str, float]:
    """Seconds per clip of each stage of one clip's preprocessing, in one process: decode +
    resample, the features of every version, and the waveform variants (stretch + pitch
    shift + noise), the last with librosa's time_stretch too for comparison."""
    a, g = config.audio, config.augment
    rng = np.random.default_rng(0)
    limit_blas_threads()
    out = {"decode + resample": 0.0, "features (all versions)": 0.0, "variants": 0.0,
           "variants with librosa's time_stretch": 0.0}  # fmt: skip
    for path in paths:
        t0 = time.perf_counter()
        y = load_audio(path, a.sample_rate)
        t1 = time.perf_counter()
        versions = [waveform_variant(y, a.sample_rate, g, rng) for _ in range(g.variants)]
        t2 = time.perf_counter()
        for v in [y, *versions]:
            compute_features(v, a)
        t3 = time.perf_counter()
        with mock.patch.object(augment, "time_stretch", librosa_stretch):
            for _ in range(g.variants):
                waveform_variant(y, a.sample_rate, g, rng)
        t4 = time.perf_counter()
        for key, sec in zip(out, (t1 - t0, t3 - t2, t2 - t1, t4 - t3)):
            out[key] += sec / len(paths)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--subset", default="all")
    parser.add_argument("--sample", type=int, default=40, help="clips for the sequential loop")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    config = apply_overrides(Config(), {"data.root": args.root, "data.subset": args.subset})
    index = load_dataset(config.data)
    n, versions = len(index.clips), 1 + config.augment.variants

    t = time.perf_counter()
    build_cache(index, config.audio, config.augment, workers=args.workers, progress=False)
    ours = n / (time.perf_counter() - t)

    sample = [str(c.path) for c in index.clips[: args.sample]]
    plain_loop(sample[:2], config)  # warm-up (numba compilation in librosa)
    t = time.perf_counter()
    plain_loop(sample, config)
    plain = len(sample) / (time.perf_counter() - t)

    stages(sample[:2], config)  # warm-up
    per_clip = stages(sample, config)
    workers = args.workers or os.cpu_count()
    print(
        f"dataset: {n} clips, {versions} versions each (original + {versions - 1} variants); "
        f"{workers} worker processes"
    )
    print(f"audiogpt2 preprocess: {ours:.1f} clips/s ({n / ours:.1f} s for {n} clips)")
    print(f"plain sequential librosa loop: {plain:.1f} clips/s (measured on {len(sample)} clips)")
    print(f"speed-up: {ours / plain:.1f}x")
    print(f"one clip in one process, by stage (mean of {len(sample)} clips):")
    for key, sec in per_clip.items():
        print(f"  {key:40s} {sec * 1000:6.1f} ms")
    print(
        f"extrapolated 2000-clip ESC-50 job: {2000 / ours:.0f} s (target <= 30 s), "
        f"extrapolated from the {n} clips measured here"
    )


if __name__ == "__main__":
    main()
