"""Cross-validation report, rebuilt from saved outputs (metrics.json, history), no retraining."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from audiogpt2.categories import grouped_order
from audiogpt2.errors import AudioGPT2Error
from audiogpt2.evaluate import most_confused, plot_confusion
from audiogpt2.io import atomic_savefig, atomic_write_json, atomic_write_text

METRICS = ("accuracy", "precision", "recall", "f1")


def collect(run_dir: str | Path) -> dict[str, dict[int, dict[str, Any]]]:
    """{arm: {fold: {"metrics": ..., "history": [...]}}} for every finished fold."""
    run_dir = Path(run_dir)
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for metrics_path in sorted(run_dir.glob("fold*/*/metrics.json")):
        arm = metrics_path.parent.name
        fold = int(metrics_path.parent.parent.name.removeprefix("fold"))
        history_path = metrics_path.parent / "best.history.json"
        found.setdefault(arm, {})[fold] = {
            "metrics": json.loads(metrics_path.read_text()),
            "history": json.loads(history_path.read_text()) if history_path.is_file() else [],
            "average": _average_record(metrics_path.parent),
        }
    return found


def hardware_of(metrics: dict[str, Any]) -> tuple[str, str, Any, str]:
    """(CPU model, recorded CPU flags, torch threads, arithmetic) of one fold's metrics."""
    h = metrics.get("hardware", {})
    arithmetic = metrics.get("arithmetic", "fp32")
    return h.get("cpu", "?"), h.get("cpu_flags", ""), h.get("torch_threads"), arithmetic


def hardware_label(hardware: tuple[str, str, Any, str]) -> str:
    """Where a fold ran, as the tables print it: "CPU (flags), N thread(s), arithmetic"."""
    cpu, flags, threads, arithmetic = hardware
    return f"{cpu}{f' ({flags})' if flags else ''}, {threads} thread(s), {arithmetic}"


def _average_record(arm_dir: Path) -> dict[str, Any] | None:
    """The weight-averaged model's validation record (train.average_epochs), if any."""
    path = arm_dir / "best.average.json"
    return json.loads(path.read_text()) if path.is_file() else None


def summarise(folds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"folds": sorted(folds), "per_fold": {}}
    for name in METRICS:
        values = [folds[f]["metrics"][name] for f in sorted(folds)]
        out["per_fold"][name] = values
        # sample standard deviation (n - 1): with five folds the population formula
        # would understate the spread by about 10 %
        std = float(np.std(values, ddof=1)) if len(values) > 1 else None  # one fold: no spread
        out[name] = {"mean": float(np.mean(values)), "std": std}
    out["train_seconds"] = float(sum(folds[f]["metrics"].get("train_seconds", 0) for f in folds))
    out["epochs_run"] = [folds[f]["metrics"].get("epochs_run") for f in sorted(folds)]
    # the saved model: the best-validation epoch, or the epochs whose weights were averaged
    out["best_epoch"] = [
        f"{folds[f]['average']['averaged_epochs']} (mean)"
        if folds[f].get("average")
        else folds[f]["metrics"].get("best_epoch")
        for f in sorted(folds)
    ]
    return out


def plot_curves(arm: str, folds: dict[int, dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    unfreeze_epochs: set[int] = set()
    validated = False
    for i, fold in enumerate(sorted(folds)):
        hist = folds[fold]["history"]
        if not hist:
            continue
        ep = [h["epoch"] for h in hist]
        color = plt.cm.tab10(i % 10)
        ax_loss.plot(ep, [h["train_loss"] for h in hist], color=color, label=f"fold {fold} train")
        ax_acc.plot(ep, [h["train_acc"] for h in hist], color=color, label=f"fold {fold} train")
        if hist[0]["val_acc"] is not None:  # None: trained without a validation set
            validated = True
            ax_loss.plot(ep, [h["val_loss"] for h in hist], color=color, ls="--", label=f"fold {fold} val")
            ax_acc.plot(ep, [h["val_acc"] for h in hist], color=color, ls="--", label=f"fold {fold} val")
        for prev, cur in zip(hist, hist[1:]):
            if len(cur["trainable_blocks"]) > len(prev["trainable_blocks"]):
                unfreeze_epochs.add(cur["epoch"])
    for ax, label in ((ax_loss, "cross-entropy loss"), (ax_acc, "accuracy")):
        for e in sorted(unfreeze_epochs):
            ax.axvline(e, color="grey", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if unfreeze_epochs:
        ax_acc.text(
            0.01,
            0.02,
            "dotted: a backbone block unfrozen",
            transform=ax_acc.transAxes,
            fontsize=8,
            color="grey",
        )
    if ax_acc.get_legend_handles_labels()[0]:
        ax_acc.legend(fontsize=7, ncol=2, loc="lower right")
    key = "solid = train, dashed = validation" if validated else "training folds only: no validation set"
    fig.suptitle(f"{arm}: training curves ({key})")
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return out


def _fmt(stat: dict[str, float | None]) -> str:
    if stat["std"] is None:
        return f"{stat['mean']:.3f} (one fold)"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def arm_section(run_dir: Path, arm: str, folds: dict[int, Any], s: dict[str, Any]) -> list[str]:
    """One arm's per-fold table, curves, summed confusion matrix and hardware; adds the
    most-confused pairs, hardware and weights to its summary ``s``."""
    lines = [
        f"## {arm}",
        "",
        "| fold | accuracy | F1 | saved epoch | epochs run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, fold in enumerate(s["folds"]):
        lines.append(
            f"| {fold} | {s['per_fold']['accuracy'][i]:.3f} | {s['per_fold']['f1'][i]:.3f} | "
            f"{s['best_epoch'][i]} | {s['epochs_run'][i]} |"
        )
    first = folds[s["folds"][0]]["metrics"]
    classes = first["classes"]
    total = np.sum([np.asarray(folds[f]["metrics"]["confusion_matrix"]) for f in folds], axis=0)
    title = f"{arm}: confusion summed over folds {s['folds']}"
    plot_confusion(total, classes, run_dir / f"confusion_{arm}.png", title)
    curves = plot_curves(arm, folds, run_dir / f"curves_{arm}.png")
    pairs = most_confused(total, classes)
    s["most_confused"] = pairs
    s["per_class_accuracy"] = per_class_accuracy(total, classes)
    # Folds may run on different machines or thread counts: name each setting's folds.
    by_setting: dict[str, list[int]] = {}
    for fold in s["folds"]:
        by_setting.setdefault(json.dumps(folds[fold]["metrics"].get("hardware", {})), []).append(fold)
    s["hardware"] = [{"folds": fs, **json.loads(hw)} for hw, fs in by_setting.items()]
    s["backbone_source"] = first.get("backbone_source")
    hardware = "; ".join(f"{hw} (folds {', '.join(map(str, fs))})" for hw, fs in by_setting.items())
    return lines + [
        "",
        f"Weights: {s['backbone_source']}. Hardware: {hardware}",
        "",
        f"![curves]({curves.name})",
        f"![confusion](confusion_{arm}.png)",
        "",
        "Most-confused pairs (true → predicted, count over all folds): "
        + "; ".join(f"{p['true']} → {p['predicted']} ({p['count']})" for p in pairs),
        "",
        *per_class_table(s["per_class_accuracy"], classes),
    ]


def per_class_accuracy(confusion: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Each class's accuracy (recall) from a confusion matrix summed over folds."""
    counts = np.asarray(confusion, dtype=float)
    rows = counts.sum(axis=1)
    return {c: float(counts[i, i] / rows[i]) if rows[i] else float("nan") for i, c in enumerate(classes)}


def per_class_table(accuracy: dict[str, float], classes: list[str]) -> list[str]:
    """Per-class accuracy as one row per super-category (ESC-50), or one row."""
    order, spans = grouped_order(classes)
    spans = spans or [("all classes", 0, len(classes))]
    lines = ["| category | mean | per class (accuracy over all folds) |", "| --- | --- | --- |"]
    for group, first, end in spans:
        names = [classes[i] for i in order[first:end]]
        cells = ", ".join(f"{n} {accuracy[n]:.2f}" for n in names)
        lines.append(f"| {group} | {np.nanmean([accuracy[n] for n in names]):.3f} | {cells} |")
    return [*lines, ""]


def build_validation_summary(run_dir: str | Path, last: int = 10) -> Path:
    """validation.md of a ``cv --validation-only`` search: per fold and arm the best
    validation accuracy (optimistic: the best of many epochs), the mean over the last
    ``last`` epochs (not picked, so a fairer basis for choosing between recipes) and, with
    ``train.average_epochs``, the weight-averaged model's (not picked either)."""
    run_dir = Path(run_dir)
    lines = [f"# Validation only: {run_dir.name} (test folds not scored)", "",
             f"| arm | fold | epochs | best val acc (epoch) | mean val acc, last {last} epochs "
             "| averaged model: val acc (loss) |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    rows: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(run_dir.glob("fold*/*/best.history.json")):
        history = json.loads(path.read_text())
        if not history:
            continue
        acc = [h["val_acc"] for h in history]
        best = int(np.argmax(acc))
        tail = float(np.mean(acc[-last:]))
        average = _average_record(path.parent)
        shown = f"{average['val_acc']:.3f} ({average['val_loss']:.3f})" if average else "-"
        arm, fold = path.parent.name, path.parent.parent.name.removeprefix("fold")
        rows.setdefault(arm, []).append((tail, average["val_acc"] if average else float("nan")))
        lines.append(f"| {arm} | {fold} | {len(acc)} | {acc[best]:.3f} ({best + 1}) | {tail:.3f} | {shown} |")
    for arm, scores in rows.items():
        tails, averaged = zip(*scores)
        mean_avg = "-" if any(np.isnan(averaged)) else f"{np.mean(averaged):.3f}"
        lines.append(f"| {arm} | mean | | | {np.mean(tails):.3f} | {mean_avg} |")
    return atomic_write_text(run_dir / "validation.md", "\n".join(lines) + "\n")


def build_report(run_dir: str | Path) -> Path:
    """Write report.md, report.json and the PNGs into ``run_dir``; returns report.md."""
    run_dir = Path(run_dir)
    found = collect(run_dir)
    if not found:
        raise FileNotFoundError(
            f"no finished folds under {run_dir} (expected fold<k>/<arm>/metrics.json); "
            "run `audiogpt2 cv` first"
        )
    config_text = (run_dir / "config.toml").read_text() if (run_dir / "config.toml").is_file() else ""
    summary: dict[str, Any] = {"run_dir": str(run_dir), "arms": {}}
    lines = [f"# Cross-validation report: {run_dir.name}", ""]
    lines += [
        "| arm | folds | accuracy | precision | recall | F1 (weighted) | train time, all folds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, folds in found.items():
        s = summarise(folds)
        summary["arms"][arm] = s
        lines.append(
            f"| {arm} | {len(folds)} | {_fmt(s['accuracy'])} | {_fmt(s['precision'])} | "
            f"{_fmt(s['recall'])} | {_fmt(s['f1'])} | {s['train_seconds'] / 60:.1f} min |"
        )
    lines += [
        "",
        "Mean ± sample standard deviation over folds; each fold's test fold is evaluated once "
        "with its saved model: the epoch that scored best on validation data drawn from its "
        'training folds, or the mean of the last epochs\' weights (the "saved epoch" column).',
        "",
    ]
    for arm, folds in found.items():
        lines += arm_section(run_dir, arm, folds, summary["arms"][arm])
    if (run_dir / "selection.json").is_file():  # a `select` folder: how each fold was chosen
        lines += selection_section(json.loads((run_dir / "selection.json").read_text()))
    if config_text:
        lines += ["## Resolved config", "", "```toml", config_text.strip(), "```", ""]
    atomic_write_json(run_dir / "report.json", summary)
    return atomic_write_text(run_dir / "report.md", "\n".join(lines))


def _validation_rank(fold: dict[str, Any]) -> tuple[float, float]:
    """Higher validation accuracy first; ties (common with 64 validation clips) go to the
    lower validation loss of the saved model."""
    metrics = fold["metrics"]
    if metrics.get("best_val_acc") is None:
        raise AudioGPT2Error(
            f"fold {metrics.get('fold')} was trained without a validation set "
            "(data.val_fraction = 0): nothing to select it by; select among runs that kept one"
        )
    if "best_val_loss" in metrics:
        return metrics["best_val_acc"], -metrics["best_val_loss"]
    at_best = [h for h in fold["history"] if h["epoch"] == metrics.get("best_epoch")]
    return metrics["best_val_acc"], -(at_best[0]["val_loss"] if at_best else float("inf"))


def seed_dirs(run_dir: str | Path) -> list[Path]:
    """The per-seed folders of a repeated CV (``seed<k>/``), in seed order."""
    found = [d for d in Path(run_dir).glob("seed*") if d.is_dir() and d.name[4:].isdigit()]
    return sorted(found, key=lambda d: int(d.name[4:]))


def seed_ensemble(per_seed: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any] | None:
    """Test accuracy per fold of the seeds' averaged probabilities, on the folds every seed
    finished with saved probabilities (runs before probabilities were saved have none)."""
    runs = list(per_seed.values())
    folds = sorted(set.intersection(*(set(r) for r in runs))) if runs else []
    folds = [f for f in folds if all("probabilities" in r[f]["metrics"] for r in runs)]
    if len(runs) < 2 or not folds:
        return None
    accs = []
    for f in folds:
        targets = np.asarray(runs[0][f]["metrics"]["targets"])
        mean_probs = np.mean([np.asarray(r[f]["metrics"]["probabilities"]) for r in runs], axis=0)
        accs.append(float((mean_probs.argmax(1) == targets).mean()))
    std = float(np.std(accs, ddof=1)) if len(accs) > 1 else None  # one fold: no spread
    return {"folds": folds, "per_fold": accs, "mean": float(np.mean(accs)), "std": std}


def build_seed_report(run_dir: str | Path) -> Path:
    """report.md of a repeated CV: per seed and arm the mean accuracy, and per fold the
    seed-to-seed standard deviation (the noise floor any comparison must clear)."""
    run_dir = Path(run_dir)
    seeds = seed_dirs(run_dir)
    if not seeds:
        raise FileNotFoundError(f"no seed<k>/ folders under {run_dir}; run `audiogpt2 cv --seeds ...` first")
    # A seed another process is still training may have no finished fold yet: left out.
    per_seed = {d.name: found for d in seeds if (found := collect(d))}
    if not per_seed:
        raise FileNotFoundError(f"no finished folds under {run_dir}/seed*/: run `audiogpt2 cv --seeds` first")
    for d in seeds:
        if d.name in per_seed:
            build_report(d)
    arms = sorted({arm for found in per_seed.values() for arm in found})
    # the folds any arm of any seed finished: a (seed, arm) with fewer is not done yet
    every_fold = sorted({f for found in per_seed.values() for done in found.values() for f in done})
    n_seeds = len(per_seed)
    lines = [f"# Repeated cross-validation: {run_dir.name} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", ""]
    summary: dict[str, Any] = {"run_dir": str(run_dir), "seeds": list(per_seed), "arms": {}}
    for arm in arms:
        lines += _seed_arm_section(arm, per_seed, every_fold, summary)
    atomic_write_json(run_dir / "report.json", summary)
    return atomic_write_text(run_dir / "report.md", "\n".join(lines))


def _seed_arm_section(
    arm: str, per_seed: dict[str, dict[str, Any]], every_fold: list[int], summary: dict[str, Any]
) -> list[str]:
    """One arm's part of a repeated CV's report: accuracy per fold and seed, the seed-to-seed
    spread, incomplete seeds and the seeds' ensemble; fills ``summary["arms"][arm]``."""
    lines: list[str] = []
    folds = sorted({f for found in per_seed.values() for f in found.get(arm, {})})
    acc = {
        (name, f): found[arm][f]["metrics"]["accuracy"]
        for name, found in per_seed.items()
        for f in found.get(arm, {})
    }
    by_fold = {f: [a for (_, g), a in acc.items() if g == f] for f in folds}
    spreads = {f: float(np.std(v, ddof=1)) for f, v in by_fold.items() if len(v) > 1}
    means = {name: float(np.mean([a for (n, _), a in acc.items() if n == name])) for name in per_seed}
    summary["arms"][arm] = {"seed_means": means, "fold_seed_std": spreads}
    lines += [
        f"## {arm}",
        "",
        "| fold | " + " | ".join(per_seed) + " | seed-to-seed std |",
        "| --- | " + " | ".join("---" for _ in per_seed) + " | --- |",
    ]
    for f in folds:
        cells = " | ".join(f"{acc[(n, f)]:.3f}" if (n, f) in acc else "-" for n in per_seed)
        spread = f"{spreads[f]:.3f}" if f in spreads else "n/a (one seed)"
        lines.append(f"| {f} | {cells} | {spread} |")
    floor = f"{np.mean(list(spreads.values())):.3f}" if spreads else "not measurable with one seed"
    # a seed still training (or stopped) covers fewer folds: its mean is not comparable
    partial = {n: [f for f in every_fold if (n, f) in acc] for n in per_seed}
    partial = {n: done for n, done in partial.items() if len(done) < len(every_fold)}
    summary["arms"][arm]["incomplete_seeds"] = partial
    lines += [
        "| mean | "
        + " | ".join(f"{means[n]:.3f}" + (" (partial)" if n in partial else "") for n in per_seed)
        + " | |",
        "",
        *(
            f"Incomplete: {n} has only fold{'s' if len(done) > 1 else ''} "
            f"{', '.join(map(str, done))} (still training, or stopped); its mean covers those folds only."
            for n, done in partial.items()
        ),
        *([""] if partial else []),
        f"Mean over folds and seeds: {np.mean(list(acc.values())):.3f}; seed-to-seed standard "
        f"deviation within a fold, averaged over folds: {floor} (the noise floor).",
        "",
    ]
    ensemble = seed_ensemble({name: found.get(arm, {}) for name, found in per_seed.items()})
    if ensemble:
        summary["arms"][arm]["ensemble"] = ensemble
        per_fold = ", ".join(f"{a:.3f}" for a in ensemble["per_fold"])
        lines += [
            f"Ensemble of the {len(per_seed)} seeds (their test probabilities averaged per clip), "
            f"folds {', '.join(map(str, ensemble['folds']))}: test accuracy "
            f"{_fmt(ensemble)} ({per_fold}).",
            "",
        ]
    return lines


def select_by_validation(run_dirs: list[str | Path], out_dir: str | Path, scope: str = "fold") -> Path:
    """Per fold and arm (``scope="fold"``), or once per arm for every fold (``scope="arm"``),
    keep the run (e.g. one learning rate of a grid) with the best *validation* accuracy, and
    report the test metrics of those choices.

    The test fold plays no part in the choice, so the result is an honest estimate for
    "tune the learning rate on validation data, then test once". ``arm`` ranks runs by their
    mean over the folds (validation accuracy, then validation loss): the one setting a user
    would then train with."""
    import shutil

    if scope not in ("fold", "arm"):
        raise ValueError(f"scope must be 'fold' or 'arm', not {scope!r}")
    out_dir = Path(out_dir)
    runs = {str(d): collect(d) for d in run_dirs}
    choices: list[dict[str, Any]] = []
    arms = sorted({arm for found in runs.values() for arm in found})
    for arm in arms:
        folds = sorted(set.intersection(*(set(found.get(arm, {})) for found in runs.values())))
        if not folds:
            continue
        ranks = {d: [_validation_rank(runs[d][arm][f]) for f in folds] for d in runs}
        pooled = {d: tuple(float(x) for x in np.mean(r, axis=0)) for d, r in ranks.items()}
        for i, fold in enumerate(folds):
            rank = pooled if scope == "arm" else {d: r[i] for d, r in ranks.items()}
            best_dir = max(rank, key=rank.__getitem__)
            src = Path(best_dir) / f"fold{fold}" / arm
            dst = out_dir / f"fold{fold}" / arm
            dst.mkdir(parents=True, exist_ok=True)
            for name in ("metrics.json", "best.history.json", "config.toml"):
                if (src / name).is_file():
                    shutil.copy(src / name, dst / name)
            choices.append(
                {
                    "arm": arm,
                    "fold": fold,
                    "scope": scope,
                    "chosen": best_dir,
                    "val_acc": {d: runs[d][arm][fold]["metrics"]["best_val_acc"] for d in runs},
                    "mean_val_acc": {d: pooled[d][0] for d in runs},
                    "test_acc_of_choice": runs[best_dir][arm][fold]["metrics"]["accuracy"],
                    "lr_backbone": _config_value(best_dir, "train", "lr_backbone"),
                }
            )
    if not choices:
        raise FileNotFoundError(f"no fold finished in all of {', '.join(map(str, run_dirs))}")
    atomic_write_json(out_dir / "selection.json", choices)
    return build_report(out_dir)


def _config_value(run_dir: str | Path, section: str, key: str) -> Any:
    """One setting from a run's saved config.toml (None where the run has none): what a
    ``select`` choice records, so that nothing has to be read back out of folder names."""
    from audiogpt2.config import tomllib

    config = Path(run_dir) / "config.toml"
    return tomllib.loads(config.read_text()).get(section, {}).get(key) if config.is_file() else None


def run_labels(run_dirs: list[str]) -> dict[str, str]:
    """Each run folder named by the fewest trailing path parts that tell it from the others
    (``...-lr2e-5/seed0``, not ``seed0`` three times)."""
    parts = {d: Path(d).parts for d in run_dirs}
    for n in range(1, max((len(p) for p in parts.values()), default=0) + 1):
        labels = {d: "/".join(p[-n:]) for d, p in parts.items()}
        if len(set(labels.values())) == len(labels):
            return labels
    return {d: d for d in run_dirs}


def selection_section(choices: list[dict[str, Any]]) -> list[str]:
    """The learning-rate choices of a ``select`` folder, as report lines."""
    by_arm = bool(choices) and choices[0].get("scope") == "arm"
    if by_arm:
        rule = (
            "Per arm, one run for every fold: the highest validation accuracy averaged over the "
            "folds; ties go to the lower mean validation loss of the saved models."
        )
    else:
        rule = (
            "Per fold and arm, the run with the highest validation accuracy; ties go to the lower "
            "validation loss at that epoch."
        )
    lines = [
        "## Learning-rate choice (by validation accuracy only)",
        "",
        f"{rule} Test folds play no part.",
        "",
        "| arm | fold | chosen run | its backbone learning rate | validation accuracy per run |",
        "| --- | --- | --- | --- | --- |",
    ]
    label = run_labels(sorted({d for c in choices for d in (c["chosen"], *c["val_acc"])}))
    for c in choices:
        vals = ", ".join(f"{label[d]}: {v:.3f}" for d, v in c["val_acc"].items())
        lr = "n/a" if c.get("lr_backbone") is None else f"{c['lr_backbone']:g}"
        lines.append(f"| {c['arm']} | {c['fold']} | {label[c['chosen']]} | {lr} | {vals} |")
    if by_arm:
        lines.append("")
        for arm in dict.fromkeys(c["arm"] for c in choices):
            means = next(c.get("mean_val_acc") or {} for c in choices if c["arm"] == arm)
            if means:
                vals = ", ".join(f"{label[d]}: {v:.3f}" for d, v in means.items())
                lines.append(f"Mean validation accuracy over the folds, {arm}: {vals}.")
    return [*lines, ""]


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _weights(run_dir: str | Path, source: str) -> str:
    """Short account of a run's starting weights: pretrained / random init, and which."""
    backbone = _config_value(run_dir, "model", "backbone") or ""
    if source.startswith("none"):
        return "none (CNN only)"
    if not backbone:  # a `select` folder has no config of its own: the source names it
        backbone = _backbone_of_source(source)
    kind = "pretrained" if source.startswith("pretrained") else "random init"
    return f"{kind} {backbone}".strip()


def _backbone_of_source(source: str) -> str:
    """The backbone named by a checkpoint's ``backbone_source`` line ("random initialisation
    (config of minilm)", "pretrained weights from <dir>"): the id, or the offline MiniLM
    package's alias, or the directory's name."""
    if "(config of " in source:
        return source.split("(config of ", 1)[1].rstrip(")")
    location = source.removeprefix("pretrained weights from ").strip()
    from audiogpt2.model import MINILM_PACKAGE

    if MINILM_PACKAGE in location:
        return "minilm"
    return Path(location).name if location else ""


def summary_table(run_dirs: list[str | Path]) -> str:
    """One markdown row per experiment and arm, from each run's saved outputs."""
    lines = [
        "| experiment | arm | weights | folds | accuracy | F1 (weighted) | train time, all folds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    # a repeated CV contributes one row per seed, named <experiment>/seed<k>
    named = [(d, Path(d).name) for d in run_dirs if not seed_dirs(d)]
    named += [(s, f"{Path(d).name}/{s.name}") for d in run_dirs for s in seed_dirs(d)]
    for run_dir, name in sorted(named, key=lambda pair: pair[1]):
        for arm, folds in collect(run_dir).items():
            s = summarise(folds)
            source = folds[s["folds"][0]]["metrics"].get("backbone_source", "")
            lines.append(
                f"| {name} | {arm} | {_weights(run_dir, source)} | "
                f"{','.join(map(str, s['folds']))} | "
                f"{_fmt(s['accuracy'])} | {_fmt(s['f1'])} | {s['train_seconds'] / 60:.0f} min |"
            )
    return "\n".join(lines)


def replace_marked(document: str | Path, begin: str, end: str, body: str) -> Path:
    """Replace what lies between the ``begin`` and ``end`` marker lines of ``document``
    (created holding only the markers if absent), so generated tables sit inside hand-written
    prose without anyone pasting them."""
    document = Path(document)
    text = document.read_text(encoding="utf-8") if document.is_file() else f"{begin}\n{end}\n"
    if begin not in text or end not in text:
        raise ValueError(f"{document} lacks the markers {begin} ... {end}: add them where the table goes")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return atomic_write_text(document, f"{head}{begin}\n{body}\n{end}{tail}")


def update_summary(document: str | Path, run_dirs: list[str | Path]) -> Path:
    """Replace the table between the results markers of ``document`` (created if absent)."""
    return replace_marked(document, BEGIN, END, summary_table(run_dirs))
