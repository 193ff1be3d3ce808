import json
import os
import subprocess
import sys

import pytest

from helpers import train_cli_args


@pytest.mark.slow
def test_data_parallel_training_with_two_gloo_processes(esc_root, tiny_gpt2_dir, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "audiogpt2"]
    cmd += train_cli_args(esc_root, tiny_gpt2_dir, tmp_path, "baseline", "b.pt", epochs=2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("Epoch 1/2:") == 1 and out.count("Baseline Model: Acc=") == 1  # rank 0 only
    history = json.loads((tmp_path / "m" / "b.history.json").read_text())
    assert len(history) == 2 and all(h["train_loss"] > 0 for h in history)
    assert (tmp_path / "m" / "b.pt").is_file() and (tmp_path / "nb" / "metrics_baseline.json").is_file()
