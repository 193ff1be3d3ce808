"""The experiment's arms, defined once: which weights each starts from and what it is called.

The seed README compares a pretrained backbone, gradually unfrozen (``finetuned``), with the same
architecture from random weights (``baseline``); "pretrained" is the only difference
(nanoGPT's ``init_from``). Everything else reads these records instead of spelling names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    pretrained: bool
    title: str  # as the seed README's output prints it
    checkpoint_key: str  # the [paths] key of its default checkpoint


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("finetuned", True, "Fine-tuned Model", "finetuned_checkpoint"),
        Arm("baseline", False, "Baseline Model", "baseline_checkpoint"),
    )
}
ARM_NAMES: tuple[str, ...] = tuple(ARMS)
