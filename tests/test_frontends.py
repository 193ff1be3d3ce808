"""The AudioSet MobileNet front end: our network loads the released weights strictly and
reproduces their published outputs; weights by name are fetched once and checked."""

from __future__ import annotations

import csv
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from audiogpt2.config import load_config
from audiogpt2.features import compute_features
from audiogpt2.frontends import MOBILENET_WIDTHS, output_size
from audiogpt2.frontends import weights as weights_mod
from audiogpt2.frontends.mobilenet import MobileNetV3
from audiogpt2.frontends.weights import WeightsError, load_released

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
MN04 = SHARED / "mn04_as_mAP_432.pt"
needs_mn04 = pytest.mark.skipif(not MN04.is_file(), reason=f"the released mn04 weights are not at {MN04}")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mn04.toml"


def _audioset_top(network: MobileNetV3, waveform: np.ndarray, k: int = 3) -> list[str]:
    with open(SHARED / "audioset_class_labels_indices.csv", newline="") as handle:
        labels = [r["display_name"] for r in csv.DictReader(handle)]
    audio = load_config(CONFIG).audio
    feats = compute_features(waveform, audio)  # (frames, bands): the package's own features
    with torch.no_grad():
        probs = torch.sigmoid(network.eval()(torch.from_numpy(feats.T.copy())[None, None]))[0]
    return [labels[i] for i in probs.argsort(descending=True)[:k]]


SR = 32000
T = np.arange(5 * SR) / SR
SOUNDS = {
    "tone": (0.5 * np.sin(2 * np.pi * 1000 * T), {"Beep, bleep"}),
    "silence": (np.zeros(5 * SR), {"Silence"}),
    "noise": (np.random.default_rng(0).uniform(-0.5, 0.5, 5 * SR), {"Static", "White noise"}),
}


@needs_mn04
@pytest.mark.parametrize("sound", list(SOUNDS))
def test_released_mn04_hears_what_its_readme_says(sound):
    waveform, expected = SOUNDS[sound]
    network = MobileNetV3(0.4)
    network.load_state_dict(load_released(str(MN04), 0.4), strict=True)
    assert _audioset_top(network, waveform, k=1)[0] in expected
    torch.manual_seed(0)
    assert not set(_audioset_top(MobileNetV3(0.4), waveform, k=1)) & expected  # random weights do not


@pytest.mark.parametrize("name", list(MOBILENET_WIDTHS))
def test_every_width_builds_with_the_documented_output(name):
    network = MobileNetV3(MOBILENET_WIDTHS[name])
    out = network.feature_map(torch.zeros(1, 1, 128, 500))
    assert out.shape == (1, network.out_channels, output_size(128), output_size(500))
    assert out.shape[2:] == (4, 16)  # stride 32: 128 bands x 500 frames (5 s)
    # our own state dict is the contract the released files follow: it round-trips strictly
    MobileNetV3(MOBILENET_WIDTHS[name]).load_state_dict(network.state_dict(), strict=True)


@needs_mn04
def test_mn04_matches_the_release_and_a_wrong_width_is_one_line():
    state = load_released(str(MN04), 0.4)
    assert len(state) == 312 and sum(v.numel() for k, v in state.items() if "num_batches" not in k) > 9e5
    with pytest.raises(WeightsError, match="width-1.0"):
        load_released(str(MN04), 1.0)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - no request lines in the test output
        pass


def test_weights_by_name_download_once_with_checksum(tmp_path, monkeypatch):
    served = tmp_path / "release"
    served.mkdir()
    network = MobileNetV3(0.4)
    torch.save(network.state_dict(), served / "mn04_as_mAP_432.pt")
    digest = weights_mod.sha256(served / "mn04_as_mAP_432.pt")
    monkeypatch.setenv("AUDIOGPT2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(weights_mod.KNOWN, "mn04_as", ("mn04_as_mAP_432.pt", digest, 0.4))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(weights_mod, "RELEASE", f"http://127.0.0.1:{server.server_port}")
        first = weights_mod.resolve_weights("mn04_as")
        (served / "mn04_as_mAP_432.pt").unlink()  # a second call must not need the server
        assert weights_mod.resolve_weights("mn04_as") == first and first.parent.name == "weights"
        stem = load_released("mn04_as", 0.4)["features.0.0.weight"]
        assert torch.equal(stem, network.features[0][0].weight)
        first.write_bytes(first.read_bytes()[:-10])  # damaged in the cache
        with pytest.raises(WeightsError, match="does not have the sha256"):
            weights_mod.resolve_weights("mn04_as")
    finally:
        server.shutdown()


def test_offline_or_unknown_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOGPT2_CACHE", str(tmp_path))
    monkeypatch.setattr(weights_mod, "RELEASE", "http://127.0.0.1:9")  # nothing listens: offline
    with pytest.raises(WeightsError) as info:
        weights_mod.resolve_weights("mn04_as")
    message = str(info.value)
    assert "127.0.0.1:9/mn04_as_mAP_432.pt" in message and "--frontend-weights /path/to/" in message
    assert not list(tmp_path.rglob("*.part"))
    with pytest.raises(WeightsError, match="not a known release name"):
        weights_mod.resolve_weights(str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a PyTorch state dict"):
        load_released(str(bad), 0.4)


@pytest.mark.parametrize("head", ["own", "audioset"])
def test_a_mobilenet_front_end_trains_exports_and_predicts(esc_root, tiny_gpt2_dir, tmp_path, head):
    """The real pipeline with a small MobileNet (random weights) feeding a tiny GPT-2, or
    through its AudioSet head's hidden layer with no transformer: train, then the ONNX export
    predicts what the checkpoint predicts."""
    pytest.importorskip("onnxruntime")
    from audiogpt2.export import export
    from audiogpt2.predict import Classifier
    from audiogpt2.preprocess import preprocess
    from audiogpt2.train import train_arm

    from helpers import small_overrides

    overrides = {
        **small_overrides(esc_root, tiny_gpt2_dir, tmp_path / "c.pt"),
        "audio.clip_seconds": 1.5, "model.frontend": "mn01", "model.frontend_weights": "",
        "train.epochs": 2, "train.lr_frontend": 2e-3, "model.frontend_head": head,
    }  # fmt: skip
    if head == "audioset":
        overrides["model.backbone"] = "none"
    config = load_config(CONFIG, overrides)
    cache = preprocess(config, progress=False)
    assert cache.features.shape[1:] == (150, 128)
    result = train_arm(config, cache, "finetuned", tmp_path / "m" / "best.pt", progress=False)
    assert np.isfinite([h["train_loss"] for h in result.history]).all()
    export(result.best_checkpoint, tmp_path / "onnx", fmt="onnx")
    clip = esc_root / "audio" / cache.names[0]
    reference = Classifier.from_checkpoint(result.best_checkpoint, precision="fp32").predict_file(clip)
    exported = Classifier.from_pretrained(tmp_path / "onnx").predict_file(clip)
    assert exported.labels == reference.labels
    np.testing.assert_allclose(exported.probabilities, reference.probabilities, atol=1e-4)


@needs_mn04
def test_build_model_loads_the_released_front_end_and_says_so():
    from audiogpt2.model import build_model
    from audiogpt2.train import param_groups

    config = load_config(CONFIG, {"model.frontend_weights": str(MN04), "model.backbone": "none"})
    model, backbone = build_model(config.model, config.audio, False, 50)
    released = load_released(str(MN04), 0.4)
    assert torch.equal(model.cnn.net.features[0][0].weight, released["features.0.0.weight"])
    assert "AudioSet-pretrained weights (mn04_as_mAP_432.pt: external data)" in backbone.source
    groups = {g["name"]: g["lr"] for g in param_groups(model, config.train)}
    assert groups["frontend"] == config.train.lr_frontend != groups["head"]


@needs_mn04
def test_the_audioset_head_keeps_the_released_hidden_layer():
    """model.frontend_head = "audioset": the released head up to its class layer, pretrained
    and in the front end's learning-rate group; a new linear layer maps it to the classes."""
    from audiogpt2.model import build_model
    from audiogpt2.train import param_groups

    head = {"model.frontend_head": "audioset", "model.backbone": "none"}
    config = load_config(CONFIG, {"model.frontend_weights": str(MN04), **head})
    model, _ = build_model(config.model, config.audio, False, 50)
    released = MobileNetV3(0.4)
    released.load_state_dict(load_released(str(MN04), 0.4), strict=True)
    x = torch.randn(2, 2, 500, 128)
    with torch.no_grad():
        hidden = released.eval().classifier[:-1](released.features(x[:, :1].transpose(2, 3)))
        torch.testing.assert_close(model.eval().cnn.embed(x), hidden)
        assert model(x).shape == (2, 50)
    assert hidden.shape == (2, 512) and isinstance(model.head, torch.nn.Linear)
    frontend = next(g for g in param_groups(model, config.train) if g["name"] == "frontend")
    assert any(p is model.cnn.net.classifier[2].weight for p in frontend["params"])
