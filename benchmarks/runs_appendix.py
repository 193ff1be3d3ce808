"""The appendix of docs/results.md: every published experiment, what it is and the script
step that makes it, generated from docs/results/ and the run scripts, so it never drifts.

    python benchmarks/runs_appendix.py [--runs docs/results] [--write docs/results.md]

``--write`` replaces the table between ``<!-- runs:begin -->`` and ``<!-- runs:end -->``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from audiogpt2.config import tomllib
from audiogpt2.report import collect, replace_marked, seed_dirs

BEGIN, END = "<!-- runs:begin -->", "<!-- runs:end -->"
SCRIPTS = ("benchmarks/esc10_results.sh", "benchmarks/esc50_results.sh")


def script_steps() -> list[tuple[re.Pattern, str]]:
    """(pattern of an experiment name, "script step N") for every `--name` in the scripts;
    shell variables in a name match anything."""
    found = []
    for script in SCRIPTS:
        step = "?"
        for line in Path(script).read_text(encoding="utf-8").splitlines():
            if m := re.match(r"#\s*(\d+[a-z]?)\.", line.strip()):
                step = m.group(1)
            # `cv --name NAME`, `select ... --out runs/NAME`, `reevaluate_tta.py IN runs/NAME`
            outputs = r"(?:--name\s+|--out\s+runs/|reevaluate_tta\.py\s+\S+\s+runs/)\"?([^\s\"]+)"
            for name in re.findall(outputs, line):
                parts = re.split(r"\$\{?\w+\}?", name)  # shell variables match anything
                pattern = ".+".join(map(re.escape, parts))
                found.append((re.compile(pattern + r"$"), f"`{Path(script).name}` step {step}"))
    return found


def describe(run: Path) -> tuple[str, str, str]:
    """(seeds and folds, arms, settings) of one published experiment."""
    seeds = seed_dirs(run) or [run]
    found = {d.name: collect(d) for d in seeds}
    arms = sorted({arm for f in found.values() for arm in f})
    folds = sorted({fold for f in found.values() for done in f.values() for fold in done})
    shape = f"{len(seeds)} seed(s), folds {','.join(map(str, folds))}" if folds else "no finished fold"
    config_path = next((d / "config.toml" for d in [run, *seeds] if (d / "config.toml").is_file()), None)
    if config_path is None:
        return shape, ", ".join(arms), "-"
    config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    audio, model, train = config.get("audio", {}), config.get("model", {}), config.get("train", {})
    ran = sorted({done[f]["metrics"].get("arithmetic", "fp32") for x in found.values() for done in x.values()
                  for f in done})  # fmt: skip
    settings = (
        f"{audio.get('features', 'mfcc')} at {audio.get('sample_rate', 16000)} Hz; "
        f"{model.get('frontend', 'cnn')} + {model.get('backbone')}; {train.get('epochs')} epochs; "
        f"{'/'.join(ran)}"
    )
    return shape, ", ".join(arms), settings


def table(runs: Path) -> str:
    steps = script_steps()
    lines = ["| experiment | seeds and folds | arms | features; front end + backbone; epochs; arithmetic "
             "| made by |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for run in sorted(p for p in runs.iterdir() if p.is_dir() and p.name != "compare"):
        shape, arms, settings = describe(run)
        made = next((where for pattern, where in steps if pattern.match(run.name)), "see the notes below")
        lines.append(
            f"| [{run.name}](results/{run.name}/report.md) | {shape} | {arms} | {settings} | {made} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("docs/results"))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    body = table(args.runs)
    if args.write:
        replace_marked(args.write, BEGIN, END, body)
        print(f"{args.write}: runs appendix rewritten")
    else:
        print(body)


if __name__ == "__main__":
    main()
