"""Training one arm on one fold: the spec's optimiser, unfreezing schedule, scheduler and
early stopping, with atomic best/last checkpoints and exact resume.

All randomness of an epoch (shuffling, SpecAugment masks, dropout) is derived from
``(seed, epoch)``, so a run resumed from its last completed epoch continues exactly as
the uninterrupted run would have, and two runs with one seed give identical metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from audiogpt2.config import AugmentConfig, Config, config_from_dict, write_config
from audiogpt2.data import split_clips
from audiogpt2.evaluate import predict_proba
from audiogpt2.features import model_input
from audiogpt2.io import atomic_torch_save, atomic_write_json, remove_torn_writes, safe_torch_load
from audiogpt2.model import AudioClassifier, backbone_blocks, build_model, load_weights
from audiogpt2.preprocess import FeatureCache

CHECKPOINT_FORMAT = "audiogpt2-checkpoint-v1"
ARMS = ("finetuned", "baseline")


def select_device(name: str = "auto") -> torch.device:
    """MPS (Apple Silicon), then CUDA, then CPU, unless ``name`` says otherwise."""
    if name != "auto":
        return torch.device(name)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


class TrainingSet(Dataset):
    """Rows of the feature cache as 2-channel inputs, with fresh SpecAugment masks per epoch."""

    def __init__(self, cache: FeatureCache, rows: np.ndarray, aug: AugmentConfig, seed: int) -> None:
        self.features = cache.features
        self.rows = rows
        self.labels = cache.labels[cache.row_clip[torch.as_tensor(rows)]]
        self.aug = aug
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = int(self.rows[i])
        rng = np.random.default_rng([self.seed, self.epoch, row])
        x = model_input(self.features[row].numpy(), self.aug, rng)
        return torch.from_numpy(x), self.labels[i]


def configure_optimizer(model: AudioClassifier, config: Config) -> torch.optim.AdamW:
    """AdamW with two groups made once: backbone at lr_backbone, CNN/projection/head at
    lr_head. Frozen parameters sit in the backbone group with no gradient, so unfreezing
    only flips ``requires_grad`` and the optimizer and its state are never rebuilt."""
    t = config.train
    groups = [{"params": model.head_parameters(), "lr": t.lr_head, "name": "head"}]
    if model.backbone is not None:
        groups.append({"params": model.backbone_parameters(), "lr": t.lr_backbone, "name": "backbone"})
    return torch.optim.AdamW(groups, weight_decay=t.weight_decay)


def blocks_trainable_at(epoch: int, schedule: dict[int, int]) -> list[int]:
    """Blocks unfrozen by the start of ``epoch`` (1-based)."""
    return sorted(block for start, block in schedule.items() if start <= epoch)


def apply_freezing(model: AudioClassifier, epoch: int, arm: str, config: Config) -> list[int]:
    """Set ``requires_grad`` for ``epoch``; returns the trainable block indices."""
    if model.backbone is None:
        return []
    n_blocks = len(backbone_blocks(model.backbone))
    if arm == "baseline" and config.train.baseline_trainable == "all":
        model.unfreeze_all()
        return list(range(n_blocks))
    model.freeze_backbone()
    blocks = [b for b in blocks_trainable_at(epoch, config.train.unfreeze_schedule()) if b < n_blocks]
    for b in blocks:
        model.unfreeze_block(b)
    return blocks


@dataclass
class TrainResult:
    best_checkpoint: Path
    best_epoch: int
    best_val_acc: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _sync_gradients(model: nn.Module, world: int) -> None:
    # Averaging gradients by hand (rather than wrapping in DDP) keeps data parallelism
    # correct while requires_grad changes at every unfreeze, which DDP does not allow.
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def _silent(*_: Any) -> None:
    pass


def checkpoint_paths(best: Path) -> tuple[Path, Path]:
    """(last-epoch checkpoint, history JSON) stored beside ``best``."""
    return best.with_name(best.stem + ".last.pt"), best.with_name(best.stem + ".history.json")


def _checkpoint(
    model: AudioClassifier,
    config: Config,
    arm: str,
    classes: list[str],
    backbone: Any,
    epoch: int,
    metrics: dict[str, Any],
    test_fold: int,
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "config": config.to_dict(),
        "arm": arm,
        "classes": list(classes),
        "backbone": config.model.backbone,
        "backbone_source": backbone.source,
        "backbone_config": backbone.config_json,
        "epoch": epoch,
        "metrics": metrics,
        "test_fold": test_fold,
    }


def train_arm(
    config: Config,
    cache: FeatureCache,
    arm: str,
    checkpoint: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``arm`` ("finetuned" or "baseline") with ``config.data.test_fold`` held out.

    The validation set (from the training folds) picks the best checkpoint, drives the
    scheduler and stops early; the test fold is not touched here.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; use one of {ARMS}")
    t = config.train
    rank, world = _distributed()
    if rank:
        log = _silent  # one voice: rank 0 prints and writes
    if t.threads:
        torch.set_num_threads(t.threads)
    device = select_device(t.device)
    best_path = Path(checkpoint)
    last_path, history_path = checkpoint_paths(best_path)

    split = split_clips(
        cache.labels.numpy(),
        cache.folds.numpy(),
        cache.groups,
        config.data.test_fold,
        config.data.val_fraction,
        t.seed,
    )
    # Variants are used for training clips only: no copy of a held-out clip is trained on.
    train_rows = cache.rows_for(split.train, with_variants=True)
    val_rows = cache.rows_for(split.val, with_variants=False)
    train_set = TrainingSet(cache, train_rows, config.augment, t.seed)

    torch.manual_seed(t.seed)
    model, backbone = build_model(config.model, config.audio, arm == "finetuned", len(cache.classes))
    model.to(device)
    # Evaluation and checkpoints use `model` itself; only the training step runs compiled.
    forward = torch.compile(model) if t.compile else model
    optimizer = configure_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", patience=t.plateau_patience, factor=t.plateau_factor
    )
    history: list[dict[str, Any]] = []
    best_val, best_epoch, stale, start = -1.0, 0, 0, 1
    if resume and last_path.is_file():
        state = safe_torch_load(last_path, "checkpoint")
        if state.get("arm") != arm or state.get("test_fold") != config.data.test_fold:
            raise ValueError(
                f"{last_path} belongs to arm {state.get('arm')!r}, test fold "
                f"{state.get('test_fold')}; not resumable as {arm!r}, fold {config.data.test_fold}"
            )
        load_weights(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        best_val, best_epoch, stale = state["best_val_acc"], state["best_epoch"], state["stale"]
        start = state["epoch"] + 1
        log(f"Resuming {arm} from {last_path} after epoch {state['epoch']}")
    elif resume:
        log(f"No {last_path} to resume from; starting {arm} from epoch 1")

    log(
        f"[{arm}] backbone {config.model.backbone}: {backbone.source}; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; device {device}; "
        f"train {len(split.train)} clips ({len(train_rows)} rows with variants), "
        f"val {len(split.val)}, test fold {config.data.test_fold} "
        f"({len(split.test)} clips, unused here)"
    )
    if rank == 0:
        write_config(config, best_path.parent)
        remove_torn_writes(best_path)
    loss_fn = nn.CrossEntropyLoss()
    use_amp = t.amp and device.type == "cuda"
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=t.seed)
    loader = DataLoader(train_set, batch_size=t.batch_size, sampler=sampler)

    for epoch in range(start, t.epochs + 1):
        began = time.time()
        blocks = apply_freezing(model, epoch, arm, config)
        sampler.set_epoch(epoch)
        train_set.epoch = epoch
        torch.manual_seed(t.seed * 100_003 + epoch)  # dropout, reproducible per epoch
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(
            loader,
            desc=f"{arm} epoch {epoch}",
            leave=False,
            disable=None if progress and rank == 0 else True,
        )
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = forward(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                _sync_gradients(model, world)
            optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}")
        if world > 1:
            for buf in model.buffers():  # BatchNorm statistics: rank 0's are kept
                dist.broadcast(buf, 0)
            totals = torch.tensor([total_loss, correct, seen], dtype=torch.float64)
            dist.all_reduce(totals)  # epoch metrics over all ranks' shards
            total_loss, correct, seen = totals[0].item(), int(totals[1]), int(totals[2])
        probs = predict_proba(model, cache.features[val_rows], config.augment, device, t.batch_size)
        val_labels = cache.labels[cache.row_clip[torch.as_tensor(val_rows)]].numpy()
        val_acc = float((probs.argmax(1) == val_labels).mean())
        val_loss = float(-np.log(probs[np.arange(len(val_labels)), val_labels] + 1e-12).mean())
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        scheduler.step(val_acc)
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr_head": lrs["head"],
            "lr_backbone": lrs.get("backbone"),
            "trainable_blocks": blocks,
            "seconds": time.time() - began,
        }
        history.append(record)
        log(
            f"Epoch {epoch}/{t.epochs}: Train Loss={record['train_loss']:.4f}, "
            f"Train Acc={record['train_acc']:.4f}, Val Acc={val_acc:.4f}, LR={lrs['head']:.6f}"
        )
        improved = val_acc > best_val
        if improved:
            best_val, best_epoch, stale = val_acc, epoch, 0
        else:
            stale += 1
        if rank == 0:
            state = _checkpoint(
                model,
                config,
                arm,
                cache.classes,
                backbone,
                epoch,
                {"val_acc": val_acc, "val_loss": val_loss},
                config.data.test_fold,
            )
            if improved:
                atomic_torch_save(state, best_path)
                log(f"Best Model Updated: Acc={val_acc:.4f}")
            last = dict(state)
            last.update(
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                history=history,
                best_val_acc=best_val,
                best_epoch=best_epoch,
                stale=stale,
            )
            atomic_torch_save(last, last_path)
            atomic_write_json(history_path, history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if stale >= t.early_stop_patience:
            log(f"Early stopping: no validation improvement for {stale} epochs")
            break
    return TrainResult(best_path, best_epoch, best_val, history)


def load_checkpoint(path: str | Path) -> tuple[AudioClassifier, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint, offline, without executing code."""
    from audiogpt2.io import UnsafeFileError
    from audiogpt2.model import backbone_from_config_json

    state = safe_torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UnsafeFileError(f"{path} is not an audiogpt2 checkpoint")
    config = config_from_dict(state["config"])
    module = backbone_from_config_json(state["backbone_config"])
    hidden = module.config.hidden_size if module is not None else config.model.cnn_only_hidden
    model = AudioClassifier(
        module,
        hidden,
        len(state["classes"]),
        config.audio,
        config.model.pooling,
        config.model.head_hidden,
    )
    load_weights(model, state["model"])
    model.eval()
    state["config_obj"] = config
    return model, state
