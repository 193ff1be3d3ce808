import csv
import shutil

import numpy as np
import pytest

from audiogpt2.config import DataConfig
from audiogpt2.data import DatasetError, load_dataset, load_esc50, split_clips
from audiogpt2.synthetic import make_dataset


@pytest.fixture()
def esc_copy(esc_root, tmp_path):
    root = tmp_path / "ESC-50"
    shutil.copytree(esc_root, root)
    return root


def _rewrite_meta(root, edit):
    path = root / "meta" / "esc50.csv"
    with open(path) as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_esc50_reads_classes_folds_and_groups(esc_root):
    index = load_esc50(esc_root)
    assert index.classes == ["tone", "chirp_up", "chirp_down", "noise_bursts"]
    assert len(index.clips) == 40 and set(index.folds) == {1, 2, 3, 4, 5}
    by_group = {}
    for c in index.clips:
        by_group.setdefault(c.group, set()).add(c.fold)
    assert all(len(f) == 1 for f in by_group.values())


def test_esc10_subset_and_missing_audio_message(esc_copy):
    _rewrite_meta(
        esc_copy, lambda rows: [rows[0]] + [r[:4] + ["False"] + r[5:] for r in rows[1:11]] + rows[11:]
    )
    assert len(load_esc50(esc_copy, subset="esc10").clips) == 30
    for wav in sorted((esc_copy / "audio").glob("*.wav"))[:25]:
        wav.unlink()
    with pytest.raises(DatasetError, match=r"25 of 40 clips missing") as err:
        load_esc50(esc_copy)
    assert "download" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: [rows[0][:3]] + [r[:3] for r in rows[1:]], "lacks column"),
        (lambda rows: rows[:1], "no rows"),
        (lambda rows: rows + [rows[1]], "names a clip that an earlier row names"),
        # the same file by another spelling, in another fold: test audio would reach training
        (lambda rows: rows + [["./" + rows[1][0], "3", *rows[1][2:]]], "one row per clip"),
        (lambda rows: [rows[0], rows[1][:1] + ["7"] + rows[1][2:]] + rows[2:], "outside 1-5"),
        (lambda rows: [rows[0], rows[1][:2] + ["77"] + rows[1][3:]] + rows[2:], "unknown label"),
    ],
)
def test_bad_metadata_is_reported(esc_copy, edit, message):
    _rewrite_meta(esc_copy, edit)
    with pytest.raises(DatasetError, match=message):
        load_esc50(esc_copy)


def test_missing_metadata(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(DatasetError, match="no ESC-50 metadata"):
        load_dataset(DataConfig(root=str(tmp_path)))


def test_manifest_with_groups_assigns_grouped_stratified_folds(esc_root, tmp_path):
    shutil.copytree(esc_root / "audio", tmp_path / "clips")
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for p in sorted((tmp_path / "clips").glob("*.wav")):
            _, src, _, target = p.stem.split("-")
            w.writerow([f"clips/{p.name}", f"class{target}", src])
    index = load_dataset(DataConfig(root=str(tmp_path / "m.csv")))
    assert len(index.clips) == 40 and set(index.folds) == {1, 2, 3, 4, 5}
    groups = {}
    for c in index.clips:
        groups.setdefault(c.group, set()).add(c.fold)
    assert all(len(v) == 1 for v in groups.values())
    for fold in range(1, 6):  # stratified: every class in every fold
        assert len({c.label for c in index.clips if c.fold == fold}) == 4


def test_manifest_path_escaping_root_is_rejected(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "m.csv").write_text("path,label\n../secret.wav,a\n")
    with pytest.raises(DatasetError, match="outside the dataset root"):
        load_dataset(DataConfig(root=str(tmp_path / "d" / "m.csv")))


def test_folder_tree(tmp_path):
    make_dataset(tmp_path / "src", n_classes=2, clips_per_class=5, seconds=0.5)
    for p in (tmp_path / "src" / "audio").glob("*.wav"):
        label = p.stem.split("-")[-1]
        (tmp_path / "tree" / f"cls{label}").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "tree" / f"cls{label}" / p.name)
    index = load_dataset(DataConfig(root=str(tmp_path / "tree")))
    assert index.classes == ["cls0", "cls1"] and len(index.clips) == 10
    assert sorted(np.bincount(index.folds)[1:]) == [2] * 5


def test_validation_split_is_grouped_stratified_and_excludes_test(esc_root):
    index = load_esc50(esc_root)
    s = split_clips(index.labels, index.folds, index.groups, 5, 0.25, seed=0)
    assert not set(s.train) & set(s.val) and not (set(s.train) | set(s.val)) & set(s.test)
    assert set(index.folds[s.test]) == {5} and 5 not in set(index.folds[s.val])
    train_groups = {index.groups[i] for i in s.train}
    assert not train_groups & {index.groups[i] for i in s.val}
    assert len(set(index.labels[s.val])) == 4
