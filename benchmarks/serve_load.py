"""Load test of `audiogpt2 serve`: throughput, latency percentiles and errors with 1, 8 and
32 concurrent clients, with micro-batching on and off, side by side in one run.

Starts the server on 127.0.0.1 (API only) for each setting, drives POST /v1/predict with
one 5 s, 44.1 kHz WAV per request for a bounded time per client count, and prints a table.
Without --model it writes a GPT-2-small-sized checkpoint (12 layers, 768 wide, random
weights: the speed is the same as trained ones) to a temporary folder.

    python benchmarks/serve_load.py [--model PATH] [--seconds 20] [--clients 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from predict import write_checkpoint  # noqa: E402 - the benchmark beside this one


def wav_bytes(seconds: float = 5.0, sr: int = 44100) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + np.random.default_rng(0).normal(0, 0.02, t.size)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def start_server(model: Path, max_batch: int, max_wait_ms: float) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "audiogpt2", "serve", str(model), "--port", str(port), "--no-page",
           "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return server, port
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start: {server.stderr.read()[-2000:]}") from None
            time.sleep(0.5)


async def drive(port: int, clients: int, seconds: float, body: bytes) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    url = f"http://127.0.0.1:{port}/v1/predict"
    deadline = time.perf_counter() + seconds

    async def one_client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                r = await http.post(url, content=body, headers={"content-type": "audio/wav"})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t)
            else:
                errors += 1

    began = time.perf_counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(one_client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"requests": len(latencies), "per_s": len(latencies) / elapsed, "p50": q[49], "p95": q[94],
            "p99": q[98], "errors": errors}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint or export folder (default: GPT-2-small-sized)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per client count and setting")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        model = Path(tmp.name) / "gpt2-small-sized.pt"
        write_checkpoint(model)
    body = wav_bytes()
    counts = [int(c) for c in args.clients.split(",")]
    print(f"model {model.name}; one 5 s 44.1 kHz WAV per request; {args.seconds:g} s per row")
    print("| micro-batching | clients | requests | requests/s | p50 (ms) | p95 (ms) | p99 (ms) | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    on = f"on (<= {args.max_batch}, {args.max_wait_ms:g} ms)"
    for label, max_batch in ((on, args.max_batch), ("off", 1)):
        server, port = start_server(model, max_batch, args.max_wait_ms)
        try:
            asyncio.run(drive(port, 2, 3.0, body))  # warm-up, not counted
            for clients in counts:
                r = asyncio.run(drive(port, clients, args.seconds, body))
                ms = " | ".join(f"{r[q] * 1000:.0f}" for q in ("p50", "p95", "p99"))
                print(f"| {label} | {clients} | {r['requests']} | {r['per_s']:.1f} | {ms} | {r['errors']} |",
                      flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
    tmp.cleanup()


if __name__ == "__main__":
    main()
