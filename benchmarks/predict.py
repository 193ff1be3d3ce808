"""End-to-end prediction latency with a GPT-2-small-sized backbone (12 layers, 768 wide).

Prints the cold start (checkpoint load), the median warm latency of one 5 s, 44.1 kHz
WAV file (decode, resample, features, model) and batched throughput in clips per second.

    python benchmarks/predict.py [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiogpt2.checkpoint import Checkpoint
from audiogpt2.config import Config
from audiogpt2.features import compute_features
from audiogpt2.io import atomic_torch_save
from audiogpt2.model import build_model
from audiogpt2.predict import Classifier, predict_proba


def write_checkpoint(path: Path) -> None:
    config = Config()
    model, backbone = build_model(config.model, config.audio, False, config.model.num_classes)
    info = Checkpoint(
        config=config,
        arm="baseline",
        classes=[f"class{i}" for i in range(50)],
        test_fold=5,
        backbone="gpt2",
        backbone_source=backbone.source,
        backbone_config=backbone.config_json,
    )
    atomic_torch_save({**info.header(), "model": model.state_dict()}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, wav = Path(tmp) / "model.pt", Path(tmp) / "clip.wav"
        write_checkpoint(ckpt)
        rng = np.random.default_rng(0)
        sf.write(wav, rng.uniform(-0.3, 0.3, 5 * 44100).astype(np.float32), 44100, subtype="PCM_16")

        t = time.perf_counter()
        clf = Classifier.from_checkpoint(ckpt)
        cold = time.perf_counter() - t
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"cold start (load checkpoint, {ckpt.stat().st_size / 1e6:.0f} MB): {cold:.2f} s")

        clf.predict_file(wav)  # warm-up
        times, stages = [], {"decode+resample": [], "features": [], "model": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            clf.predict_file(wav)
            times.append(time.perf_counter() - t)
        from audiogpt2.audio import load_audio

        for _ in range(args.repeats):
            t0 = time.perf_counter()
            y = load_audio(wav, 16000)
            t1 = time.perf_counter()
            f = compute_features(y, clf.config.audio)
            t2 = time.perf_counter()
            predict_proba(clf.model, f[None], clf.config.augment)
            t3 = time.perf_counter()
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
                stages[k].append(v)
        print(
            f"warm latency, one 5 s 44.1 kHz WAV: median {statistics.median(times) * 1000:.1f} ms "
            f"(target < 100 ms)"
        )
        print(
            "  stages (median): "
            + ", ".join(f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in stages.items())
        )

        feats = np.stack(
            [
                compute_features(rng.uniform(-0.3, 0.3, 80000).astype(np.float32), clf.config.audio)
                for _ in range(64)
            ]
        )
        for bs in (1, 16, 64):
            predict_proba(clf.model, feats[:bs], clf.config.augment, batch_size=bs)
            t = time.perf_counter()
            predict_proba(clf.model, feats, clf.config.augment, batch_size=bs)
            print(f"batched model throughput, batch {bs}: {64 / (time.perf_counter() - t):.0f} clips/s")


if __name__ == "__main__":
    main()
