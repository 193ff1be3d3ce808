"""`audiogpt2 serve`: the JSON API through FastAPI's TestClient, micro-batching, bad input,
and the web page in a real headless Chromium."""

from __future__ import annotations

import asyncio
import io
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from helpers import one_epoch_checkpoint

pytest.importorskip("fastapi")
pytest.importorskip("gradio")


def _wav(seconds: float, seed: int = 0, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * seed) * t) + noise
    sf.write(buf, tone.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def checkpoint(esc_root, tiny_gpt2_dir, tmp_path_factory):
    return one_epoch_checkpoint(esc_root, tiny_gpt2_dir, tmp_path_factory.mktemp("serve"))[1]


@pytest.fixture(scope="module")
def client(checkpoint):
    from fastapi.testclient import TestClient

    from audiogpt2.serve import create_app

    with TestClient(create_app(checkpoint, max_batch=8, max_wait_ms=50, max_seconds=20, page=False)) as c:
        yield c


def test_predict_model_and_health(client, checkpoint):
    from audiogpt2.predict import Classifier

    wav = _wav(12.0)
    r = client.post("/v1/predict?top_k=2&windows=true", files={"file": ("x.wav", wav, "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["top"]) == 2 and body["duration"] == pytest.approx(12.0)
    assert len(body["windows"]) == 4 and {"start", "end", "label", "probability"} <= set(body["windows"][0])
    # the same answer as the CLI's Classifier on the same audio
    expected = Classifier.from_pretrained(checkpoint).predict(*sf.read(io.BytesIO(wav)))
    assert [t["label"] for t in body["top"]] == expected.labels[:2]
    assert body["top"][0]["probability"] == pytest.approx(expected.probabilities[0], abs=1e-5)
    raw = client.post("/v1/predict", content=wav, headers={"content-type": "audio/wav"})
    assert raw.status_code == 200 and "windows" not in raw.json()

    info = client.get("/v1/model").json()
    assert sorted(info["classes"]) == sorted(expected.labels)
    assert info["arm"] == "baseline" and info["sample_rate"] == 16000 and "validation" in info
    assert info["ensemble_members"] == 1
    assert client.get("/healthz").json() == {"status": "ok"}
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_concurrent_requests_are_micro_batched_and_each_gets_its_own_result(checkpoint):
    from audiogpt2.predict import Classifier
    from audiogpt2.serve import MicroBatcher

    clf = Classifier.from_pretrained(checkpoint)
    clips = [sf.read(io.BytesIO(_wav(s, seed=s)))[0] for s in range(1, 7)]  # 1..6 s: 1 or 2 windows
    feats = [clf.window_features(y, 16000)[0] for y in clips]
    alone = [clf.window_proba(f) for f in feats]

    async def together():
        batcher = MicroBatcher(clf, max_batch=64, max_wait_ms=200)
        await batcher.start()
        out = await asyncio.gather(*(batcher.proba(f) for f in feats))
        await batcher.stop()
        return out, batcher.batch_sizes

    out, sizes = asyncio.run(together())
    assert max(sizes) > 1  # requests really shared a forward pass
    for mine, ref in zip(out, alone):
        np.testing.assert_allclose(mine, ref, atol=1e-5)


def test_bad_requests_get_4xx_json_and_the_server_keeps_serving(client, tmp_path):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(_wav(1.0))
    wav = {"content": _wav(1.0), "headers": {"content-type": "audio/wav"}}
    cases = [
        ({"content": b"", "headers": {"content-type": "audio/wav"}}, 400, "no audio"),
        ({"files": {"file": ("e.wav", b"", "audio/wav")}}, 400, "no audio"),
        ({"content": b"not audio at all" * 10, "headers": {"content-type": "audio/wav"}}, 422, "unreadable"),
        ({"content": _wav(25.0), "headers": {"content-type": "audio/wav"}}, 413, "limit is 20"),
        ({"content": b"{}", "headers": {"content-type": "application/json"}}, 415, "not audio"),
        ({"files": {"other": ("x.wav", _wav(1.0), "audio/wav")}}, 422, "missing form field 'file'"),
        ({**wav, "params": {"top_k": 0}}, 422, "top_k"),
        ({**wav, "params": {"top_k": 99}}, 422, "top_k"),
        # a path named in the request is just bytes that are not audio: never opened
        ({"content": str(secret).encode(), "headers": {"content-type": "audio/wav"}}, 422, "unreadable"),
        ({"data": {"file": str(secret)}}, 415, "not audio"),  # a form naming the path
    ]
    for i in range(100):
        kwargs, status, text = cases[i % len(cases)]
        r = client.post("/v1/predict", **kwargs)
        assert r.status_code == status and text in r.json()["error"], (i, r.status_code, r.text)
    assert client.post("/v1/predict", files={"file": ("ok.wav", _wav(3.0), "audio/wav")}).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_page_in_headless_chromium(checkpoint, tmp_path):
    """The real server and page: upload a WAV in headless Chromium, see the top label."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_bin):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "audiogpt2", "serve", str(checkpoint), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(flag)
    browser = None
    try:
        import urllib.request

        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stdout.read()[-2000:]
                time.sleep(0.5)
        from audiogpt2.predict import Classifier

        wav = tmp_path / "tone.wav"
        wav.write_bytes(_wav(12.0))
        expected = Classifier.from_pretrained(checkpoint).predict_file(wav).labels[0]
        browser = webdriver.Chrome(service=webdriver.ChromeService(driver_bin), options=options)
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 90)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        upload.send_keys(str(wav))
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "body"), "Labels over time"))
        wait.until(lambda b: expected in b.find_element(By.CSS_SELECTOR, "body").text)
        time.sleep(1.0)  # let the pictures render for the screenshot
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)


def test_an_ensemble_serves_the_mean_of_its_members(checkpoint):
    from fastapi.testclient import TestClient

    from audiogpt2.predict import Classifier
    from audiogpt2.serve import create_app

    wav = _wav(3.0, seed=2)
    alone = Classifier.from_pretrained(checkpoint).predict(*sf.read(io.BytesIO(wav)))
    with TestClient(create_app([checkpoint, checkpoint], page=False)) as c:
        assert c.get("/v1/model").json()["ensemble_members"] == 2
        top = c.post("/v1/predict?top_k=1", files={"file": ("x.wav", wav, "audio/wav")}).json()["top"][0]
    # two copies of one model: their mean is that model's answer
    assert top["label"] == alone.labels[0]
    assert top["probability"] == pytest.approx(alone.probabilities[0], abs=1e-5)


def test_the_page_answers_from_memory_and_leaves_no_files(checkpoint, tmp_path, monkeypatch):
    # The page's pictures used to pile up in a temp folder for as long as the server ran.
    import tempfile

    from audiogpt2.predict import Classifier
    from audiogpt2.serve import MicroBatcher, analyse_upload

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the page reads only its uploads
    classifier = Classifier.from_pretrained(checkpoint)
    wav = tmp_path / "long.wav"
    wav.write_bytes(_wav(12.0))  # longer than one 5 s window: a timeline is drawn
    labels, timeline, features = analyse_upload(classifier, MicroBatcher(classifier), str(wav), 20.0)
    assert list(labels)[0] == classifier.predict_file(wav).labels[0]
    assert timeline.dtype == np.uint8 and timeline.ndim == 3 and timeline.shape[2] == 3
    assert timeline.std() > 0 and features.shape[2] == 3  # real pictures, not blank
    assert list(scratch.iterdir()) == []
    wav.write_bytes(_wav(3.0))  # one window: no timeline
    assert analyse_upload(classifier, MicroBatcher(classifier), str(wav), 20.0)[1] is None


def _page_call(client, payload: dict) -> str:
    """POST a FileData to the page's event, as a browser would after an upload, and read the
    event stream back (bounded: the queue answers or the test fails, never hangs)."""
    r = client.post("/gradio_api/call/analyse", json={"data": [payload]})
    assert r.status_code == 200, r.text
    event = r.json()["event_id"]
    with client.stream("GET", f"/gradio_api/call/analyse/{event}") as stream:
        return "".join(stream.iter_text())


@pytest.mark.parametrize("target", ["/etc/shadow", "secret", "/dev/zero", "fifo"])
def test_the_page_reads_only_uploaded_files(checkpoint, tmp_path, target):
    """A FileData naming a server path (a secret, /dev/zero, a FIFO) is refused before it is
    opened: only files that arrived through the upload endpoint are read."""
    import os
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from audiogpt2.serve import create_app

    if target == "secret":
        target = str(tmp_path / "secret.wav")
        with open(target, "wb") as handle:
            handle.write(_wav(1.0))  # a readable audio file the server never received
    elif target == "fifo":
        target = str(tmp_path / "pipe.wav")
        os.mkfifo(target)
    gradio_tmp = os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio")
    before = {p for _, _, files in os.walk(gradio_tmp) for p in files} if os.path.isdir(gradio_tmp) else set()
    with TestClient(create_app(checkpoint, max_seconds=20)) as c, ThreadPoolExecutor(1) as pool:
        payload = {"path": target, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.wav"}
        answer = pool.submit(_page_call, c, payload).result(timeout=60)
        # the health check still answers: nothing blocked the event loop
        assert c.get("/healthz").status_code == 200
    assert "event: error" in answer and "complete" not in answer.split("event: error")[0], answer
    after = {p for _, _, files in os.walk(gradio_tmp) for p in files} if os.path.isdir(gradio_tmp) else set()
    copied = {name for name in after - before if name == os.path.basename(target)}
    assert not copied, f"{target} was copied into Gradio's cache"


@pytest.mark.parametrize(
    "args, fragment",
    [(["--host", ""], "--host is empty"), (["--port", "99999"], "1-65535"),
     (["--max-seconds", "nan"], "positive finite"), (["--max-wait-ms", "-1"], "positive finite")],
)  # fmt: skip
def test_bad_serve_flags_are_one_line(checkpoint, capsys, args, fragment):
    from audiogpt2.cli import main

    try:
        code = main(["serve", str(checkpoint), *args])
    except SystemExit as exc:  # argparse's own exit for a bad flag value
        code = exc.code
    assert code not in (0, None)
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_a_non_loopback_host_is_named_in_a_warning(caplog):
    import logging

    from audiogpt2.serve import check_host

    with caplog.at_level(logging.WARNING):
        check_host("127.0.0.1")
        check_host("localhost")
        assert not caplog.records
        check_host("0.0.0.0")
    assert "0.0.0.0" in caplog.text and "reverse proxy" in caplog.text


def test_one_body_limit_for_every_way_a_body_arrives(checkpoint):
    """Chunked transfer, multipart and the page's upload endpoint are all cut off at the
    limit while they stream (413 JSON), not buffered whole first."""
    from fastapi.testclient import TestClient

    from audiogpt2.serve import create_app

    big = b"\0" * 3_000_000  # over the 1.4 MB limit of max_seconds=1
    sent = []

    def chunks():
        for i in range(0, len(big), 100_000):
            sent.append(i)
            yield big[i : i + 100_000]

    with TestClient(create_app(checkpoint, max_seconds=1)) as c:
        r = c.post("/v1/predict", content=chunks(), headers={"content-type": "audio/wav"})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        r = c.post("/v1/predict", files={"file": ("x.wav", big, "audio/wav")})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        r = c.post("/gradio_api/upload", files={"files": ("x.wav", big, "audio/wav")})
        assert r.status_code == 413, r.text
        ok = c.post("/v1/predict", content=_wav(0.5), headers={"content-type": "audio/wav"})
        assert ok.status_code == 200  # under the limit: answered as before


def test_the_body_limit_stops_reading_at_the_limit_and_times_out_stalls():
    from audiogpt2.http_limits import BodyLimit

    pulled, sent = [], []

    async def endless_receive():
        pulled.append(1)
        return {"type": "http.request", "body": b"\0" * 1000, "more_body": True}

    async def read_all(scope, receive, send):  # what a framework's body() does
        while (await receive()).get("more_body"):
            pass

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(BodyLimit(read_all, max_bytes=10_000)(scope, endless_receive, send))
    assert len(pulled) == 11 and sent[0]["status"] == 413

    async def stalled_receive():
        await asyncio.sleep(10)

    sent.clear()
    asyncio.run(BodyLimit(read_all, max_bytes=10_000, read_timeout=0.2)(scope, stalled_receive, send))
    assert sent[0]["status"] == 408


@pytest.mark.parametrize(
    "flags, int8, expected",
    [
        ({"avx512_bf16", "amx_bf16"}, True, ("pytorch", "bf16")),  # AMX: bf16 batches fastest
        ({"avx512_bf16"}, True, ("onnxruntime", "fp32")),  # no AMX: int8 matrix products win
        ({"avx512_bf16"}, False, ("pytorch", "bf16")),  # ... but bf16 beats ONNX fp32
        ({"avx2"}, True, ("onnxruntime", "fp32")),
        ({"avx2"}, False, ("onnxruntime", "fp32")),
    ],
)
def test_serve_runs_the_faster_runtime_for_the_cpu(checkpoint, tmp_path, monkeypatch, flags, int8, expected):
    """An export with ONNX (fp32, maybe int8) and safetensors weights: PyTorch in bf16 where
    the CPU has native bf16, unless it lacks AMX and an int8 model is there; ONNX elsewhere.
    ("fp32" is what PyTorch would run; ONNX Runtime runs its own graph, int8 or fp32.)"""
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from audiogpt2 import serve as serve_module
    from audiogpt2.export import export

    export(checkpoint, tmp_path / "both", "onnx", int8=int8)
    export_st = tmp_path / "st"
    export(checkpoint, export_st)
    (tmp_path / "both" / "model.safetensors").write_bytes((export_st / "model.safetensors").read_bytes())
    # the CPU this test pretends to run on, whatever the real one is
    monkeypatch.setattr("audiogpt2.precision.cpu_flags", lambda: flags)
    monkeypatch.setattr(serve_module, "cpu_flags", lambda: flags)
    with TestClient(serve_module.create_app(tmp_path / "both", page=False)) as c:
        info = c.get("/v1/model").json()
    assert (info["runtime"], info["precision"]) == expected


def test_get_on_the_predict_endpoint_says_to_post(client):
    r = client.get("/v1/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "curl -F file=@" in r.json()["error"]
