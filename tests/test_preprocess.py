import shutil

import numpy as np
import soundfile as sf
import torch

from audiogpt2.cache import load_cache
from audiogpt2.config import load_config
from audiogpt2.data import split_clips
from audiogpt2.preprocess import preprocess

from helpers import small_overrides


def test_cache_holds_clips_and_variants_and_loads_without_code(small_config):
    c = preprocess(small_config, progress=False)
    assert c.features.shape == (80, 100, 40)  # 40 clips x (original + 1 variant)
    assert len(c.labels) == 40 and c.failed == []
    raw = torch.load(small_config.data.cache, weights_only=True)
    assert raw["format"] == "audiogpt2-cache-v1"
    # the variant row of a clip differs from its original
    assert not torch.equal(c.features[0], c.features[1])
    assert c.row_clip[0] == c.row_clip[1] and c.row_variant[1] == 1


def test_no_variant_of_a_held_out_clip_enters_training(small_cache):
    c = small_cache
    split = split_clips(c.labels.numpy(), c.folds.numpy(), c.groups, 5, 0.25)
    train_rows = c.rows_for(split.train, with_variants=True)
    trained_clips = set(c.row_clip[train_rows].tolist())
    assert trained_clips == set(split.train.tolist())
    assert not trained_clips & (set(split.val.tolist()) | set(split.test.tolist()))
    assert set(c.folds[c.row_clip[train_rows]].tolist()) <= {1, 2, 3, 4}
    val_rows = c.rows_for(split.val, with_variants=False)
    assert (c.row_variant[val_rows] == 0).all()


def test_cache_is_reused_then_rebuilt_when_settings_or_files_change(
    esc_root, tiny_gpt2_dir, tmp_path, capsys
):
    root = tmp_path / "ESC-50"
    shutil.copytree(esc_root, root)
    over = small_overrides(root, tiny_gpt2_dir, tmp_path / "c.pt")
    first = preprocess(load_config(overrides=over))
    capsys.readouterr()
    again = preprocess(load_config(overrides=over))
    assert "Using cached features" in capsys.readouterr().out and again.key == first.key
    changed = preprocess(load_config(overrides={**over, "audio.n_mels": 40}))
    assert changed.key != first.key
    assert "rebuilding" in capsys.readouterr().out
    band = preprocess(load_config(overrides={**over, "audio.normalize": "band"}))
    assert band.key not in (first.key, changed.key)
    wav = next((root / "audio").glob("*.wav"))
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    touched = preprocess(load_config(overrides={**over, "audio.n_mels": 40}))
    assert touched.key != changed.key


def test_a_moved_dataset_keeps_its_cache_but_changed_bytes_rebuild(esc_root, tiny_gpt2_dir, tmp_path, capsys):
    # Copying the dataset to another disk or machine gives new paths and modification
    # times: the cache (and the checkpoints keyed by it) must stay valid; an edit of the
    # same size must not.
    import os

    first_root, moved_root = tmp_path / "a" / "ESC-50", tmp_path / "b" / "ESC-50"
    shutil.copytree(esc_root, first_root)
    first = preprocess(load_config(overrides=small_overrides(first_root, tiny_gpt2_dir, tmp_path / "c.pt")))
    shutil.copytree(first_root, moved_root)
    for wav in (moved_root / "audio").glob("*.wav"):
        os.utime(wav, (1_000_000_000, 1_000_000_000))
    capsys.readouterr()
    over = small_overrides(moved_root, tiny_gpt2_dir, tmp_path / "c.pt")
    moved = preprocess(load_config(overrides=over))
    assert moved.key == first.key and "Using cached features" in capsys.readouterr().out
    wav = sorted((moved_root / "audio").glob("*.wav"))[0]
    data = bytearray(wav.read_bytes())
    data[-2:] = bytes([data[-2] ^ 1, data[-1]])  # one sample's low bit, same size
    wav.write_bytes(bytes(data))
    assert preprocess(load_config(overrides=over)).key != first.key


def test_bad_audio_is_reported_and_skipped(esc_root, tiny_gpt2_dir, tmp_path, capsys):
    root = tmp_path / "ESC-50"
    shutil.copytree(esc_root, root)
    wavs = sorted((root / "audio").glob("*.wav"))
    wavs[0].write_bytes(b"this is not audio")
    wavs[1].write_bytes(b"")
    cfg = load_config(overrides=small_overrides(root, tiny_gpt2_dir, tmp_path / "c.pt"))
    cache = preprocess(cfg)
    out = capsys.readouterr()
    assert len(cache.labels) == 38 and len(cache.failed) == 2
    assert "2 of 40 clips skipped" in out.out
    assert wavs[0].name in out.err + out.out
    assert len(load_cache(tmp_path / "c.pt").failed) == 2


def test_parallel_matches_sequential(esc_root, tiny_gpt2_dir, tmp_path):
    over = small_overrides(esc_root, tiny_gpt2_dir, tmp_path / "a.pt")
    seq = preprocess(load_config(overrides=over), progress=False)
    par = preprocess(
        load_config(overrides={**over, "data.workers": 2, "data.cache": str(tmp_path / "b.pt")}),
        progress=False,
    )
    assert seq.names == par.names
    torch.testing.assert_close(seq.features, par.features)


def test_an_unreadable_clip_does_not_break_the_cache_key(tmp_path):
    from audiogpt2.preprocess import file_digest

    folder_named_like_audio = tmp_path / "broken.wav"
    folder_named_like_audio.mkdir()  # open() fails, as it does for a file root could not read
    assert file_digest(folder_named_like_audio).startswith("unreadable: ")
    (tmp_path / "ok.wav").write_bytes(b"abc")
    assert len(file_digest(tmp_path / "ok.wav")) == 40


def test_short_clips_and_upsampled_audio_are_named_before_training(tmp_path, caplog):
    """One-second clips padded to the default 5 s window, and 8 kHz audio asked for at
    16 kHz: preprocessing says so, with the setting that fits."""
    import logging

    import numpy as np
    import soundfile as sf

    from audiogpt2.config import load_config
    from audiogpt2.preprocess import preprocess

    for label in ("hum", "hiss"):
        (tmp_path / "clips" / label).mkdir(parents=True)
        for i in range(10):
            y = np.random.default_rng(i).normal(0, 0.1, 7000 + 100 * i).astype(np.float32)
            sf.write(tmp_path / "clips" / label / f"{i}.wav", y, 8000)
    over = {"data.root": str(tmp_path / "clips"), "data.cache": str(tmp_path / "c.pt"), "augment.variants": 0}
    config = load_config(overrides={**over, "data.workers": 1})
    with caplog.at_level(logging.INFO):
        preprocess(config, progress=False)
    text = caplog.text
    assert "Clip lengths: median 0.93 s" in text
    assert "most of each 5 s input would be padding" in text
    assert "--set audio.clip_seconds=1 (the 95th" in text
    assert "holds 8000 Hz audio" in text and "nothing above 4000 Hz" in text


def test_own_short_clips_get_a_window_that_fits_them(tmp_path, capsys):
    """Spoken-digit-like clips (0.3-0.9 s) in class folders: preprocess picks a window from
    their lengths and says so; an explicit setting is kept."""
    import numpy as np
    import soundfile as sf

    from audiogpt2.cli import main
    from audiogpt2.config import load_config
    from audiogpt2.preprocess import fit_clip_seconds

    for label in ("one", "two"):
        (tmp_path / "digits" / label).mkdir(parents=True)
        for i in range(10):
            y = np.random.default_rng(i).normal(0, 0.1, 4800 + 1100 * i).astype(np.float32)
            sf.write(tmp_path / "digits" / label / f"{i}.wav", y, 16000)
    config = load_config(overrides={"data.root": str(tmp_path / "digits")})
    fit_clip_seconds(config)
    assert config.audio.clip_seconds == 0.95  # 95th percentile 0.92 s, in whole 50 ms frames
    data, cache = str(tmp_path / "digits"), str(tmp_path / "c.pt")
    args = ["preprocess", "--data", data, "--cache", cache, "--variants", "0"]
    assert main(args) == 0
    assert "audio.clip_seconds = 0.95 s, fitted to these clips" in capsys.readouterr().out
    assert main([*args, "--set", "audio.clip_seconds=2.0"]) == 0
    assert "fitted to these clips" not in capsys.readouterr().out
