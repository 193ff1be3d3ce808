import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogpt2.cli import main
from audiogpt2.predict import Classifier
from audiogpt2.train import train_arm


@pytest.fixture(scope="module")
def checkpoint(small_cache, esc_root, tiny_gpt2_dir, tmp_path_factory):
    from audiogpt2.config import load_config

    from helpers import small_overrides

    tmp = tmp_path_factory.mktemp("ckpt")
    config = load_config(
        overrides={**small_overrides(esc_root, tiny_gpt2_dir, tmp / "c.pt"), "train.epochs": 1}
    )
    return train_arm(config, small_cache, "finetuned", tmp / "best.pt", progress=False).best_checkpoint


@pytest.mark.parametrize("seconds", [0.2, 5.0, 12.0])
@pytest.mark.parametrize("sr", [8000, 44100])
@pytest.mark.parametrize("channels", [1, 2])
def test_predict_any_length_rate_and_channels(checkpoint, seconds, sr, channels):
    clf = Classifier.from_checkpoint(checkpoint)
    y = np.random.default_rng(0).uniform(-0.3, 0.3, (int(seconds * sr), channels)).astype(np.float32)
    p = clf.predict(y if channels > 1 else y[:, 0], sr)
    assert sorted(p.labels) == sorted(clf.classes)
    assert abs(sum(p.probabilities) - 1) < 1e-4 and p.probabilities == sorted(p.probabilities)[::-1]
    expected_windows = 1 if seconds <= 5 else 4  # 0, 2.5, 5, and the tail at 7 s
    assert len(p.windows) == expected_windows
    assert p.windows[-1]["end"] == pytest.approx(seconds, abs=1e-3)


def test_predict_uses_the_preprocessing_features(checkpoint, small_cache, esc_root):
    """Same clip -> same probabilities through the cache path and through predict."""
    from audiogpt2.predict import predict_proba

    clf = Classifier.from_checkpoint(checkpoint)
    name = small_cache.names[0]
    via_cache = predict_proba(
        clf.model, small_cache.features[:1], clf.config.augment, precision=clf.precision
    )[0]
    via_file = clf.predict_file(esc_root / "audio" / name)
    probs = dict(zip(via_file.labels, via_file.probabilities))
    np.testing.assert_allclose([probs[c] for c in clf.classes], via_cache, atol=1e-5)


def test_checkpoint_with_token_embeddings_still_loads(checkpoint, tmp_path):
    """Checkpoints written before the unused token embeddings were dropped carry the full
    vocabulary matrix; they load and predict exactly like the new format."""
    from audiogpt2.io import safe_torch_load

    state = safe_torch_load(checkpoint)
    assert state["model"]["backbone.wte.weight"].numel() == 0
    state["model"]["backbone.wte.weight"] = torch.randn(50257, 32)
    old = tmp_path / "old.pt"
    torch.save(state, old)
    y = np.random.default_rng(1).uniform(-0.3, 0.3, 16000 * 5).astype(np.float32)
    a = Classifier.from_checkpoint(checkpoint).predict(y, 16000)
    b = Classifier.from_checkpoint(old).predict(y, 16000)
    assert a.labels == b.labels and a.probabilities == b.probabilities


def test_cli_reports_and_skips_bad_files(checkpoint, esc_root, tmp_path, capsys):
    good = sorted((esc_root / "audio").glob("*.wav"))[0]
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"\x00\x01garbage")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    long = tmp_path / "long.flac"
    sf.write(long, np.zeros(16000 * 11, np.float32), 16000)
    code = main(
        ["predict", str(checkpoint), str(good), str(bad), str(text), str(long), "--json", "--timeline"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [p["file"] for p in out["predictions"]] == [str(good), str(long)]
    assert len(out["predictions"][1]["windows"]) == 4
    assert {s["file"] for s in out["skipped"]} == {str(bad), str(text)}
    main(["predict", str(checkpoint), str(good), str(bad), "--top-k", "2"])
    captured = capsys.readouterr()
    assert good.name in captured.out and "1 file(s) classified, 1 skipped" in captured.err


def test_timeline_picture_and_csv_of_a_long_file(checkpoint, tmp_path, capsys):
    import csv

    sr = 16000
    y = np.random.default_rng(0).normal(0, 0.1, sr * 12).astype(np.float32)
    sf.write(tmp_path / "long.wav", y, sr)
    args = ["predict", str(checkpoint), str(tmp_path / "long.wav"), "--timeline-dir", str(tmp_path / "tl")]
    assert main(args) == 0
    png, table = tmp_path / "tl" / "long.png", tmp_path / "tl" / "long.csv"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == len(Classifier.from_checkpoint(checkpoint).window_starts(12 * sr)) > 1
    assert float(rows[-1]["end_s"]) == 12.0 and all(0 <= float(r["probability"]) <= 1 for r in rows)


def test_ensemble_averages_its_members_and_refuses_other_classes(
    checkpoint, small_cache, esc_root, tmp_path, capsys
):
    from audiogpt2.config import load_config
    from audiogpt2.io import atomic_torch_save, safe_torch_load
    from audiogpt2.predict import EnsembleError

    from helpers import small_overrides

    over = {**small_overrides(esc_root, "none", tmp_path / "c.pt"), "train.epochs": 1}
    other = train_arm(load_config(overrides=over), small_cache, "baseline", tmp_path / "b.pt", progress=False)
    wav = esc_root / "audio" / small_cache.names[0]

    def probs(*args):
        capsys.readouterr()  # training's log lines
        assert main(["predict", str(checkpoint), str(wav), "--json", "--top-k", "99", *args]) == 0
        top = json.loads(capsys.readouterr().out)["predictions"][0]["top"]
        return {t["label"]: t["probability"] for t in top}

    a, b = probs(), Classifier.from_checkpoint(other.best_checkpoint).predict_file(wav)
    b = dict(zip(b.labels, b.probabilities))
    both = probs("--ensemble", str(other.best_checkpoint))
    for label in a:
        assert both[label] == pytest.approx((a[label] + b[label]) / 2, abs=1e-6)

    renamed = safe_torch_load(other.best_checkpoint, "checkpoint")
    renamed["classes"] = [f"x{c}" for c in renamed["classes"]]
    atomic_torch_save(renamed, tmp_path / "renamed.pt", "checkpoint")
    with pytest.raises(EnsembleError, match="renamed.pt has other classes"):
        Classifier.ensemble([checkpoint, tmp_path / "renamed.pt"])


def test_timelines_stay_in_their_folder_never_collide_and_escape_formulas(checkpoint, tmp_path, capsys):
    import csv

    from audiogpt2.io import atomic_torch_save, safe_torch_load

    sr = 16000
    y = np.random.default_rng(1).normal(0, 0.1, sr * 6).astype(np.float32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inputs = [tmp_path / "..wav", tmp_path / "a" / "same.wav", tmp_path / "b" / "same.wav"]
    inputs.append(tmp_path / "x.v2.wav")
    for path in inputs:
        sf.write(path, y, sr, format="WAV")
    # class names from a user's manifest that a spreadsheet would run as formulas
    hostile = safe_torch_load(checkpoint, "checkpoint")
    hostile["classes"] = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)"][: len(hostile["classes"])]
    atomic_torch_save(hostile, tmp_path / "hostile.pt", "checkpoint")
    out = tmp_path / "out" / "tl"
    assert main(["predict", str(tmp_path / "hostile.pt"), *map(str, inputs), "--timeline-dir", str(out)]) == 0
    written = sorted(p.name for p in (tmp_path / "out").rglob("*"))
    assert written == sorted(["tl", "audio.csv", "audio.png", "same.csv", "same.png", "same-2.csv",
                              "same-2.png", "x.v2.csv", "x.v2.png"])  # fmt: skip
    for table in out.glob("*.csv"):
        for row in csv.DictReader(table.open()):
            assert row["label"][0] not in "=+-@" and row["label"].lstrip("'") in hostile["classes"]


def test_non_finite_weights_are_refused_never_a_nan_in_a_result(checkpoint, tmp_path, capsys):
    from audiogpt2.export import export
    from audiogpt2.io import UnsafeFileError, atomic_torch_save, safe_torch_load

    state = safe_torch_load(checkpoint, "checkpoint")
    name = next(k for k, v in state["model"].items() if v.is_floating_point() and v.numel())
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    atomic_torch_save(state, tmp_path / "nan.pt", "checkpoint")
    with pytest.raises(UnsafeFileError, match="NaN or infinite"):
        Classifier.from_checkpoint(tmp_path / "nan.pt")
    export(checkpoint, tmp_path / "st")
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "st" / "model.safetensors")
    weights[name] = torch.full_like(weights[name], float("inf"))
    save_file(weights, tmp_path / "st" / "model.safetensors")
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    assert main(["predict", str(tmp_path / "st"), str(wav), "--json"]) != 0
    captured = capsys.readouterr()
    assert "NaN or infinite" in captured.err and "NaN" not in captured.out


def test_a_channels_first_array_is_refused_not_misread(checkpoint):
    from audiogpt2.audio import AudioError

    clf = Classifier.from_checkpoint(checkpoint)
    stereo = np.random.default_rng(0).normal(0, 0.1, (16000, 2)).astype(np.float32)
    assert clf.predict(stereo, 16000).labels  # (frames, channels): fine
    with pytest.raises(AudioError, match=r"pass \(frames, channels\), e.g. waveform.T"):
        clf.predict(stereo.T, 16000)


def test_unfreeze_tables_that_make_no_sense_are_refused(small_config, small_cache, tmp_path):
    from audiogpt2.config import ConfigError, load_config
    from audiogpt2.train import TrainingError

    with pytest.raises(ConfigError, match="unfreeze"):
        load_config(overrides={"train.unfreeze": {"5": -1}})
    small_config.train.unfreeze = {"1": 99}
    with pytest.raises(TrainingError, match="names block 99"):
        train_arm(small_config, small_cache, "finetuned", tmp_path / "b.pt", progress=False)


def test_bf16_and_fp32_prediction_agree_on_the_test_clips(checkpoint, small_cache, esc_root):
    """The default prediction path (bf16 autocast where native) gives the fp32 path's top-1
    label on every test-fold clip, with probabilities within bf16's rounding."""
    from audiogpt2.checkpoint import read_checkpoint_config

    fold = read_checkpoint_config(checkpoint)["data"]["test_fold"]
    clips = [n for n, f in zip(small_cache.names, small_cache.folds.tolist()) if f == fold]
    fp32 = Classifier.from_checkpoint(checkpoint, precision="fp32")
    bf16 = Classifier.from_checkpoint(checkpoint, precision="bf16")
    for name in clips:
        a, b = fp32.predict_file(esc_root / "audio" / name), bf16.predict_file(esc_root / "audio" / name)
        assert a.labels[0] == b.labels[0], name
        other = dict(zip(b.labels, b.probabilities))
        assert max(abs(p - other[c]) for c, p in zip(a.labels, a.probabilities)) < 0.02
