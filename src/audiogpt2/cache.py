"""The feature cache: every clip's features (and augmented variants) in one file, with the
labels, folds and groups that splits and evaluation read."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiogpt2.io import UnsafeFileError, safe_torch_load

CACHE_FORMAT = "audiogpt2-cache-v1"


@dataclass
class FeatureCache:
    """Features of every clip and variant; ``rows_*`` select rows by clip index."""

    features: torch.Tensor  # (rows, n_frames, n_bins) float32
    row_clip: torch.Tensor  # (rows,) index into the clip arrays
    row_variant: torch.Tensor  # (rows,) 0 = original clip, k > 0 = k-th augmented variant
    labels: torch.Tensor  # (clips,)
    folds: torch.Tensor  # (clips,)
    groups: list[str]
    names: list[str]
    classes: list[str]
    failed: list[list[str]]  # [name, reason] of clips that could not be read
    key: str

    def rows_for(self, clip_indices: np.ndarray, with_variants: bool) -> np.ndarray:
        """Rows of the given clips: originals only, or originals plus their variants."""
        wanted = torch.zeros(len(self.labels), dtype=torch.bool)
        wanted[torch.as_tensor(clip_indices, dtype=torch.long)] = True
        mask = wanted[self.row_clip]
        if not with_variants:
            mask &= self.row_variant == 0
        return torch.nonzero(mask).flatten().numpy()

    def labels_of(self, rows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The class index of each feature row."""
        return self.labels[self.row_clip[torch.as_tensor(rows, dtype=torch.long)]]

    def to_dict(self) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, **asdict(self)}


def load_cache(path: str | Path) -> FeatureCache:
    data = safe_torch_load(path, "feature cache")
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise UnsafeFileError(f"{path} is not an audiogpt2 feature cache; delete it to rebuild")
    data.pop("format")
    fields = {f.name for f in dataclasses.fields(FeatureCache)}
    if set(data) != fields:
        raise UnsafeFileError(
            f"{path} is a feature cache of another audiogpt2 version (keys differ); delete it to rebuild"
        )
    return FeatureCache(**data)
