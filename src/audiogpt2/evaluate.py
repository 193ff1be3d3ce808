"""Evaluation: probabilities for feature rows, scikit-learn metrics and confusion matrices."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

from audiogpt2 import distributed
from audiogpt2.categories import grouped_order
from audiogpt2.checkpoint import Checkpoint, load_checkpoint
from audiogpt2.errors import AudioGPT2Error
from audiogpt2.io import atomic_savefig
from audiogpt2.precision import resolve_precision
from audiogpt2.predict import predict_proba


class EvaluationError(AudioGPT2Error, ValueError):
    """A checkpoint and a dataset that do not belong together."""


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, weighted precision/recall/F1, a per-class report and the confusion matrix."""
    labels = list(range(len(classes)))
    prec, rec, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="weighted", zero_division=0
    )
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(f1),
        "n": int(len(y_true)),
        "per_class": {c: report[c] for c in classes},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_metrics(title: str, m: dict[str, Any]) -> str:
    """The seed README's line: ``Fine-tuned Model: Acc=..., Prec=..., Rec=..., F1=...``."""
    return (
        f"{title}: Acc={m['accuracy']:.4f}, Prec={m['precision']:.4f}, "
        f"Rec={m['recall']:.4f}, F1={m['f1']:.4f}"
    )


def plot_confusion(matrix: np.ndarray | list, classes: list[str], path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts; sized so 50 class names stay readable,
    and for ESC-50 classes sorted by super-category with each category framed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order, spans = grouped_order(classes)
    counts = np.asarray(matrix, dtype=np.int64)[np.ix_(order, order)]
    classes = [classes[i] for i in order]
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    n = len(classes)
    size = max(6.0, 0.32 * n + 3)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fontsize = 8 if n <= 20 else 6
    ax.set_xticks(range(n), classes, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), classes, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title}\naccuracy {acc:.3f}; cells: share of the true class (count)")
    for i, j in zip(*np.nonzero(counts)):
        text = f"{norm[i, j]:.2f}\n({counts[i, j]})" if n <= 20 else str(counts[i, j])
        color = "white" if norm[i, j] > 0.5 else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize - 1, color=color)
    for group, first, end in spans:  # a frame per super-category: confusions inside it are "near misses"
        ax.add_patch(plt.Rectangle((first - 0.5, first - 0.5), end - first, end - first, fill=False,
                                   edgecolor="tab:orange", linewidth=1.2))  # fmt: skip
        ax.text(n - 0.3, (first + end - 1) / 2, group, rotation=-90, va="center", fontsize=fontsize + 1,
                color="tab:orange")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.06 if spans else 0.02)
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=130)
    plt.close(fig)
    return out


def most_confused(matrix: np.ndarray | list, classes: list[str], k: int = 15) -> list[dict]:
    """The k largest off-diagonal cells: (true, predicted, count)."""
    counts = np.asarray(matrix)
    pairs = [
        {"true": classes[i], "predicted": classes[j], "count": int(counts[i, j])}
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and counts[i, j] > 0
    ]
    return sorted(pairs, key=lambda p: -p["count"])[:k]


def evaluate_checkpoint(
    checkpoint: str | Path,
    cache: Any,
    device: torch.device | str = "cpu",
    tta: int | None = None,
    precision: str | None = None,
) -> tuple[dict[str, Any], Checkpoint]:
    """Metrics of a checkpoint on its own test fold (originals only, never variants);
    ``tta`` overrides the number of test-time shifts the checkpoint was trained with, and
    ``precision`` the arithmetic it trained in (stored in its config)."""
    model, info = load_checkpoint(checkpoint)
    if list(info.classes) != list(cache.classes):
        raise EvaluationError(
            f"{checkpoint} was trained on classes {info.classes[:3]}... but the cache has "
            f"{cache.classes[:3]}...; preprocess the dataset the checkpoint was trained on"
        )
    if info.data_key not in (None, cache.key):
        raise EvaluationError(
            f"{checkpoint} was trained on other data or feature settings than this cache; "
            "evaluate it with the data it was trained on (its config.toml names them)"
        )
    model.to(device)
    clips = np.flatnonzero(cache.folds.numpy() == info.test_fold)
    rows = cache.rows_for(clips, with_variants=False)
    aug = info.config.augment
    if tta is not None:
        aug = dataclasses.replace(aug, tta=tta)
        aug.validate()
    arithmetic = resolve_precision(precision or info.config.train.precision, device)
    probs = distributed.sharded(
        lambda f: predict_proba(model, f, aug, device, precision=arithmetic), cache.features[rows]
    )
    y_true = cache.labels_of(rows).numpy()
    metrics = compute_metrics(y_true, probs.argmax(1), cache.classes)
    metrics.update(
        test_fold=info.test_fold,
        epoch=info.epoch,
        arm=info.arm,
        backbone_source=info.backbone_source,
        tta=aug.tta,
        arithmetic=arithmetic.name,  # fp32 or bf16 forward pass ("precision" is the metric)
        predictions=probs.argmax(1).tolist(),
        targets=y_true.tolist(),
        # kept so several seeds' runs can be averaged into an ensemble afterwards
        probabilities=np.round(probs, 6).tolist(),
    )
    return metrics, info
