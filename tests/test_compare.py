import json
import math

import numpy as np
import pytest
from scipy import stats

from audiogpt2.cli import main
from audiogpt2.compare import CompareError, compare, corrected_ttest


def _run(root, name, seed, accs, arm="baseline"):
    run = root / name
    run.mkdir(parents=True, exist_ok=True)  # a second arm may join a run
    (run / "config.toml").write_text(f"[train]\nseed = {seed}\n")
    for fold, acc in enumerate(accs, start=1):
        d = run / f"fold{fold}" / arm
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"accuracy": acc, "n": 80, "fold": fold}))
    return run


def test_corrected_ttest_matches_the_formula_and_is_wider_than_the_naive_one():
    d = np.array([0.075, -0.025, 0.0375, 0.0125, 0.0625])
    r = corrected_ttest(d, 0.25)
    se = math.sqrt(d.var(ddof=1) * (1 / 5 + 0.25))
    assert r["se"] == pytest.approx(se)
    assert r["p"] == pytest.approx(2 * stats.t.sf(d.mean() / se, 4))
    assert r["ci_low"] == pytest.approx(d.mean() - stats.t.ppf(0.975, 4) * se)
    assert r["p"] > stats.ttest_1samp(d, 0).pvalue  # overlap of CV training sets costs certainty


def test_compare_pairs_by_fold_and_seed_and_measures_the_seed_noise(tmp_path, capsys):
    accs_a0, accs_a1 = [0.80, 0.85, 0.90, 0.75, 0.80], [0.82, 0.83, 0.92, 0.77, 0.78]
    a0 = _run(tmp_path, "a-s0", 0, accs_a0)
    a1 = _run(tmp_path, "a-s1", 1, accs_a1)
    b0 = _run(tmp_path, "b-s0", 0, [0.70, 0.80, 0.90, 0.70, 0.85])
    b1 = _run(tmp_path, "b-s1", 1, [0.72, 0.78, 0.88, 0.71, 0.80])
    r = compare(f"{a0},{a1}", f"{b0},{b1}:baseline")
    assert r["n"] == 10 and (r["wins"], r["losses"], r["ties"]) == (7, 2, 1)
    assert r["pairs"][0] == {"fold": 1, "seed": 0, "a": 0.80, "b": 0.70, "diff": pytest.approx(0.10)}
    expected = np.mean([np.std([x, y], ddof=1) for x, y in zip(accs_a0, accs_a1)])
    assert r["seed_std_a"] == pytest.approx(expected)
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    assert main(["compare", f"{a0},{a1}", f"{b0},{b1}", "--out", str(tmp_path / "cmp")]) == 0
    assert "corrected resampled t-test" in capsys.readouterr().out
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["n"] == 10


def test_compare_errors_are_one_line(tmp_path, capsys):
    a = _run(tmp_path, "a", 0, [0.8, 0.9])
    (a / "fold1" / "finetuned").mkdir()
    (a / "fold1" / "finetuned" / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "n": 80}))
    b = _run(tmp_path, "b", 3, [0.8, 0.9])
    assert main(["compare", str(a), str(b)]) == 2  # two arms in a: which one?
    assert main(["compare", f"{a}:baseline", str(b)]) == 2  # seeds 0 and 3 never pair
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "name one" in err[0] and "share no" in err[1]


def test_compare_leaves_out_a_repeated_cvs_seeds_with_no_finished_fold(tmp_path):
    rep_a = tmp_path / "rep-a"
    _run(rep_a, "seed0", 0, [0.8, 0.9])
    (rep_a / "seed1").mkdir()  # started, nothing finished yet
    (rep_a / "seed1" / "config.toml").write_text("[train]\nseed = 1\n")
    rep_b = tmp_path / "rep-b"
    _run(rep_b, "seed0", 0, [0.7, 0.85])
    _run(rep_b, "seed1", 1, [0.6, 0.6])
    r = compare(str(rep_a), str(rep_b))
    assert r["n"] == 2 and [p["seed"] for p in r["pairs"]] == [0, 0]
    assert r["mean"] == pytest.approx(0.075)
    (rep_a / "seed0" / "fold1" / "baseline" / "metrics.json").unlink()
    (rep_a / "seed0" / "fold2" / "baseline" / "metrics.json").unlink()
    with pytest.raises(ValueError, match="no finished folds under"):
        compare(str(rep_a), str(rep_b))


def test_per_class_differences_and_their_chart(tmp_path):
    """With confusion matrices saved, compare gives each class's accuracy on both sides
    (summed over the pairs) and draws A - B per class, grouped by super-category."""
    from audiogpt2.compare import write_comparison

    classes = ["dog", "rain", "siren"]

    def run(name, diagonals):
        root = tmp_path / name
        (root).mkdir()
        (root / "config.toml").write_text("[train]\nseed = 0\n")
        for fold, diag in enumerate(diagonals, start=1):
            d = root / f"fold{fold}" / "baseline"
            d.mkdir(parents=True)
            cm = (np.full((3, 3), 1) + np.diag(diag)).tolist()
            metrics = {
                "accuracy": float(np.trace(cm)) / np.sum(cm),
                "confusion_matrix": cm,
                "classes": classes,
            }
            (d / "metrics.json").write_text(json.dumps(metrics))
        return root

    a = run("a", [[8, 5, 2]] * 5)
    b = run("b", [[2, 5, 8]] * 5)
    result, md = write_comparison(str(a), str(b), tmp_path / "out")
    by_class = {row["class"]: row for row in result["per_class"]}
    assert by_class["dog"]["a"] == pytest.approx(9 / 11) and by_class["dog"]["b"] == pytest.approx(3 / 5)
    assert by_class["rain"]["diff"] == pytest.approx(0) and by_class["siren"]["diff"] < 0
    assert (tmp_path / "out" / "per_class.png").stat().st_size > 5000
    assert "largest gains: dog" in md.read_text()


def test_report_gives_per_class_accuracy_by_super_category():
    from audiogpt2.categories import grouped_order
    from audiogpt2.report import per_class_accuracy, per_class_table

    classes = ["siren", "dog", "rain", "cat"]
    order, spans = grouped_order(classes)
    assert [classes[i] for i in order] == ["dog", "cat", "rain", "siren"]
    assert spans == [("animals", 0, 2), ("natural", 2, 3), ("urban", 3, 4)]
    acc = per_class_accuracy(np.diag([4, 2, 1, 3]) + np.eye(4, k=1), classes)
    assert acc["siren"] == pytest.approx(0.8) and acc["cat"] == 1.0
    table = "\n".join(per_class_table(acc, classes))
    assert "| animals | 0.833 | dog 0.67, cat 1.00 |" in table
    assert grouped_order(["hum", "dog"]) == ([0, 1], [])  # not ESC-50: order kept, no groups


def test_compare_marks_pairs_that_miss_test_folds_as_partial(tmp_path):
    from audiogpt2.compare import to_markdown

    a0, a1 = _run(tmp_path, "a-s0", 0, [0.70]), _run(tmp_path, "a-s1", 1, [0.72])
    b0, b1 = _run(tmp_path, "b-s0", 0, [0.76]), _run(tmp_path, "b-s1", 1, [0.79])
    r = compare(f"{a0},{a1}", f"{b0},{b1}")
    assert r["folds"] == [1] and r["n_folds"] == 5
    assert "**Partial:** the pairs cover test fold(s) 1 of 5" in to_markdown(r)
    full = [_run(tmp_path, f"c-{k}", 0, [0.8, 0.7, 0.9, 0.6, 0.8]) for k in "ab"]
    r = compare(str(full[0]), str(full[1]))
    assert r["folds"] == [1, 2, 3, 4, 5] and "Partial" not in to_markdown(r)


def test_a_seed_that_has_not_reached_an_arm_is_left_out(tmp_path):
    # seed 1 of a repeated CV has finished folds of the pretrained arm only: the comparison
    # pairs the seeds that hold both arms, and an arm that no seed holds is an error
    rep = tmp_path / "rep"
    _run(rep, "seed0", 0, [0.70, 0.72], arm="finetuned")
    _run(rep, "seed0", 0, [0.75, 0.78], arm="baseline")
    _run(rep, "seed1", 1, [0.71, 0.73], arm="finetuned")
    r = compare(f"{rep}:finetuned", f"{rep}:baseline")
    assert r["n"] == 2 and {p["seed"] for p in r["pairs"]} == {0}
    with pytest.raises(CompareError, match="no finished nosuch fold"):
        compare(f"{rep}:finetuned", f"{rep}:nosuch")
