"""Which arithmetic the model's forward pass runs in: fp32, or bf16 autocast where the
hardware does bf16 natively.

Only the forward pass runs under autocast. Master weights, optimizer state and checkpoints
stay fp32; features, losses and softmax are computed in fp32 (the callers cast logits back
before either). ``auto`` picks bf16 only where it is native, because emulated bf16 is slower
than fp32 and buys nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from audiogpt2.config import PRECISIONS
from audiogpt2.cpuinfo import cpu_flags


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" or "bf16": what runs
    reason: str  # why, for the run log

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """The context the forward pass runs in (a no-op for fp32)."""
        if self.name != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` does bf16 arithmetic in hardware, and the evidence."""
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else "CUDA"
        return ok, f"{name} {'supports' if ok else 'does not support'} bf16"
    if device.type == "cpu":
        flags = cpu_flags()
        found = sorted(flags & {"avx512_bf16", "amx_bf16"})
        if not flags:  # not Linux: ask torch's own CPU probe
            probe = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
            found = ["avx512_bf16"] if probe() else []
        if found:
            return True, f"the CPU has {' and '.join(found)}"
        return False, "the CPU has neither avx512_bf16 nor amx_bf16 (emulated bf16 is slower than fp32)"
    return False, f"bf16 autocast is not used on {device.type}"


def resolve_precision(requested: str, device: torch.device | str) -> Precision:
    """``auto`` -> bf16 where native, else fp32; ``fp32`` and ``bf16`` as asked."""
    if requested not in PRECISIONS:
        from audiogpt2.config import ConfigError

        raise ConfigError(f"precision {requested!r}: use {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision("fp32", "asked for (--precision fp32)")
    native, why = native_bf16(device)
    if requested == "bf16":
        return Precision("bf16", "asked for (--precision bf16)" + ("" if native else f"; note: {why}"))
    return Precision("bf16" if native else "fp32", f"auto: {why}")


# Modules whose weights feed matrix products: cast once for bf16 inference, so autocast does
# not cast them again on every call (which made batch-1 bf16 slower than fp32).
MATMUL_MODULES = ("Linear", "Conv1d", "Conv2d", "Conv1D")


def prepare_for_inference(model: torch.nn.Module, precision: Precision) -> torch.nn.Module:
    """For bf16 prediction, store the weights of the matrix-product layers in bf16 (norms and
    everything else stay fp32, as autocast computes them). Training never calls this: its
    master weights stay fp32."""
    if precision.name == "bf16":
        for module in model.modules():
            if type(module).__name__ in MATMUL_MODULES:
                module.to(torch.bfloat16)
    return model
