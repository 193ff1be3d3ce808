"""Training-step throughput of the spec's model with a GPT-2-small-sized backbone.

Prints, for batch 16: FLOPs of one step (forward + backward) in the frozen phase (all
blocks frozen, epochs 1-4) and the unfrozen phase (blocks 0-2 trainable, epochs 15+),
seconds per step, achieved FLOP/s, the ratio to this machine's fp32 matrix-multiply peak
measured in the same run, the share of step time spent producing batches, and the
implied seconds per epoch at ESC-50 size (1600 training clips).

    python benchmarks/train_step.py [--steps 10] [--threads N] [--compile]
    python benchmarks/train_step.py --device cuda [--batch 16]

On a GPU (--device cuda) it times the step in fp32 and under bf16 autocast (what
`train --amp` does), side by side, against the GPU's bf16 matrix-multiply peak measured in
the same run (8192^3).

The single-process run times the same step side by side with AdamW one tensor at a time
(torch's CPU default, what train used before), foreach and fused; --compile adds a
compiled optimizer step and a compiled forward/backward.
    python benchmarks/train_step.py --nproc 2 [--steps 6]

--compile times the step under torch.compile (as `train --compile` runs it); FLOPs are
counted on the eager model, which does the same arithmetic.

--precision times one training step (AdamW fused, every parameter trainable) in fp32 and
under bf16 autocast, side by side in one run, for four models: CNN only, MiniLM-sized
(6 x 384), GPT-2-small-sized (12 x 768) and the mn04 front end with a pooled head. Each is
set against its own matrix-multiply peak, measured in the same run: fp32 against the fp32
GEMM peak, bf16 against the bf16 one.
It also gives seconds per ESC-50 epoch (1600 training clips x versions) in both.
    python benchmarks/train_step.py --precision [--steps 8] [--threads N]

--nproc N starts N gloo processes on this machine (1 thread each) and times, side by side
in one run, the same step with no gradient exchange (the compute alone), under
DistributedDataParallel as `train` runs it (bucketed all-reduce overlapped with the
backward pass), and with one blocking all-reduce per gradient tensor after the backward
pass (the hand-written scheme train used before, kept here as the reference). The
communication share of a step is (its time - compute alone) / its time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from audiogpt2.cache import FeatureCache
from audiogpt2.config import Config
from audiogpt2.model import build_model
from audiogpt2.train import TrainingSet, configure_optimizer, make_adamw, param_groups


def matmul_peak(n: int = 2048, repeats: int = 10, device: str = "cpu", dtype=torch.float32) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times)


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def fake_cache(rows: int, config: Config) -> FeatureCache:
    feats = torch.randn(rows, config.audio.n_frames, config.audio.n_bins)
    return FeatureCache(
        features=feats,
        row_clip=torch.arange(rows),
        row_variant=torch.zeros(rows, dtype=torch.long),
        labels=torch.randint(0, 50, (rows,)),
        folds=torch.ones(rows, dtype=torch.long),
        groups=[str(i) for i in range(rows)],
        names=[str(i) for i in range(rows)],
        classes=[str(i) for i in range(50)],
        failed=[],
        key="",
    )


def _model_and_optimizer() -> tuple:
    """The default model with a GPT-2-small-sized backbone, its optimizer, loss and batch."""
    config = Config()
    torch.manual_seed(0)
    model, _ = build_model(config.model, config.audio, False, config.model.num_classes)
    optimizer = configure_optimizer(model, config)
    return config, model, optimizer, torch.nn.CrossEntropyLoss(), config.train.batch_size


def _per_tensor_all_reduce(model: torch.nn.Module, world: int) -> None:
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def _rank_main(rank: int, world: int, steps: int, port: int) -> None:
    import os

    import torch.distributed as dist

    from audiogpt2 import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    config, model, optimizer, loss_fn, bs = _model_and_optimizer()
    x = torch.randn(bs, 2, config.audio.n_frames, config.audio.n_bins)
    y = torch.randint(0, 50, (bs,))

    def timed(forward, after_backward=None) -> float:
        times = []
        for i in range(steps + 1):
            dist.barrier()
            t = time.perf_counter()
            loss = loss_fn(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward:
                after_backward()
            optimizer.step()
            if i:  # the first step warms up
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    for phase, blocks in (("frozen (epochs 1-4)", []), ("unfrozen blocks 0-2 (epochs 15+)", [0, 1, 2])):
        model.freeze_backbone()
        for b in blocks:
            model.unfreeze_block(b)
        n_grads = sum(p.numel() for p in model.parameters() if p.requires_grad)
        local = timed(model)
        ddp = timed(distributed.wrap(model, torch.device("cpu")))
        manual = timed(model, lambda: _per_tensor_all_reduce(model, world))
        if rank == 0:
            print(f"\n[{phase}] {world} gloo processes x 1 thread, batch {bs} each, "
                  f"{n_grads / 1e6:.1f} M trainable parameters, median of {steps} steps")  # fmt: skip
            for name, sec in (("compute alone (no exchange)", local), ("DistributedDataParallel", ddp),
                              ("per-tensor all-reduce (reference)", manual)):  # fmt: skip
                share = max(0.0, (sec - local) / sec)
                print(f"  {name:36s} {sec * 1000:7.0f} ms/step   communication share {share:5.1%}")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nproc", type=int, default=1, help="gloo processes: data-parallel comparison")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="time the torch.compile'd step")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    parser.add_argument("--batch", type=int, default=0, help="batch size (default: the config's, 16)")
    parser.add_argument("--precision", action="store_true", help="fp32 against bf16 autocast, four models")
    args = parser.parse_args()
    if args.precision:
        if args.threads:
            torch.set_num_threads(args.threads)
        precision_table(args.steps, args.batch)
        return
    if args.nproc > 1:
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as sock:  # a free port for the rendezvous
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        print(f"torch {torch.__version__}")
        mp.spawn(_rank_main, args=(args.nproc, args.steps, port), nprocs=args.nproc)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    config, model, _, loss_fn, bs = _model_and_optimizer()
    bs = args.batch or bs
    gpu = torch.device(args.device).type == "cuda"

    cache = fake_cache(bs * (args.steps + 2), config)
    loader = DataLoader(TrainingSet(cache, np.arange(len(cache.labels)), config.augment, 0), batch_size=bs)
    t = time.perf_counter()
    batches = list(loader)
    load_s = (time.perf_counter() - t) / len(batches)
    model.to(args.device)
    batches = [(x.to(args.device), y.to(args.device)) for x, y in batches]

    if gpu:
        peak = matmul_peak(8192, device=args.device, dtype=torch.bfloat16)
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(args.device)}")
        print(f"bf16 matmul peak (8192^3, best of 10): {peak / 1e12:.1f} TFLOP/s")
    else:
        peak = matmul_peak()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU bf16: {cpu_bf16()}")
        print(f"fp32 matmul peak (2048^3, best of 10): {peak / 1e9:.1f} GFLOP/s")
    print(f"batch production (SpecAugment + collate): {load_s * 1000:.1f} ms per batch of {bs}")
    time_phases(args, config, model, loss_fn, batches, peak, bs, gpu)


def time_phases(args, config, model, loss_fn, batches, peak: float, bs: int, gpu: bool) -> None:
    """Both freezing phases' steps, each variant side by side."""
    for phase, blocks in (("frozen (epochs 1-4)", []), ("unfrozen blocks 0-2 (epochs 15+)", [0, 1, 2])):
        model.train()
        model.freeze_backbone()
        for b in blocks:
            model.unfreeze_block(b)
        flops = step_flops(model, loss_fn, batches[0])
        print(f"\n[{phase}] batch {bs}, {flops / 1e9:.1f} GFLOP per step (fwd+bwd), median of "
              f"{args.steps} steps, side by side")  # fmt: skip
        for name, forward, impl, compile_step, amp in variants(model, args.compile, gpu):
            optimizer = make_adamw(param_groups(model, config.train), config.train.weight_decay, impl)
            opt_step = torch.compile(optimizer.step) if compile_step else optimizer.step
            t = time.perf_counter()
            sec = timed_steps(forward, optimizer, opt_step, loss_fn, batches[1:], args.device, amp)
            warm = time.perf_counter() - t - sec * (len(batches) - 3)
            note = f"  (compile + warm-up {warm:.0f} s)" if compile_step or forward is not model else ""
            print(f"  {name:44s} {sec * 1000:6.0f} ms  {flops / sec / 1e9:6.1f} GFLOP/s "
                  f"= {flops / sec / peak:.2f} of peak{note}")  # fmt: skip
        steps = int(np.ceil(1600 * (1 + config.augment.variants) / bs))
        print(f"  ESC-50 epoch (1600 clips x {1 + config.augment.variants} versions): {steps} steps")


PRECISION_MODELS = {"CNN only": "none", "MiniLM (6 x 384)": "minilm", "GPT-2 small (12 x 768)": "gpt2",
                    "mn04 front end, pooled head (configs/mn04.toml)": "mn04"}  # fmt: skip


def precision_config(backbone: str) -> Config:
    """The default config with this backbone; "mn04": configs/mn04.toml's front end with
    random weights (the arithmetic of a step does not depend on them) and no transformer."""
    if backbone != "mn04":
        config = Config()
        config.model.backbone = backbone
        return config
    from audiogpt2.config import load_config

    root = Path(__file__).resolve().parents[1]
    overrides = {"model.backbone": "none", "model.frontend_weights": ""}
    return load_config(root / "configs" / "mn04.toml", overrides)


def precision_table(steps: int, batch: int) -> None:
    """fp32 and bf16-autocast training steps of four models, each against its own peak."""
    from audiogpt2.cpuinfo import cpu_flags

    peaks = {"fp32": matmul_peak(), "bf16": matmul_peak(dtype=torch.bfloat16)}
    flags = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f"})
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, CPU flags {', '.join(flags) or 'none'}")
    print(f"GEMM peak (2048^3, best of 10): fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")  # fmt: skip
    print("model | precision | ms/step | GFLOP/s | of own peak | speed-up | s per ESC-50 epoch")
    for title, backbone in PRECISION_MODELS.items():
        config = precision_config(backbone)
        bs = batch or config.train.batch_size
        torch.manual_seed(0)
        model, _ = build_model(config.model, config.audio, False, config.model.num_classes)
        model.train()
        model.unfreeze_all()
        cache = fake_cache(bs * (steps + 2), config)
        rows = np.arange(len(cache.labels))
        batches = list(DataLoader(TrainingSet(cache, rows, config.augment, 0), batch_size=bs))
        loss_fn = torch.nn.CrossEntropyLoss()
        flops = step_flops(model, loss_fn, batches[0])
        epoch_steps = int(np.ceil(1600 * (1 + config.augment.variants) / bs))
        fp32_sec = None
        for name in ("fp32", "bf16"):
            optimizer = make_adamw(param_groups(model, config.train), config.train.weight_decay, "fused")
            sec = timed_steps(model, optimizer, optimizer.step, loss_fn, batches[1:], amp=name == "bf16")
            fp32_sec = fp32_sec or sec
            share = flops / sec / peaks[name]
            print(f"{title} | {name} | {sec * 1000:.0f} | {flops / sec / 1e9:.0f} | {share:.2f} | "
                  f"{fp32_sec / sec:.2f}x | {sec * epoch_steps:.0f}")  # fmt: skip


def cpu_bf16() -> str:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); without it, bf16
    autocast is emulated and slower than fp32, so it is not measured."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return ", ".join(found) if found else "none (no avx512_bf16/amx_bf16)"


def variants(model: torch.nn.Module, compile_model: bool, gpu: bool = False) -> list[tuple]:
    """(name, forward, AdamW implementation, compile the optimizer step, bf16 autocast)."""
    if gpu:
        out = [
            ("fp32, AdamW fused", model, "fused", False, False),
            ("bf16 autocast (train --amp), AdamW fused", model, "fused", False, True),
        ]
    else:
        out = [
            ("eager, AdamW one tensor at a time (before)", model, "loop", False, False),
            ("eager, AdamW foreach", model, "foreach", False, False),
            ("eager, AdamW fused", model, "fused", False, False),
        ]
    if compile_model:
        out += [
            ("eager, AdamW foreach, compiled optimizer step", model, "foreach", True, gpu),
            ("compiled forward/backward, AdamW fused", torch.compile(model), "fused", False, gpu),
        ]
    return out


def step_flops(model: torch.nn.Module, loss_fn, batch) -> float:
    x, y = batch
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def timed_steps(forward, optimizer, opt_step, loss_fn, batches, device="cpu", amp=False) -> float:
    """Median seconds of one full training step; the first two steps warm up (and compile)."""
    times = []
    for i, (x, y) in enumerate(batches):
        sync(device)
        t = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        opt_step()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


if __name__ == "__main__":
    main()
