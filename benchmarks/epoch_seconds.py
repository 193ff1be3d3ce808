"""Seconds per training epoch of published long runs, per run, arm and CPU: the median over
every epoch each fold's ``best.history.json`` records, grouped by the CPU its ``metrics.json``
names (flags, threads, arithmetic). Read from the runs' own records, so the table in
docs/speed.md never drifts.

    python benchmarks/epoch_seconds.py [RUN ...] [--write docs/speed.md]

RUN defaults to every ``docs/results/esc50-*`` experiment. ``--write`` replaces the table
between ``<!-- epochs:begin -->`` and ``<!-- epochs:end -->``. Not a controlled benchmark:
the long runs share two cores with whatever job ran beside them.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from audiogpt2.report import collect, hardware_label, hardware_of, replace_marked, seed_dirs

BEGIN, END = "<!-- epochs:begin -->", "<!-- epochs:end -->"


def epoch_seconds(run: Path) -> dict[tuple[str, str], list[float]]:
    """{(arm, CPU label): [seconds of every recorded epoch]} over a run's seeds and folds."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for seed_dir in seed_dirs(run) or [run]:
        for arm, folds in collect(seed_dir).items():
            for fold in folds.values():
                key = (arm, hardware_label(hardware_of(fold["metrics"])))
                found[key] += [e["seconds"] for e in fold["history"] if e.get("seconds")]
    return found


def table(runs: list[Path]) -> str:
    lines = [
        "| run | arm | CPU | seconds per epoch (median) | epochs |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        for (arm, cpu), seconds in sorted(epoch_seconds(run).items()):
            if seconds:
                median = statistics.median(seconds)
                lines.append(f"| {run.name} | {arm} | {cpu} | {median:.1f} s | {len(seconds)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="published runs (default: docs/results/esc50-*)")
    parser.add_argument("--write", type=Path, help="a document holding the epochs markers")
    args = parser.parse_args()
    runs = args.runs or sorted(p for p in Path("docs/results").glob("esc50-*") if p.is_dir())
    body = table(runs)
    print(body)
    if args.write:
        replace_marked(args.write, BEGIN, END, body)
        print(f"wrote the table into {args.write}")


if __name__ == "__main__":
    main()
