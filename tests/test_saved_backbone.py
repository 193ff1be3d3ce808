"""A model file's backbone config is data: no remote code, no downloads, bounded sizes."""

import json

import pytest

from audiogpt2.cli import main
from audiogpt2.export import export, load_export
from audiogpt2.io import UnsafeFileError
from audiogpt2.saved_backbone import checked_backbone_config

from helpers import one_epoch_checkpoint


@pytest.fixture(scope="module")
def exported(esc_root, tiny_gpt2_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("saved-backbone")
    checkpoint = one_epoch_checkpoint(esc_root, tiny_gpt2_dir, tmp)[1]
    export(checkpoint, tmp / "export")
    return tmp / "export"


def _edited(exported, tmp_path, edit):
    folder = tmp_path / "edited"
    folder.mkdir()
    for f in exported.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    data = json.loads((folder / "config.json").read_text())
    backbone = json.loads(data["backbone_config"])
    edit(backbone)
    data["backbone_config"] = json.dumps(backbone)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


HOSTILE = {
    "auto_map": lambda b: b.update(auto_map={"AutoModel": "evil.Model"}),
    "use_pretrained_backbone": lambda b: b.update(use_pretrained_backbone=True, backbone="gpt2"),
    "n_layer": lambda b: b.update(n_layer=4000),
    "n_embd": lambda b: b.update(n_embd=-3),
    "model_type": lambda b: b.update(model_type="llama"),
    "trust_remote_code": lambda b: b.update(trust_remote_code=True),
    "_attn_implementation": lambda b: b.update(_attn_implementation="kernels-community/flash-attn"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_backbone_configs_are_refused_with_one_line(exported, tmp_path, capsys, name, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a network call was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    folder = _edited(exported, tmp_path, HOSTILE[name])
    with pytest.raises(UnsafeFileError, match=name):
        load_export(folder, prefer_onnx=False)
    clip = tmp_path / "missing.wav"
    assert main(["predict", str(folder), str(clip)]) != 0
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_the_package_own_backbone_configs_pass(exported, tiny_gpt2_dir):
    from transformers import BertConfig

    data = json.loads((exported / "config.json").read_text())
    assert checked_backbone_config(data["backbone_config"]).n_layer == 3
    assert checked_backbone_config("{}") is None
    assert checked_backbone_config(BertConfig(num_hidden_layers=2).to_json_string()).num_hidden_layers == 2
    with pytest.raises(UnsafeFileError, match="not valid JSON"):
        checked_backbone_config("{nope")
