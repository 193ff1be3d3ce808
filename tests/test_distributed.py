import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from helpers import small_overrides, train_cli_args


def torchrun(nproc: int) -> list[str]:
    """``torchrun`` on a free port: several test processes (pytest-xdist) may launch at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--nproc_per_node", str(nproc), "--master_port", str(port)]


@pytest.mark.slow
def test_data_parallel_training_with_two_gloo_processes(esc_root, tiny_gpt2_dir, tmp_path):
    cmd = [*torchrun(2), "-m", "audiogpt2"]
    cmd += train_cli_args(esc_root, tiny_gpt2_dir, tmp_path, "baseline", "b.pt", epochs=2)
    cmd += ["--device", "cpu"]  # gloo processes, also where a GPU exists
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("Epoch 1/2:") == 1 and out.count("Baseline Model: Acc=") == 1  # rank 0 only
    history = json.loads((tmp_path / "m" / "b.history.json").read_text())
    assert len(history) == 2 and all(h["train_loss"] > 0 for h in history)
    assert (tmp_path / "m" / "b.pt").is_file() and (tmp_path / "nb" / "metrics_baseline.json").is_file()
    # The test fold was scored in halves on the two ranks and gathered: exactly what one
    # process computes for the same checkpoint.
    from audiogpt2.cache import load_cache
    from audiogpt2.evaluate import evaluate_checkpoint

    sharded = json.loads((tmp_path / "nb" / "metrics_baseline.json").read_text())
    single, _ = evaluate_checkpoint(tmp_path / "m" / "b.pt", load_cache(tmp_path / "c.pt"))
    for key in ("accuracy", "f1", "confusion_matrix", "predictions", "targets"):
        assert sharded[key] == single[key], key


@pytest.fixture(scope="module")
def dropout_free_gpt2(tmp_path_factory):
    """A tiny GPT-2 without dropout: one process and two ranks then draw no random masks,
    so their weights can be compared to float tolerance."""
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)  # the same weights every run: the tolerances below depend on them
    path = tmp_path_factory.mktemp("gpt2-nodrop")
    no_dropout = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=32, **no_dropout)
    GPT2Model(config).save_pretrained(path)
    return path


def _median_diff(a: dict, b: dict) -> float:
    import torch

    keys = [k for k in a if a[k].is_floating_point() and a[k].numel()]
    return torch.cat([(a[k].double() - b[k].double()).abs().flatten() for k in keys]).median().item()


def _max_diff(a: dict, b: dict, skip: str = "^$") -> float:
    keys = [k for k in a if a[k].is_floating_point() and a[k].numel() and not re.search(skip, k)]
    return max((a[k].double() - b[k].double()).abs().max().item() for k in keys)


@pytest.mark.slow
def test_ddp_matches_hand_averaged_gradients_and_syncbn_matches_one_process(
    esc_root, dropout_free_gpt2, tmp_path
):
    """Two gloo ranks over three epochs that span two unfreezes (the DDP wrapper is rebuilt
    at each): DDP equals averaging every gradient by hand; with SyncBatchNorm, 2 ranks of
    batch 4 equal one process of batch 8; a frozen block stays bit-identical until its
    epoch and trains after it."""
    import ddp_worker
    import torch

    from audiogpt2.config import load_config
    from audiogpt2.io import safe_torch_load
    from audiogpt2.model import backbone_blocks, build_model
    from audiogpt2.preprocess import preprocess
    from audiogpt2.train import train_arm

    cache = tmp_path / "cache.pt"
    overrides = small_overrides(esc_root, dropout_free_gpt2, cache)
    built = preprocess(load_config(overrides=overrides), progress=False)
    worker = Path(ddp_worker.__file__)
    cmd = [*torchrun(2), str(worker)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*cmd, str(cache), str(dropout_free_gpt2), str(tmp_path)], capture_output=True, text=True, env=env,
        timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ddp, manual, syncbn = (safe_torch_load(tmp_path / f"{m}.pt") for m in ("ddp", "manual", "syncbn"))
    assert _max_diff(ddp["final"], manual["final"]) < 1e-5

    config = ddp_worker.config_for(str(cache), str(dropout_free_gpt2), 2 * ddp_worker.BATCH)
    from audiogpt2 import train as train_module

    # The global-batch BatchNorm itself: one step on 2 ranks x 4 equals nn.BatchNorm2d on 8.
    layer = safe_torch_load(tmp_path / "syncbn_layer.pt")
    assert max(layer.values()) < 1e-5, layer
    # Whole training runs: summation order differs (two shards vs one batch), and AdamW turns
    # that float noise into lr-sized steps in the parameters whose gradients are nearly zero,
    # so three epochs leave differences of the same order as per-rank statistics do. What is
    # checked is that SyncBatchNorm brings the bulk of the weights (median difference)
    # clearly closer to one process of batch 8 than per-rank statistics do.
    with mock.patch.object(train_module, "build_model", ddp_worker.bias_free_build(train_module.build_model)):
        single = train_arm(config, built, "finetuned", tmp_path / "single" / "best.pt", progress=False)
    one = safe_torch_load(single.best_checkpoint.with_name("best.last.pt"))["model"]
    synced, per_rank = _median_diff(syncbn["final"], one), _median_diff(ddp["final"], one)
    assert synced < 0.7 * per_rank, (synced, per_rank)

    torch.manual_seed(config.train.seed)
    init_model, _ = build_model(config.model, config.audio, True, len(built.classes))
    init = backbone_blocks(init_model.backbone)[1].state_dict()
    after = ddp["block1"]  # epochs 1-3; block 1 unfreezes at the start of epoch 3
    assert all(torch.equal(after[e][k], init[k]) for e in (0, 1) for k in init)
    assert any(not torch.equal(after[2][k], init[k]) for k in init if init[k].is_floating_point())


EXIT_WORKER = """
import torch
import torch.distributed as dist
from audiogpt2 import distributed

distributed.init(torch.device("cpu"))
x = torch.ones(1000)
for _ in range(50):
    dist.all_reduce(x)
dist.all_gather([torch.zeros(3) for _ in range(2)], torch.ones(3))
"""


@pytest.mark.slow
def test_ranks_exit_cleanly_after_their_last_collective(tmp_path):
    """Left to interpreter teardown, gloo aborted about one run in three here ("terminate
    called without an active exception") after all work was done; ``init`` leaves the
    group at exit. Six runs: a regression fails this with probability ~0.9."""
    script = tmp_path / "exit_worker.py"
    script.write_text(EXIT_WORKER)
    cmd = [*torchrun(2), str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(6):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]


def test_more_processes_than_gpus_is_refused_in_one_line(monkeypatch):
    """torchrun with two processes on a one-GPU machine: the second would ask for cuda:1."""
    import torch

    from audiogpt2 import distributed
    from audiogpt2.device import DeviceError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    expected = "2 processes on this machine, but it has 1 CUDA GPU.*--nproc_per_node 1"
    with pytest.raises(DeviceError, match=expected):
        distributed.init(torch.device("cuda"))
