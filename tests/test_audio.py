"""Decoding hostile audio: the header is checked first, blocks are mixed as they come."""

import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from audiogpt2.audio import AudioError, AudioTooLongError, decode_audio


def _flac_bomb(seconds: int, rate: int = 192_000, channels: int = 8) -> io.BytesIO:
    """Small on disk (near-silence compresses), huge once every channel is float32."""
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(-2, 3, (rate, channels)).astype(np.int16)
    with sf.SoundFile(buf, "w", rate, channels, "PCM_16", format="FLAC") as f:
        for _ in range(seconds):
            f.write(noise)
    buf.seek(0)
    return buf


def test_a_many_channel_high_rate_file_decodes_in_bounded_memory():
    bomb = _flac_bomb(30)
    assert len(bomb.getvalue()) < 20_000_000
    tracemalloc.start()
    y = decode_audio(bomb, 16000, max_seconds=600)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert y.shape == (30 * 16000,) and y.dtype == np.float32
    all_channels = 30 * 192_000 * 8 * 4  # 184 MB: what decoding before mixing held
    assert peak < all_channels / 8, f"peak {peak / 1e6:.0f} MB"


def test_the_declared_length_is_refused_before_decoding():
    bomb = _flac_bomb(12)
    with pytest.raises(AudioTooLongError, match="lasts 12 s; the limit is 10 s"):
        decode_audio(bomb, 16000, max_seconds=10)


@pytest.mark.parametrize("rate", [1, 100, 2_000_000])
def test_absurd_sample_rates_are_refused(rate):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(max(rate, 10), np.float32), rate, format="WAV")
    buf.seek(0)
    with pytest.raises(AudioError, match="sample rate"):
        decode_audio(buf, 16000)


def test_streamed_decoding_equals_one_shot_resampling():
    import soxr

    y = np.random.default_rng(1).normal(0, 0.1, (44100 * 3 + 17, 2)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, 44100, format="WAV", subtype="FLOAT")
    buf.seek(0)
    np.testing.assert_array_equal(decode_audio(buf, 16000), soxr.resample(y.mean(axis=1), 44100, 16000, "HQ"))
