import numpy as np

from audiogpt2.augment import waveform_variant
from audiogpt2.config import AugmentConfig

SR = 16000


def _peak_hz(y):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / SR)[spec.argmax()]


def test_variant_keeps_length_and_differs():
    y = np.sin(2 * np.pi * 440 * np.arange(SR * 5) / SR).astype(np.float32)
    v = waveform_variant(y, SR, AugmentConfig(), np.random.default_rng(0))
    assert v.shape == y.shape and v.dtype == np.float32 and not np.allclose(v, y)


def test_pitch_shift_stays_within_two_semitones():
    y = np.sin(2 * np.pi * 1000 * np.arange(SR * 2) / SR).astype(np.float32)
    cfg = AugmentConfig(noise_sigma=0.0, stretch_min=1.0, stretch_max=1.0)
    peaks = [_peak_hz(waveform_variant(y, SR, cfg, np.random.default_rng(s))[:SR]) for s in range(6)]
    low, high = 1000 * 2 ** (-2 / 12) - 15, 1000 * 2 ** (2 / 12) + 15
    assert all(low <= p <= high for p in peaks)
    assert max(peaks) - min(peaks) > 20  # it really shifts


def test_time_stretch_changes_duration_of_an_event():
    y = np.zeros(SR * 4, np.float32)
    y[:SR] = np.sin(2 * np.pi * 800 * np.arange(SR) / SR)
    cfg = AugmentConfig(noise_sigma=0.0, pitch_semitones=0.0, stretch_min=0.8, stretch_max=0.8)
    v = waveform_variant(y, SR, cfg, np.random.default_rng(0))
    active = np.flatnonzero(np.abs(v) > 0.1)
    assert 1.15 * SR < active[-1] < 1.35 * SR  # slowed to 1/0.8 = 1.25 s


def test_noise_sigma():
    y = np.zeros(SR * 5, np.float32)
    cfg = AugmentConfig(pitch_semitones=0.0, stretch_min=1.0, stretch_max=1.0)
    v = waveform_variant(y, SR, cfg, np.random.default_rng(0))
    assert abs(v.std() - 0.005) < 0.0005
