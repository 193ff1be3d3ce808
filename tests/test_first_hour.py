"""A new user's first hour with their own clips: the README's "Train on your own folder of
clips" commands, run as written (shortened only in epochs and folds), on a folder of short
clips, with a check for each friction a new user met: a window that fits short clips,
datasets that never overwrite each other, visible folds and validation split, one cache per
feature setting, no wild ETA, and the small messages."""

from __future__ import annotations

import glob
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiogpt2.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
# the README's commands, shortened: two epochs, and one fold of the cross-validation
FAST = {"train": ["--epochs", "2", "--threads", "1"],
        "cv": ["--epochs", "1", "--threads", "1", "--fold", "1"]}  # fmt: skip


def readme_commands() -> list[list[str]]:
    """The audiogpt2 commands of the README's own-folder section, as argument lists."""
    text = README.read_text()
    section = text[text.index("### Train on your own folder of clips") :]
    begin = section.index("```bash") + len("```bash")
    block = section[begin : section.index("```\n", begin)]
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("audiogpt2 ")]


def short_clips(root: Path, seed: int = 0) -> Path:
    """my_sounds/<class>/<clip>.wav: three tone classes, 0.5-1.0 s each, 16 kHz."""
    rng = np.random.default_rng(seed)
    for name, f0 in (("low", 300), ("mid", 900), ("high", 2500)):
        (root / "my_sounds" / name).mkdir(parents=True)
        for i in range(10):
            t = np.arange(int(16000 * rng.uniform(0.5, 1.0))) / 16000
            y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)
            sf.write(root / "my_sounds" / name / f"{name}_{i:02d}.wav", y.astype(np.float32), 16000)
    return root / "my_sounds"


def run(args: list[str], capsys) -> str:
    assert main(args) == 0, args
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.slow
def test_the_readme_own_folder_commands_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    short_clips(tmp_path)
    train, predict, cv = readme_commands()
    assert train[:3] == ["train", "--data", "my_sounds"] and predict[0] == "predict" and cv[0] == "cv"
    out = run(train + FAST["train"], capsys)
    # 1. a window that fits the clips, said aloud, and no padding warning for it
    assert "audio.clip_seconds = 1 s, fitted to these clips" in out and "would be padding" not in out
    # 3. the folds, the validation split and the held-out test fold are shown and kept
    assert re.search(r"Folds: fold 1: \d+ clips, \d+ groups, 3 classes", out)
    assert "whole groups, stratified by class" in out and "held out from training and model choice" in out
    (models,) = glob.glob("models/my_sounds-*")
    split = json.loads((Path(models) / "split.json").read_text())
    assert split and (Path(models) / "best_baseline_model.pt").is_file()
    # the README's predict line, its glob expanded as a shell would, and the one train printed
    said = re.search(r"Next: audiogpt2 predict (\S+) YOUR_CLIP.wav", out).group(1)
    assert Path(said) == Path(glob.glob(predict[1])[0]) == Path(models) / "best_baseline_model.pt"
    clip = tmp_path / "new_clip.wav"
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 900 * np.arange(12000) / 16000)).astype(np.float32), 16000)
    predicted = run(["predict", glob.glob(predict[1])[0], str(clip), *predict[3:]], capsys)
    assert re.search(r"\b(low|mid|high)\b", predicted)
    report = run(cv + FAST["cv"], capsys)
    assert "Report written to runs/my-sounds/report.md" in report
    assert Path("runs/my-sounds/report.md").is_file()


def test_two_datasets_and_two_feature_settings_never_share_outputs(tmp_path, monkeypatch, capsys):
    """2. Two folders both called my_sounds get their own folders; 4. caches of several
    feature settings live side by side and each is reused."""
    monkeypatch.chdir(tmp_path)
    first = short_clips(tmp_path / "a")
    second = short_clips(tmp_path / "b", seed=1)
    run(["preprocess", "--data", str(first)], capsys)
    run(["preprocess", "--data", str(second)], capsys)
    padded = run(["preprocess", "--data", str(first), "--set", "audio.clip_seconds=5"], capsys)
    assert "most of each 5 s input would be padding" in padded  # 1. said where it is built
    caches = sorted(p.name for p in Path("data/preprocessed").glob("my_sounds-*.pt"))
    assert len(caches) == 3 and len({name[: len("my_sounds-") + 6] for name in caches}) == 2, caches
    again = run(["preprocess", "--data", str(first)], capsys)
    assert "Using cached features" in again and "would be padding" not in again
    assert "Using cached features" in run(
        ["preprocess", "--data", str(first), "--set", "audio.clip_seconds=5"], capsys
    )


def test_no_eta_until_the_estimate_is_stable(capsys, monkeypatch):
    """The first items carry the start-up: an estimate from them was 100 times too long."""
    import audiogpt2.progress as progress
    from audiogpt2.progress import Progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    p = Progress(200, "preprocess", unit="clip", interval=0.0)
    now[0] = 60.0
    p.update()  # one clip after 60 s of start-up
    assert "ETA soon" in capsys.readouterr().out
    for _ in range(3):
        now[0] += 1.0
        p.update()
    assert "ETA soon" not in capsys.readouterr().out.splitlines()[-1]
    for _ in range(196):
        now[0] += 1.0
        p.update()
    last = capsys.readouterr().out.splitlines()[-1]
    assert "ETA 0 s" in last and "soon" not in last


def test_small_frictions_say_what_to_do(capsys):
    from audiogpt2.config import ConfigError, load_config

    # demo --help shows the demo's own defaults and no flag the demo decides itself
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = capsys.readouterr().out
    assert "default 12 [train.epochs]" in help_text and "--data" not in help_text
    # the recipe with fewer epochs than it averages: the error gives the fix
    with pytest.raises(ConfigError, match=r"--set train.average_epochs=N .*3 for 10 epochs"):
        load_config(Path(__file__).parents[1] / "configs" / "recipe.toml", {"train.epochs": 10})
    # --int8 without ONNX
    assert main(["export", "x.pt", "out", "--int8"]) == 2
    assert "add --format onnx" in capsys.readouterr().err
