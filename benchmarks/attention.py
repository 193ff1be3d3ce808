"""Attention kernels on CPU: transformers' "eager" attention (matrix products and softmax)
against PyTorch's fused scaled-dot-product kernel ("sdpa"), side by side in one run, for
the models this package trains: the ESC-50 recipe and the spec's recipe feeding MiniLM,
the spec's recipe feeding GPT-2-small-sized random weights, and mn04 feeding MiniLM.

Prints seconds per training step (forward, backward, AdamW; batch as each config trains)
and per single-clip prediction (forward only), under bf16 autocast where the CPU has it
natively (else fp32), and the ratio sdpa / eager. transformers loads these backbones with
"sdpa"; this script is the measurement that keeps it there on CPU (docs/speed.md).

    python benchmarks/attention.py [--steps 4] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from audiogpt2.config import Config, load_config
from audiogpt2.model import build_model
from audiogpt2.precision import Precision, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("eager", "sdpa")
CASES = (  # label, config file, backbone, pretrained backbone weights
    ("ESC-50 recipe + MiniLM (31 tokens)", "configs/esc50-16k.toml", "minilm", True),
    ("spec recipe + MiniLM (25 tokens)", "configs/seed.toml", "minilm", True),
    ("spec recipe + GPT-2 small, random (25 tokens)", "configs/seed.toml", "gpt2", False),
    ("mn04 + MiniLM (16 tokens)", "configs/mn04.toml", "minilm", True),
)


def case_config(path: str, backbone: str) -> Config:
    config = load_config(ROOT / path)
    config.model.backbone = backbone
    config.model.frontend_weights = ""  # random front-end weights: the timing is the same
    return config


def seconds(fn, steps: int) -> float:
    fn()  # warm-up: first-call allocation and kernel selection
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def time_case(config: Config, pretrained: bool, steps: int, rounds: int, precision: Precision) -> dict:
    """{kernel: (seconds per training step, seconds per one-clip prediction)}: one model,
    the kernels taking turns for ``rounds`` rounds (the median of each), so that load from
    other processes falls on both alike."""
    torch.manual_seed(0)
    model, _ = build_model(config.model, config.audio, pretrained, 50)
    batch = config.train.batch_size
    x = torch.randn(batch, 2, config.audio.n_frames, config.audio.n_bins)
    y = torch.randint(0, 50, (batch,))
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)

    def train_step() -> None:
        with precision.autocast("cpu"):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def predict() -> None:
        with torch.inference_mode(), precision.autocast("cpu"):
            model(x[:1])

    times: dict = {kernel: ([], []) for kernel in KERNELS}
    for _ in range(rounds):
        for kernel in KERNELS:
            model.backbone.set_attn_implementation(kernel)
            model.train()
            times[kernel][0].append(seconds(train_step, steps))
            model.eval()
            times[kernel][1].append(seconds(predict, steps * 5))
    return {k: (statistics.median(t), statistics.median(p)) for k, (t, p) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precision = resolve_precision("auto", "cpu")
    print(f"CPU, {args.threads} thread(s), {precision.name}; median of {args.rounds} rounds", end="")
    print(f" of {args.steps} steps, the kernels taking turns\n")
    print("| model | train step, eager | sdpa | sdpa / eager | predict 1 clip, eager | sdpa | sdpa / eager |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, path, backbone, pretrained in CASES:
        config = case_config(path, backbone)
        result = time_case(config, pretrained, args.steps, args.rounds, precision)
        (te, pe), (ts, ps) = result["eager"], result["sdpa"]
        print(
            f"| {label} | {te:.3f} s | {ts:.3f} s | {ts / te:.2f}x "
            f"| {pe * 1e3:.1f} ms | {ps * 1e3:.1f} ms | {ps / pe:.2f}x |"
        )


if __name__ == "__main__":
    main()
