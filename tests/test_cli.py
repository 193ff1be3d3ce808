import json
import re
import subprocess
import sys

import numpy as np
import pytest

from audiogpt2.cli import main
from audiogpt2.synthetic import CLASSES, make_dataset


def test_synthetic_dataset_has_the_esc50_layout(tmp_path):
    import csv

    import soundfile as sf

    root = make_dataset(tmp_path / "ESC", n_classes=10, clips_per_class=10, seconds=5.0)
    with open(root / "meta" / "esc50.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert len(rows) == 100 and {r["category"] for r in rows} == set(CLASSES)
    assert {r["fold"] for r in rows} == {"1", "2", "3", "4", "5"}
    info = sf.info(root / "audio" / rows[0]["filename"])
    assert info.duration == 5.0
    a, b = (sf.read(root / "audio" / rows[i]["filename"])[0] for i in (0, 1))
    assert a.std() > 0 and not (a == b).all()  # random variation within a class


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    """The real demo command, shortened: synthetic data -> preprocess -> both arms -> evaluate
    -> predict, with the comparison table and an honest account of the weights."""
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--epochs", "4", "--variants", "0", "--set", 'train.unfreeze={"2": 0}']
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "NOT pretrained" in text and "| finetuned |" in text and "| baseline |" in text
    assert "pretrained weights from" not in text and "(not pretrained)" in text  # every line agrees
    assert "Next:" in text and "audiogpt2 predict" in text
    accs = [float(a) for a in re.findall(r"Model: Acc=([0-9.]+)", text)]
    assert len(accs) == 2 and max(accs) > 0.3  # 10 classes: chance is 0.1
    for name in ("best_model.pt", "best_baseline_model.pt", "config.toml"):
        assert (out / "models" / name).is_file()
    assert (out / "notebooks" / "confusion_matrix_finetuned.png").is_file()
    metrics = json.loads((out / "notebooks" / "metrics_baseline.json").read_text())
    assert metrics["test_fold"] == 5 and metrics["n"] == 80


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "audiogpt2", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "preprocess" in done.stdout and "predict" in done.stdout


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["preprocess", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "download" in err and "Traceback" not in err


def test_cnn_only_runs_one_arm_and_short_runs_warn(esc_root, tiny_gpt2_dir, tmp_path, capsys):
    from helpers import train_cli_args

    args = train_cli_args(esc_root, "none", tmp_path, "baseline", "best.pt", 1)
    args[args.index("--arms") + 1] = "finetuned,baseline"
    args += ["--set", f"paths.finetuned_checkpoint={tmp_path}/m/ft.pt", "--test-fold", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "running the CNN-only arm" in out and out.count("=== Training") == 1
    assert not (tmp_path / "m" / "ft.pt").exists()
    from audiogpt2.config import load_config

    written = load_config(tmp_path / "m" / "config.toml")
    assert (written.model.num_classes, written.data.test_fold) == (4, 2)  # what the run used

    args = train_cli_args(esc_root, tiny_gpt2_dir, tmp_path / "g", "finetuned", "best.pt", 1)
    assert main(args) == 0
    assert "end before the first unfreeze (epoch 5" in capsys.readouterr().out


def test_version_and_help_stay_light():
    from audiogpt2 import __version__

    done = subprocess.run([sys.executable, "-m", "audiogpt2", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"audiogpt2 {__version__}"
    code = (
        "import sys\nfrom audiogpt2.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'librosa') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr[-500:]


def test_outputs_are_per_dataset_and_evaluate_follows_the_checkpoint(
    esc_root, tiny_gpt2_dir, tmp_path, monkeypatch, capsys
):
    import soundfile as sf

    monkeypatch.chdir(tmp_path)
    common = ["--epochs", "1", "--variants", "0", "--workers", "1", "--threads", "1", "--arms", "baseline"]
    assert main(["train", "--data", str(esc_root), "--backbone", str(tiny_gpt2_dir), *common]) == 0
    first = tmp_path / "models" / "ESC-50" / "best_baseline_model.pt"
    cache = tmp_path / "data" / "preprocessed" / "ESC-50.pt"
    assert first.is_file() and cache.is_file() and not (tmp_path / "models" / "best_model.pt").exists()
    before = {p: p.read_bytes() for p in (first, cache)}
    capsys.readouterr()

    # a bare evaluate of that checkpoint: data, features and classes come from it
    assert main(["evaluate", "--checkpoint", str(first)]) == 0
    assert "Baseline Model: Acc=" in capsys.readouterr().out

    # a second dataset gets its own folders and leaves the first one's files alone
    clips = tmp_path / "mine"
    for label in ("hum", "hiss"):
        (clips / label).mkdir(parents=True)
        for i in range(10):
            sf.write(clips / label / f"{i}.wav", np.random.default_rng(i).normal(0, 0.1, 8000), 16000)
    assert main(["train", "--data", str(clips), "--backbone", "none", *common]) == 0
    from audiogpt2.config import DataConfig, dataset_slug

    slug = dataset_slug(DataConfig(root=str(clips)))
    assert slug.startswith("mine-") and (tmp_path / "models" / slug / "best_baseline_model.pt").is_file()
    assert all(p.read_bytes() == data for p, data in before.items())
    capsys.readouterr()

    # a bare evaluate (no flags) scores the most recently trained run on its own data,
    # and writes beside that dataset's other outputs
    assert main(["evaluate"]) == 0
    out = capsys.readouterr().out
    assert f"models/{slug}/best_baseline_model.pt, the most recently trained" in out
    assert (tmp_path / "notebooks" / slug / "metrics_baseline.json").is_file()
    # predict names that checkpoint when given the spec's default path that this run lacks
    assert main(["predict", "models/best_model.pt", str(clips / "hum" / "0.wav")]) == 2
    assert f"most recently trained one is models/{slug}/best_baseline_model.pt" in capsys.readouterr().err

    # and a checkpoint is never scored on another dataset's cache
    assert main(["evaluate", "--checkpoint", str(first), "--data", str(clips)]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained on" in err and len(err.splitlines()) == 1


def test_evaluate_help_offers_only_what_evaluation_reads(capsys):
    import pytest

    for command, present in (("evaluate", False), ("preprocess", False), ("train", True)):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert all((flag in out) == present for flag in ("--epochs", "--lr-head", "--compile")), command
        assert "--data" in out and "--cache" in out


def test_an_output_path_that_cannot_be_a_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["demo", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "Not a directory" in err and "Traceback" not in err and err.count("\n") == 1
