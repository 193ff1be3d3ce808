"""``audiogpt2 serve``: a JSON API (FastAPI) and a web page (Gradio) for a trained classifier.

Requests never name files: audio arrives as bytes and is decoded in memory. Feature
extraction and inference run off the event loop; concurrent requests are micro-batched
(up to ``max_batch`` windows, or whatever arrived within ``max_wait_ms``) into one
forward pass, and each caller gets its own rows back.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import stat
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from audiogpt2 import __version__
from audiogpt2.audio import AudioError, AudioTooLongError, decode_audio
from audiogpt2.cpuinfo import cpu_flags
from audiogpt2.http_limits import BodyLimit
from audiogpt2.precision import native_bf16
from audiogpt2.predict import Classifier, Prediction

log = logging.getLogger(__name__)
# No outbound calls: Gradio's usage analytics are off (read when gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

AUDIO_TYPES = ("audio/", "application/octet-stream")
PREDICT_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}


class MicroBatcher:
    """Runs the windows of concurrent requests through the model together."""

    def __init__(self, classifier: Classifier, max_batch: int = 16, max_wait_ms: float = 10.0) -> None:
        self.classifier, self.max_batch, self.max_wait = classifier, max(1, max_batch), max_wait_ms / 1000
        self.lock = threading.Lock()  # one forward at a time: the page shares the model
        self.batch_sizes: list[int] = []  # requests per forward pass, for tests and stats
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def proba(self, feats: np.ndarray) -> np.ndarray:
        """Probabilities of one request's windows, computed with whatever else is waiting."""
        assert self.queue is not None, "start() first"
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((feats, future))
        return await future

    def forward(self, feats: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.classifier.window_proba(feats)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0][0])
            deadline = loop.time() + self.max_wait
            while n < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
                n += len(items[-1][0])
            self.batch_sizes.append(len(items))
            try:
                probs = await asyncio.to_thread(self.forward, np.concatenate([f for f, _ in items]))
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for feats, future in items:
                if not future.done():  # a caller that disconnected is skipped
                    future.set_result(probs[start : start + len(feats)])
                start += len(feats)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


async def _audio_bytes(request: Request, max_bytes: int) -> bytes | JSONResponse:
    """The uploaded bytes (multipart field ``file``, or a raw audio body), or an error."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        return _error(413, f"the upload is {int(length)} bytes; the limit is {max_bytes}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error(422, "missing form field 'file' (the audio file)")
        data = await upload.read()
    elif kind.startswith(AUDIO_TYPES):
        data = await request.body()
    else:
        return _error(
            415,
            f"content type {kind or '(none)'} is not audio: send multipart/form-data with a "
            "'file' field, or the raw bytes as audio/wav, audio/flac, audio/ogg, ...",
        )
    if not data:
        return _error(400, "the request holds no audio (empty body or empty file)")
    if len(data) > max_bytes:
        return _error(413, f"the upload is {len(data)} bytes; the limit is {max_bytes}")
    return data


def _lifespan(batcher: MicroBatcher, classifier: Classifier) -> Callable[[Any], Any]:
    """Start the batcher and warm the model before the first request; stop it at shutdown."""

    @asynccontextmanager
    async def lifespan(_: Any):
        await batcher.start()
        # One forward before the first request, so its caller does not wait for warm-up.
        audio = classifier.config.audio
        await asyncio.to_thread(batcher.forward, np.zeros((1, audio.n_frames, audio.n_bins), np.float32))
        yield
        await batcher.stop()

    return lifespan


def create_app(
    model_path: str | Path | list[str | Path],
    max_batch: int = 16,
    max_wait_ms: float = 10.0,
    max_seconds: float = 600.0,
    page: bool = True,
    device: str = "cpu",
    precision: str = "auto",
) -> FastAPI:
    """The FastAPI application: /v1/predict, /v1/model, /healthz, /docs and the page at /.
    Several model paths serve their ensemble (probabilities averaged)."""
    if not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive finite number of seconds, not {max_seconds!r}")
    paths = model_path if isinstance(model_path, list) else [model_path]
    classifier = Classifier.ensemble(
        paths, device, precision, prefer_onnx=not bf16_pays(paths[0], precision, device)
    )
    batcher = MicroBatcher(classifier, max_batch, max_wait_ms)
    sr = classifier.config.audio.sample_rate
    n_classes = len(classifier.classes)
    max_bytes = int(max_seconds * 48_000 * 2 * 4) + 1_000_000  # float32 stereo at 48 kHz

    app = FastAPI(title="audiogpt2", version=__version__, lifespan=_lifespan(batcher, classifier))
    app.state.batcher = batcher

    add_info_routes(app, classifier)

    @app.post("/v1/predict", openapi_extra=PREDICT_DOC)
    async def predict(
        request: Request,
        top_k: int = Query(3, ge=1, le=n_classes, description="classes returned"),
        windows: bool = Query(False, description="also return the per-window timeline"),
    ) -> Any:
        data = await _audio_bytes(request, max_bytes)
        if not isinstance(data, bytes):
            return data
        try:
            y = await asyncio.to_thread(decode_audio, io.BytesIO(data), sr, max_seconds)
            feats, starts, n = await asyncio.to_thread(classifier.window_features, y, sr)
        except AudioTooLongError as exc:
            return _error(413, str(exc))
        except AudioError as exc:
            return _error(422, f"unreadable audio: {exc}")
        result = classifier.prediction(await batcher.proba(feats), starts, n)
        return prediction_json(result, top_k, windows, n / sr)

    if page:
        app = mount_page(app, classifier, batcher, max_seconds)
    # Outermost: bounds the API's bodies and the page's uploads alike, while they stream.
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    return app


def add_info_routes(app: FastAPI, classifier: Classifier) -> None:
    """Everything but prediction: errors as JSON, health, the model's description, and a
    GET on the prediction endpoint that says how to POST."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, problems)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        return model_summary(classifier)

    @app.get("/v1/predict", include_in_schema=False)
    async def predict_get() -> JSONResponse:
        return JSONResponse(
            status_code=405,
            headers={"Allow": "POST"},
            content={"error": "POST the audio here: curl -F file=@clip.wav 'http://HOST:PORT/v1/predict' "
                     "(or the raw bytes as audio/wav); the interactive docs are at /docs"},
        )  # fmt: skip


def mount_page(app: FastAPI, classifier: Classifier, batcher: MicroBatcher, max_seconds: float) -> FastAPI:
    import gradio as gr

    page_app = build_page(classifier, batcher, max_seconds)
    app = gr.mount_gradio_app(app, page_app, path="/", ssr_mode=False)
    # Gradio checks that an event's input files arrived through its upload endpoint only once
    # `launch()` has run; a mounted page is never launched, so without this flag a request
    # naming any server path (/etc/shadow, /dev/zero, a FIFO) made it open that file.
    page_app.has_launched = True
    return app


def bf16_pays(path: str | Path, precision: str, device: str) -> bool:
    """Whether to serve an export's safetensors weights in PyTorch bf16 rather than its ONNX
    model (docs/speed.md): for a transformer model where bf16 is native, unless the export
    has an int8 model and the CPU lacks AMX (there ONNX Runtime's int8 matrix products were
    faster, one file and batched); a model without a transformer runs fastest in ONNX."""
    config = Path(path) / "config.json"
    try:
        backbone = json.loads(config.read_text(encoding="utf-8")).get("backbone")
    except (OSError, ValueError, AttributeError):
        return False  # not an export folder, or a broken one that loading reports
    if precision == "bf16":
        return backbone != "none"
    if precision != "auto" or backbone == "none" or not native_bf16(device)[0]:
        return False
    on_cpu = str(device).split(":")[0] == "cpu"
    return not (on_cpu and (Path(path) / "model.int8.onnx").is_file() and "amx_bf16" not in cpu_flags())


def model_summary(classifier: Classifier) -> dict[str, Any]:
    info, config = classifier.info, classifier.config
    return {
        "classes": list(classifier.classes),
        "backbone": info.backbone,
        "weights": info.backbone_source,
        "arm": info.arm,
        "test_fold": info.test_fold,
        "epoch": info.epoch,
        "validation": info.metrics,
        "features": config.audio.features,
        "sample_rate": config.audio.sample_rate,
        "window_seconds": config.audio.clip_seconds,
        "tta": config.augment.tta,
        "precision": classifier.precision.name,
        "runtime": "onnxruntime" if type(classifier.model).__name__ == "OnnxModel" else "pytorch",
        "ensemble_members": len(classifier.members),
    }


def prediction_json(result: Prediction, top_k: int, windows: bool, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "duration": seconds,
        "top": [{"label": label, "probability": p} for label, p in result.top(top_k)],
    }
    if windows:
        out["windows"] = result.windows
    return out


def build_page(classifier: Classifier, batcher: MicroBatcher, max_seconds: float) -> Any:
    """The web page: upload or record; the top classes as bars, the labels over time as a
    picture, and the features the model sees."""
    import gradio as gr

    def analyse(path: str | None) -> tuple[Any, Any, Any]:
        if not path:
            raise gr.Error("Upload a sound file or record one first.")
        try:
            return analyse_upload(classifier, batcher, path, max_seconds)
        except AudioError as exc:
            raise gr.Error(f"This file cannot be used: {exc}") from None

    title = f"audiogpt2: {len(classifier.classes)} sound classes"
    # Gradio keeps a copy of every upload; delete_cache drops those over an hour old, hourly.
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            f"## {title}\nUpload a recording or record one; long recordings are classified "
            f"in {classifier.config.audio.clip_seconds:g} s windows. JSON API: [/docs](/docs)."
        )
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Sound")
        with gr.Row():
            top = gr.Label(num_top_classes=5, label="Top classes")
            spectrum = gr.Image(label="What the model sees (first window)", type="numpy")
        timeline = gr.Image(label="Labels over time (recordings longer than one window)", type="numpy")
        for event in (audio.upload, audio.stop_recording):
            event(analyse, audio, [top, timeline, spectrum])
    return page


def analyse_upload(
    classifier: Classifier, batcher: MicroBatcher, path: str, max_seconds: float
) -> tuple[dict[str, float], np.ndarray | None, np.ndarray]:
    """The page's answer for one uploaded file: the top classes, the labels over time (for
    recordings longer than one window) and the features, as pictures held in memory, so a
    server that runs for weeks leaves no files behind."""
    sr = classifier.config.audio.sample_rate
    with open_upload(path) as handle:
        y = decode_audio(handle, sr, max_seconds)
    feats, starts, n = classifier.window_features(y, sr)
    result = classifier.prediction(batcher.forward(feats), starts, n)
    labels = dict(result.top(min(5, len(classifier.classes))))
    timeline = None
    if len(starts) > 1:
        from audiogpt2.predict import timeline_figure

        timeline = figure_array(timeline_figure(result))
    return labels, timeline, feature_picture(feats[0], classifier)


def upload_folder() -> Path:
    """Where Gradio keeps the files its upload endpoint received."""
    import tempfile

    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def open_upload(path: str) -> io.BufferedReader:
    """Open a file the page received, refusing anything else: a path outside Gradio's upload
    folder, or a device or FIFO (which would block or never end). A second line of defence
    behind Gradio's own check."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(upload_folder()):
        raise AudioError("only files uploaded through this page can be analysed")
    fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AudioError("only regular uploaded files can be analysed")
    return os.fdopen(fd, "rb")


def feature_picture(feats: np.ndarray, classifier: Classifier) -> np.ndarray:
    """The first window's features (MFCCs or log-mel bands over time) as an RGB image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio = classifier.config.audio
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=100)
    seconds = audio.n_frames * audio.hop_length / audio.sample_rate
    ax.imshow(feats.T, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, feats.shape[1]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MFCC" if audio.features == "mfcc" else "mel band")
    what = "MFCCs" if audio.features == "mfcc" else "log-mel bands"
    scale = "normalised per clip" if audio.normalize == "clip" else "dB about the clip's mean"
    if audio.features == "efficientat":
        scale = "log, scaled as in AudioSet training"
    ax.set_title(f"{what} ({scale})", fontsize=9)
    fig.tight_layout()
    return figure_array(fig)


def figure_array(fig: Any) -> np.ndarray:
    """A matplotlib figure as an RGB array (the figure is closed)."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def check_host(host: str) -> None:
    """Refuse an empty address (uvicorn would bind every interface without a word) and say
    so plainly when the service will be reachable from other machines."""
    import ipaddress

    from audiogpt2.config import ConfigError

    if not host.strip():
        raise ConfigError(
            "--host is empty, which would listen on every network interface; give an address: "
            "127.0.0.1 (this machine only), or 0.0.0.0 to accept other machines on purpose"
        )
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning(
            f"Listening on {host}: other machines can reach this service. It has no authentication; "
            "serve it only on a trusted network or behind a reverse proxy (README, 'Security')."
        )


def serve(model_path: str | list[str], host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Run the server until interrupted (several model paths: their ensemble)."""
    import uvicorn

    check_host(host)
    app = create_app(model_path, **options)
    shown = " + ".join(map(str, model_path)) if isinstance(model_path, list) else model_path
    log.info(f"Serving {shown} on http://{host}:{port}/ (API docs at /docs)")
    # Idle keep-alive connections close after 5 s, and past 256 open connections new ones get
    # 503 instead of exhausting file descriptors (slow clients); a reverse proxy in front
    # adds header timeouts and rate limits (README, "Security").
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5, limit_concurrency=256)
