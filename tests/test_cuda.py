"""The CUDA path, run for real where a CUDA GPU exists (skipped elsewhere, saying why):
training on the GPU in bf16, checkpoints that load anywhere, prediction and export from a
GPU-trained model, and the MobileNet front end under bf16 autocast on the GPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import soundfile as sf
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def gpu_run(small_cache, esc_root, tiny_gpt2_dir, tmp_path_factory):
    """One small finetuned arm trained on the GPU with precision auto."""
    from audiogpt2.config import load_config
    from audiogpt2.train import train_arm

    from helpers import small_overrides

    tmp = tmp_path_factory.mktemp("gpu")
    overrides = {**small_overrides(esc_root, tiny_gpt2_dir, tmp / "c.pt"), "train.device": "cuda"}
    config = load_config(overrides=overrides)
    return train_arm(config, small_cache, "finetuned", tmp / "best.pt", progress=False)


def test_auto_precision_on_this_gpu_follows_its_bf16_support():
    from audiogpt2.precision import resolve_precision

    chosen = resolve_precision("auto", "cuda")
    assert chosen.name == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert torch.cuda.get_device_name(0) in chosen.reason


def test_a_gpu_training_run_saves_fp32_weights_that_load_on_the_cpu(gpu_run):
    from audiogpt2.checkpoint import load_checkpoint, read_checkpoint_config

    saved = read_checkpoint_config(gpu_run.best_checkpoint)["train"]
    assert saved["device"] == "cuda"
    assert saved["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert all(np.isfinite(r["train_loss"]) for r in gpu_run.history)
    model, _ = load_checkpoint(gpu_run.best_checkpoint)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_the_gpu_and_the_cpu_score_a_gpu_trained_checkpoint_alike(gpu_run, small_cache):
    from audiogpt2.evaluate import evaluate_checkpoint

    on_gpu, _ = evaluate_checkpoint(gpu_run.best_checkpoint, small_cache, "cuda", precision="fp32")
    on_cpu, _ = evaluate_checkpoint(gpu_run.best_checkpoint, small_cache, "cpu", precision="fp32")
    np.testing.assert_allclose(on_gpu["probabilities"], on_cpu["probabilities"], atol=2e-3)
    in_bf16, _ = evaluate_checkpoint(gpu_run.best_checkpoint, small_cache, "cuda", precision="bf16")
    assert in_bf16["arithmetic"] == "bf16"
    agree = np.mean(np.array(in_bf16["predictions"]) == np.array(on_cpu["predictions"]))
    assert agree >= 0.9, f"bf16 on the GPU changed {1 - agree:.0%} of the top-1 labels"


def test_predict_and_export_from_a_gpu_trained_model(gpu_run, tmp_path):
    from audiogpt2.export import export
    from audiogpt2.predict import Classifier

    clip = tmp_path / "a.wav"
    sf.write(clip, np.random.default_rng(0).normal(0, 0.1, 44100 * 3).astype(np.float32), 44100)
    on_gpu = Classifier.from_checkpoint(gpu_run.best_checkpoint, device="cuda", precision="fp32")
    on_cpu = Classifier.from_checkpoint(gpu_run.best_checkpoint, device="cpu", precision="fp32")
    a, b = on_gpu.predict_file(clip), on_cpu.predict_file(clip)
    assert a.labels == b.labels
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-3)
    export(gpu_run.best_checkpoint, tmp_path / "export")
    exported = Classifier.from_pretrained(tmp_path / "export", device="cuda", precision="fp32")
    assert exported.predict_file(clip).labels == b.labels


def test_a_gpu_bf16_step_gives_gradients_close_to_fp32(small_config, small_cache):
    from audiogpt2.features import model_input
    from audiogpt2.model import build_model
    from audiogpt2.precision import Precision

    torch.manual_seed(0)
    model, _ = build_model(small_config.model, small_config.audio, False, len(small_cache.classes))
    nets = (model.cuda(), copy.deepcopy(model).cuda())
    rows = [model_input(f.numpy(), small_config.augment) for f in small_cache.features[:8]]
    x = torch.from_numpy(np.stack(rows)).cuda()
    y = small_cache.labels[:8].cuda()
    grads = []
    for net, arithmetic in zip(nets, (Precision("fp32", ""), Precision("bf16", ""))):
        net.train()
        torch.manual_seed(1)
        with arithmetic.autocast("cuda"):
            logits = net(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
    fp32, bf16 = grads
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=0) > 0.99


def test_the_mobilenet_front_end_runs_on_the_gpu_in_bf16():
    from audiogpt2.frontends.mobilenet import MobileNetV3

    torch.manual_seed(0)
    net = MobileNetV3(width=0.4, num_classes=527).cuda().eval()
    x = torch.randn(2, 1, 128, 500, device="cuda")
    with torch.no_grad():
        fp32 = net(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = net(x)
    assert torch.isfinite(bf16.float()).all()
    assert torch.nn.functional.cosine_similarity(fp32.flatten(), bf16.float().flatten(), dim=0) > 0.98
