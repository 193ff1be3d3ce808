"""The headline tables (README and docs/results.md), ESC-50 at 16 kHz first, then ESC-10,
from whichever runs exist: per row the 5-fold test accuracy as mean ± std over seeds (each
seed's mean over the five official folds), the seeds' ensemble, and the label every number
carries: dataset and sample rate, folds, seeds, split and external data. Unfinished seeds
are counted as such, never averaged in. Published anchors from the literature sit beside
them.

    python benchmarks/headline_tables.py [--runs docs/results] [--write README.md --write docs/results.md]

``--write`` replaces each table between its markers, ``<!-- esc50:begin -->`` ...
``<!-- esc50:end -->`` and ``<!-- esc10:begin -->`` ... ``<!-- esc10:end -->``, where a
document has them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from audiogpt2.report import collect, hardware_label, hardware_of, replace_marked, seed_dirs, seed_ensemble

VAL = "val 20 % of training folds"
ALL = "every training-fold clip (no validation; mean of the last 20 epochs' weights)"
REFIT = "every training-fold clip (no validation; last epoch's weights)"
ESC50_DATA = "ESC-50 at 16 kHz, official folds 1-5"
ESC10_DATA = "ESC-10 (44.1 kHz), official folds 1-5"
# (row title, run folder, arm, split, external data, command that regenerates the run)
ESC50_ROWS = [
    ("spec recipe, CNN only", "esc50-cnn-only-seeds", "baseline", VAL, "none",
     "bash benchmarks/esc50_results.sh cnn-only"),
    ("spec recipe, MiniLM pretrained (gradual unfreezing)", "esc50-minilm-seeds", "finetuned", VAL,
     "text (MiniLM)", "bash benchmarks/esc50_results.sh minilm"),
    ("spec recipe, MiniLM random init (spec schedule)", "esc50-minilm-seeds", "baseline", VAL, "none",
     "bash benchmarks/esc50_results.sh minilm"),
    ("spec recipe, MiniLM random init (`all`)", "esc50-minilm-all-seeds", "baseline", VAL, "none",
     "bash benchmarks/esc50_results.sh minilm"),
    ("ESC-50 recipe (configs/esc50-16k.toml), CNN only", "esc50-recipe-seeds", "baseline", ALL, "none",
     "bash benchmarks/esc50_results.sh recipe"),
    ("ESC-50 recipe, MiniLM pretrained", "esc50-recipe-minilm-seeds", "finetuned", ALL, "text (MiniLM)",
     "bash benchmarks/esc50_results.sh recipe-minilm"),
    ("ESC-50 recipe, MiniLM random init (`all`)", "esc50-recipe-minilm-seeds", "baseline", ALL, "none",
     "bash benchmarks/esc50_results.sh recipe-minilm"),
    ("mn04 front end, pooled head (configs/mn04.toml, fmax 8 kHz)", "esc50-mn04-seeds", "baseline", VAL,
     "**AudioSet**", "bash benchmarks/esc50_results.sh mn04"),
    ("mn04 front end, pooled head, refit", "esc50-mn04-refit-seeds", "baseline", REFIT, "**AudioSet**",
     "bash benchmarks/esc50_results.sh mn04-refit"),
    ("mn04 + MiniLM pretrained", "esc50-mn04-minilm-seeds", "finetuned", VAL, "**AudioSet** + text",
     "bash benchmarks/esc50_results.sh mn04-minilm"),
    ("mn04 + MiniLM random init (spec schedule)", "esc50-mn04-minilm-seeds", "baseline", VAL, "**AudioSet**",
     "bash benchmarks/esc50_results.sh mn04-minilm"),
    ("mn04 + MiniLM random init (`all`)", "esc50-mn04-minilm-all-seeds", "baseline", VAL, "**AudioSet**",
     "bash benchmarks/esc50_results.sh mn04-minilm"),
]  # fmt: skip
ESC10 = "bash benchmarks/esc10_results.sh"
ESC10_ROWS = [
    ("spec recipe, CNN only", "esc10-cnn-only-seeds", "baseline", VAL, "none", f"{ESC10} (step 1)"),
    ("spec recipe, MiniLM pretrained (gradual unfreezing)", "esc10-minilm-seeds-lr2e-5", "finetuned", VAL,
     "text (MiniLM)", f"{ESC10} (step 13)"),
    ("spec recipe, MiniLM random init (spec schedule)", "esc10-minilm-seeds-lr2e-5", "baseline", VAL, "none",
     f"{ESC10} (step 13)"),
    ("spec recipe, MiniLM random init (`all`)", "esc10-minilm-all-seeds-lr2e-5", "baseline", VAL, "none",
     f"{ESC10} (step 13)"),
    ("final recipe (configs/recipe.toml), CNN only", "esc10-recipe-band", "baseline", ALL, "none",
     f"{ESC10} (step 11)"),
    ("final recipe, MiniLM pretrained", "esc10-recipe-band-minilm", "finetuned", ALL, "text (MiniLM)",
     f"{ESC10} (step 12)"),
    ("final recipe, MiniLM random init (`all`)", "esc10-recipe-band-minilm", "baseline", ALL, "none",
     f"{ESC10} (step 12)"),
    ("mn04 front end, pooled head (configs/mn04.toml)", "esc10-mn04-seeds", "baseline", VAL, "**AudioSet**",
     f"{ESC10} (step 16)"),
    ("mn04 front end, pooled head, refit", "esc10-mn04-refit-seeds", "baseline", REFIT, "**AudioSet**",
     f"{ESC10} (step 17)"),
]  # fmt: skip
ESC50_ANCHORS = [
    ("human listeners (Piczak 2015)", "0.813", "ESC-50 44.1 kHz", "-", "none"),
    ("Piczak CNN on log-mel (2015)", "0.645", "ESC-50 44.1 kHz", "5 folds", "none"),
    (
        "EnvNet-v2 + between-class learning (Tokozume et al. 2018)",
        "0.849",
        "ESC-50 44.1 kHz",
        "5 folds",
        "none",
    ),
    ("ACDNet (Mohaimenuzzaman et al. 2023)", "0.871", "ESC-50 44.1 kHz", "5 folds", "none"),
    ("PANNs CNN14, fine-tuned (Kong et al. 2020)", "0.947", "ESC-50 44.1 kHz", "5 folds", "AudioSet"),
    ("AST / HTS-AT / BEATs (2021-2023)", "0.956 / 0.970 / 0.981", "ESC-50 44.1 kHz", "5 folds", "AudioSet"),
]
ESC10_ANCHORS = [
    ("human listeners (Piczak 2015)", "0.957", "ESC-10 44.1 kHz", "-", "none"),
    ("Piczak CNN on log-mel (2015)", "about 0.80", "ESC-10 44.1 kHz", "5 folds", "none"),
    ("ACDNet (Mohaimenuzzaman et al. 2023)", "0.967", "ESC-10 44.1 kHz", "5 folds", "none"),
]
# (marker name, rows, data label, anchors' dataset)
TABLES = [("esc50", ESC50_ROWS, ESC50_DATA, ESC50_ANCHORS, "ESC-50"),
          ("esc10", ESC10_ROWS, ESC10_DATA, ESC10_ANCHORS, "ESC-10")]  # fmt: skip


def row_cells(runs: Path, name: str, arm: str) -> tuple[str, str, str, str] | None:
    """(accuracy over complete seeds, ensemble, seeds done, per-seed means) or None."""
    root = runs / name
    per_seed = {d.name: found.get(arm, {}) for d in seed_dirs(root) if (found := collect(d))}
    complete = {s: folds for s, folds in per_seed.items() if sorted(folds) == [1, 2, 3, 4, 5]}
    partial = {s: sorted(f) for s, f in per_seed.items() if f and s not in complete}
    if not complete and not partial:
        return None
    means = [
        float(np.mean([f["metrics"]["accuracy"] for f in folds.values()])) for folds in complete.values()
    ]
    if len(means) > 1:
        acc = f"**{np.mean(means):.3f}** ± {np.std(means, ddof=1):.3f}"
    elif means:
        acc = f"**{means[0]:.3f}** (one seed)"
    else:  # no seed has all five folds yet: the finished folds only, marked as such
        accs = [f["metrics"]["accuracy"] for folds in per_seed.values() for f in folds.values()]
        acc = f"{np.mean(accs):.3f} over {len(accs)} finished fold(s) (partial)"
    ensemble = seed_ensemble(complete) if len(complete) > 1 else None
    ens = f"{ensemble['mean']:.3f}" if ensemble else "-"
    unfinished = "; ".join(f"{s}: folds {', '.join(map(str, f))}" for s, f in partial.items())
    done = f"{len(complete)}" + (f" (+ {unfinished})" if partial else "")
    each = ", ".join(f"{m:.3f}" for m in means) or "-"
    return acc, ens, done, each, machine(per_seed)


def machine(per_seed: dict[str, dict[int, dict]]) -> str:
    """Training time per seed (all five folds, mean over complete seeds) and where it ran:
    CPU model, threads and arithmetic, as each fold's metrics recorded them."""
    folds = [f["metrics"] for done in per_seed.values() for f in done.values()]
    minutes = [sum(f["metrics"].get("train_seconds", 0) for f in done.values()) / 60
               for done in per_seed.values() if len(done) == 5]  # fmt: skip
    where = "; ".join(hardware_label(hw) for hw in sorted({hardware_of(m) for m in folds}, key=str))
    return (f"{np.mean(minutes):.0f} min per seed; " if minutes else "") + where


def table(runs: Path, rows: list[tuple], data: str, anchors: list[tuple], dataset: str) -> str:
    lines = [
        "| system | test accuracy, mean ± std over seeds | seeds' ensemble | seeds (5 folds each) "
        "| per-seed means | data | split | external data | training time and machine | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for title, name, arm, split, external, command in rows:
        cells = row_cells(runs, name, arm)
        if cells is None:
            continue
        acc, ens, done, each, where = cells
        lines.append(f"| {title} | {acc} | {ens} | {done} | {each} | {data} | {split} | {external} "
                     f"| {where} | `{command}` |")  # fmt: skip
    lines += ["", "Published figures (their own papers; 44.1 kHz audio, official 5-fold CV):", "",
              f"| system | {dataset} accuracy | data | folds | external data |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in anchors]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="docs/results")
    parser.add_argument("--write", action="append", default=[], metavar="FILE.md")
    args = parser.parse_args()
    for marker, rows, data, anchors, dataset in TABLES:
        body = table(Path(args.runs), rows, data, anchors, dataset)
        if not args.write:
            print(body + "\n")
        begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        for document in args.write:
            if begin in Path(document).read_text():
                replace_marked(document, begin, end, body)
                print(f"wrote the {dataset} table into {document}")


if __name__ == "__main__":
    main()
