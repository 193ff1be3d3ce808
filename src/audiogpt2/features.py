"""The one feature function: waveform -> normalised MFCC or log-mel (n_frames x n_bins)
-> 2-channel input.

``preprocess``, training and ``predict`` all call :func:`compute_features` and
:func:`model_input`, so features cannot drift between them.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import scipy.signal

from audiogpt2.audio import AudioError, fix_length
from audiogpt2.augment import spec_augment
from audiogpt2.config import AudioConfig, AugmentConfig

EPS = 1e-6


def compute_features(waveform: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Normalised MFCCs or log-mel bands of one clip, shape (n_frames, n_bins), float32.

    The clip is padded/trimmed to ``clip_samples`` and padded by (n_fft - hop) / 2 on
    both sides; with ``center=False`` this yields exactly ``n_frames`` frames that
    together span the whole clip. Raises AudioError when the result is not finite
    (e.g. float samples so large that their power overflows).
    """
    hop = cfg.hop_length
    y = fix_length(np.asarray(waveform, dtype=np.float32), cfg.clip_samples)
    if cfg.features == "efficientat":
        return _checked(efficientat_logmel(y, cfg).T[: cfg.n_frames])
    side = (cfg.n_fft - hop) // 2
    y = np.pad(y, (side, cfg.n_fft - hop - side))
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, as one clear error
        power = np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=hop, center=False)) ** 2
        log_mel = librosa.power_to_db(_mel_basis(cfg) @ power)
    if cfg.features == "mfcc":
        log_mel = librosa.feature.mfcc(S=log_mel, n_mfcc=cfg.n_mfcc)
    feats = _checked(log_mel.T[: cfg.n_frames])
    return normalize(feats) if cfg.normalize == "clip" else remove_level(feats)


def _checked(feats: np.ndarray) -> np.ndarray:
    if not np.isfinite(feats).all():
        raise AudioError(
            "its features are not finite numbers (sample values far outside [-1, 1]?); "
            "rescale the audio to [-1, 1]"
        )
    return feats.astype(np.float32)


def efficientat_logmel(y: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """(n_mels, frames) features as EfficientAT's AudioSet MobileNets were trained on them:
    pre-emphasis 0.97, centred STFT with a symmetric Hann window of ``win_length`` inside
    ``n_fft`` (reflect padding), power, Kaldi-style mel bands, log(x + 1e-5), (x + 4.5) / 5."""
    y = y[1:] - 0.97 * y[:-1]
    window = _symmetric_hann(cfg.win_length or cfg.n_fft)
    with np.errstate(over="ignore", invalid="ignore"):
        spectrum = librosa.stft(
            y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=len(window), window=window,
            center=True, pad_mode="reflect",
        )  # fmt: skip
        mel = (
            _kaldi_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax) @ np.abs(spectrum) ** 2
        )
        return (np.log(mel + 1e-5) + 4.5) / 5


@functools.lru_cache(maxsize=4)
def _symmetric_hann(length: int) -> np.ndarray:
    return scipy.signal.get_window("hann", length, fftbins=False).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _kaldi_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's mel filterbank: triangles on the mel scale 1127 ln(1 + f / 700), unnormalised,
    over the first n_fft / 2 bins (the Nyquist bin gets weight 0)."""

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    low, high = mel(fmin), mel(fmax)
    step = (high - low) / (n_mels + 1)
    left = low + step * np.arange(n_mels)[:, None]
    centre, right = left + step, left + 2 * step
    bins = mel(sr / n_fft * np.arange(n_fft // 2))[None, :]
    weights = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return np.pad(weights, ((0, 0), (0, 1))).astype(np.float32)


def _mel_basis(cfg: AudioConfig) -> np.ndarray:
    return _mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, min(cfg.fmax, cfg.sample_rate / 2))


@functools.lru_cache(maxsize=8)
def _mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    # Built once per setting: librosa.feature.mfcc(y=...) rebuilds it for every clip,
    # which costs about as much as the STFT itself.
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def normalize(feats: np.ndarray) -> np.ndarray:
    """Scale one clip's features to mean 0, std 1 using that clip alone (silence stays 0)."""
    centred = feats - feats.mean()
    return (centred / max(float(feats.std()), EPS)).astype(np.float32)


def remove_level(feats: np.ndarray) -> np.ndarray:
    """One clip's features less their mean: a recording's gain is arbitrary, its contrast
    and spectral tilt are not. 0 stays the clip's mean, the value SpecAugment's masks take."""
    return (feats - feats.mean()).astype(np.float32)


def limit_blas_threads() -> None:
    """Run numpy's BLAS single-threaded in this process.

    Feature extraction only multiplies tiny matrices, but OpenBLAS's idle worker threads
    keep spinning afterwards and steal the cores from torch's threads (the measured cost
    is in docs/speed.md, "Speed"). It also fixes the
    summation order, so preprocessing and prediction compute bit-identical features.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


# Seed of the evaluation mask. A fixed seed rather than one drawn from the clip: a hash of
# the features changed with their last bits (and those differ between CPUs and BLAS
# builds), and a clip's index or file name is not defined for a new file at prediction
# time, where the prediction must depend on the audio alone.
EVAL_MASK_SEED = 20240


def eval_rng() -> np.random.Generator:
    """The generator of evaluation's channel-2 mask: the same mask for every clip of one
    shape, on every machine, so evaluation is deterministic and portable."""
    return np.random.default_rng(EVAL_MASK_SEED)


def model_input(feats: np.ndarray, aug: AugmentConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """(n_frames, n_bins) -> (2, n_frames, n_bins): the features and a SpecAugmented copy.

    Training passes a fresh ``rng``; evaluation and prediction pass none, which masks the
    same clip the same way every time.
    """
    masked = spec_augment(feats, aug, rng if rng is not None else eval_rng())
    return np.stack([feats, masked]).astype(np.float32)
