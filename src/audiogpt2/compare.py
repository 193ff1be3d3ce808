"""Paired comparison of two cross-validated arms, with statistics that respect CV.

Cross-validation folds share most of their training data, so the accuracies of one arm on
five folds are not independent and a plain paired t-test over folds is too optimistic.
The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004) inflates
the variance of the mean difference by ``1/n + n_test/n_train`` instead of ``1/n``.

A side is one or more ``audiogpt2 cv`` folders (one per seed), optionally ``:ARM``.
Differences are paired by (fold, seed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from audiogpt2.errors import AudioGPT2Error
from audiogpt2.io import atomic_write_json, atomic_write_text
from audiogpt2.report import collect, seed_dirs


class CompareError(AudioGPT2Error, ValueError):
    """Two sides that cannot be paired."""


def _seed(run_dir: Path) -> int:
    from audiogpt2.config import tomllib

    config = run_dir / "config.toml"
    return int(tomllib.loads(config.read_text())["train"]["seed"]) if config.is_file() else 0


def load_side(spec: str) -> tuple[str, dict[tuple[int, int], dict[str, Any]]]:
    """``DIR[,DIR...][:ARM]`` -> (label, {(fold, seed): metrics})."""
    dirs_text, _, arm = spec.partition(":")
    results: dict[tuple[int, int], dict[str, Any]] = {}
    for listed in (Path(d) for d in dirs_text.split(",") if d):
        # a repeated CV: its seeds. One still training can have a seed with no finished fold
        # yet; such seeds are left out, so the finished ones can be compared already.
        runs = {s: collect(s) for s in seed_dirs(listed)} or {listed: collect(listed)}
        runs = {d: found for d, found in runs.items() if found}
        if not runs:
            raise CompareError(f"no finished folds under {listed}; run `audiogpt2 cv` first")
        for run_dir, found in runs.items():
            chosen = arm or (next(iter(found)) if len(found) == 1 else "")
            if chosen not in found:
                names = sorted(found)
                raise CompareError(
                    f"{run_dir} holds arms {', '.join(names)}: name one, e.g. {run_dir}:{names[0]}"
                )
            seed = _seed(run_dir)
            for fold, data in found[chosen].items():
                results[(fold, seed)] = data["metrics"]
    return f"{dirs_text}:{arm}" if arm else dirs_text, results


def corrected_ttest(diffs: np.ndarray, test_train_ratio: float) -> dict[str, float]:
    """Mean difference, 95 % interval and two-sided p of the corrected resampled t-test."""
    from scipy import stats

    n = len(diffs)
    mean = float(diffs.mean())
    if n < 2:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "se": math.nan}
    se = math.sqrt(float(diffs.var(ddof=1)) * (1.0 / n + test_train_ratio))
    if se == 0:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "p": 1.0 if mean == 0 else 0.0, "se": 0.0}
    half = float(stats.t.ppf(0.975, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "p": p, "se": se}


def seed_spread(results: dict[tuple[int, int], dict[str, Any]]) -> float | None:
    """Mean over folds of the sample std of accuracy across seeds: the noise floor."""
    by_fold: dict[int, list[float]] = {}
    for (fold, _), m in results.items():
        by_fold.setdefault(fold, []).append(m["accuracy"])
    stds = [float(np.std(v, ddof=1)) for v in by_fold.values() if len(v) > 1]
    return float(np.mean(stds)) if stds else None


def compare(side_a: str, side_b: str, n_folds: int = 5) -> dict[str, Any]:
    label_a, a = load_side(side_a)
    label_b, b = load_side(side_b)
    pairs = sorted(set(a) & set(b))
    if not pairs:
        raise CompareError(f"{label_a} and {label_b} share no (fold, seed): nothing to pair")
    diffs = np.array([a[k]["accuracy"] - b[k]["accuracy"] for k in pairs])
    # n_test / n_train of k-fold CV with equal folds: one fold against the other k - 1.
    ratio = 1.0 / (n_folds - 1)
    test = corrected_ttest(diffs, ratio)
    naive_p = math.nan
    if len(diffs) > 1 and diffs.std(ddof=1) > 0:
        from scipy import stats

        naive_p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    return {
        "a": label_a,
        "b": label_b,
        "pairs": [
            {"fold": f, "seed": s, "a": a[(f, s)]["accuracy"], "b": b[(f, s)]["accuracy"], "diff": float(d)}
            for (f, s), d in zip(pairs, diffs)
        ],
        "n": len(pairs),
        "test_train_ratio": ratio,
        **test,
        "p_uncorrected": naive_p,
        "wins": int((diffs > 0).sum()),
        "losses": int((diffs < 0).sum()),
        "ties": int((diffs == 0).sum()),
        "seed_std_a": seed_spread(a),
        "seed_std_b": seed_spread(b),
    }


def to_markdown(r: dict[str, Any]) -> str:
    def num(x: float | None) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    rows = [
        f"| {p['fold']} | {p['seed']} | {p['a']:.3f} | {p['b']:.3f} | {p['diff']:+.3f} |" for p in r["pairs"]
    ]
    unmeasured = " (one seed per fold: unmeasured)" if r["seed_std_a"] is None else ""
    lines = [
        f"# {r['a']} vs {r['b']} (test accuracy, paired by fold and seed)",
        "",
        "| fold | seed | A | B | A - B |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Mean difference A - B: **{r['mean']:+.3f}**, 95 % CI [{num(r['ci_low'])}, {num(r['ci_high'])}], "
        f"p = {num(r['p'])} (corrected resampled t-test, n = {r['n']}, variance x (1/n + "
        f"{r['test_train_ratio']:.3f})); the uncorrected paired t-test would say "
        f"p = {num(r['p_uncorrected'])}.",
        f"Wins / losses / ties for A: {r['wins']} / {r['losses']} / {r['ties']}.",
        f"Seed-to-seed standard deviation within a fold (noise floor): A {num(r['seed_std_a'])}, "
        f"B {num(r['seed_std_b'])}{unmeasured}.",
    ]
    return "\n".join(lines) + "\n"


def write_comparison(
    side_a: str, side_b: str, out_dir: str | Path, n_folds: int = 5
) -> tuple[dict[str, Any], Path]:
    result = compare(side_a, side_b, n_folds)
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "compare.json", result)
    return result, atomic_write_text(out_dir / "compare.md", to_markdown(result))
