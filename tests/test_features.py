import numpy as np
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from audiogpt2.audio import load_audio, prepare_waveform
from audiogpt2.config import AudioConfig, AugmentConfig
from audiogpt2.features import compute_features, model_input

CFG = AudioConfig()


def test_mfcc_shape_and_normalisation():
    y = np.random.default_rng(0).normal(0, 0.1, CFG.clip_samples).astype(np.float32)
    f = compute_features(y, CFG)
    assert f.shape == (100, 40) and f.dtype == np.float32
    assert abs(f.mean()) < 1e-4 and abs(f.std() - 1) < 1e-3


def test_frames_span_the_whole_clip():
    """A burst in the last 50 ms of the clip must reach the last frame: nothing is cut off."""
    y = np.zeros(CFG.clip_samples, dtype=np.float32)
    y[-700:] = np.random.default_rng(0).normal(0, 0.5, 700)
    f = compute_features(y, CFG)
    assert np.abs(f[-1] - f[50]).sum() > 1.0
    first = np.zeros(CFG.clip_samples, dtype=np.float32)
    first[:700] = y[-700:]
    g = compute_features(first, CFG)
    assert np.abs(g[0] - g[50]).sum() > 1.0


def test_silence_is_finite():
    assert np.isfinite(compute_features(np.zeros(CFG.clip_samples, np.float32), CFG)).all()


def test_features_of_a_clip_do_not_depend_on_other_clips():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.1, (2, CFG.clip_samples)).astype(np.float32)
    np.testing.assert_array_equal(compute_features(a, CFG), compute_features(a.copy(), CFG))
    assert not np.allclose(compute_features(a, CFG), compute_features(b, CFG))


def test_two_channel_input_eval_is_deterministic_train_is_random():
    f = compute_features(np.random.default_rng(2).normal(0, 0.1, CFG.clip_samples).astype(np.float32), CFG)
    aug = AugmentConfig()
    x1, x2 = model_input(f, aug), model_input(f, aug)
    assert x1.shape == (2, 100, 40)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(x1[0], f)
    masks = {model_input(f, aug, np.random.default_rng(s))[1].tobytes() for s in range(10)}
    assert len(masks) > 1


def test_eval_mask_is_the_same_whatever_the_feature_bytes():
    # A last-bit difference in the features (another CPU, another BLAS) used to move the
    # evaluation mask; now the mask is fixed by a seed, so both see the same masked cells.
    f = compute_features(np.random.default_rng(3).normal(0, 0.1, CFG.clip_samples).astype(np.float32), CFG)
    g = np.nextafter(f, np.float32(np.inf))
    aug = AugmentConfig(freq_masks=2, time_masks=2)
    masked_f = model_input(f, aug)[1] == 0
    masked_g = model_input(g, aug)[1] == 0
    assert masked_f.any() and not masked_f.all()
    np.testing.assert_array_equal(masked_f, masked_g)
    noise = np.random.default_rng(4).normal(0, 0.1, CFG.clip_samples).astype(np.float32)
    other = compute_features(noise, CFG)
    np.testing.assert_array_equal(model_input(other, aug)[1] == 0, masked_f)


def test_spec_augment_mask_widths_are_bounded():
    from audiogpt2.augment import spec_augment

    f = np.ones((100, 40), np.float32)
    aug = AugmentConfig()
    for s in range(50):
        m = spec_augment(f, aug, np.random.default_rng(s))
        zero_cols = int((m == 0).all(axis=0).sum())
        zero_rows = int((m == 0).all(axis=1).sum())
        assert zero_cols <= 5 and zero_rows <= 10


@settings(max_examples=25, deadline=None)
@given(
    seconds=st.floats(0.01, 12.0),
    sr=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
    channels=st.integers(1, 6),
)
def test_any_length_rate_and_channels_give_the_exact_shape(seconds, sr, channels):
    n = max(1, int(seconds * sr))
    y = np.random.default_rng(0).uniform(-1, 1, (n, channels)).astype(np.float32)
    w = prepare_waveform(y, sr, CFG.sample_rate)
    f = compute_features(w, CFG)
    assert f.shape == (100, 40) and np.isfinite(f).all()


@settings(max_examples=10, deadline=None)
@given(
    sr=st.sampled_from([8000, 44100, 96000]),
    channels=st.integers(1, 6),
    subtype=st.sampled_from(["PCM_U8", "PCM_16", "PCM_24", "FLOAT"]),
)
def test_loader_reads_any_wav(tmp_path_factory, sr, channels, subtype):
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    y = np.random.default_rng(0).uniform(-0.5, 0.5, (sr // 2, channels))
    sf.write(path, y, sr, subtype=subtype)
    w = load_audio(path, 16000)
    assert w.ndim == 1 and abs(len(w) - 8000) <= 1 and np.isfinite(w).all()


def test_logmel_shape_and_token_count_for_a_non_default_hop():
    import torch

    from audiogpt2.config import Config
    from audiogpt2.model import AudioClassifier

    config = Config()
    config.audio.features, config.audio.hop_length, config.audio.n_fft = "logmel", 640, 1024
    config.model.cnn_channels = [16, 32, 64, 64]
    config.validate()
    y = np.random.default_rng(0).normal(0, 0.1, config.audio.clip_samples).astype(np.float32)
    f = compute_features(y, config.audio)
    assert f.shape == (125, 64) == (config.audio.n_frames, config.audio.n_bins)
    assert abs(f.mean()) < 1e-4 and abs(f.std() - 1) < 1e-3
    model = AudioClassifier.from_config(None, 32, 10, config.model, config.audio)
    x = torch.from_numpy(model_input(f, AugmentConfig()))[None]
    assert model.tokens(x).shape == (1, 31, 32)  # 125 frames / 4, with a 4-block CNN
    assert model(x).shape == (1, 10)


def test_logmel_differs_from_mfcc_and_tracks_the_band_of_a_tone():
    cfg = AudioConfig(features="logmel", n_mels=64)
    t = np.arange(CFG.clip_samples) / CFG.sample_rate
    low = compute_features(np.sin(2 * np.pi * 300 * t).astype(np.float32), cfg)
    high = compute_features(np.sin(2 * np.pi * 4000 * t).astype(np.float32), cfg)
    assert low.mean(0).argmax() < high.mean(0).argmax()
    assert compute_features(np.sin(2 * np.pi * 300 * t).astype(np.float32), CFG).shape == (100, 40)


def test_non_finite_features_make_the_clip_unreadable():
    import pytest

    from audiogpt2.audio import AudioError

    y = np.full(CFG.clip_samples, 1e30, np.float32)
    y[::2] = -1e30
    with pytest.raises(AudioError, match="not finite"):
        compute_features(y, CFG)


def test_band_normalisation_drops_only_the_level():
    """`normalize = "band"` removes the recording's gain but keeps its contrast, which the
    per-clip scaling of the seed README divides away."""
    band = AudioConfig(features="logmel", normalize="band")
    y = np.random.default_rng(5).normal(0, 0.05, band.clip_samples).astype(np.float32)
    y[: band.clip_samples // 2] *= 0.1  # a quiet half and a loud half: 20 dB of contrast
    f = compute_features(y, band)
    np.testing.assert_allclose(compute_features(4 * y, band), f, atol=1e-3)  # gain: +12 dB
    assert abs(f.mean()) < 1e-3 and f.std() > 5  # in dB about the clip mean, not unit std
    clip = compute_features(y, AudioConfig(features="logmel"))
    assert abs(clip.std() - 1) < 1e-3
