"""Training one arm on one fold: the seed README's optimiser, unfreezing schedule, scheduler and
early stopping, with atomic best/last checkpoints and exact resume.

All randomness of an epoch (shuffling, SpecAugment masks, dropout) is derived from
``(seed, epoch)``, so a run resumed from its last completed epoch continues exactly as
the uninterrupted run would have, and two runs with one seed give identical metrics.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from audiogpt2 import distributed
from audiogpt2.arms import ARM_NAMES, ARMS
from audiogpt2.augment import mixup, random_shift
from audiogpt2.cache import FeatureCache
from audiogpt2.checkpoint import Checkpoint, read_checkpoint_config
from audiogpt2.config import AugmentConfig, Config, TrainConfig, write_config
from audiogpt2.data import split_clips, split_record
from audiogpt2.device import select_device
from audiogpt2.errors import AudioGPT2Error
from audiogpt2.features import model_input
from audiogpt2.io import (
    atomic_torch_save,
    atomic_write_json,
    exclusive_lock,
    remove_torn_writes,
    safe_torch_load,
)
from audiogpt2.model import AudioClassifier, backbone_blocks, build_model, load_weights
from audiogpt2.precision import Precision, resolve_precision
from audiogpt2.predict import predict_proba
from audiogpt2.progress import Progress

logger = logging.getLogger(__name__)


class TrainingSet(Dataset):
    """Rows of the feature cache as 2-channel inputs. Every epoch each row gets a fresh
    time shift, SpecAugment masks and, with mixup, a partner row and a lambda, all drawn
    from ``(seed, epoch, row)``, so a resumed run sees exactly the same inputs."""

    def __init__(self, cache: FeatureCache, rows: np.ndarray, aug: AugmentConfig, seed: int) -> None:
        self.features = cache.features
        self.rows = rows
        self.labels = cache.labels_of(rows)
        self.n_classes = len(cache.classes)
        self.aug = aug
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def _input(self, i: int, rng: np.random.Generator) -> np.ndarray:
        feats = random_shift(self.features[int(self.rows[i])].numpy(), self.aug, rng)
        return model_input(feats, self.aug, rng)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, int(self.rows[i])])
        x = self._input(i, rng)
        if not self.aug.mixup_alpha:
            return torch.from_numpy(x), self.labels[i]
        j = int(rng.integers(len(self.rows)))
        lam = float(rng.beta(self.aug.mixup_alpha, self.aug.mixup_alpha))
        x, target = mixup(
            x, self._input(j, rng), int(self.labels[i]), int(self.labels[j]), self.n_classes, lam
        )
        return torch.from_numpy(x), torch.from_numpy(target)


def configure_optimizer(model: AudioClassifier, config: Config) -> torch.optim.AdamW:
    """AdamW with two groups made once: backbone at lr_backbone, CNN/projection/head at
    lr_head. Frozen parameters sit in the backbone group with no gradient, so unfreezing
    only flips ``requires_grad`` and the optimizer and its state are never rebuilt."""
    t = config.train
    return make_adamw(param_groups(model, t), t.weight_decay, t.optimizer_impl)


def param_groups(model: AudioClassifier, t: TrainConfig) -> list[dict[str, Any]]:
    """The head group (CNN, projection, head) and, with a transformer, the backbone group."""
    groups = [{"params": model.head_parameters(), "lr": t.lr_head, "name": "head"}]
    if model.frontend_parameters():
        groups.append(
            {"params": model.frontend_parameters(), "lr": t.lr_frontend or t.lr_head, "name": "frontend"}
        )
    if model.backbone is not None:
        groups.append({"params": model.backbone_parameters(), "lr": t.lr_backbone, "name": "backbone"})
    return groups


def make_adamw(groups: list[dict[str, Any]], weight_decay: float, impl: str) -> torch.optim.AdamW:
    """AdamW in the requested implementation; "auto" is fused where the torch build and
    device support it (CPU since torch 2.4), torch's default otherwise. All compute the
    same update; they differ only in float rounding."""
    if impl in ("auto", "fused"):
        try:
            return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):
            if impl == "fused":
                raise
    foreach = {"foreach": True, "loop": False}.get(impl)  # None: torch's default
    return torch.optim.AdamW(groups, weight_decay=weight_decay, foreach=foreach)


def blocks_trainable_at(epoch: int, schedule: dict[int, int]) -> list[int]:
    """Blocks unfrozen by the start of ``epoch`` (1-based)."""
    return sorted(block for start, block in schedule.items() if start <= epoch)


def apply_freezing(model: AudioClassifier, epoch: int, arm: str, config: Config) -> list[int]:
    """Set ``requires_grad`` for ``epoch``; returns the trainable block indices."""
    if model.backbone is None:
        return []
    n_blocks = len(backbone_blocks(model.backbone))
    if not ARMS[arm].pretrained and config.train.baseline_trainable == "all":
        model.unfreeze_all()
        return list(range(n_blocks))
    model.freeze_backbone()
    blocks = [b for b in blocks_trainable_at(epoch, config.train.unfreeze_schedule()) if b < n_blocks]
    for b in blocks:
        model.unfreeze_block(b)
    return blocks


class TrainingError(AudioGPT2Error, RuntimeError):
    """Training cannot go on (a diverged loss, a checkpoint that does not fit this run)."""


@dataclass
class TrainResult:
    best_checkpoint: Path
    best_epoch: int
    best_val_acc: float | None  # None: trained without a validation set (data.val_fraction = 0)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float | None = float("inf")


@dataclass
class TrainState:
    """Where a run stands after ``epoch`` completed epochs; saved in ``*.last.pt`` and
    restored from it, so a resumed run continues exactly."""

    epoch: int = 0
    best_val_acc: float | None = -1.0
    best_val_loss: float | None = float("inf")
    best_epoch: int = 0
    stale: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    averaged: int = 0  # epochs in the weight average so far (train.average_epochs)

    def update(self, record: dict[str, Any]) -> bool:
        """Record one epoch's results; True when validation accuracy improved (never
        without a validation set, which also never stops early)."""
        self.epoch = record["epoch"]
        self.history.append(record)
        if record["val_acc"] is None:
            return False
        improved = record["val_acc"] > self.best_val_acc
        if improved:
            self.best_val_acc, self.best_val_loss = record["val_acc"], record["val_loss"]
            self.best_epoch, self.stale = self.epoch, 0
        else:
            self.stale += 1
        return improved

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        # fields added since an older checkpoint was written keep their defaults
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def _silent(*_: Any) -> None:
    pass


def checkpoint_paths(best: Path) -> tuple[Path, Path]:
    """(last-epoch checkpoint, history JSON) stored beside ``best``."""
    return best.with_name(best.stem + ".last.pt"), best.with_name(best.stem + ".history.json")


def average_record_path(best: Path) -> Path:
    """Validation scores of the weight-averaged model (train.average_epochs), beside ``best``."""
    return best.with_name(best.stem + ".average.json")


def make_scheduler(optimizer: torch.optim.Optimizer, t: TrainConfig, steps_per_epoch: int) -> Any:
    """ReduceLROnPlateau on validation accuracy (stepped per epoch), or linear warm-up then
    cosine decay to 0 (stepped per batch), scaling both parameter groups alike."""
    if t.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", patience=t.plateau_patience, factor=t.plateau_factor
        )
    total = max(1, t.epochs * steps_per_epoch)
    warmup = min(total - 1, int(round(t.warmup_epochs * steps_per_epoch)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(cosine_factor, warmup, total))


def cosine_factor(warmup: int, total: int, step: int) -> float:
    """The share of the base learning rate at ``step`` (0-based: the step about to run)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class Run:
    """What one arm's training needs at every epoch, built once."""

    model: AudioClassifier
    forward: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loader: DataLoader
    device: torch.device
    world: int
    rank: int
    arm: str
    val_rows: np.ndarray  # validation clips' feature rows (originals only)
    header: dict[str, Any]  # what every checkpoint of this arm carries besides its weights
    precision: Precision = Precision("fp32", "default")
    compile: bool = False
    wrapped: tuple[bool, ...] | None = None  # trainable set the current DDP wrapper covers
    average: dict[str, torch.Tensor] | None = None  # running mean of the weights (average_epochs)
    head_fired: torch.Tensor | None = None  # head hidden units with a gradient this epoch

    def note_head_units(self) -> None:
        """Mark the head's hidden units that got a gradient in this step. A unit whose ReLU
        is off for every clip gets none; when no unit gets one for a whole epoch, the head is
        dead (dying ReLU): nothing below it can learn, and the loss stays at ln(classes)."""
        if not isinstance(self.model.head, nn.Sequential):  # one linear layer: no ReLU to die
            return
        grad = self.model.head[0].weight.grad
        if grad is None:  # head frozen
            return
        fired = grad.abs().sum(1) > 0
        self.head_fired = fired if self.head_fired is None else self.head_fired | fired

    def add_to_average(self, state: TrainState) -> None:
        """Fold the current weights and BatchNorm statistics into the running mean."""
        now = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.average is None or state.averaged == 0:
            self.average = now
        else:
            for k, v in now.items():
                if v.is_floating_point():
                    self.average[k] += (v - self.average[k]) / (state.averaged + 1)
                else:  # counters such as BatchNorm's num_batches_tracked: the latest
                    self.average[k] = v
        state.averaged += 1

    def prepare_forward(self) -> None:
        """The training forward for the parameters that train this epoch, rebuilt only when
        that set changed (blocks unfroze): under torchrun a DistributedDataParallel wrapper
        over them; compiled when asked (compiling the wrapper lets DDP split the graph at its
        gradient buckets). A compiled graph is traced afresh, since some PyTorch versions
        kept the old graph, without gradients for the newly unfrozen blocks (seen on CUDA)."""
        if self.world == 1 and not self.compile:
            return
        key = distributed.trainable_key(self.model)
        if key == self.wrapped:
            return
        self.forward = self.model  # drop the old wrapper (and its gradient hooks) first
        if self.compile:
            torch.compiler.reset()
        inner = distributed.wrap(self.model, self.device) if self.world > 1 else self.model
        self.forward = torch.compile(inner) if self.compile else inner
        self.wrapped = key


def train_one_epoch(run: Run, config: Config, epoch: int, desc: str, progress: bool) -> tuple[float, float]:
    """One pass over the training rows; returns (mean loss, accuracy) over all ranks."""
    t = config.train
    model, optimizer, device = run.model, run.optimizer, run.device
    loss_fn = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    per_step = t.schedule == "cosine"
    run.loader.sampler.set_epoch(epoch)
    run.loader.dataset.epoch = epoch
    torch.manual_seed(t.seed * 100_003 + epoch)  # dropout, reproducible per epoch
    model.train()
    run.head_fired = None
    total_loss, correct, seen = 0.0, 0, 0
    bar = Progress(len(run.loader), desc, unit="batch", enabled=progress and run.rank == 0, leave=False)
    for step, (x, y) in enumerate(run.loader):
        x, y = x.to(device), y.to(device)
        with run.precision.autocast(device):  # the forward pass only
            logits = run.forward(x)
        logits = logits.float()  # the loss (and its softmax) in fp32
        loss = loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss.item()} at epoch {epoch}, batch {step + 1}; "
                "stopped, and the checkpoints of the last completed epoch are kept. "
                "Lower the learning rates or check the data for extreme values."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP, gradients arrive averaged over the ranks
        if t.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        run.note_head_units()
        optimizer.step()
        if per_step:
            run.scheduler.step()
        hard = y.argmax(1) if y.ndim == 2 else y  # mixup's soft targets: the larger share
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == hard).sum().item()
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}")
        bar.update()
    bar.close()
    if run.world > 1:
        distributed.broadcast_buffers(model)  # every rank validates with rank 0's statistics
        total_loss, correct, seen = distributed.all_reduce_sum([total_loss, correct, seen])
    return total_loss / max(seen, 1), correct / max(seen, 1)


def validate(run: Run, config: Config, cache: FeatureCache) -> tuple[float | None, float | None]:
    """(accuracy, loss) on the validation clips, originals only, as evaluation sees them;
    (None, None) when there is no validation set."""
    if len(run.val_rows) == 0:
        return None, None

    def proba(features: torch.Tensor) -> np.ndarray:
        return predict_proba(
            run.model, features, config.augment, run.device, config.train.batch_size, run.precision
        )

    probs = distributed.sharded(proba, cache.features[run.val_rows])  # 1/N of the clips per rank
    labels = cache.labels_of(run.val_rows).numpy()
    acc = float((probs.argmax(1) == labels).mean())
    return acc, float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean())


def _checkpoint(run: Run, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """A loadable checkpoint of the model as it is now."""
    return {**run.header, "model": run.model.state_dict(), "epoch": epoch, "metrics": metrics}


def save_checkpoints(run: Run, state: TrainState, improved: bool, best_path: Path, log: Callable) -> None:
    """The best checkpoint when validation improved, the resumable last one and the curves."""
    last_path, history_path = checkpoint_paths(best_path)
    record = state.history[-1]
    checkpoint = _checkpoint(run, state.epoch, {"val_acc": record["val_acc"], "val_loss": record["val_loss"]})
    if improved:
        atomic_torch_save(checkpoint, best_path, "checkpoint")
        log(f"Best Model Updated: Acc={record['val_acc']:.4f}")  # never without validation
    last = {
        **checkpoint,
        **state.to_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "average": run.average,
    }
    atomic_torch_save(last, last_path, "checkpoint")
    atomic_write_json(history_path, state.history)


def check_unfreeze_table(model: AudioClassifier, schedule: dict[int, int], backbone: str) -> None:
    if model.backbone is None or not schedule:
        return
    n_blocks = len(backbone_blocks(model.backbone))
    if max(schedule.values()) >= n_blocks:
        raise TrainingError(
            f"train.unfreeze names block {max(schedule.values())}, but backbone {backbone} has "
            f"blocks 0-{n_blocks - 1}; fix the unfreeze table"
        )


def describe_run(run: Run, config: Config, cache: FeatureCache, split: Any) -> str:
    """The run's first log line: weights, size, device and precision, and the split."""
    val = f"val {len(split.val)}"
    if len(split.val):
        groups = len({cache.groups[i] for i in split.val})
        share = f"{config.data.val_fraction:.0%} of the training folds"
        val += f" ({groups} whole groups, stratified by class; {share})"
    return (
        f"[{run.arm}] backbone {config.model.backbone}: {run.header['backbone_source']}; "
        f"{sum(p.numel() for p in run.model.parameters()):,} parameters; device {run.device}, "
        f"{run.precision.name} ({run.precision.reason}); "
        f"train {len(split.train)} clips ({len(run.loader.dataset)} rows with variants), {val}, "
        f"test fold {config.data.test_fold} ({len(split.test)} clips, "
        "held out from training and model choice)"
    )


def resumed_precision(last_path: Path, requested: str) -> str:
    """A resumed run keeps the precision it started in unless one is asked for explicitly
    (runs saved before precision was recorded ran fp32)."""
    if requested != "auto":
        return requested
    try:
        saved = read_checkpoint_config(last_path).get("train", {})
    except (OSError, ValueError):
        return requested  # resume_state reports the unreadable file
    return "bf16" if saved.get("amp") else saved.get("precision", "fp32")


def resume_state(run: Run, last_path: Path, log: Callable) -> TrainState:
    """Restore model, optimizer and scheduler from ``last_path``; refuse a checkpoint of
    another arm, fold, dataset or architecture in one line."""
    saved, base = safe_torch_load(last_path, "checkpoint"), run.header
    for key, what in (("arm", "arm"), ("test_fold", "test fold"), ("classes", "classes")):
        if saved.get(key) != base[key]:
            raise TrainingError(
                f"{last_path} was trained with {what} {saved.get(key)!r}, not this run's "
                f"{base[key]!r}: not resumable. Use another output path, or delete it to start over."
            )
    if saved.get("data_key") != base["data_key"]:
        raise TrainingError(
            f"{last_path} was trained on other audio files or feature settings than this run's "
            "feature cache: not resumable. Resume with the config it was trained with (its "
            "config.toml), use another output path, or delete it to start over."
        )
    try:
        load_weights(run.model, saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        average = saved.get("average")  # saved from wherever it trained: onto this run's device
        run.average = {k: v.to(run.device) for k, v in average.items()} if average else None
    except (RuntimeError, ValueError, KeyError) as exc:
        raise TrainingError(
            f"{last_path} holds another architecture or optimizer layout ({str(exc).splitlines()[0]}); "
            "not resumable with these settings. Use another output path, or delete it to start over."
        ) from exc
    log(f"Resuming {base['arm']} from {last_path} after epoch {saved['epoch']}")
    return TrainState.from_dict(saved)


DEAD_HEAD = (
    "Warning: the classifier head is dead: its hidden ReLU units were off for every "
    "training clip of this epoch, so no layer below it can learn and the loss stays at "
    "ln(number of classes). Lower --lr-head, set train.grad_clip (e.g. 5.0) or change the seed."
)


def head_units_active(run: Run) -> int | None:
    """How many head hidden units got a gradient this epoch (None: head frozen)."""
    return None if run.head_fired is None else int(run.head_fired.sum().item())


def _describe_epoch(record: dict[str, Any], epochs: int, history: list[dict[str, Any]]) -> str:
    # ETA from this run's own epochs (a resumed run's earlier epochs count too).
    left = (epochs - record["epoch"]) * float(np.mean([h["seconds"] for h in history[-5:]]))
    timing = f", {record['seconds']:.0f} s, ETA {left / 60:.0f} min" if record["epoch"] < epochs else ""
    lr = f"LR head={record['lr_head']:.2e}"
    if record["lr_backbone"] is not None:
        blocks = record["trainable_blocks"] or "none"
        lr += f", backbone={record['lr_backbone']:.2e} (blocks {blocks} trainable)"
    val = "" if record["val_acc"] is None else f"Val Acc={record['val_acc']:.4f}, "
    return (
        f"Epoch {record['epoch']}/{epochs}: Train Loss={record['train_loss']:.4f}, "
        f"Train Acc={record['train_acc']:.4f}, {val}{lr}{timing}"
    )


def train_arm(
    config: Config,
    cache: FeatureCache,
    arm: str,
    checkpoint: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = logger.info,
    lock: bool = True,
) -> TrainResult:
    """Train ``arm`` ("finetuned" or "baseline") with ``config.data.test_fold`` held out
    (``lock=False``: the caller holds the checkpoint folder's lock).

    The validation set (from the training folds) picks the best checkpoint, drives the
    scheduler and stops early (with data.val_fraction = 0 there is none: the saved model is
    the average of the last epochs); the test fold is not touched here.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; use one of {ARM_NAMES}")
    best_path = Path(checkpoint)
    config = copy.deepcopy(config)
    config.model.num_classes = len(cache.classes)  # the resolved config shows what ran
    asked, kept = config.train.precision, False
    if resume and checkpoint_paths(best_path)[0].is_file():
        config.train.precision = resumed_precision(checkpoint_paths(best_path)[0], asked)
        kept = asked == "auto"
    run, split = _setup(config, cache, arm)
    if kept:  # the log says why, not "asked for" a precision nobody named
        run.precision = dataclasses.replace(run.precision, reason="kept from the run it resumes (auto)")
    log = _silent if run.rank else log  # one voice: rank 0 prints and writes
    schedule = config.train.unfreeze_schedule()
    check_unfreeze_table(run.model, schedule, config.model.backbone)
    trains_all = not ARMS[arm].pretrained and config.train.baseline_trainable == "all"
    if run.model.backbone is not None and not trains_all and min(schedule, default=1) > config.train.epochs:
        log(
            f"Warning: {config.train.epochs} epoch(s) end before the first unfreeze (epoch "
            f"{min(schedule)} of {schedule}): no backbone block will train in this run"
        )
    # locked before resuming: a second run into this folder stops before it reads checkpoints
    # the first one is writing (cv's run_fold takes the lock itself, through scoring)
    with exclusive_lock(best_path.parent) if lock and run.rank == 0 else contextlib.nullcontext():
        last_path = checkpoint_paths(best_path)[0]
        state = TrainState()
        if resume and last_path.is_file():
            state = resume_state(run, last_path, log)
        elif resume:
            log(f"No {last_path} to resume from; starting {arm} from epoch 1")
        log(describe_run(run, config, cache, split))
        if run.rank == 0:
            write_config(config, best_path.parent)
            record = split_record(split, cache.names, cache.folds.numpy(), cache.groups)
            atomic_write_json(best_path.parent / "split.json", record)
            remove_torn_writes(best_path)
        _epochs(run, config, cache, state, best_path, progress, on_epoch_end, log)
        if config.train.average_epochs and state.averaged:
            save_average(run, config, cache, state, best_path, log)
    distributed.barrier()  # the checkpoints rank 0 wrote are complete for every rank
    return TrainResult(best_path, state.best_epoch, state.best_val_acc, state.history, state.best_val_loss)


def _epochs(
    run: Run,
    config: Config,
    cache: FeatureCache,
    state: TrainState,
    best_path: Path,
    progress: bool,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
    log: Callable[[str], None],
) -> None:
    """Epochs after ``state.epoch`` up to the last or an early stop; ``state`` is updated."""
    t = config.train
    for epoch in range(state.epoch + 1, t.epochs + 1):
        began = time.time()
        blocks = apply_freezing(run.model, epoch, run.arm, config)
        run.prepare_forward()
        lrs = {g["name"]: g["lr"] for g in run.optimizer.param_groups}  # as used this epoch
        train_loss, train_acc = train_one_epoch(run, config, epoch, f"{run.arm} epoch {epoch}", progress)
        val_acc, val_loss = validate(run, config, cache)
        if t.schedule == "plateau":
            run.scheduler.step(val_acc)
        record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                  "val_acc": val_acc, "lr_head": lrs["head"], "lr_backbone": lrs.get("backbone"),
                  "trainable_blocks": blocks, "seconds": time.time() - began,
                  "head_units_active": head_units_active(run)}  # fmt: skip
        improved = state.update(record)
        if t.average_epochs and epoch > t.epochs - t.average_epochs:
            run.add_to_average(state)
        log(_describe_epoch(record, t.epochs, state.history))
        if record["head_units_active"] == 0:
            log(DEAD_HEAD)
        if run.rank == 0:
            save_checkpoints(run, state, improved, best_path, log)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if state.stale >= t.early_stop_patience:
            log(f"Early stopping: no validation improvement for {state.stale} epochs")
            break


def save_average(
    run: Run, config: Config, cache: FeatureCache, state: TrainState, best_path: Path, log: Callable
) -> None:
    """Replace the best checkpoint by the weight average of the last epochs, scored on the
    validation set for the record (it was not chosen by it)."""
    last_epochs = f"{state.epoch - state.averaged + 1}-{state.epoch}"
    trained = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.model.load_state_dict(run.average)
    val_acc, val_loss = validate(run, config, cache)
    if run.rank == 0:
        metrics = {"val_acc": val_acc, "val_loss": val_loss, "averaged_epochs": last_epochs}
        checkpoint = _checkpoint(run, state.epoch, metrics)
        atomic_torch_save(checkpoint, best_path, "checkpoint")
        atomic_write_json(average_record_path(best_path), checkpoint["metrics"])
    run.model.load_state_dict(trained)  # the model object stays the last epoch's, as resumed
    state.best_epoch, state.best_val_acc, state.best_val_loss = state.epoch, val_acc, val_loss
    scores = "no validation set" if val_acc is None else f"Val Acc={val_acc:.4f}, Val Loss={val_loss:.4f}"
    log(f"Saved the average of epochs {last_epochs}: {scores}")


def split_of(config: Config, cache: FeatureCache) -> Any:
    """The run's train / validation / test split of ``cache``'s clips: whole groups,
    stratified by class, drawn with ``train.seed`` (the same draw every time)."""
    return split_clips(
        cache.labels.numpy(), cache.folds.numpy(), cache.groups, config.data.test_fold,
        config.data.val_fraction, config.train.seed,
    )  # fmt: skip


def _setup(config: Config, cache: FeatureCache, arm: str) -> tuple[Run, Any]:
    """The model, optimizer, scheduler, loader and checkpoint fields of one arm, and its split."""
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    rank, world, device = distributed.init(select_device(t.device))
    precision = resolve_precision("bf16" if t.amp else t.precision, device)
    t.precision, t.amp = precision.name, False  # the run's config stores what ran
    split = split_of(config, cache)
    # Variants are used for training clips only: no copy of a held-out clip is trained on.
    train_rows = cache.rows_for(split.train, with_variants=True)
    val_rows = cache.rows_for(split.val, with_variants=False)
    train_set = TrainingSet(cache, train_rows, config.augment, t.seed)
    torch.manual_seed(t.seed)
    model, backbone = build_model(config.model, config.audio, ARMS[arm].pretrained, config.model.num_classes)
    if world > 1 and t.sync_batchnorm:
        model = distributed.convert_sync_batchnorm(model, device)
    model.to(device)
    optimizer = configure_optimizer(model, config)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=t.seed)
    loader = DataLoader(train_set, batch_size=t.batch_size, sampler=sampler)
    scheduler = make_scheduler(optimizer, t, len(loader))
    header = Checkpoint(
        config=config,
        arm=arm,
        classes=list(cache.classes),
        test_fold=config.data.test_fold,
        backbone=config.model.backbone,
        backbone_source=backbone.source,
        backbone_config=backbone.config_json,
        data_key=cache.key,
    ).header()
    # Evaluation and checkpoints use `model` itself; only the training step runs compiled
    # and, under torchrun, wrapped in DDP (both set by Run.prepare_forward, each epoch).
    run = Run(model, model, optimizer, scheduler, loader, device, world, rank, arm, val_rows, header)
    run.compile, run.precision = t.compile, precision
    return run, split
