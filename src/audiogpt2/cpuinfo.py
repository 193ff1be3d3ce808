"""What Linux says about the CPU in /proc/cpuinfo: its name, generation and feature flags.

Each fold records them (kernels, and so a model's last bits and its speed, differ between
CPUs), and precision ``auto`` picks bf16 from the flags. Where the file is absent (macOS,
Windows) the readers return empty values and callers fall back on their own probes.
"""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def first_processor(cpuinfo: str | Path = CPUINFO) -> dict[str, str]:
    """The fields of the first processor's block ({} where the file cannot be read)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    block = text.split("\n\n", 1)[0]
    pairs = (line.split(":", 1) for line in block.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def cpu_flags(cpuinfo: str | Path = CPUINFO) -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    return set(first_processor(cpuinfo).get("flags", "").split())


def cpu_model(cpuinfo: str | Path = CPUINFO) -> str:
    """The CPU's model name, then its x86 family and model numbers where Linux gives them;
    else "". A virtual machine often shows only "AMD EPYC", and two generations under that
    name differ in speed by more than half."""
    fields = first_processor(cpuinfo)
    name = fields.get("model name", "")
    if name and fields.get("cpu family") and fields.get("model"):
        name += f", family {fields['cpu family']} model {fields['model']}"
    return name
