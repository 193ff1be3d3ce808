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
