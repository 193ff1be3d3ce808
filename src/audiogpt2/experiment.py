"""Recipes over train/evaluate: one arm on one fold, and cross-validation over all folds.

Layout of a cross-validation experiment::

    runs/<name>/fold<k>/<arm>/best.pt          best checkpoint (picked on validation)
    runs/<name>/fold<k>/<arm>/best.last.pt     resumable last-epoch state
    runs/<name>/fold<k>/<arm>/best.history.json per-epoch curves
    runs/<name>/fold<k>/<arm>/metrics.json     test-fold metrics of best.pt
    runs/<name>/report.md, report.json, *.png  built by :mod:`audiogpt2.report`
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

from audiogpt2 import distributed
from audiogpt2.arms import ARMS
from audiogpt2.cache import FeatureCache
from audiogpt2.checkpoint import read_checkpoint_config
from audiogpt2.config import Config, DataConfig, PathsConfig, config_from_dict, separate_outputs
from audiogpt2.cpuinfo import cpu_flags, cpu_model
from audiogpt2.data import load_dataset
from audiogpt2.device import select_device
from audiogpt2.evaluate import evaluate_checkpoint, format_metrics, plot_confusion
from audiogpt2.io import LockedError, atomic_write_json, exclusive_lock
from audiogpt2.train import train_arm

log = logging.getLogger(__name__)


def hardware_info(device: Any) -> dict[str, Any]:
    import os
    import platform

    import torch

    info = {
        "device": str(device),
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    # the flags that decide the arithmetic (precision "auto") and its speed
    info["cpu_flags"] = " ".join(
        sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"})
    )
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_fold(
    config: Config,
    cache: FeatureCache,
    arm: str,
    fold: int,
    out_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    score_test: bool = True,
) -> dict[str, Any]:
    """Train ``arm`` with ``fold`` held out, then evaluate its best checkpoint on ``fold`` once
    (with ``score_test=False``, for recipe searches, the test fold is left unscored)."""
    out_dir = Path(out_dir)
    # a search's finished fold leaves validation.json (its record, no test score), which
    # also survives without its checkpoints (benchmarks/restore_runs.sh puts it back)
    metrics_path = out_dir / record_name(score_test)
    if resume and metrics_path.is_file():
        log.info(f"fold {fold} {arm}: already done ({metrics_path})")
        return json.loads(metrics_path.read_text())
    # Held through training and scoring (on rank 0 under torchrun): a second cv command on
    # this run skips the fold (LockedError) instead of resuming a finished, unscored one.
    with exclusive_lock(out_dir) if distributed.rank() == 0 else contextlib.nullcontext():
        if resume and metrics_path.is_file():  # scored by another command since the check above
            return json.loads(metrics_path.read_text())
        return _train_and_score(config, cache, arm, fold, out_dir, resume, progress, score_test)


def _train_and_score(
    config: Config,
    cache: FeatureCache,
    arm: str,
    fold: int,
    out_dir: Path,
    resume: bool,
    progress: bool,
    score_test: bool,
) -> dict[str, Any]:
    """run_fold's work, under its lock: train (or resume), score the test fold, write the record."""
    metrics_path = out_dir / record_name(score_test)
    config = copy.deepcopy(config)
    config.data.test_fold = fold
    result = train_arm(config, cache, arm, out_dir / "best.pt", resume=resume, progress=progress, lock=False)
    record = dict(
        fold=fold,
        best_epoch=result.best_epoch,
        best_val_acc=result.best_val_acc,
        best_val_loss=result.best_val_loss,
        epochs_run=len(result.history),
        # every epoch of every segment (a resumed run's earlier ones included)
        train_seconds=sum(h["seconds"] for h in result.history),
        hardware=hardware_info(select_device(config.train.device)),
    )
    if not score_test:
        log.info(
            f"fold {fold} {arm}: saved model's validation accuracy {result.best_val_acc:.4f} "
            f"(epoch {result.best_epoch}); test fold not scored (--validation-only)"
        )
        atomic_write_json(metrics_path, record)
        return record
    evaluated = time.time()
    metrics, _ = evaluate_checkpoint(result.best_checkpoint, cache, select_device(config.train.device))
    metrics.update(record, classes=cache.classes)
    metrics["train_seconds"] += time.time() - evaluated  # plus evaluation
    atomic_write_json(metrics_path, metrics)
    log.info(f"fold {fold} {format_metrics(ARMS[arm].title, metrics)}")
    return metrics


def run_cv(
    config: Config,
    cache: FeatureCache,
    out_dir: str | Path,
    arms: list[str],
    folds: list[int] | None = None,
    resume: bool = True,
    progress: bool = True,
    score_test: bool = True,
) -> Path:
    """Every fold (or the given ones) for every arm, then the report (or, with
    ``score_test=False``, a validation-only summary)."""
    from audiogpt2.config import write_config
    from audiogpt2.report import build_report, build_validation_summary

    out_dir = Path(out_dir)
    folds = folds or sorted(set(cache.folds.tolist()))
    write_config(config, out_dir)
    summary = out_dir / "validation.md"
    for fold in folds:
        for arm in arms:
            if not fold_record(out_dir, fold, arm, score_test).is_file():
                log.info(run_progress(out_dir, arms, folds, score_test, f"fold {fold} {arm}"))
            arm_dir = out_dir / f"fold{fold}" / arm
            try:
                run_fold(config, cache, arm, fold, arm_dir, resume, progress, score_test)
            except LockedError as exc:  # a second cv command on this run: the two share the work
                if distributed.world_size() > 1:
                    raise  # rank 0 alone would skip it while the other ranks train it
                log.info(f"fold {fold} {arm}: {exc.holder} is training it; skipped here")
        if not score_test:  # after every fold, so a part-done search can be published
            summary = build_validation_summary(out_dir)
    return build_report(out_dir) if score_test else summary


def record_name(score_test: bool) -> str:
    """A finished fold's record: metrics.json of a scored run, validation.json of a search's."""
    return "metrics.json" if score_test else "validation.json"


def fold_record(cv_dir: Path, fold: int, arm: str, score_test: bool) -> Path:
    return cv_dir / f"fold{fold}" / arm / record_name(score_test)


def run_progress(out_dir: Path, arms: list[str], folds: list[int], score_test: bool, starting: str) -> str:
    """Where a multi-hour cross-validation stands: runs done of all, and the time left at
    the mean training time of the finished ones (an estimate; a resumed run needs less)."""
    done = [
        json.loads(path.read_text())
        for fold in folds
        for arm in arms
        if (path := fold_record(out_dir, fold, arm, score_test)).is_file()
    ]
    total = len(folds) * len(arms)
    line = f"{out_dir.name}: {starting} is run {len(done) + 1} of {total}"
    seconds = [record["train_seconds"] for record in done if record.get("train_seconds")]
    if seconds:
        mean = sum(seconds) / len(seconds)
        left = _duration((total - len(done)) * mean)
        line += f"; about {left} left (finished runs took {_duration(mean)} each)"
    return line


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_seeds(
    config: Config,
    out_dir: str | Path,
    arms: list[str],
    seeds: list[int],
    folds: list[int] | None = None,
    resume: bool = True,
    progress: bool = True,
    score_test: bool = True,
) -> Path:
    """Repeated cross-validation: every fold under each seed into ``out_dir/seed<k>/``
    (resumable like ``run_cv``), then a report of the seed-to-seed spread."""
    from audiogpt2.preprocess import preprocess
    from audiogpt2.report import build_report, build_seed_report, build_validation_summary

    out_dir = Path(out_dir)
    for k, seed in enumerate(seeds, 1):
        seeded = copy.deepcopy(config)
        seeded.train.seed = seed
        # The seed also draws the waveform variants, so each seed has its own cache.
        cache_path = Path(config.data.cache)
        seeded.data.cache = str(cache_path.with_name(f"{cache_path.stem}-seed{seed}{cache_path.suffix}"))
        log.info(f"=== seed {seed} ({k} of {len(seeds)}) ===")
        seed_dir = out_dir / f"seed{seed}"
        if resume and seed_finished(seeded, seed_dir, arms, folds, score_test):
            # a rerun after an interruption reaches the unfinished seed without rebuilding
            # the features of the finished ones (minutes per seed on a full dataset)
            log.info(f"seed {seed}: every fold already done ({seed_dir}); not preprocessing it")
            last = build_report(seed_dir) if score_test else build_validation_summary(seed_dir)
            continue
        cache = preprocess(seeded, progress=progress)
        last = run_cv(seeded, cache, seed_dir, arms, folds, resume, progress, score_test)
    return build_seed_report(out_dir) if score_test else last


def seed_finished(
    config: Config, seed_dir: Path, arms: list[str], folds: list[int] | None, score_test: bool
) -> bool:
    """Whether every fold and arm under ``seed_dir`` has its record (the folds from the
    dataset's index, which is cheap to read, when none are given)."""
    if not folds:
        folds = sorted(set(load_dataset(config.data, seed=config.train.seed).folds.tolist()))
    return all(fold_record(seed_dir, fold, arm, score_test).is_file() for fold in folds for arm in arms)


def arm_checkpoint(config: Config, arm: str) -> Path:
    return Path(getattr(config.paths, ARMS[arm].checkpoint_key))


def train_arms(
    config: Config,
    cache: FeatureCache,
    arms: list[str],
    resume: bool = False,
    progress: bool = True,
) -> None:
    """The seed README's ``train.py``: each arm to its checkpoint path (models/best_model.pt, ...)."""
    for arm in arms:
        log.info(f"=== Training {ARMS[arm].title.lower()} ({arm}) ===")
        train_arm(config, cache, arm, arm_checkpoint(config, arm), resume=resume, progress=progress)


def checkpoint_config(config: Config, explicit: set[str], checkpoint: str | None, arms: list[str]) -> Config:
    """The config a checkpoint was trained with (data, features, classes), with every key
    in ``explicit`` taken from ``config``. Output paths follow the checkpoint's dataset.

    With no checkpoint, data or path given and no checkpoint at the default paths, the
    most recently trained one under the models folder is used (and named), so a bare
    ``evaluate`` after ``train --data D`` evaluates that run."""
    candidates = [Path(checkpoint)] if checkpoint else [arm_checkpoint(config, arm) for arm in arms]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None and not checkpoint and not any(k.startswith(("data.", "paths.")) for k in explicit):
        found = latest_checkpoint(PathsConfig(), arms)
        if found is not None:
            log.info(f"Using {found}, the most recently trained checkpoint (or pass --data or --checkpoint)")
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint at {', '.join(map(str, candidates))}; run `audiogpt2 train` first, "
            "or pass --checkpoint PATH"
        )
    saved = config_from_dict(read_checkpoint_config(found))
    # Where outputs go is the user's choice, never the file's: a cache path inside a checkpoint
    # could point anywhere (and the cache writer replaces what it finds there).
    saved.paths = PathsConfig()
    saved.data.cache = DataConfig().cache
    for key in explicit:
        section, _, name = key.partition(".")
        setattr(getattr(saved, section), name, copy.deepcopy(getattr(getattr(config, section), name)))
    return separate_outputs(saved, explicit).validate()


def latest_checkpoint(paths: PathsConfig, arms: list[str]) -> Path | None:
    """The newest arm checkpoint in the models folder or its per-dataset subfolders."""
    names = {Path(getattr(paths, ARMS[arm].checkpoint_key)).name for arm in arms}
    root = Path(paths.models)
    found = [p for name in names for p in [root / name, *root.glob(f"*/{name}")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def evaluate_one(config: Config, cache: FeatureCache, checkpoint: Path) -> dict[str, Any]:
    """Metrics, metrics JSON and confusion matrix of one checkpoint on its test fold."""

    device = select_device(config.train.device)
    metrics, info = evaluate_checkpoint(checkpoint, cache, device, precision=config.train.precision)
    notebooks = Path(config.paths.notebooks)
    stem = f"{info.arm}_{checkpoint.stem}"
    atomic_write_json(notebooks / f"metrics_{stem}.json", metrics)
    plot_confusion(
        metrics["confusion_matrix"], cache.classes, notebooks / f"confusion_matrix_{stem}.png",
        f"{checkpoint} (test fold {info.test_fold}, epoch {info.epoch})",
    )  # fmt: skip
    log.info(format_metrics(ARMS[info.arm].title, metrics))
    log.info(f"Metrics JSON and confusion matrix written to {notebooks}/ ({stem})")
    return metrics


def evaluate_arms(config: Config, cache: FeatureCache, arms: list[str]) -> dict[str, dict[str, Any]]:
    """The seed README's ``evaluate.py``: metrics lines, metrics JSON and confusion matrices."""

    _, _, device = distributed.init(select_device(config.train.device))  # under torchrun: shared
    results = {}
    notebooks = Path(config.paths.notebooks)
    for arm in arms:
        path = arm_checkpoint(config, arm)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint {path} for the {arm} arm; run `audiogpt2 train` first")
        metrics, info = evaluate_checkpoint(path, cache, device)
        results[arm] = metrics
        if not distributed.is_main():
            continue
        atomic_write_json(notebooks / f"metrics_{arm}.json", metrics)
        plot_confusion(
            metrics["confusion_matrix"],
            cache.classes,
            notebooks / f"confusion_matrix_{arm}.png",
            f"{ARMS[arm].title} (test fold {info.test_fold}, epoch {info.epoch})",
        )
        log.info(format_metrics(ARMS[arm].title, metrics))
    log.info(f"Metrics JSON and confusion matrices written to {notebooks}/")
    return results
