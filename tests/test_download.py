import functools
import http.server
import threading
import time
import zipfile

import pytest

from audiogpt2.download import DownloadError, download_esc50, safe_extract


def _archive(path, esc_root):
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(esc_root / "meta" / "esc50.csv", "ESC-50-master/meta/esc50.csv")
        for wav in sorted((esc_root / "audio").glob("*.wav"))[:3]:
            zf.write(wav, f"ESC-50-master/audio/{wav.name}")
    return path


@pytest.fixture()
def server(tmp_path):
    serve = tmp_path / "www"
    serve.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield serve, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verifies_and_extracts(server, esc_root, tmp_path):
    serve, url = server
    _archive(serve / "master.zip", esc_root)
    dest = tmp_path / "data"
    root = download_esc50(dest, f"{url}/master.zip", progress=False)
    assert root == dest / "ESC-50" and (root / "meta" / "esc50.csv").is_file()
    assert len(list((root / "audio").glob("*.wav"))) == 3
    assert not (dest / "ESC-50-master.zip").exists()
    assert download_esc50(dest, f"{url}/missing.zip", progress=False) == root  # complete: skip


def test_download_resumes_a_partial_file(server, esc_root, tmp_path):
    serve, url = server
    _archive(serve / "master.zip", esc_root)
    data = (serve / "master.zip").read_bytes()
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "ESC-50-master.zip.part").write_bytes(data[:100])
    # SimpleHTTPRequestHandler ignores Range and answers 200: the client must start over
    root = download_esc50(dest, f"{url}/master.zip", progress=False)
    assert (root / "meta" / "esc50.csv").read_bytes() == (esc_root / "meta" / "esc50.csv").read_bytes()


def test_checksum_mismatch_and_non_archive_are_refused(server, esc_root, tmp_path):
    serve, url = server
    _archive(serve / "master.zip", esc_root)
    with pytest.raises(DownloadError, match="SHA-256"):
        download_esc50(tmp_path / "a", f"{url}/master.zip", expected_sha256="0" * 64, progress=False)
    (serve / "page.zip").write_text("<html>not a zip</html>")
    with pytest.raises(DownloadError, match="not a valid zip"):
        download_esc50(tmp_path / "b", f"{url}/page.zip", progress=False)
    assert not (tmp_path / "b" / "ESC-50").exists()


def test_no_network_fails_fast_with_instructions(tmp_path):
    began = time.time()
    with pytest.raises(DownloadError) as err:
        download_esc50(tmp_path, "http://127.0.0.1:9/master.zip", timeout=3, progress=False)
    assert time.time() - began < 10
    assert "127.0.0.1:9" in str(err.value) and "place the folder" in str(err.value)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_extraction_refuses_escaping_entries(tmp_path, name):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, "x")
    with pytest.raises(DownloadError, match="refusing"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_extraction_refuses_symlinks(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("ESC-50-master/audio/link")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DownloadError, match="symbolic links"):
        safe_extract(archive, tmp_path / "out")


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves ``data``: the first request is cut off at 40 % (connection closed), later
    ones honour Range requests, as real servers do."""

    data = b""
    calls: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.calls.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = self.data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if len(self.calls) == 1:
            self.wfile.write(body[: int(len(body) * 0.4)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_dropped_connection_keeps_the_part_and_the_next_run_resumes(esc_root, tmp_path):
    data = _archive(tmp_path / "a.zip", esc_root).read_bytes()
    handler = type("H", (_Flaky,), {"data": data, "calls": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/master.zip"
    dest = tmp_path / "data"
    try:
        with pytest.raises(DownloadError, match="run the same command again to resume"):
            download_esc50(dest, url, progress=False)
        assert not (dest / "ESC-50-master.zip").exists()
        assert (dest / "ESC-50-master.zip.part").stat().st_size == int(len(data) * 0.4)
        root = download_esc50(dest, url, progress=False)
    finally:
        httpd.shutdown()
    assert handler.calls == [None, f"bytes={int(len(data) * 0.4)}-"]
    assert (root / "meta" / "esc50.csv").is_file()


def test_an_existing_incomplete_folder_is_never_deleted(server, esc_root, tmp_path):
    serve, url = server
    _archive(serve / "master.zip", esc_root)
    mine = tmp_path / "data" / "ESC-50"
    mine.mkdir(parents=True)
    (mine / "my_notes.txt").write_text("a user's file")
    with pytest.raises(DownloadError, match="holds no meta/esc50.csv; nothing was changed"):
        download_esc50(tmp_path / "data", f"{url}/master.zip", progress=False)
    assert (mine / "my_notes.txt").read_text() == "a user's file"


@pytest.mark.parametrize("members, size", [(20_000, 0), (2, 3_000_000)])
def test_zip_bombs_are_refused_before_extraction(tmp_path, monkeypatch, members, size):
    """Entry counts and declared sizes beyond the bounds are refused before anything is
    written (the size bound is lowered here: a real 4 GB bomb takes long to build)."""
    import audiogpt2.download as download

    monkeypatch.setattr(download, "MAX_UNPACKED", 5_000_000)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(members):
            zf.writestr(f"x/{i}", b"\0" * size)
    assert archive.stat().st_size < 3_000_000
    with pytest.raises(DownloadError, match="not the ESC-50 archive"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
