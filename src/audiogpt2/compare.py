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
        if arm:  # likewise a seed that has not finished a fold of this arm yet
            runs = {d: found for d, found in runs.items() if arm in found}
            if not runs:
                raise CompareError(f"no finished {arm} fold under {listed}; run `audiogpt2 cv` first")
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
        "folds": sorted({f for f, _ in pairs}),
        "n_folds": n_folds,
        "test_train_ratio": ratio,
        **test,
        "p_uncorrected": naive_p,
        "wins": int((diffs > 0).sum()),
        "losses": int((diffs < 0).sum()),
        "ties": int((diffs == 0).sum()),
        "seed_std_a": seed_spread(a),
        "seed_std_b": seed_spread(b),
        "per_class": per_class_differences(a, b, pairs),
    }


def per_class_differences(a: dict, b: dict, pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Each class's test accuracy on side A and B (their confusion matrices summed over the
    paired folds and seeds) and A - B; empty when the runs kept no confusion matrices."""
    try:
        classes = a[pairs[0]]["classes"]
        total_a = sum(np.asarray(a[p]["confusion_matrix"], dtype=float) for p in pairs)
        total_b = sum(np.asarray(b[p]["confusion_matrix"], dtype=float) for p in pairs)
    except (KeyError, IndexError):
        return []
    if any(b[p].get("classes") != classes for p in pairs):
        return []
    acc_a = np.diag(total_a) / np.maximum(total_a.sum(axis=1), 1)
    acc_b = np.diag(total_b) / np.maximum(total_b.sum(axis=1), 1)
    return [
        {"class": c, "a": float(x), "b": float(y), "diff": float(x - y)}
        for c, x, y in zip(classes, acc_a, acc_b)
    ]


def short_label(label: str) -> str:
    """``runs/x/seed0,runs/x/seed1:arm`` -> ``x (seed0, seed1): arm`` for figure titles."""
    dirs, _, arm = label.partition(":")  # as load_side reads it
    paths = [Path(d) for d in dirs.split(",") if d]
    names = sorted({p.parent.name if p.name.startswith("seed") else p.name for p in paths})
    seeds = [p.name for p in paths if p.name.startswith("seed")]
    return f"{', '.join(names)}" + (f" ({', '.join(seeds)})" if seeds else "") + (f": {arm}" if arm else "")


def plot_pairs(r: dict[str, Any], path: Path) -> Path:
    """A - B per (fold, seed) pair, with the mean and its corrected 95 % interval: the whole
    comparison in one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiogpt2.io import atomic_savefig

    pairs = r["pairs"]
    diffs = [p["diff"] for p in pairs]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(pairs) + 2), 3.6))
    ax.bar(range(len(pairs)), diffs, color=["tab:green" if d > 0 else "tab:red" for d in diffs])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(r["mean"], color="tab:blue", linewidth=1.2, label=f"mean {r['mean']:+.3f}")
    if not math.isnan(r.get("ci_low", math.nan)):
        ax.axhspan(r["ci_low"], r["ci_high"], color="tab:blue", alpha=0.15,
                   label=f"95 % CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] (corrected)")  # fmt: skip
    ax.set_xticks(range(len(pairs)), [f"f{p['fold']} s{p['seed']}" for p in pairs], rotation=90, fontsize=7)
    ax.set_ylabel("test accuracy, A - B")
    ax.set_title(f"A = {short_label(r['a'])}\nB = {short_label(r['b'])}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def plot_per_class(r: dict[str, Any], path: Path) -> Path:
    """A bar per class of A - B test accuracy, grouped by super-category for ESC-50."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiogpt2.categories import GROUP_OF, grouped_order
    from audiogpt2.io import atomic_savefig

    rows = r["per_class"]
    order, _ = grouped_order([row["class"] for row in rows])
    rows = [rows[i] for i in order]
    colours = dict(zip(["animals", "natural", "human", "domestic", "urban"], plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(rows) + 2), 4.2))
    ax.bar(range(len(rows)), [row["diff"] for row in rows],
           color=[colours.get(GROUP_OF.get(row["class"]), "tab:blue") for row in rows])  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [row["class"] for row in rows], rotation=90, fontsize=7)
    ax.set_ylabel("test accuracy, A - B")
    ax.set_title(f"per class: {short_label(r['a'])}\nminus {short_label(r['b'])} (all pairs)", fontsize=8)
    present = [g for g in colours if g in {GROUP_OF.get(row["class"]) for row in rows}]
    if present:
        ax.legend([plt.Rectangle((0, 0), 1, 1, color=colours[g]) for g in present], present, fontsize=7)
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def partial_caveat(r: dict[str, Any]) -> str:
    """A warning when the pairs miss some test folds: then the interval lacks their spread."""
    folds = r.get("folds") or []
    n_folds = r.get("n_folds", len(folds))
    if len(folds) >= n_folds:
        return ""
    return (
        f"the pairs cover test fold(s) {', '.join(map(str, folds))} of {n_folds}, so the interval "
        "leaves out how the difference varies from fold to fold. It is no finding until every fold has run."
    )


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
    caveat = partial_caveat(r)
    if caveat:
        lines += ["", f"**Partial:** {caveat}"]
    lines += ["", "![A - B per fold and seed](pairs.png)"]
    if r.get("per_class"):
        ranked = sorted(r["per_class"], key=lambda row: row["diff"])
        show = lambda rows: ", ".join(f"{x['class']} {x['diff']:+.2f}" for x in rows)  # noqa: E731
        lines += ["", "![per-class difference](per_class.png)", "",
                  f"Per class (A - B over all pairs), largest gains: {show(ranked[::-1][:5])}; "
                  f"largest losses: {show(ranked[:5])}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_comparison(
    side_a: str, side_b: str, out_dir: str | Path, n_folds: int = 5
) -> tuple[dict[str, Any], Path]:
    result = compare(side_a, side_b, n_folds)
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "compare.json", result)
    plot_pairs(result, out_dir / "pairs.png")
    if result["per_class"]:
        plot_per_class(result, out_dir / "per_class.png")
    return result, atomic_write_text(out_dir / "compare.md", to_markdown(result))
