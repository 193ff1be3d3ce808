"""Datasets: ESC-50 (or its ESC-10 subset), a CSV manifest, or a class-per-folder tree.

Each becomes a :class:`DatasetIndex` of clips with a label, a fold and a group (the source
recording), validated before any work starts. Splits are made here too: the test fold,
and a validation set drawn from the training folds, grouped by source and stratified
by class, so no recording is on both sides of a split.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from audiogpt2.config import DataConfig
from audiogpt2.errors import AudioGPT2Error

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3", ".opus"}


class DatasetError(AudioGPT2Error, ValueError):
    """A dataset that cannot be used as it is; the message says what is wrong and the fix."""


@dataclass
class Clip:
    path: Path
    name: str  # path relative to the dataset root, as shown to users
    label: int
    fold: int
    group: str  # clips of one source recording share a group and always share a fold


@dataclass
class DatasetIndex:
    root: Path
    classes: list[str]
    clips: list[Clip] = field(default_factory=list)
    kind: str = "esc50"

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=np.int64)

    @property
    def folds(self) -> np.ndarray:
        return np.array([c.fold for c in self.clips], dtype=np.int64)

    @property
    def groups(self) -> list[str]:
        return [c.group for c in self.clips]


def _missing_error(missing: list[str], total: int, where: Path, hint: str) -> DatasetError:
    first = ", ".join(missing[:5])
    return DatasetError(f"{len(missing)} of {total} clips missing under {where} (first: {first}). {hint}")


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of a name.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            # "filename, fold, ..." (spaces after the commas) names the same columns.
            reader.fieldnames = [c.strip() for c in (reader.fieldnames or [])]
            rows = list(reader)
            return list(reader.fieldnames), rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _check_esc50_rows(
    meta: Path, rows: list[dict[str, str]], audio_dir: Path, n_folds: int
) -> dict[int, str]:
    """Validate every metadata row (one line per problem); returns target -> category."""
    seen: set[str] = set()
    categories: dict[int, str] = {}
    targets_of: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        name = row["filename"]
        key = str((audio_dir / name).resolve())  # ./a.wav and a.wav are one clip
        if key in seen:
            raise DatasetError(
                f"{meta} line {line}: {name!r} names a clip that an earlier row names already; "
                "one row per clip (a clip in two folds would put test audio into training)"
            )
        seen.add(key)
        if not name or Path(name).is_absolute() or not _inside(audio_dir / name, audio_dir):
            raise DatasetError(
                f"{meta} line {line}: filename {name!r} points outside {audio_dir}; "
                "ESC-50 filenames are plain names of files in audio/"
            )
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except ValueError as exc:
            raise DatasetError(f"{meta} line {line}: fold and target must be integers") from exc
        if not 1 <= fold <= n_folds:
            raise DatasetError(f"{meta} line {line}: fold {fold} is outside 1-{n_folds}")
        if not 0 <= target < 50:
            raise DatasetError(f"{meta} line {line}: unknown label target={target} (0-49)")
        if categories.setdefault(target, row["category"]) != row["category"]:
            raise DatasetError(
                f"{meta} line {line}: target {target} is {row['category']!r} here but "
                f"{categories[target]!r} elsewhere"
            )
        if targets_of.setdefault(row["category"], target) != target:
            raise DatasetError(
                f"{meta} line {line}: category {row['category']!r} has target {target} here but "
                f"{targets_of[row['category']]} elsewhere; one category needs one target"
            )
    return categories


def load_esc50(root: Path, subset: str = "all", n_folds: int = 5) -> DatasetIndex:
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise DatasetError(
            f"no ESC-50 metadata at {meta}. Download the dataset with "
            f"`audiogpt2 download esc50 --dest {root.parent}` or point data.root at a folder "
            "holding meta/esc50.csv and audio/."
        )
    columns, rows = _read_csv(meta)
    missing_cols = [c for c in ESC50_COLUMNS if c not in columns]
    if missing_cols:
        raise DatasetError(
            f"{meta} lacks column(s) {', '.join(missing_cols)}; expected {','.join(ESC50_COLUMNS)}"
        )
    if not rows:
        raise DatasetError(f"{meta} has a header but no rows")
    if subset == "esc10":
        rows = [r for r in rows if r["esc10"].strip().lower() == "true"]
        if not rows:
            raise DatasetError(f"{meta} marks no row as esc10=True")
    audio_dir = root / "audio"
    categories = _check_esc50_rows(meta, rows, audio_dir, n_folds)
    targets = sorted(categories)
    remap = {t: i for i, t in enumerate(targets)}
    clips = [
        Clip(
            path=audio_dir / r["filename"],
            name=r["filename"],
            label=remap[int(r["target"])],
            fold=int(r["fold"]),
            group=r["src_file"] or r["filename"],
        )
        for r in rows
    ]
    missing = [c.name for c in clips if not c.path.is_file()]
    if missing:
        hint = (
            "Download the full dataset with `audiogpt2 download esc50`"
            + ("" if subset == "esc10" else ", or select the ESC-10 subset with --subset esc10")
            + "."
        )
        raise _missing_error(missing, len(clips), audio_dir, hint)
    return DatasetIndex(root=root, classes=[categories[t] for t in targets], clips=clips)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def load_manifest(manifest: Path, n_folds: int = 5, seed: int = 0) -> DatasetIndex:
    """A CSV ``path,label[,fold][,group]`` with paths relative to the manifest's folder."""
    columns, rows = _read_csv(manifest)
    if "path" not in columns or "label" not in columns:
        raise DatasetError(f"{manifest} needs the columns path,label (optional fold,group); found {columns}")
    if not rows:
        raise DatasetError(f"{manifest} has a header but no rows")
    root = manifest.parent
    classes = sorted({r["label"].strip() for r in rows})
    if "" in classes:
        raise DatasetError(f"{manifest}: some rows have an empty label")
    has_folds = "fold" in columns and any((r.get("fold") or "").strip() for r in rows)
    if has_folds:
        empty = [str(i) for i, r in enumerate(rows, start=2) if not (r.get("fold") or "").strip()]
        if empty:
            raise DatasetError(
                f"{manifest}: the fold column is empty on line(s) {', '.join(empty[:10])}; "
                "give every row a fold, or leave the whole column empty to have folds assigned"
            )
    clips, seen = [], {}
    for line, row in enumerate(rows, start=2):
        rel = row["path"].strip()
        path = root / rel
        if Path(rel).is_absolute() or not _inside(path, root):
            raise DatasetError(
                f"{manifest} line {line}: path {rel!r} points outside the dataset root {root}; "
                "list files below the manifest's folder"
            )
        key = path.resolve()  # clips/x.wav and ./clips/x.wav are one file
        if key in seen:
            first_line, first = seen[key]
            raise DatasetError(
                f"{manifest} lines {first_line} and {line} both name {first!r} ({rel!r}); "
                "list each clip once, or it could land in training and test at the same time"
            )
        seen[key] = (line, rel)
        fold = 0
        if has_folds:
            try:
                fold = int(row["fold"])
            except ValueError as exc:
                raise DatasetError(f"{manifest} line {line}: fold must be an integer") from exc
            if not 1 <= fold <= n_folds:
                raise DatasetError(f"{manifest} line {line}: fold {fold} is outside 1-{n_folds}")
        group = (row.get("group") or "").strip() or rel
        clips.append(Clip(path, rel, classes.index(row["label"].strip()), fold, group))
    missing = [c.name for c in clips if not c.path.is_file()]
    if missing:
        raise _missing_error(missing, len(clips), root, f"Fix the paths in {manifest}.")
    index = DatasetIndex(root=root, classes=classes, clips=clips, kind="manifest")
    if not has_folds:
        assign_folds(index, n_folds, seed)
    return index


def load_folder_tree(root: Path, n_folds: int = 5, seed: int = 0) -> DatasetIndex:
    """``root/<class name>/<clip>.wav``; folds are assigned stratified by class."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
                rel = path.relative_to(root).as_posix()
                clips.append(Clip(path, rel, label, 0, rel))
    if not clips:
        raise DatasetError(
            f"no audio files found under {root}: expected {root}/<class name>/<clip>.wav, "
            "a manifest CSV, or an ESC-50 folder with meta/esc50.csv"
        )
    index = DatasetIndex(root=root, classes=classes, clips=clips, kind="folders")
    assign_folds(index, n_folds, seed)
    return index


def assign_folds(index: DatasetIndex, n_folds: int, seed: int = 0) -> None:
    """Stratified by class, grouped so all clips of one source land in the same fold."""
    counts = np.bincount(index.labels, minlength=len(index.classes))
    if counts.min() < n_folds:
        small = [index.classes[i] for i in np.flatnonzero(counts < n_folds)][:5]
        raise DatasetError(
            f"class(es) {', '.join(small)} have fewer than {n_folds} clips, too few to spread "
            f"over {n_folds} folds; add clips or set data.n_folds lower"
        )
    splits = _grouped_splits(n_folds, seed, index.labels, index.groups, "folds", "data.n_folds")
    for fold, (_, test) in enumerate(splits, start=1):
        for i in test:
            index.clips[i].fold = fold


def _grouped_splits(
    n_splits: int, seed: int, labels: np.ndarray, groups: list[str], what: str, setting: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """StratifiedGroupKFold, with its "cannot split" errors told as what the data lacks."""
    n_groups = len(set(groups))
    if n_groups < n_splits or len(labels) < n_splits:
        raise DatasetError(
            f"{len(labels)} clips from {n_groups} source group(s) cannot be split into {n_splits} "
            f"{what}: each split needs its own groups, so every class needs clips from at least "
            f"{n_splits} different sources. Add clips or sources, or change {setting}."
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(np.zeros(len(labels)), labels, groups))
    except ValueError as exc:
        raise DatasetError(
            f"cannot split {len(labels)} clips into {n_splits} {what} ({exc}); every class needs "
            f"clips from at least {n_splits} different sources. Add clips, or change {setting}."
        ) from exc


def load_dataset(cfg: DataConfig, seed: int = 0) -> DatasetIndex:
    """Pick the right reader for ``cfg.root`` and validate it."""
    root = Path(cfg.root)
    if root.is_file() and root.suffix.lower() == ".csv":
        if cfg.subset != "all":
            raise DatasetError("--subset applies to ESC-50 only, not to a manifest")
        return load_manifest(root, cfg.n_folds, seed)
    if not root.is_dir():
        raise DatasetError(
            f"dataset {root} does not exist. Run `audiogpt2 download esc50` for ESC-50, or "
            "point --data at your manifest CSV or class-per-folder directory."
        )
    if (root / "meta" / "esc50.csv").is_file():
        return load_esc50(root, cfg.subset, cfg.n_folds)
    if (root / "meta").is_dir() or (root / "audio").is_dir():
        return load_esc50(root, cfg.subset, cfg.n_folds)  # raises the missing-metadata error
    if cfg.subset != "all":
        raise DatasetError("--subset applies to ESC-50 only")
    return load_folder_tree(root, cfg.n_folds, seed)


@dataclass
class Split:
    train: np.ndarray  # clip indices
    val: np.ndarray
    test: np.ndarray


def describe_folds(labels: np.ndarray, folds: np.ndarray, groups: list[str]) -> list[str]:
    """One line per fold: clips, groups (source recordings, speakers, ...) and classes."""
    lines = []
    for fold in sorted(set(folds.tolist())):
        rows = np.flatnonzero(folds == fold)
        n_groups = len({groups[i] for i in rows})
        lines.append(
            f"fold {fold}: {len(rows)} clips, {n_groups} groups, {len(set(labels[rows].tolist()))} classes"
        )
    return lines


def split_record(split: Split, names: list[str], folds: np.ndarray, groups: list[str]) -> dict:
    """Who is where, for the run folder: every clip's fold and group, and its role."""
    role = {**{int(i): "train" for i in split.train}, **{int(i): "validation" for i in split.val},
            **{int(i): "test" for i in split.test}}  # fmt: skip
    return {
        "clips": [
            {"name": names[i], "fold": int(folds[i]), "group": groups[i], "role": role.get(i, "unused")}
            for i in range(len(names))
        ]
    }


def split_clips(
    labels: np.ndarray,
    folds: np.ndarray,
    groups: list[str],
    test_fold: int,
    val_fraction: float,
    seed: int = 0,
) -> Split:
    """Test = the test fold; validation = a grouped, stratified share of the other folds
    (none for ``val_fraction`` 0: every other clip trains)."""
    test = np.flatnonzero(folds == test_fold)
    rest = np.flatnonzero(folds != test_fold)
    if len(test) == 0:
        raise DatasetError(f"fold {test_fold} holds no clips")
    if val_fraction == 0:
        return Split(train=rest, val=rest[:0], test=test)
    n_splits = max(2, int(round(1 / val_fraction)))
    train_pos, val_pos = _grouped_splits(
        n_splits, seed, labels[rest], [groups[i] for i in rest], "training and validation parts",
        "data.val_fraction",
    )[0]  # fmt: skip
    return Split(train=np.sort(rest[train_pos]), val=np.sort(rest[val_pos]), test=test)
