"""File I/O at the edges: atomic writes and code-free loading of tensors.

Every file the tool writes goes to a temporary sibling first and is renamed into place,
so a crash or a full disk never leaves a half-written checkpoint or cache that a later
run would trust. Every ``.pt`` file is read with ``weights_only=True``: it can hold
tensors, numbers, strings, lists and dicts, and nothing that runs code.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from audiogpt2.errors import AudioGPT2Error


class OutputError(AudioGPT2Error, OSError):
    """An output path that cannot be written; the message names it and the fix."""


class UnsafeFileError(AudioGPT2Error, ValueError):
    """A .pt file that is corrupt or would execute code when loaded."""


# Temp files carry this package's own suffix, so cleaning up after a killed run can never
# touch a user's file that merely looks similar.
TMP_SUFFIX = ".audiogpt2-tmp"


def _open_no_follow(path: Path) -> Any:
    """Open (creating) a lock file, refusing a symbolic link planted in its place."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise OutputError(
            f"cannot use the lock file {display(path)} ({exc.strerror or exc}); if it is a symbolic "
            "link, remove it: lock files are never links"
        ) from None
    return os.fdopen(fd, "a+", encoding="utf-8")


@contextlib.contextmanager
def _atomic_target(path: str | Path) -> Iterator[Path]:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}. "
            "Choose a writable output directory or free some space."
        ) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; the final file gets the usual mode under the user's umask.
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}. "
            "Check free disk space and permissions of that directory."
        ) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class LockedError(AudioGPT2Error, RuntimeError):
    """Another run is writing into the same output folder (``holder`` says which)."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        super().__init__(message)
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(directory: str | Path, beside: bool = False) -> Iterator[None]:
    """Hold ``directory/.audiogpt2.lock`` for the duration, so two runs never write into
    one folder (their checkpoints, history and config would interleave). The lock is
    released by the OS if the process dies, so a killed run never leaves it stuck.
    ``beside``: the lock file sits next to the folder (``.<name>.audiogpt2.lock``), for
    folders whose contents are a deliverable (exports)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, no protection
        yield
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory.parent / f".{directory.name}.audiogpt2.lock" if beside else directory / ".audiogpt2.lock"
    handle = _open_no_follow(path)  # held until the block ends
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockedError(
                f"{display(directory)} is in use by {holder}; wait for that run to finish, "
                "or choose another output folder",
                holder,
            ) from None
        handle.seek(0)
        handle.truncate()
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:4]])  # e.g. audiogpt2 cv --name x
        handle.write(f"process {os.getpid()} ({command})")
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def waiting_lock(path: str | Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``path``, waiting for whoever holds it: processes that
    would build the same file (torchrun ranks building one feature cache) take turns, and
    the later ones find it built."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_no_follow(path.with_name(f".{path.name}.lock")) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def remove_torn_writes(path: str | Path) -> list[Path]:
    """Delete temp files that a run killed mid-write left beside `path`; they are never trusted."""
    path = Path(path)
    # exactly the temp names this package gives the files of this run ("best.pt",
    # "best.last.pt", ...): ".<name>.<8 random characters><TMP_SUFFIX>"
    own = re.compile(rf"\.{re.escape(path.stem)}(\.[^/]*)?\.[A-Za-z0-9_]{{8}}{re.escape(TMP_SUFFIX)}")
    torn = sorted(p for p in path.parent.glob(f".{path.stem}*{TMP_SUFFIX}") if own.fullmatch(p.name))
    for leftover in torn:
        leftover.unlink(missing_ok=True)
    return torn


def atomic_write_text(path: str | Path, text: str) -> Path:
    with _atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with _atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def peek(path: str | Path) -> Any:
    """A .pt file's contents memory-mapped (reading little more than its header), or None
    when it is not a file torch.save wrote; never runs code."""
    if not zipfile.is_zipfile(path):  # every file torch.save writes is a zip archive
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - whatever it is, it is not ours
        return None


def file_format(path: str | Path) -> str | None:
    """The ``format`` tag of a .pt file this package wrote, or None for anything else."""
    data = peek(path)
    tag = data.get("format") if isinstance(data, dict) else None
    return tag if isinstance(tag, str) else None


def ensure_replaceable(path: str | Path, fmt: str, what: str) -> None:
    """Refuse to overwrite anything at ``path`` but a file of this package's ``fmt``."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_dir() or path.is_symlink() or file_format(path) != fmt:
        raise OutputError(
            f"refusing to overwrite {display(path)}: it is not an audiogpt2 {what}. "
            f"Choose another path for the {what}, or move that file away."
        )


def atomic_torch_save(obj: Any, path: str | Path, what: str | None = None) -> Path:
    """Save ``obj`` atomically; with ``what``, only over a file of the same ``format``."""
    if what is not None:
        ensure_replaceable(path, obj["format"], what)
    with _atomic_target(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch reports a failed write (e.g. a full disk) this way
            free = shutil.disk_usage(tmp.parent).free
            why = f"no space left on the disk of {tmp.parent}" if free < 64 << 20 else str(exc)
            raise OSError(why) from exc
    return Path(path)


def atomic_savefig(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    with _atomic_target(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    return Path(path)


def display(path: str | Path) -> str:
    """A path printable on any terminal, even when its bytes are not valid UTF-8."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def safe_torch_load(path: str | Path, what: str = "file") -> Any:
    """Load a .pt file without executing code; refuse anything else with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not zipfile.is_zipfile(path):  # every file torch.save writes is a zip archive
        raise UnsafeFileError(
            f"{display(path)} is not an audiogpt2 {what}: it is not a PyTorch file at all. "
            "Pass the .pt file that audiogpt2 wrote."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"refused to load {what} {path}: it contains Python objects that would run code "
            "when unpickled (only tensors, numbers, strings, lists and dicts are accepted). "
            "Only load checkpoints you created with audiogpt2 or trust."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a usable file"
        raise UnsafeFileError(
            f"cannot read {what} {path}: the file is truncated or not a PyTorch file ({exc}). Recreate it."
        ) from exc
