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


def test_time_shift_keeps_length_and_content():
    from audiogpt2.augment import random_shift, time_shift

    f = np.random.default_rng(0).normal(size=(125, 64)).astype(np.float32)
    g = time_shift(f, 17)
    assert g.shape == f.shape and np.allclose(np.sort(g.ravel()), np.sort(f.ravel()))
    np.testing.assert_array_equal(g[17], f[0])  # a circular shift: nothing is lost
    cfg = AugmentConfig(time_shift=0.25)
    shifted = [random_shift(f, cfg, np.random.default_rng(s)) for s in range(8)]
    assert all(s.shape == f.shape for s in shifted)
    assert len({s.tobytes() for s in shifted}) > 1  # fresh shifts
    assert random_shift(f, AugmentConfig(), np.random.default_rng(0)) is f  # off by default


def test_tta_shifts_spread_over_the_training_range():
    from audiogpt2.augment import tta_shifts

    assert tta_shifts(100, AugmentConfig()) == [0]
    assert tta_shifts(100, AugmentConfig(time_shift=0.2, tta=5)) == [-20, -10, 0, 10, 20]


def test_mixup_targets_and_one_lambda_on_both_channels():
    from audiogpt2.augment import mixup

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 2, 20, 8)).astype(np.float32)
    for lam in (0.0, 0.3, 1.0):
        x, target = mixup(a, b, 2, 5, 10, lam)
        assert target.sum() == np.float32(1.0) and target[2] == np.float32(lam)
        assert np.allclose(x, lam * a + (1 - lam) * b, atol=1e-6)
    x, target = mixup(a, b, 4, 4, 10, 0.7)  # same class: one hard target
    assert target[4] == 1.0


def test_mixed_training_rows(small_cache):
    """Every row of a mixup epoch: soft targets summing to 1 with one lambda in [0, 1] that
    mixes both channels of two real rows; the draw depends only on (seed, epoch, row)."""
    from audiogpt2.augment import random_shift
    from audiogpt2.features import model_input
    from audiogpt2.train import TrainingSet

    rows = np.arange(len(small_cache.features))
    aug = AugmentConfig(mixup_alpha=0.4, time_shift=0.1)
    ds = TrainingSet(small_cache, rows, aug, seed=0)
    ds.epoch = 3
    first = ds[0][0].numpy()
    for i in range(6):
        x, target = ds[i]
        assert x.shape[0] == 2 and target.shape == (len(small_cache.classes),)
        assert torch_sum(target) == np.float32(1.0) and (target >= 0).all() and (target <= 1).all()
        # Replay the draws: the same lambda must explain both channels.
        rng = np.random.default_rng([0, 3, i])
        xa = model_input(random_shift(small_cache.features[i].numpy(), aug, rng), aug, rng)
        j = int(rng.integers(len(rows)))
        lam = float(rng.beta(0.4, 0.4))
        xb = model_input(random_shift(small_cache.features[j].numpy(), aug, rng), aug, rng)
        assert 0 <= lam <= 1
        np.testing.assert_allclose(x.numpy(), lam * xa + (1 - lam) * xb, atol=1e-5)
        np.testing.assert_array_equal(ds[i][0].numpy(), x.numpy())  # same (seed, epoch, row)
    ds.epoch = 4
    assert not np.array_equal(ds[0][0].numpy(), first)  # fresh draws every epoch


def torch_sum(t):
    return np.float32(t.sum().item())


def test_spec_augment_mask_counts():
    from audiogpt2.augment import spec_augment

    f = np.ones((100, 40), np.float32)
    one = AugmentConfig(freq_mask=3, time_mask=3, freq_masks=1, time_masks=1)
    many = AugmentConfig(freq_mask=3, time_mask=3, freq_masks=4, time_masks=4)

    def zeros(cfg):
        return np.mean([(spec_augment(f, cfg, np.random.default_rng(s)) == 0).sum() for s in range(50)])

    assert zeros(many) > 2.5 * zeros(one)
    none = AugmentConfig(freq_masks=0, time_masks=0)
    np.testing.assert_array_equal(spec_augment(f, none, np.random.default_rng(0)), f)


def test_fast_time_stretch_matches_librosa_on_a_pure_tone():
    # The vectorised phase vocoder behind every variant must do what librosa's does: the
    # same length, the same waveform up to float rounding, and (with the resampling step)
    # a pitch shift whose output frequency is within 1 % of the target.
    import librosa

    from audiogpt2.audio import resample
    from audiogpt2.augment import time_stretch

    f0 = 1000.0
    y = np.sin(2 * np.pi * f0 * np.arange(SR * 2) / SR).astype(np.float32)
    for rate in (0.8, 1.13):
        ours, ref = time_stretch(y, rate), librosa.effects.time_stretch(y, rate=rate)
        assert ours.shape == ref.shape
        assert np.corrcoef(ours, ref)[0, 1] > 0.999
    for semitones in (-2.0, -0.7, 1.3, 2.0):
        ratio = 2.0 ** (-semitones / 12.0)
        shifted = resample(time_stretch(y, ratio), int(round(SR / ratio)), SR)
        target = f0 * 2 ** (semitones / 12)
        reference = librosa.effects.pitch_shift(y, sr=SR, n_steps=semitones)
        assert abs(_peak_hz(shifted) - target) < 0.01 * target
        assert abs(_peak_hz(shifted) - _peak_hz(reference)) < 0.01 * target
