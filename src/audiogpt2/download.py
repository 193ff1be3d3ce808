"""``audiogpt2 download esc50``: fetch, verify and safely extract the official archive.

The archive is downloaded to ``<dest>/ESC-50-master.zip.part`` (resumed with an HTTP Range
request after an interruption), checked (zip CRCs, expected layout, optional SHA-256),
and extracted into a temporary folder that is renamed to ``<dest>/ESC-50`` only when
complete. Entries that would land outside the destination (absolute paths, ``..``,
symlinks) are refused. This is the only network access in the package.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from audiogpt2.errors import AudioGPT2Error

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"


log = logging.getLogger(__name__)


class DownloadError(AudioGPT2Error, RuntimeError):
    """A download or archive that cannot be used; the message says what to do."""


def _manual_hint(url: str, dest: Path) -> str:
    return (
        f"Download {url} by other means, unzip it, and place the folder holding meta/esc50.csv "
        f"and audio/ at {dest / 'ESC-50'}."
    )


def fetch(url: str, target: Path, timeout: float = 15.0, progress: bool = True) -> Path:
    """Download ``url`` to ``target``, resuming a partial ``target.part``."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            part.rename(target)
            return target
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"cannot reach {url} ({getattr(exc, 'reason', exc)})") from exc
    with response:
        if have and response.status != 206:
            have = 0  # server ignored the range: start over
        total = response.headers.get("Content-Length")
        total = int(total) + have if total else None
        mode = "ab" if have else "wb"
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc="download",
                disable=None if progress else True,
            ) as bar,
        ):
            try:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"the download of {url} stopped after {out.tell():,} bytes "
                    f"({type(exc).__name__}: {exc}); the part is kept in {part}: "
                    "run the same command again to resume"
                ) from exc
            received = out.tell()
    if total is not None and received < total:
        # A dropped connection ends the body early without an error; never call that done.
        raise DownloadError(
            f"the download of {url} ended at {received:,} of {total:,} bytes; the part is "
            f"kept in {part}: run the same command again to resume"
        )
    part.rename(target)
    return target


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# Bounds on what an archive may unpack to (zipfile stops each entry at its declared size).
MAX_MEMBERS, MAX_UNPACKED = 10_000, 4_000_000_000


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest``, refusing any entry that could escape it."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = sum(info.file_size for info in infos)
        if len(infos) > MAX_MEMBERS or total > MAX_UNPACKED:
            raise DownloadError(
                f"refusing {archive}: it unpacks to {len(infos)} entries and {total / 1e9:.1f} GB "
                f"(ESC-50 is about 2,000 files and 0.9 GB; limits {MAX_MEMBERS} and "
                f"{MAX_UNPACKED / 1e9:.0f} GB): not the ESC-50 archive"
            )
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
                raise DownloadError(f"refusing archive entry {name!r}: it points outside {dest}")
            if _is_symlink(info):
                raise DownloadError(f"refusing archive entry {name!r}: symbolic links are not allowed")
        zf.extractall(dest)


def verify_archive(archive: Path, expected_sha256: str | None = None) -> str:
    """Check integrity and layout; returns the top folder inside the archive."""
    if expected_sha256 and sha256(archive) != expected_sha256.lower():
        raise DownloadError(f"{archive}: SHA-256 does not match {expected_sha256}; delete it and retry")
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive} is not a valid zip archive; delete it and retry") from exc
    if bad is not None:
        raise DownloadError(f"{archive}: entry {bad} is corrupt; delete the archive and retry")
    metas = [n for n in names if n.endswith("meta/esc50.csv")]
    if not metas:
        raise DownloadError(f"{archive} holds no meta/esc50.csv: not an ESC-50 archive")
    return metas[0][: -len("meta/esc50.csv")]


def download_esc50(
    dest: str | Path = "data",
    url: str = ESC50_URL,
    expected_sha256: str | None = None,
    timeout: float = 15.0,
    progress: bool = True,
) -> Path:
    dest = Path(dest)
    final = dest / "ESC-50"
    if (final / "meta" / "esc50.csv").is_file():
        log.info(f"ESC-50 is already at {final}; nothing to do")
        return final
    if final.exists():  # not a complete ESC-50 (no meta/esc50.csv), and not ours to delete
        raise DownloadError(
            f"{final} exists but holds no meta/esc50.csv; nothing was changed. Move it away (or "
            "delete it if it is a broken download), or pass another --dest"
        )
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "ESC-50-master.zip"
    try:
        if not archive.exists():
            fetch(url, archive, timeout, progress)
        prefix = verify_archive(archive, expected_sha256)
    except DownloadError as exc:
        raise DownloadError(f"{exc}. {_manual_hint(url, dest)}") from exc
    with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
        safe_extract(archive, Path(tmp))
        source = Path(tmp) / prefix if prefix else Path(tmp)
        source.rename(final)
    archive.unlink()
    log.info(f"ESC-50 extracted to {final}")
    return final
