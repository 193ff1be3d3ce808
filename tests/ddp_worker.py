"""Run under ``torchrun --nproc_per_node 2``: trains one small arm three ways in one process
group and saves rank 0's final weights and per-epoch snapshots of backbone block 1.

  ddp     the package's DistributedDataParallel path
  manual  the same steps with the wrapper replaced by gradients averaged here, by hand
  syncbn  DDP with train.sync_batchnorm (global-batch BatchNorm statistics)

usage: python -m torch.distributed.run --nproc_per_node 2 ddp_worker.py CACHE BACKBONE OUT
"""

from __future__ import annotations

import re
import sys
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist

from audiogpt2 import distributed
from audiogpt2 import train as train_module
from audiogpt2.cache import load_cache
from audiogpt2.config import load_config
from audiogpt2.model import backbone_blocks
from audiogpt2.train import train_arm

BATCH = 4  # per rank; the single-process reference in the test uses 2 x BATCH


def config_for(cache: str, backbone: str, batch: int, sync_bn: bool = False):
    return load_config(
        overrides={
            "data.cache": cache,
            "data.test_fold": 5,
            "model.backbone": backbone,
            "train.epochs": 3,
            "train.batch_size": batch,
            "train.unfreeze": {"2": 0, "3": 1},
            "train.threads": 1,
            "train.device": "cpu",  # gloo processes, also where a GPU exists
            "train.sync_batchnorm": sync_bn,
            # torch's per-tensor AdamW: the comparisons are about gradients and BatchNorm
            # statistics, and the fused kernel's other rounding adds float noise of its own
            "train.optimizer_impl": "loop",
        }
    )


def bias_free_build(real_build):
    """``build_model`` with the conv biases that feed a BatchNorm frozen. Their true gradient
    is zero (BN subtracts the mean), so AdamW would turn float noise into lr-sized steps and
    two exact-in-theory runs would drift apart; frozen, the runs compare to float precision."""

    def build(*args, **kwargs):
        model, backbone = real_build(*args, **kwargs)
        for name, p in model.named_parameters():
            if re.fullmatch(r"cnn\.\d+\.0\.bias", name):
                p.requires_grad_(False)
        return model, backbone

    return build


def run(cache_path: str, backbone: str, out: Path, mode: str) -> None:
    cache = load_cache(cache_path)
    config = config_for(cache_path, backbone, BATCH, sync_bn=mode == "syncbn")
    held, snapshots = {}, []
    real_setup = train_module._setup

    def setup(*args, **kwargs):
        run_, split = real_setup(*args, **kwargs)
        held["model"] = run_.model
        if mode == "manual":  # the reference: every gradient averaged over the ranks here
            for p in run_.model.parameters():
                if p.requires_grad:  # all but the frozen biases (blocks freeze at epoch start)
                    p.register_post_accumulate_grad_hook(_average)
        return run_, split

    def on_epoch_end(epoch, record):
        block = backbone_blocks(held["model"].backbone)[1]
        snapshots.append({k: v.detach().clone() for k, v in block.state_dict().items()})

    unwrapped = mode == "manual"
    with (
        mock.patch.object(train_module, "_setup", setup),
        mock.patch.object(train_module, "build_model", bias_free_build(train_module.build_model)),
        mock.patch.object(distributed, "wrap", lambda model, device: model) if unwrapped else nullcontext(),
    ):
        train_arm(config, cache, "finetuned", out / mode / "best.pt", on_epoch_end=on_epoch_end)
    if dist.get_rank() == 0:
        torch.save({"final": held["model"].state_dict(), "block1": snapshots}, out / f"{mode}.pt")


def syncbn_layer(out: Path) -> None:
    """One global-batch BatchNorm step on 2 ranks x 4 samples against nn.BatchNorm2d on all 8:
    outputs, input and weight gradients, and running statistics (saved for the test)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5, 4, generator=gen) * 3 + 2
    w = torch.randn(8, 3, 5, 4, generator=gen)
    rank = dist.get_rank()
    ref = torch.nn.BatchNorm2d(3)
    one_layer = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    sync = distributed.convert_sync_batchnorm(one_layer, torch.device("cpu"))[0]
    xs, xr = x[4 * rank : 4 * rank + 4].clone().requires_grad_(True), x.clone().requires_grad_(True)
    ys, yr = sync(xs), ref(xr)
    (ys * w[4 * rank : 4 * rank + 4]).sum().backward()
    (yr * w).sum().backward()
    grads = torch.cat([sync.weight.grad, sync.bias.grad])
    dist.all_reduce(grads)  # each rank holds its share of the parameter gradient
    gathered = [torch.zeros_like(ys) for _ in range(2)], [torch.zeros_like(xs) for _ in range(2)]
    dist.all_gather(gathered[0], ys.detach())
    dist.all_gather(gathered[1], xs.grad)
    if rank == 0:
        diffs = {
            "output": (torch.cat(gathered[0]) - yr).abs().max(),
            "input grad": (torch.cat(gathered[1]) - xr.grad).abs().max(),
            "weight grad": (grads - torch.cat([ref.weight.grad, ref.bias.grad])).abs().max(),
            "running mean": (sync.running_mean - ref.running_mean).abs().max(),
            "running var": (sync.running_var - ref.running_var).abs().max(),
        }
        torch.save({k: float(v.detach()) for k, v in diffs.items()}, out / "syncbn_layer.pt")


def _average(p: torch.Tensor) -> None:
    dist.all_reduce(p.grad)
    p.grad.div_(dist.get_world_size())


if __name__ == "__main__":
    cache_arg, backbone_arg, out_arg = sys.argv[1:4]
    for m in ("ddp", "manual", "syncbn"):
        run(cache_arg, backbone_arg, Path(out_arg), m)
    if not dist.is_initialized():
        distributed.init(torch.device("cpu"))
    syncbn_layer(Path(out_arg))
