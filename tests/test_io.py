import os
import pickle

import pytest
import torch

from audiogpt2.io import OutputError, UnsafeFileError, atomic_torch_save, remove_torn_writes, safe_torch_load


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit()}, f)
    with pytest.raises(UnsafeFileError, match="refused"):
        safe_torch_load(path, "checkpoint")


def test_truncated_file_is_refused_and_atomic_write_leaves_no_partial(tmp_path):
    path = tmp_path / "c.pt"
    atomic_torch_save({"x": torch.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeFileError):
        safe_torch_load(path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_unwritable_directory_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=str(blocker)):
        atomic_torch_save({"x": 1}, blocker / "sub" / "c.pt")


def test_crafted_checkpoint_is_refused_by_predict(tmp_path, capsys):
    from audiogpt2.cli import main

    path = tmp_path / "evil.pt"
    torch.save({"model": Exploit()}, path)
    assert main(["predict", str(path), str(tmp_path)]) == 2
    assert "refused" in capsys.readouterr().err


def test_remove_torn_writes_deletes_only_this_checkpoints_temp_files(tmp_path):
    torn = [tmp_path / f".best.{name}.k.tmp" for name in ("pt", "last.pt", "history.json")]
    kept = [tmp_path / name for name in ("best.pt", ".other.pt.k.tmp", "best.tmp", ".bestx.k.tmp")]
    for path in torn + kept:
        path.write_bytes(b"x")
    assert remove_torn_writes(tmp_path / "best.pt") == sorted(torn)
    assert [p for p in torn + kept if p.exists()] == kept
