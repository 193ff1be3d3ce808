"""Device auto-detection: MPS (Apple Silicon), then CUDA, then CPU."""

from __future__ import annotations

import torch

from audiogpt2.errors import AudioGPT2Error


class DeviceError(AudioGPT2Error, RuntimeError):
    """A device that this machine or PyTorch build does not have."""


def select_device(name: str = "auto") -> torch.device:
    """MPS, then CUDA, then CPU, unless ``name`` says otherwise (checked to exist)."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name}: this PyTorch build sees no CUDA GPU ({torch.__version__}); "
            "use --device cpu or auto, or install a CUDA build of PyTorch"
        )
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "mps" and not mps:
        raise DeviceError("--device mps: Apple's Metal backend is not available; use --device cpu or auto")
    if name != "auto":
        return torch.device(name)
    if mps:
        return torch.device("mps")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
