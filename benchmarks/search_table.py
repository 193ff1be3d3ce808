"""The ablation table of a one-change-at-a-time recipe search (``cv --validation-only``):
per candidate the change it makes to the base (read from the two runs' config.toml, never
typed by hand), the weight-averaged model's validation accuracy on each searched fold (a
run without averaging: its last epoch's, no epoch picked), the difference from the base in
clips, the mean validation loss and the verdict of the rule fixed before the runs: a change
is kept when the mean validation accuracy rises by at least ``--margin`` (one clip in 320:
0.003) without a higher mean validation loss; a candidate named with ``--saving`` only cuts
the cost and is kept unless that accuracy falls by more than the margin; one named with
``--stopped`` was ended early and is dropped, with its difference on the folds it finished.
Test folds are never read: a validation-only run has none scored.

    python benchmarks/search_table.py esc50-search-base esc50-search-mels128 ... \
        [--runs runs] [--write docs/recipe.md --marker esc50-search]

The first name is the base; a name that is a run folder's path is read there (a published
scored run, docs/results/NAME/seedK, as the base). ``--runs docs/searches`` reads the
published copies (benchmarks/publish_results.sh); a candidate with unfinished folds is
shown as pending.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audiogpt2.config import Config, tomllib  # tomli before Python 3.11
from audiogpt2.report import replace_marked

IGNORED = {"data.cache", "data.root"}  # where the features live, not what they are


def flatten(config: dict[str, dict[str, object]]) -> dict[str, object]:
    """``section.key -> value`` of a config's section tables (paths left out)."""
    return {
        f"{section}.{key}": value
        for section, values in config.items()
        if section != "paths"
        for key, value in values.items()
        if f"{section}.{key}" not in IGNORED
    }


def flat_config(run: Path) -> dict[str, object]:
    """``section.key -> value`` of a run's saved config."""
    return flatten(tomllib.loads((run / "config.toml").read_text(encoding="utf-8")))


def run_dir(runs: Path, name: str) -> Path:
    """``runs/NAME``, or NAME itself where it is a run folder (a published base elsewhere)."""
    return Path(name) if (Path(name) / "config.toml").is_file() else runs / name


def changes(base: Path, candidate: Path) -> str:
    """What the candidate sets differently from the base, as ``key = value`` pairs. A key the
    base's (older) config lacks had its default there."""
    defaults = flatten(Config().to_dict())
    old, new = flat_config(base), flat_config(candidate)
    diff = [f"`{k} = {json.dumps(v)}`" for k, v in new.items() if old.get(k, defaults.get(k, v)) != v]
    return ", ".join(diff) or "(the base)"


def fold_scores(run: Path) -> dict[int, tuple[float, float]]:
    """Per finished fold, the weight-averaged model's (validation accuracy, loss), or for a run
    without weight averaging its last epoch's (no epoch picked)."""
    scores = {}
    for arm in sorted(run.glob("fold*/*/")):
        if not ((arm / "validation.json").is_file() or (arm / "metrics.json").is_file()):
            continue  # unfinished
        average, history = arm / "best.average.json", arm / "best.history.json"
        if average.is_file():
            record = json.loads(average.read_text())
        elif history.is_file():
            record = json.loads(history.read_text())[-1]
        else:
            continue
        scores[int(arm.parent.name.removeprefix("fold"))] = (record["val_acc"], record["val_loss"])
    return scores


def verdict(
    base: dict, scores: dict, margin: float, folds: int, saving: bool, stopped: bool
) -> tuple[str, str]:
    """(difference in accuracy, verdict) against the base over the folds both finished. A
    ``stopped`` candidate was ended early, its later folds unrun: it is dropped, with its
    difference on the folds it finished."""
    if stopped and scores:
        acc = np.mean([scores[f][0] - base[f][0] for f in scores])
        return f"{acc:+.3f}", f"dropped: stopped after {len(scores)} of {folds} folds"
    if len(scores) < folds or len(base) < folds:
        return "-", f"pending ({len(scores)} of {folds} folds)"
    acc = np.mean([scores[f][0] for f in base]) - np.mean([base[f][0] for f in base])
    loss = np.mean([scores[f][1] for f in base]) - np.mean([base[f][1] for f in base])
    tol = 1e-9  # the table's rounding must not decide
    if saving:
        why = "kept (saving)" if acc >= -margin - tol else "dropped: the saving costs accuracy"
    elif acc < margin - tol:
        why = "dropped: below the margin"
    else:
        why = "kept" if loss <= 0 else "dropped: loss rose"
    return f"{acc:+.3f}", why


def table(
    runs: Path,
    names: list[str],
    margin: float,
    savings: frozenset[str] = frozenset(),
    stopped: frozenset[str] = frozenset(),
) -> str:
    """The markdown ablation table, base first."""
    base_run = run_dir(runs, names[0])
    base = fold_scores(base_run)
    folds = sorted({f for n in names for f in fold_scores(run_dir(runs, n))} | set(base)) or [1]
    head = " | ".join(f"fold {f}: val acc (loss)" for f in folds)
    lines = [f"| candidate | change from the base | {head} | mean | vs base | verdict |",
             "| --- | --- | " + "--- | " * len(folds) + "--- | --- | --- |"]  # fmt: skip
    for name in names:
        scores = fold_scores(run_dir(runs, name))
        cells = " | ".join(f"{scores[f][0]:.3f} ({scores[f][1]:.3f})" if f in scores else "-" for f in folds)
        mean = f"{np.mean([s[0] for s in scores.values()]):.3f}" if len(scores) == len(folds) else "-"
        delta, why = (
            ("", "base")
            if name == names[0]
            else verdict(base, scores, margin, len(folds), name in savings, name in stopped)
        )
        change = changes(base_run, run_dir(runs, name))
        lines.append(f"| {name} | {change} | {cells} | {mean} | {delta} | {why} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="+", help="run folder names, the base first")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding the runs")
    parser.add_argument("--margin", type=float, default=0.003, help="smallest gain kept (accuracy)")
    parser.add_argument("--saving", action="append", default=[], help="a candidate that only cuts cost")
    parser.add_argument(
        "--stopped", action="append", default=[], help="a candidate ended early: its unrun folds never come"
    )
    parser.add_argument("--write", type=Path, action="append", default=[], help="document to update")
    parser.add_argument("--marker", default="esc50-search", help="<!-- MARKER:begin --> ... end")
    args = parser.parse_args()
    missing = [n for n in args.names if not (run_dir(args.runs, n) / "config.toml").is_file()]
    if missing:
        parser.error(
            f"no config.toml under {args.runs} for {', '.join(missing)}: run the search first "
            "(bash benchmarks/esc50_results.sh recipe-search) or pass --runs docs/searches"
        )
    body = table(args.runs, args.names, args.margin, frozenset(args.saving), frozenset(args.stopped))
    print(body)
    for document in args.write:
        replace_marked(document, f"<!-- {args.marker}:begin -->", f"<!-- {args.marker}:end -->", body)


if __name__ == "__main__":
    main()
