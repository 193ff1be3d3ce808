"""Preprocessing: decode every clip once, compute its features and its waveform-augmented
variants on all CPU cores, and store them in one cache that training only reads.

The cache (``data/preprocessed/preprocessed.pt``) holds tensors plus plain metadata and is
loaded with ``weights_only=True``. It is keyed by a hash of the feature settings and the
files (names, labels, folds and a digest of their bytes), so a changed setting or file
rebuilds it, while a copied or moved dataset (new paths and modification times, same bytes)
keeps its cache, resumable checkpoints and evaluation.
Every variant row records the clip it came from, so its fold and source are the clip's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from audiogpt2.audio import AudioError, fix_length, load_audio
from audiogpt2.augment import waveform_variant
from audiogpt2.cache import CACHE_FORMAT, FeatureCache, load_cache
from audiogpt2.config import AudioConfig, AugmentConfig, Config
from audiogpt2.data import DatasetIndex, describe_folds, load_dataset
from audiogpt2.features import compute_features, limit_blas_threads
from audiogpt2.io import (
    UnsafeFileError,
    atomic_torch_save,
    display,
    ensure_replaceable,
    remove_torn_writes,
    waiting_lock,
)
from audiogpt2.progress import Progress

VARIANT_KEYS = ("variants", "noise_sigma", "pitch_semitones", "stretch_min", "stretch_max")


log = logging.getLogger(__name__)


def file_digest(path: Path) -> str:
    """A digest of the file's bytes (about 1 s for ESC-50's 880 MB)."""
    h = hashlib.sha1(usedforsecurity=False)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as exc:  # the build reports the clip and skips it; the key marks it
        return f"unreadable: {exc.strerror or exc}"
    return h.hexdigest()


def cache_key(index: DatasetIndex, audio: AudioConfig, aug: AugmentConfig, seed: int) -> str:
    files = []
    for clip in index.clips:
        files.append([clip.name, clip.label, clip.fold, clip.group, file_digest(clip.path)])
    audio_key = asdict(audio)
    for key, default in (("normalize", "clip"), ("win_length", 0)):
        if audio_key[key] == default:
            del audio_key[key]  # caches written before the key existed stay valid
    payload = {
        "format": CACHE_FORMAT,
        "audio": audio_key,
        # Only the settings of the stored waveform variants; the rest apply at training time.
        "augment": {k: getattr(aug, k) for k in VARIANT_KEYS},
        "seed": seed,
        "classes": index.classes,
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def clip_features(
    waveform: np.ndarray, name: str, audio: AudioConfig, aug: AugmentConfig, seed: int
) -> np.ndarray:
    """(1 + variants, n_frames, n_bins): the clip's features, then its augmented variants."""
    y = fix_length(waveform, audio.clip_samples)
    out = [compute_features(y, audio)]
    for v in range(1, aug.variants + 1):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8", "surrogateescape")), v])
        out.append(compute_features(waveform_variant(y, audio.sample_rate, aug, rng), audio))
    return np.stack(out)


def _work(job: tuple[int, str, str, AudioConfig, AugmentConfig, int]):
    i, path, name, audio, aug, seed = job
    try:
        return i, clip_features(load_audio(path, audio.sample_rate), name, audio, aug, seed), None
    except AudioError as exc:
        return i, None, str(exc)


def _die_with_parent() -> None:
    """On Linux, end this worker when the parent dies (e.g. killed): an orphaned worker
    would go on computing and print BrokenPipeError tracebacks when it reports back."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _init_worker() -> None:
    # One process per core already; nested BLAS/OpenMP threads would only oversubscribe.
    from threadpoolctl import threadpool_limits

    # Ctrl-C reaches the whole process group: the parent stops the pool and reports it
    # once; workers must not each print a KeyboardInterrupt/BrokenPipeError traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    torch.set_num_threads(1)
    threadpool_limits(1)


def build_cache(
    index: DatasetIndex,
    audio: AudioConfig,
    aug: AugmentConfig,
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
    key: str | None = None,
) -> FeatureCache:
    """Compute features for every clip in parallel; unreadable clips are reported, not fatal.
    ``key``: the cache key when the caller already computed it (it reads every file)."""
    workers = workers or os.cpu_count() or 1
    limit_blas_threads()  # bit-identical features in every process (see limit_blas_threads)
    n_var = 1 + aug.variants
    n = len(index.clips)
    feats = np.zeros((n, n_var, audio.n_frames, audio.n_bins), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    failed: list[list[str]] = []
    jobs = [(i, str(c.path), c.name, audio, aug, seed) for i, c in enumerate(index.clips)]
    bar = Progress(n, "preprocess", unit="clip", enabled=progress)
    if workers == 1:
        results = map(_work, jobs)
        pool = None
    else:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers, initializer=_init_worker)
        results = pool.imap_unordered(_work, jobs, chunksize=4)
    try:
        for i, arr, err in results:
            if err is None:
                feats[i], ok[i] = arr, True
            else:
                failed.append([index.clips[i].name, err])
                bar.write(f"skipped {display(index.clips[i].name)}: {err}")
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    kept = np.flatnonzero(ok)
    if len(kept) == 0:
        raise AudioError(f"none of the {n} clips under {index.root} could be read")
    rows = feats[kept].reshape(-1, audio.n_frames, audio.n_bins)
    return FeatureCache(
        features=torch.from_numpy(rows),
        row_clip=torch.arange(len(kept)).repeat_interleave(n_var),
        row_variant=torch.arange(n_var).repeat(len(kept)),
        labels=torch.as_tensor(index.labels[kept]),
        folds=torch.as_tensor(index.folds[kept]),
        groups=[index.clips[i].group for i in kept],
        names=[index.clips[i].name for i in kept],
        classes=list(index.classes),
        failed=sorted(failed),
        key=key or cache_key(index, audio, aug, seed),
    )


def audio_headers(index: DatasetIndex) -> tuple[list[int], list[float]]:
    """Sample rates and durations of the dataset's files, from their headers only."""
    import soundfile as sf

    rates, seconds = [], []
    for clip in index.clips:
        try:  # opened by Python: libsndfile cannot open names that are not UTF-8
            with open(clip.path, "rb") as handle:
                info = sf.info(handle)
        except (OSError, RuntimeError, ValueError, sf.LibsndfileError):
            continue  # unreadable files are reported (and skipped) by the build itself
        rates.append(info.samplerate)
        seconds.append(info.frames / info.samplerate if info.samplerate else 0.0)
    return rates, seconds


def fit_window(seconds: list[float], audio: AudioConfig) -> float:
    """The 95th percentile of the clip lengths, rounded up to whole frames (at least 4)."""
    hop = audio.hop_length / audio.sample_rate
    return float(max(4 * hop, np.ceil(round(np.percentile(seconds, 95) / hop, 6)) * hop))


def fit_clip_seconds(config: Config) -> None:
    """For a manifest or folder dataset, set ``audio.clip_seconds`` to a window that fits
    its clips, and say so; an ESC-50 layout keeps its 5 s. (An explicit setting is kept.)"""
    from audiogpt2.config import ConfigError

    index = load_dataset(config.data, seed=config.train.seed)
    if index.kind == "esc50":
        return
    _, seconds = audio_headers(index)
    if not seconds:
        return
    window = fit_window(seconds, config.audio)
    if abs(window - config.audio.clip_seconds) < 1e-9:
        return
    before = config.audio.clip_seconds
    config.audio.clip_seconds = round(window, 6)
    try:
        config.validate()
    except ConfigError:
        config.audio.clip_seconds = before  # e.g. too few frames for the CNN: keep the default
        return
    log.info(
        f"audio.clip_seconds = {config.audio.clip_seconds:g} s, fitted to these clips (the 95th "
        f"percentile of their lengths, in whole frames; default {before:g} s). "
        "Set --set audio.clip_seconds=... to choose another window."
    )


def check_sources(index: DatasetIndex, audio: AudioConfig, root: str) -> None:
    """Say what the files are, and warn where the settings would waste or invent input:
    upsampling (bands above the source's Nyquist frequency stay empty) and padding (short
    clips padded to a long window train a model on silence)."""
    rates, seconds = audio_headers(index)
    if not seconds:
        return
    median, p95 = float(np.median(seconds)), float(np.percentile(seconds, 95))
    log.info(
        f"Clip lengths: median {median:.2f} s, 95th percentile {p95:.2f} s, longest {max(seconds):.2f} s; "
        f"each is cut or padded to {audio.clip_seconds:g} s (audio.clip_seconds)"
    )
    if median < 0.5 * audio.clip_seconds:
        fit = fit_window(seconds, audio)
        log.warning(
            f"Warning: most of each {audio.clip_seconds:g} s input would be padding (median clip "
            f"{median:.2f} s), and a model trained on it may learn next to nothing. Use a window that "
            f"fits the data: --set audio.clip_seconds={fit:g} (the 95th percentile, in whole frames)."
        )
    warn_if_upsampled(max(rates), audio, root)


def warn_if_upsampled(rate: int, audio: AudioConfig, root: str) -> None:
    if rate >= audio.sample_rate:
        return
    nyquist = rate / 2
    empty = f"; mel bands from {nyquist:g} to {audio.fmax:g} Hz (audio.fmax) will be empty"
    log.warning(
        f"Warning: {root} holds {rate} Hz audio and the config asks for {audio.sample_rate} Hz: the "
        f"clips are upsampled and hold nothing above {nyquist:g} Hz{empty if audio.fmax > nyquist else ''}. "
        f"Label results with the source rate ('{Path(root).name} at {rate / 1000:g} kHz'); "
        f"--set audio.fmax={nyquist:g} keeps only bands that exist."
    )


def preprocess(config: Config, force: bool = False, progress: bool = True) -> FeatureCache:
    """Load the cache if it matches the dataset and settings, else rebuild and save it
    (one process at a time: the others wait, then load what it built)."""
    with waiting_lock(config.data.cache):
        return _load_or_build(config, force, progress)


def _load_or_build(config: Config, force: bool, progress: bool) -> FeatureCache:
    index = load_dataset(config.data, seed=config.train.seed)
    if progress:
        groups = [c.group for c in index.clips]
        log.info("Folds: " + "; ".join(describe_folds(index.labels, index.folds, groups)))
    key = cache_key(index, config.audio, config.augment, config.train.seed)
    path = Path(config.data.cache)
    remove_torn_writes(path)  # a run killed while writing the cache left its temp file
    if path.exists() and not force:
        try:
            cache = load_cache(path)
            if cache.key == key:
                if progress:
                    log.info(f"Using cached features {path} ({len(cache.labels)} clips)")
                return cache
            if progress:
                log.info(f"Settings or files changed since {path} was built; rebuilding it")
        except UnsafeFileError as exc:
            log.info(f"Ignoring unusable cache: {exc}")
    # Before hours of work, not after: never replace a file that is not a cache of ours.
    ensure_replaceable(path, CACHE_FORMAT, "feature cache")
    check_sources(index, config.audio, config.data.root)
    if progress:
        log.info(
            f"Preprocessing {len(index.clips)} clips ({config.audio.features}, "
            f"{config.augment.variants} augmented variants each) into {path}"
        )
    cache = build_cache(
        index, config.audio, config.augment, config.train.seed, config.data.workers, progress, key
    )
    atomic_torch_save(cache.to_dict(), path, "feature cache")
    if progress:
        log.info(
            f"Saved {len(cache.features)} feature rows ({len(cache.labels)} clips x "
            f"{1 + config.augment.variants} versions) to {path}"
        )
        if cache.failed:
            log.info(f"{len(cache.failed)} of {len(index.clips)} clips skipped as unreadable")
    return cache
