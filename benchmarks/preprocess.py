"""Preprocessing throughput on a real dataset, against a plain sequential librosa loop.

Prints clips per second of ``audiogpt2``'s parallel preprocessing (features plus the
configured augmented variants) for every clip of the dataset, the same for a plain
sequential loop (librosa.load, librosa.feature.mfcc, librosa.effects.time_stretch and
pitch_shift) over a sample of clips, their ratio, and the extrapolated time of a
2000-clip ESC-50-sized job.

    python benchmarks/preprocess.py ../shared/data/ESC-10 [--subset esc10] [--sample 40]
"""

from __future__ import annotations

import argparse
import os
import time

import librosa
import numpy as np

from audiogpt2.config import Config, apply_overrides
from audiogpt2.data import load_dataset
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

    workers = args.workers or os.cpu_count()
    print(
        f"dataset: {n} clips, {versions} versions each (original + {versions - 1} variants); "
        f"{workers} worker processes"
    )
    print(f"audiogpt2 preprocess: {ours:.1f} clips/s ({n / ours:.1f} s for {n} clips)")
    print(f"plain sequential librosa loop: {plain:.1f} clips/s (measured on {len(sample)} clips)")
    print(f"speed-up: {ours / plain:.1f}x")
    print(
        f"extrapolated 2000-clip ESC-50 job: {2000 / ours:.0f} s (target < 60 s), "
        f"extrapolated from the {n} clips measured here"
    )


if __name__ == "__main__":
    main()
