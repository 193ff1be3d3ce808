"""bf16 autocast: chosen only where native, forward pass only, fp32 weights and gradients."""

import copy

import pytest
import torch

from audiogpt2 import precision as prec
from audiogpt2.precision import Precision, resolve_precision


@pytest.mark.parametrize(
    "flags, expected",
    [({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16", "amx_tile"}, "bf16"), ({"avx2", "fma"}, "fp32")],
)
def test_auto_picks_bf16_only_where_the_cpu_has_it(monkeypatch, flags, expected):
    monkeypatch.setattr(prec, "cpu_flags", lambda: flags)
    chosen = resolve_precision("auto", "cpu")
    assert chosen.name == expected and chosen.reason.startswith("auto: ")
    assert resolve_precision("fp32", "cpu").name == "fp32"
    assert resolve_precision("bf16", "cpu").name == "bf16"  # asked for: always, with a note if emulated


def test_auto_on_cuda_and_mps_follows_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Some GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda").name == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda").name == "fp32"
    assert resolve_precision("auto", "mps").name == "fp32"
    with pytest.raises(ValueError, match="precision 'fp16'"):
        resolve_precision("fp16", "cpu")


def test_a_bf16_training_step_gives_finite_close_fp32_gradients(small_config, small_cache):
    """One real step of the package's model: under bf16 autocast the weights and gradients
    stay fp32, are finite, and point the same way as the fp32 step's."""
    from audiogpt2.features import model_input
    from audiogpt2.model import build_model

    config = small_config
    torch.manual_seed(0)
    model, _ = build_model(config.model, config.audio, False, len(small_cache.classes))
    twin = copy.deepcopy(model)
    x = torch.stack(
        [torch.from_numpy(model_input(f.numpy(), config.augment)) for f in small_cache.features[:8]]
    )
    y = small_cache.labels[:8]
    grads = []
    for net, arithmetic in ((model, Precision("fp32", "")), (twin, Precision("bf16", ""))):
        net.train()
        torch.manual_seed(1)  # the same dropout masks in both steps
        with arithmetic.autocast("cpu"):
            logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        assert all(p.dtype == torch.float32 for p in net.parameters())
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
    fp32, bf16 = grads
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    cosine = torch.nn.functional.cosine_similarity(fp32, bf16, dim=0)
    assert cosine > 0.99, f"bf16 gradient direction differs from fp32 (cosine {cosine:.4f})"
    assert (bf16.norm() / fp32.norm() - 1).abs() < 0.05


def test_the_run_log_and_config_record_the_precision(small_config, small_cache, tmp_path, caplog):
    import logging

    from audiogpt2.checkpoint import read_checkpoint_config
    from audiogpt2.train import train_arm

    small_config.train.epochs = 1
    small_config.train.precision = "bf16"
    with caplog.at_level(logging.INFO):
        result = train_arm(small_config, small_cache, "baseline", tmp_path / "b.pt", progress=False)
    assert "bf16 (asked for (--precision bf16)" in caplog.text
    saved = read_checkpoint_config(result.best_checkpoint)["train"]
    assert saved["precision"] == "bf16" and saved["amp"] is False
    assert 'precision = "bf16"' in (tmp_path / "config.toml").read_text()
    # a resumed run keeps the precision it started in under auto
    from audiogpt2.train import checkpoint_paths, resumed_precision

    assert resumed_precision(checkpoint_paths(result.best_checkpoint)[0], "auto") == "bf16"
    assert resumed_precision(checkpoint_paths(result.best_checkpoint)[0], "fp32") == "fp32"
    small_config.train.precision = "auto"  # and its log says so, not "asked for"
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train_arm(small_config, small_cache, "baseline", tmp_path / "b.pt", resume=True, progress=False)
    assert "bf16 (kept from the run it resumes (auto))" in caplog.text and "asked for" not in caplog.text
