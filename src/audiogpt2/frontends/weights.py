"""Released AudioSet MobileNet weights: by name (downloaded once, sha256 checked) or by path.

Weights are named, not pathed, as the authors' own loader does; this adds what it lacks: a
pinned sha256 per file, a local-path override and an offline error that says what to do.
Only releases whose sha256 is pinned here are fetched by name; any other file is taken from
a local path, still loaded as data (``weights_only``) and strictly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

import torch

from audiogpt2.errors import AudioGPT2Error
from audiogpt2.frontends.mobilenet import MobileNetV3

RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1"
# name -> (file name in the authors' release, sha256 of that file, width)
KNOWN = {
    "mn04_as": (
        "mn04_as_mAP_432.pt",
        "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c",
        0.4,
    ),
}


class WeightsError(AudioGPT2Error, RuntimeError):
    """Front-end weights that cannot be found, fetched or loaded; the message says how."""


def cache_dir() -> Path:
    base = os.environ.get("AUDIOGPT2_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(base) / "audiogpt2" / "weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(spec: str) -> Path:
    """A local file for ``spec``: an existing path, or a known release name (cached, else
    downloaded with progress, and its sha256 checked either way)."""
    if spec not in KNOWN:
        path = Path(spec).expanduser()
        if path.is_file():
            return path
        raise WeightsError(
            f"front-end weights {spec!r}: no such file, and not a known release name "
            f"({', '.join(KNOWN)}); pass a .pt file of EfficientAT's release or one of those names"
        )
    filename, digest, _ = KNOWN[spec]
    path = cache_dir() / filename
    if not path.is_file():
        download(f"{RELEASE}/{filename}", path)
    if sha256(path) != digest:
        raise WeightsError(
            f"{path} does not have the sha256 of the {spec} release ({digest[:12]}...): it is damaged "
            "or another file; delete it to download it again"
        )
    return path


def download(url: str, dest: Path) -> None:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("content-length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(
            f"could not download {url} ({exc}). Offline? Download that file on a machine with "
            f"network access and pass its path: --frontend-weights /path/to/{dest.name} "
            f"(or put it at {dest})"
        ) from None
    shutil.move(partial, dest)


def load_released(spec: str, width: float) -> dict[str, torch.Tensor]:
    """The released state dict for ``spec``, checked to load strictly into our network of
    that width (its key names and shapes are the contract)."""
    path = resolve_weights(spec)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
        raise WeightsError(f"{path} is not a PyTorch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a state dict of tensors")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise WeightsError(f"{path} holds non-finite weights: the file is damaged")
    classes = state.get("classifier.5.weight")
    network = MobileNetV3(width, num_classes=classes.shape[0] if classes is not None else 527)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{path} does not fit a width-{width} AudioSet MobileNet ({str(exc).splitlines()[0]}); "
            "pick the --frontend that matches the file (mn04 for mn04_as_mAP_432.pt)"
        ) from None
    return state
