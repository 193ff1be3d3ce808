import os
import pickle
import stat

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
        pickle.dump({"model": Exploit()}, f)  # a legacy pickle, not a torch.save archive
    with pytest.raises(UnsafeFileError, match="not an audiogpt2 checkpoint"):
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
    (tmp_path / "a.wav").write_bytes(b"")  # an input, so the checkpoint is what fails
    assert main(["predict", str(path), str(tmp_path)]) == 2
    assert "refused" in capsys.readouterr().err


def test_remove_torn_writes_deletes_only_this_checkpoints_temp_files(tmp_path):
    torn = [tmp_path / f".best.{name}.k1b2c3d4.audiogpt2-tmp" for name in ("pt", "last.pt", "history.json")]
    kept = [tmp_path / name for name in ("best.pt", ".other.pt.k1b2c3d4.audiogpt2-tmp", "best.tmp",
                                         ".bestx.k1b2c3d4.audiogpt2-tmp", ".best.pt.k.tmp")]  # fmt: skip
    for path in torn + kept:
        path.write_bytes(b"x")
    assert remove_torn_writes(tmp_path / "best.pt") == sorted(torn)
    assert [p for p in torn + kept if p.exists()] == kept


def test_outputs_follow_the_umask(tmp_path):
    from audiogpt2.io import atomic_write_text

    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_second_run_on_one_output_folder_is_refused(tmp_path):
    import subprocess
    import sys

    from audiogpt2.io import LockedError, exclusive_lock

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from audiogpt2.io import exclusive_lock\n"
         f"with exclusive_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"in use by process {holder.pid}"), exclusive_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_lock(tmp_path):  # released when its holder died
        pass


def test_wav_or_text_given_as_checkpoint_says_so(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from audiogpt2.cli import main

    wav, text = tmp_path / "a.wav", tmp_path / "notes.pt"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    text.write_text("hello")
    for path in (wav, text):
        assert main(["predict", str(path), str(wav)]) == 2
        err = capsys.readouterr().err.strip()
        assert "not an audiogpt2 checkpoint" in err and len(err.splitlines()) == 1


@pytest.fixture()
def tiny_disk(tmp_path):
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_keeps_the_old_file_and_says_no_space(tiny_disk):
    path = tiny_disk / "c.pt"
    atomic_torch_save({"format": "x", "w": torch.ones(10)}, path)
    old = path.read_bytes()
    with pytest.raises(OutputError, match="no space left"):
        atomic_torch_save({"format": "x", "w": torch.ones(200_000)}, path)
    assert path.read_bytes() == old
    assert [p.name for p in tiny_disk.iterdir()] == ["c.pt"]
