"""Data parallelism under ``torchrun``: process group, DistributedDataParallel wrapper,
BatchNorm policy and sharded evaluation.

Policy for BatchNorm statistics: by default DDP broadcasts rank 0's buffers before every
forward pass, and the epoch ends with one more broadcast, so every rank validates and
saves rank 0's running statistics. With ``train.sync_batchnorm`` the batch statistics are
computed over the global batch instead (``torch.nn.SyncBatchNorm`` on GPUs;
:class:`GlooSyncBatchNorm` on CPUs, where PyTorch's own supports no CPU tensors), which
makes N ranks of batch B train exactly like one process of batch N x B.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from audiogpt2.device import DeviceError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank under ``torchrun`` (0 when run alone), before the group is joined."""
    return int(os.environ.get("RANK", "0"))


def init(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this rank's device); joins the process group ``torchrun``
    describes (NCCL for CUDA devices, gloo otherwise). One process: (0, 1, device)."""
    world = world_size()
    if world == 1:
        return 0, 1, device
    if device.type == "cuda" and device.index is None:
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= gpus:
            raise DeviceError(
                f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', local_rank + 1)} processes on "
                f"this machine, but it has {gpus} CUDA GPU(s) and each process needs its own: "
                f"use --nproc_per_node {gpus}, or --device cpu for processes on the CPU"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(shutdown)
    return dist.get_rank(), world, device


def shutdown() -> None:
    """Leave the process group. Left to interpreter teardown, gloo's threads can be destroyed
    while joinable and abort the process (``terminate called without an active exception``)
    after every result was written; registered at exit by :func:`init`."""
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True outside ``torchrun`` and on rank 0: the one process that prints and writes."""
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (after rank 0 wrote checkpoints the others will read)."""
    if dist.is_initialized():
        dist.barrier()


def trainable_key(model: nn.Module) -> tuple[bool, ...]:
    """Which parameters train now; a change means the DDP wrapper must be rebuilt."""
    return tuple(p.requires_grad for p in model.parameters())


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """A DDP wrapper over the parameters that train now. DDP fixes its gradient buckets at
    construction, so a new wrapper is made whenever blocks unfreeze; the module, and the
    optimizer with its state, stay the same objects."""
    ids = [device.index] if device.type == "cuda" else None
    # DDP's default buffer policy: rank 0's buffers are broadcast before each forward.
    return DistributedDataParallel(model, device_ids=ids)


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's BatchNorm running statistics on every rank (end of each epoch)."""
    for buf in model.buffers():
        dist.broadcast(buf, 0)


def all_reduce_sum(values: list[float]) -> list[float]:
    if not dist.is_initialized():
        return values
    totals = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(totals)
    return totals.tolist()


def sharded(fn: Any, features: torch.Tensor | np.ndarray) -> np.ndarray:
    """``fn(features)`` computed on 1/N of the rows per rank and gathered in order, so
    every rank gets the same result a single process computes."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return fn(features)
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = fn(features[rank::world])
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, mine)
    out = np.zeros((len(features), *parts[0].shape[1:]), dtype=parts[0].dtype)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch of all ranks, for
    CPU process groups (gloo). The sums travel through a differentiable all-reduce, so
    the gradient is that of one process holding the whole batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        dims = (0, 2, 3)
        # Sums in float64: the variance comes from E[x^2] - E[x]^2, which in float32 loses
        # the digits that BatchNorm's own two-pass variance keeps.
        wide = x.double()
        count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float64, device=x.device)
        stats = dist_fn.all_reduce(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean64 = stats[:c] / n
        mean, var = mean64.to(x.dtype), (stats[c : 2 * c] / n - mean64 * mean64).to(x.dtype)
        n = n.to(x.dtype)
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
            self.num_batches_tracked.add_(1)
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d made global-batch: PyTorch's SyncBatchNorm on GPUs, the gloo
    version on CPUs. Parameters and buffers are moved over, not copied, so an optimizer
    built before still holds them."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine)
            sync.weight, sync.bias = child.weight, child.bias
            sync.running_mean, sync.running_var = child.running_mean, child.running_var
            sync.num_batches_tracked = child.num_batches_tracked
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model
