"""Bad input gets a reported skip, crashes lose nothing."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiogpt2.cli import main
from audiogpt2.config import load_config
from audiogpt2.io import OutputError, safe_torch_load
from audiogpt2.preprocess import preprocess

from helpers import one_epoch_checkpoint, small_overrides, train_cli_args

SR = 16000


def _tone(seconds, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def test_odd_and_broken_audio_in_a_manifest(tmp_path, tiny_gpt2_dir, capsys):
    d = tmp_path / "clips"
    d.mkdir()
    good = {
        "pcm8.wav": (_tone(1), SR, "PCM_U8"),
        "pcm24.wav": (_tone(1), SR, "PCM_24"),
        "float.wav": (_tone(1), SR, "FLOAT"),
        "khz8.wav": (_tone(1, 8000), 8000, "PCM_16"),
        "khz96.wav": (_tone(1, 96000), 96000, "PCM_16"),
        "six.wav": (_tone(1, channels=6), SR, "PCM_16"),
        "silence.wav": (np.zeros(SR), SR, "PCM_16"),
        "short.wav": (_tone(0.2), SR, "PCM_16"),
        "clip.flac": (_tone(6), SR, "PCM_16"),
    }
    for name, (y, sr, subtype) in good.items():
        sf.write(d / name, y, sr, subtype=subtype)
    nan = _tone(1).astype(np.float32)
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, SR, subtype="FLOAT")
    full = d / "full.wav"
    sf.write(full, _tone(1), SR)
    (d / "truncated.wav").write_bytes(full.read_bytes()[:30])
    (d / "empty.wav").write_bytes(b"")
    (d / "random.wav").write_bytes(os.urandom(2000))
    (d / "text.wav").write_text("not audio at all")
    bad = ["nan.wav", "truncated.wav", "empty.wav", "random.wav", "text.wav"]
    rows = [f"clips/{n},{'a' if i % 2 else 'b'}" for i, n in enumerate([*good, *bad])]
    (tmp_path / "m.csv").write_text(
        "path,label,fold\n" + "\n".join(f"{r},{i % 5 + 1}" for i, r in enumerate(rows)) + "\n"
    )
    over = small_overrides(tmp_path / "m.csv", tiny_gpt2_dir, tmp_path / "c.pt")
    cache = preprocess(load_config(overrides=over))
    out = capsys.readouterr()
    assert sorted(n for n, _ in cache.failed) == sorted(f"clips/{b}" for b in bad)
    assert all(reason for _, reason in cache.failed)
    assert "NaN" in dict(cache.failed)["clips/nan.wav"]
    assert f"5 of {len(rows)} clips skipped" in out.out
    assert np.isfinite(cache.features.numpy()).all() and len(cache.labels) == len(good)


def _train_cmd(esc_root, tiny_gpt2_dir, tmp_path, epochs, resume=False):
    args = train_cli_args(esc_root, tiny_gpt2_dir, tmp_path, "finetuned", "best.pt", epochs)
    return [sys.executable, "-m", "audiogpt2", *args] + (["--resume"] if resume else [])


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_loses_no_epoch(esc_root, tiny_gpt2_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    last = tmp_path / "m" / "best.last.pt"
    proc = subprocess.Popen(
        _train_cmd(esc_root, tiny_gpt2_dir, tmp_path, 60),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not last.exists():
        time.sleep(0.2)
    time.sleep(1.0)  # now somewhere inside a later epoch
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    state = safe_torch_load(last)
    done_epochs = state["epoch"]
    assert 1 <= done_epochs < 60
    # best.pt is written just before best.last.pt, so a kill between the two leaves it one
    # epoch ahead; the resume redoes that epoch and judges it again. Either way it is whole.
    assert safe_torch_load(tmp_path / "m" / "best.pt")["epoch"] <= done_epochs + 1
    # A kill during a checkpoint write leaves a temp file; make sure that case is always exercised.
    (tmp_path / "m" / ".best.last.pt.k1lled_1.audiogpt2-tmp").write_bytes(b"torn write")
    resumed = subprocess.run(
        _train_cmd(esc_root, tiny_gpt2_dir, tmp_path, done_epochs + 1, True),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"after epoch {done_epochs}" in resumed.stdout
    assert f"Epoch {done_epochs + 1}/{done_epochs + 1}" in resumed.stdout
    assert "Epoch 1/" not in resumed.stdout
    assert safe_torch_load(last)["epoch"] == done_epochs + 1
    # and best.pt is again the epoch the resumed state calls best, whichever side of the
    # two writes the kill fell on
    assert safe_torch_load(tmp_path / "m" / "best.pt")["epoch"] == safe_torch_load(last)["best_epoch"]
    assert not list((tmp_path / "m").glob("*.audiogpt2-tmp"))


def test_killed_preprocessing_leaves_no_cache_that_is_trusted(esc_root, tiny_gpt2_dir, tmp_path):
    cache = tmp_path / "c.pt"
    cmd = [
        sys.executable,
        "-m",
        "audiogpt2",
        "preprocess",
        "--data",
        str(esc_root),
        "--cache",
        str(cache),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # killed once the work has started, not after a guessed sleep
        if line.startswith("Preprocessing "):
            break
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # it was still working when killed
    assert not cache.exists() or safe_torch_load(cache)["format"] == "audiogpt2-cache-v1"
    # Our writes are atomic, so a torn file at the cache path is not ours: neither trusted
    # nor overwritten.
    cache.write_bytes(b"half a file")
    config = load_config(overrides=small_overrides(esc_root, tiny_gpt2_dir, cache))
    with pytest.raises(OutputError, match="refusing to overwrite .*c.pt"):
        preprocess(config, progress=False)
    assert cache.read_bytes() == b"half a file"


def test_ten_minute_file_and_non_utf8_name_in_predict(tmp_path, small_cache, esc_root, tiny_gpt2_dir, capsys):
    from audiogpt2.train import train_arm

    config = load_config(
        overrides={**small_overrides(esc_root, tiny_gpt2_dir, tmp_path / "c.pt"), "train.epochs": 1}
    )
    ckpt = train_arm(
        config, small_cache, "finetuned", tmp_path / "m" / "best.pt", progress=False
    ).best_checkpoint
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "long.wav", np.zeros(SR * 600, np.float32) + 0.01, SR)
    odd = os.fsdecode(b"caf\xe9.wav")
    with open(os.path.join(d, odd), "wb") as handle:
        sf.write(handle, _tone(1), SR, format="WAV")
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(d), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and "long.wav" in out and "caf\\udce9.wav" in out


def test_output_paths_never_overwrite_a_users_file(esc_root, tiny_gpt2_dir, tmp_path, capsys):
    """`--cache` pointed at the metadata CSV or at a checkpoint: refused, file untouched."""
    import shutil

    from audiogpt2.train import train_arm

    root = tmp_path / "ESC"
    shutil.copytree(esc_root, root)
    csv = root / "meta" / "esc50.csv"
    before = csv.read_bytes()
    assert main(["preprocess", "--data", str(root), "--cache", str(csv), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "esc50.csv" in err and len(err.strip().splitlines()) == 1
    assert csv.read_bytes() == before

    config, ckpt = one_epoch_checkpoint(root, tiny_gpt2_dir, tmp_path)
    before = ckpt.read_bytes()
    assert main(["preprocess", "--data", str(root), "--cache", str(ckpt), "--workers", "1"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and ckpt.read_bytes() == before

    notes = tmp_path / "notes.pt"  # a checkpoint path that holds someone else's file
    notes.write_text("my notes")
    with pytest.raises(OutputError, match="notes.pt"):
        train_arm(config, preprocess(config, progress=False), "baseline", notes, progress=False)
    assert notes.read_text() == "my notes"


def test_huge_float_samples_are_skipped_not_nan(tmp_path, esc_root, tiny_gpt2_dir, capsys):
    """A float WAV of +-1e30: a reasoned skip in preprocess and predict, never NaN output."""
    import json

    d = tmp_path / "clips"
    d.mkdir()
    huge = np.where(np.arange(SR) % 2, 1e30, -1e30).astype(np.float32)
    sf.write(d / "huge.wav", huge, SR, subtype="FLOAT")
    for i in range(10):
        sf.write(d / f"ok{i}.wav", _tone(1), SR)
    rows = [f"clips/ok{i}.wav,{'ab'[i % 2]},{i % 5 + 1}" for i in range(10)] + ["clips/huge.wav,a,1"]
    (tmp_path / "m.csv").write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    over = small_overrides(tmp_path / "m.csv", tiny_gpt2_dir, tmp_path / "c.pt")
    cache = preprocess(load_config(overrides=over))
    assert [n for n, _ in cache.failed] == ["clips/huge.wav"] and "not finite" in cache.failed[0][1]
    assert np.isfinite(cache.features.numpy()).all()

    _, ckpt = one_epoch_checkpoint(esc_root, tiny_gpt2_dir, tmp_path)
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(d / "huge.wav"), str(d / "ok0.wav"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # strict JSON: no NaN
    assert [s["file"] for s in out["skipped"]] == [str(d / "huge.wav")]
    assert "not finite" in out["skipped"][0]["reason"]
    assert len(out["predictions"]) == 1


def _esc_copy(esc_root, tmp_path, edit):
    """A copy of the small ESC-50-layout set whose metadata text went through ``edit``."""
    import shutil

    root = tmp_path / "ESC"
    shutil.copytree(esc_root, root)
    meta = root / "meta" / "esc50.csv"
    meta.write_text(edit(meta.read_text()))
    return root


def _first_name(text):
    return text.splitlines()[1].split(",")[0]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace(_first_name(t), "../../../../etc/passwd", 1), "points outside"),
        (lambda t: t.replace(_first_name(t), "/etc/passwd", 1), "points outside"),
        (
            lambda t: (
                "\n".join(
                    [t.splitlines()[0]]
                    + [  # the second class's rows claim the first class's name
                        ",".join(
                            c if i != 3 or r.split(",")[2] != "1" else t.splitlines()[1].split(",")[3]
                            for i, c in enumerate(r.split(","))
                        )
                        for r in t.splitlines()[1:]
                    ]
                )
                + "\n"
            ),
            "one category needs one target",
        ),
    ],
)
def test_bad_esc50_metadata_is_one_line(esc_root, tmp_path, capsys, edit, fragment):
    root = _esc_copy(esc_root, tmp_path, edit)
    assert main(["preprocess", "--data", str(root), "--cache", str(tmp_path / "c.pt"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_esc50_header_with_spaces_and_bom_reads(esc_root, tmp_path):
    def edit(text):
        lines = text.splitlines()
        return "\ufeff" + ", ".join(lines[0].split(",")) + "\r\n" + "\r\n".join(lines[1:]) + "\r\n"

    root = _esc_copy(esc_root, tmp_path, edit)
    from audiogpt2.config import DataConfig
    from audiogpt2.data import load_dataset

    assert len(load_dataset(DataConfig(root=str(root))).clips) == 40


def _manifest(tmp_path, rows):
    d = tmp_path / "clips"
    d.mkdir(exist_ok=True)
    for i in range(12):
        sf.write(d / f"x{i}.wav", _tone(0.5), SR)
    (tmp_path / "m.csv").write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    return tmp_path / "m.csv"


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        (
            [f"clips/x{i}.wav,{'ab'[i % 2]},{i % 5 + 1}" for i in range(10)] + ["./clips/x0.wav,a,5"],
            "both name",
        ),
        (
            [f"clips/x{i}.wav,{'ab'[i % 2]},{i % 5 + 1 if i != 3 else ''}" for i in range(10)],
            "empty on line(s) 5",
        ),
        ([f"clips/x{i}.wav,{'ab'[i % 2]}," for i in range(10)], "source"),  # fmt: skip
    ],
)
def test_bad_manifests_are_one_line(tmp_path, capsys, rows, fragment):
    if fragment == "source":  # every clip in one group: no way to make 5 folds of groups
        (tmp_path / "m.csv").unlink(missing_ok=True)
        rows = [r + ",g" for r in rows]
        path = _manifest(tmp_path, rows)
        path.write_text("path,label,fold,group\n" + "\n".join(rows) + "\n")
    else:
        path = _manifest(tmp_path, rows)
    assert main(["preprocess", "--data", str(path), "--cache", str(tmp_path / "c.pt"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_careless_predict_and_flags_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.wav").mkdir()
    for inputs in ([str(tmp_path / "empty")], [str(tmp_path / "x.wav")]):
        assert main(["predict", str(tmp_path / "none.pt"), *inputs]) == 2
        err = capsys.readouterr().err.strip()
        assert "no audio files found" in err and len(err.splitlines()) == 1
    for argv in (["predict", "m.pt", "a.wav", "--top-k", "0"], ["train", "--epoch", "2"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    import torch

    if not torch.cuda.is_available():
        assert main(["predict", str(tmp_path / "none.pt"), str(tmp_path / "a.wav"), "--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip()
        assert "no CUDA" in err and len(err.splitlines()) == 1


def _wait_until_preprocessing(proc: subprocess.Popen) -> None:
    """Return once the command says the feature work has started, plus a moment for its
    worker pool to start."""
    for line in proc.stdout:
        if line.startswith("Preprocessing "):
            break
    time.sleep(1.0)
    assert proc.poll() is None, "preprocessing ended before the signal could be sent"


def _as_from_a_terminal() -> None:
    """Ctrl-C's default action, whatever this test runner inherited: a shell starts
    background jobs with SIGINT ignored, and the child would keep ignoring it (exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_parallel_preprocessing_is_one_line(tmp_path):
    from audiogpt2.synthetic import make_dataset

    # seconds of work, so that it is still running when the signal comes
    root = make_dataset(tmp_path / "ESC-50", n_classes=4, clips_per_class=10, seconds=5.0, seed=2)
    cache = tmp_path / "c.pt"
    (tmp_path / ".c.pt.torn_123.audiogpt2-tmp").write_bytes(b"left by a kill during an earlier cache write")
    cmd = [sys.executable, "-m", "audiogpt2", "preprocess", "--data", str(root), "--cache", str(cache),
           "--workers", "2", "--variants", "24"]  # fmt: skip
    pipe = subprocess.PIPE

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            cmd, stdout=pipe, stderr=pipe, text=True, start_new_session=True, preexec_fn=_as_from_a_terminal
        )

    proc = start()
    _wait_until_preprocessing(proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    assert not (tmp_path / ".c.pt.torn_123.audiogpt2-tmp").exists()

    # A kill of the parent alone: its workers end with it, silently.
    proc = start()
    _wait_until_preprocessing(proc)
    proc.kill()
    time.sleep(3)
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    out, err = proc.communicate(timeout=60)
    assert set(leftover) <= {str(proc.pid)} and "Traceback" not in err  # the parent is a zombie until reaped


@pytest.fixture(scope="module")
def tiny_classifier(esc_root, tiny_gpt2_dir, tmp_path_factory):
    from audiogpt2.predict import Classifier

    _, ckpt = one_epoch_checkpoint(esc_root, tiny_gpt2_dir, tmp_path_factory.mktemp("clf"))
    return Classifier.from_checkpoint(ckpt)


def _hostile_file(data, path):
    """Random bytes, or a real WAV (random rate, channels, subtype, values) with random damage."""
    import io

    kind = data.draw(st.sampled_from(["bytes", "wav", "damaged wav"]))
    if kind == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=4096)))
        return
    rate = data.draw(st.sampled_from([1, 8000, 16000, 44100, 192000]))
    channels = data.draw(st.integers(1, 3))
    subtype = data.draw(st.sampled_from(["PCM_16", "PCM_U8", "FLOAT", "DOUBLE"]))
    frames = data.draw(st.integers(0, 4000))
    values = data.draw(st.sampled_from([0.0, 0.5, 1e30, float("inf"), float("nan")]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    y = rng.uniform(-1, 1, (frames, channels)) * (values or 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, y, rate, subtype=subtype, format="WAV")
    raw = bytearray(buffer.getvalue())
    if kind == "damaged wav" and raw:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, min(len(raw) - 1, 64)))] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path.write_bytes(bytes(raw))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_file_ends_as_a_result_or_a_reasoned_skip(data, tiny_classifier, tmp_path):
    from audiogpt2.config import AudioConfig, AugmentConfig
    from audiogpt2.predict import predict_paths
    from audiogpt2.preprocess import _work

    path = tmp_path / "x.wav"
    _hostile_file(data, path)
    done, skipped = predict_paths(tiny_classifier, [path])
    assert len(done) + len(skipped) == 1
    if done:
        assert np.isfinite(done[0][1].probabilities).all()
    else:
        assert skipped[0][1]
    audio = AudioConfig(clip_seconds=0.5, hop_length=200, n_fft=400)
    _, feats, err = _work((0, str(path), "x.wav", audio, AugmentConfig(variants=1), 0))
    assert (feats is None) != (err is None)
    assert err or np.isfinite(feats).all()


def test_non_utf8_file_name_with_variants_in_a_folder_dataset(tmp_path, tiny_gpt2_dir):
    root = tmp_path / "tree"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            sf.write(root / label / f"{i}.wav", _tone(0.5), SR)
    odd = os.path.join(os.fsencode(root / "a"), b"caf\xe9.wav")  # Latin-1 bytes, not UTF-8
    with open(odd, "wb") as handle:
        sf.write(handle, _tone(0.5), SR, format="WAV")
    over = {**small_overrides(root, tiny_gpt2_dir, tmp_path / "c.pt"), "augment.variants": 1}
    cache = preprocess(load_config(overrides=over), progress=False)
    assert len(cache.labels) == 11 and not cache.failed
