"""Property-based fuzzing (hypothesis) of the loaders and the HTTP endpoint: whatever the
bytes, the answer is a result or one of the package's own errors (4xx over HTTP), never a
traceback or a 500. Bounded: a fixed number of examples, no deadline per example."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiogpt2.errors import AudioGPT2Error
from audiogpt2.export import export, load_export

from helpers import one_epoch_checkpoint

BOUNDED = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def exported(esc_root, tiny_gpt2_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    checkpoint = one_epoch_checkpoint(esc_root, tiny_gpt2_dir, tmp)[1]
    export(checkpoint, tmp / "export")
    return checkpoint, tmp / "export"


def _damaged(exported, tmp_path_factory, name: str, cut: float, flip: int | None) -> object:
    folder = tmp_path_factory.mktemp("damaged")
    shutil.rmtree(folder)
    shutil.copytree(exported, folder)
    data = bytearray((folder / name).read_bytes())
    data = data[: int(len(data) * cut)]
    if flip is not None and data:
        data[flip % len(data)] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    return folder


@BOUNDED
@given(
    name=st.sampled_from(["config.json", "model.safetensors"]),
    cut=st.floats(0.0, 1.0),
    flip=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_a_damaged_export_loads_or_fails_with_one_line(exported, tmp_path_factory, name, cut, flip):
    folder = _damaged(exported[1], tmp_path_factory, name, cut, flip)
    try:
        model, _ = load_export(folder, prefer_onnx=False)
    except AudioGPT2Error as exc:
        assert "\n" not in str(exc)
        return
    import torch

    out = model(torch.zeros(1, 2, 30, 40))  # a load that succeeds gives a working model
    assert torch.isfinite(out).all()


@BOUNDED
@given(edit=st.dictionaries(st.sampled_from(["arm", "classes", "test_fold", "backbone_config", "config"]),
                            st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                      st.lists(st.text(max_size=5), max_size=3))))  # fmt: skip
def test_edited_export_fields_fail_with_one_line(exported, tmp_path_factory, edit):
    folder = _damaged(exported[1], tmp_path_factory, "config.json", 1.0, None)
    data = json.loads((folder / "config.json").read_text())
    data.update(edit)
    (folder / "config.json").write_text(json.dumps(data))
    try:
        load_export(folder, prefer_onnx=False)
    except AudioGPT2Error as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def client(exported):
    TestClient = pytest.importorskip("fastapi.testclient", reason="the serve extra").TestClient

    from audiogpt2.serve import create_app

    with TestClient(create_app(exported[0], max_seconds=5, page=False)) as c:
        yield c


def _wav_bytes(rate: int, channels: int, frames: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((frames, channels), np.float32), rate, format="WAV")
    return buf.getvalue()


@BOUNDED
@given(
    body=st.one_of(
        st.binary(max_size=4096),
        st.builds(_wav_bytes, st.integers(1, 400_000), st.integers(1, 4), st.integers(0, 20_000)),
    ),
    kind=st.sampled_from(["audio/wav", "application/octet-stream", "text/plain", "multipart"]),
)
def test_the_api_answers_any_body_with_a_result_or_a_4xx(client, body, kind):
    if kind == "multipart":
        r = client.post("/v1/predict", files={"file": ("x.wav", body, "audio/wav")})
    else:
        r = client.post("/v1/predict", content=body, headers={"content-type": kind})
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
    assert "error" in r.json() or "top" in r.json()
