import json

import numpy as np
import onnx
import pytest
import soundfile as sf

from audiogpt2.cli import main
from audiogpt2.export import ExportError, OnnxModel, export, load_export
from audiogpt2.predict import Classifier
from audiogpt2.train import train_arm


@pytest.fixture(scope="module")
def checkpoint(small_cache, esc_root, tiny_gpt2_dir, tmp_path_factory):
    from audiogpt2.config import load_config

    from helpers import small_overrides

    tmp = tmp_path_factory.mktemp("ckpt")
    overrides = {**small_overrides(esc_root, tiny_gpt2_dir, tmp / "c.pt"), "train.epochs": 1}
    config = load_config(overrides=overrides)
    return train_arm(config, small_cache, "finetuned", tmp / "best.pt", progress=False).best_checkpoint


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "a.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 44100 * 7).astype(np.float32), 44100)
    return path


def test_safetensors_export_predicts_exactly_like_the_checkpoint(checkpoint, clip, tmp_path):
    weights = export(checkpoint, tmp_path / "st")
    assert weights.name == "model.safetensors"
    config = json.loads((tmp_path / "st" / "config.json").read_text())
    assert config["format"] == "audiogpt2-export-v1" and config["classes"]
    reference = Classifier.from_checkpoint(checkpoint).predict_file(clip)
    exported = Classifier.from_pretrained(tmp_path / "st").predict_file(clip)
    assert exported.labels == reference.labels
    np.testing.assert_allclose(exported.probabilities, reference.probabilities, atol=1e-6)


def test_onnx_export_matches_pytorch_and_int8_stays_close(checkpoint, clip, tmp_path, capsys, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        assert main(["export", str(checkpoint), str(tmp_path / "onnx"), "--format", "onnx", "--int8"]) == 0
    # the exporter's notes for torch developers (torchvision absent, constants not folded) stay out
    assert not [r.getMessage() for r in caplog.records if r.name.startswith(("torch", "onnxscript"))]
    assert "[torch.onnx]" not in capsys.readouterr().out
    model, _ = load_export(tmp_path / "onnx")
    assert isinstance(model, OnnxModel) and model.session._model_path.endswith("model.int8.onnx")
    assert model.session.get_inputs()[0].shape[0] == "batch"  # any batch size, one model
    assert not (tmp_path / "onnx" / "model.onnx.data").exists()  # self-contained under 2 GB
    ops = {node.op_type for node in onnx.load(str(tmp_path / "onnx" / "model.int8.onnx")).graph.node}
    # matrix products in int8; convolutions in fp32 (ONNX Runtime's int8 ones are slower)
    assert "MatMulInteger" in ops and "Conv" in ops and "ConvInteger" not in ops
    reference = Classifier.from_checkpoint(checkpoint, precision="fp32").predict_file(clip)  # as ONNX runs
    (tmp_path / "onnx" / "model.int8.onnx").unlink()  # the fp32 model next
    fp32 = Classifier.from_pretrained(tmp_path / "onnx")
    assert isinstance(fp32.model, OnnxModel)
    got = fp32.predict_file(clip)
    order = [got.labels.index(label) for label in reference.labels]
    np.testing.assert_allclose(np.array(got.probabilities)[order], reference.probabilities, atol=1e-4)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "onnx"), str(clip), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["top"][0]["label"] == reference.labels[0]


def test_a_folder_that_is_not_an_export_is_one_line(tmp_path, capsys):
    with pytest.raises(ExportError, match="no config.json"):
        load_export(tmp_path)
    (tmp_path / "x.wav").write_bytes(b"")
    assert main(["predict", str(tmp_path), str(tmp_path / "x.wav")]) == 2
    assert "not an audiogpt2 export" in capsys.readouterr().err


def test_export_replaces_a_previous_export_and_refuses_a_foreign_config(checkpoint, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "config.json").write_text('{"mine": 1}')
    with pytest.raises(ExportError, match="not an audiogpt2 export; nothing was written"):
        export(checkpoint, out)
    assert (out / "config.json").read_text() == '{"mine": 1}' and not (out / "model.safetensors").exists()
    (out / "config.json").unlink()
    export(checkpoint, out, "onnx", int8=True)
    export(checkpoint, out)  # safetensors now: the ONNX files of the last export go
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(ExportError, match="unknown export format"):
        export(checkpoint, tmp_path / "other", "tflite")
    assert not (tmp_path / "other").exists()


def test_export_never_touches_a_folder_of_other_files(checkpoint, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"a user's own file")
    with pytest.raises(ExportError, match="not an audiogpt2 export"):
        export(checkpoint, folder)
    assert (folder / "model.safetensors").read_bytes() == b"a user's own file"


def test_concurrent_exports_to_one_folder_are_locked_out(checkpoint, tmp_path):
    from audiogpt2.io import LockedError, exclusive_lock

    with exclusive_lock(tmp_path / "out", beside=True), pytest.raises(LockedError, match="in use"):
        export(checkpoint, tmp_path / "out")


def test_lock_files_and_torn_write_cleanup_touch_nothing_of_the_users(tmp_path):
    from audiogpt2.io import OutputError, exclusive_lock, remove_torn_writes

    target = tmp_path / "victim.txt"
    target.write_text("keep")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".audiogpt2.lock").symlink_to(target)
    with pytest.raises(OutputError, match="symbolic"), exclusive_lock(tmp_path / "run"):
        pass
    assert target.read_text() == "keep"
    users = tmp_path / "run" / ".best.notes.tmp"
    users.write_text("a user's file")
    ours = tmp_path / "run" / ".best.pt.ab12cd34.audiogpt2-tmp"
    ours.write_text("torn")
    assert remove_torn_writes(tmp_path / "run" / "best.pt") == [ours]
    assert users.exists() and not ours.exists()


def test_a_failed_int8_quantization_keeps_the_fp32_model_and_says_so(checkpoint, tmp_path, monkeypatch):
    import onnxruntime.quantization

    def broken(*_, **__):
        raise RuntimeError("[ShapeInferenceError] Inferred shape and existing shape differ")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", broken)
    said = r"model.onnx \(fp32\) was written.*could not quantize.*without --int8"
    with pytest.raises(ExportError, match=said):
        export(checkpoint, tmp_path / "q", "onnx", int8=True)
    assert OnnxModel(tmp_path / "q" / "model.onnx") is not None
    assert not (tmp_path / "q" / "model.int8.onnx").exists()
