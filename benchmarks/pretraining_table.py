"""The "pretrained vs random" table of docs/results.md from whichever runs exist: each
comparison's mean difference with its 95 % interval, corrected p (and the plain one), wins
and losses, and the seed-to-seed noise floor of both sides (``audiogpt2 compare``, paired by
fold and seed). Runs come from steps 12-13 of benchmarks/esc10_results.sh; a comparison
whose runs are missing or unfinished is listed as such, never guessed. The "chosen on
validation" rows use each arm's learning rate from the `select --scope arm` folders.

    python benchmarks/pretraining_table.py [--runs runs] [--suffix -h100] [--write docs/results.md]
        [--figures docs/results/compare]   # each comparison's compare.md, pairs.png, per_class.png

``--suffix`` reads the spec-recipe runs made on a lent GPU (benchmarks/device/gpu.sh).
``--write`` replaces the table between the ``<!-- pretraining:begin -->`` and
``<!-- pretraining:end -->`` lines of that Markdown file instead of printing it, so the
published table is never pasted by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

from audiogpt2.compare import CompareError, compare, partial_caveat, write_comparison
from audiogpt2.report import replace_marked

# where --write puts the table in its document
BEGIN, END = "<!-- pretraining:begin -->", "<!-- pretraining:end -->"


def chosen_lr(selection: Path, arm: str) -> str | None:
    """The learning rate of the run ``select --scope arm`` chose for ``arm``, spelt as in run
    names (``1e-4``): the chosen run's recorded ``lr_backbone``, or for selections written
    before ``select`` recorded it, the ``-lr...`` part of the chosen run's name."""
    if not selection.is_file():
        return None
    choice = next(c for c in json.loads(selection.read_text()) if c["arm"] == arm)
    if choice.get("lr_backbone") is not None:
        mantissa, exponent = f"{choice['lr_backbone']:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return choice["chosen"].rsplit("-lr", 1)[1].split("/")[0]


def comparisons(runs: str, suffix: str) -> list[tuple[str, str, str]]:
    spec = f"{runs}/esc10-minilm-seeds-lr{{}}{suffix}"
    spec_all = f"{runs}/esc10-minilm-all-seeds-lr{{}}{suffix}"
    # one backbone learning rate per arm, chosen on validation (step 13b); "unchosen" when
    # the selection is not there yet, which compare then reports as not run
    tuned = [
        chosen_lr(Path(runs) / "esc10-minilm-lr-per-arm" / "selection.json", "finetuned"),
        chosen_lr(Path(runs) / "esc10-minilm-lr-per-arm" / "selection.json", "baseline"),
        chosen_lr(Path(runs) / "esc10-minilm-all-lr-per-arm" / "selection.json", "baseline"),
    ]
    rows = []
    for (pre, sched, full), what in (
        (("2e-5",) * 3, "spec learning rates"),
        ([lr or "unchosen" for lr in tuned], "each arm's rate chosen on validation"),
    ):
        rows += [
            (f"spec recipe, {what}: pretrained - random (`schedule`)",
             f"{spec.format(pre)}:finetuned", f"{spec.format(sched)}:baseline"),
            (f"spec recipe, {what}: pretrained - random (`all`)",
             f"{spec.format(pre)}:finetuned", f"{spec_all.format(full)}:baseline"),
            (f"spec recipe, {what}: random `all` - random `schedule`",
             f"{spec_all.format(full)}:baseline", f"{spec.format(sched)}:baseline"),
        ]  # fmt: skip
    # does the transformer help at all? Both MiniLM readings against the CNN alone (same
    # seeds, folds and code; spec learning rates)
    cnn = f"{runs}/esc10-cnn-only-seeds{suffix}:baseline"
    rows += [
        ("spec recipe, spec learning rates: pretrained MiniLM - CNN only",
         f"{spec.format('2e-5')}:finetuned", cnn),
        ("spec recipe, spec learning rates: random `all` - CNN only",
         f"{spec_all.format('2e-5')}:baseline", cnn),
    ]  # fmt: skip
    final = f"{runs}/esc10-recipe-band-minilm"
    rows += [
        ("final recipe: pretrained - random (`all`)", f"{final}:finetuned", f"{final}:baseline"),
        (
            "final recipe: pretrained MiniLM - CNN only",
            f"{final}:finetuned",
            f"{runs}/esc10-recipe-band:baseline",
        ),
        (
            "final recipe: random `all` - CNN only",
            f"{final}:baseline",
            f"{runs}/esc10-recipe-band:baseline",
        ),
        (
            "mn04 front end (AudioSet) - final recipe CNN, both without a transformer",
            f"{runs}/esc10-mn04-seeds:baseline",
            f"{runs}/esc10-recipe-band:baseline",
        ),
        (
            "mn04 front end, refit on every training clip - picked on validation",
            f"{runs}/esc10-mn04-refit-seeds:baseline",
            f"{runs}/esc10-mn04-seeds:baseline",
        ),
    ]
    return [(f"ESC-10, {label}", a, b) for label, a, b in rows] + esc50_comparisons(runs)


def esc50_comparisons(runs: str) -> list[tuple[str, str, str]]:
    """The same questions on ESC-50 at 16 kHz (benchmarks/esc50_results.sh), and what the
    AudioSet front end (external data) adds."""
    spec, spec_all = f"{runs}/esc50-minilm-seeds", f"{runs}/esc50-minilm-all-seeds"
    cnn, mn04 = f"{runs}/esc50-cnn-only-seeds:baseline", f"{runs}/esc50-mn04-seeds:baseline"
    refit = f"{runs}/esc50-mn04-refit-seeds:baseline"
    mn_pre, mn_sched, mn_all = (
        f"{runs}/esc50-mn04-minilm-seeds:finetuned",
        f"{runs}/esc50-mn04-minilm-seeds:baseline",
        f"{runs}/esc50-mn04-minilm-all-seeds:baseline",
    )
    # the recipe without external data, and its MiniLM arms (paired on the seeds both ran)
    recipe, rec_pre, rec_all = (
        f"{runs}/esc50-recipe-seeds:baseline",
        f"{runs}/esc50-recipe-minilm-seeds:finetuned",
        f"{runs}/esc50-recipe-minilm-seeds:baseline",
    )
    return [
        (f"ESC-50 at 16 kHz, {label}", a, b)
        for label, a, b in (
            ("spec recipe: pretrained - random (`schedule`)", f"{spec}:finetuned", f"{spec}:baseline"),
            ("spec recipe: pretrained - random (`all`)", f"{spec}:finetuned", f"{spec_all}:baseline"),
            ("spec recipe: pretrained MiniLM - CNN only", f"{spec}:finetuned", cnn),
            ("our recipe CNN - spec CNN, both without a transformer", recipe, cnn),
            ("our recipe: pretrained MiniLM - random (`all`)", rec_pre, rec_all),
            ("our recipe: pretrained MiniLM - CNN only", rec_pre, recipe),
            ("mn04 front end (AudioSet) - spec CNN, both without a transformer", mn04, cnn),
            ("mn04 front end, refit on every training clip - picked on validation", refit, mn04),
            ("mn04 front end refit - our recipe CNN, both on every training clip, no transformer",
             refit, recipe),
            ("mn04 front end: pretrained MiniLM - random (`all`)", mn_pre, mn_all),
            ("mn04 front end: pretrained MiniLM - random (`schedule`)", mn_pre, mn_sched),
            ("mn04 front end: random MiniLM `all` - random `schedule`", mn_all, mn_sched),
            ("mn04 front end: pretrained MiniLM - no transformer", mn_pre, mn04),
            ("mn04 front end: random MiniLM (`all`) - no transformer", mn_all, mn04),
            ("mn04 front end - our recipe CNN, both feeding pretrained MiniLM", mn_pre, rec_pre),
            ("mn04 front end - our recipe CNN, both feeding random MiniLM (`all`)", mn_all, rec_all),
        )
    ]  # fmt: skip


def num(x: float | None, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def pair_count(r: dict) -> str:
    """The pair count, marked partial (with its folds) while some test folds are missing."""
    if not partial_caveat(r):
        return str(r["n"])
    return f"{r['n']} (partial: fold {', '.join(map(str, r['folds']))} of {r['n_folds']})"


def slug(label: str) -> str:
    """A folder name for a comparison's figures."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def table(runs: str, suffix: str, figures: Path | None = None, document: Path | None = None) -> list[str]:
    lines = [
        "| comparison (A - B, test accuracy) | pairs (fold x seed) | mean difference, 95 % CI "
        "| p corrected (plain) | A wins / losses / ties | seed noise floor A, B |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, side_a, side_b in comparisons(runs, suffix):
        try:
            if figures is None:
                r = compare(side_a, side_b)
            else:  # the comparison's own page and pictures beside the table
                r, _ = write_comparison(side_a, side_b, figures / slug(label))
                page = figures / slug(label) / "compare.md"
                link = os.path.relpath(page, document.parent) if document else page
                label = f"[{label}]({link})"
        except (CompareError, FileNotFoundError) as exc:
            lines.append(f"| {label} | not run yet | | | | |")
            print(f"{label}: {exc}", file=sys.stderr)
            continue
        ci = f"[{num(r['ci_low'], '{:+.3f}')}, {num(r['ci_high'], '{:+.3f}')}]"
        p = f"{num(r['p'], '{:.2f}')} ({num(r['p_uncorrected'], '{:.2f}')})"
        lines.append(
            f"| {label} | {pair_count(r)} | {r['mean']:+.3f} {ci} | {p} "
            f"| {r['wins']} / {r['losses']} / {r['ties']} | {num(r['seed_std_a'])}, {num(r['seed_std_b'])} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--suffix", default="")
    parser.add_argument("--write", type=Path, help="Markdown file whose table to replace")
    parser.add_argument(
        "--figures", type=Path, help="folder (beside --write) for each comparison's page and plots"
    )
    args = parser.parse_args()
    lines = table(args.runs, args.suffix, args.figures, args.write)
    if args.write:
        replace_marked(args.write, BEGIN, END, "\n".join(lines))
        print(f"{args.write}: table rewritten ({len(lines) - 2} rows)")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
