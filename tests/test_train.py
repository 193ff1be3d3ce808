import copy

import numpy as np
import pytest
import torch

import audiogpt2.train as train_mod
from audiogpt2.io import safe_torch_load
from audiogpt2.model import backbone_blocks, build_model
from audiogpt2.train import blocks_trainable_at, checkpoint_paths, train_arm


def _initial_model(config, cache, arm="finetuned"):
    torch.manual_seed(config.train.seed)
    model, _ = build_model(config.model, config.audio, arm == "finetuned", len(cache.classes))
    return model


def _snapshots(config, cache, tmp_path, arm="finetuned", **kwargs):
    """Train and keep the model state after every epoch."""
    best = tmp_path / arm / "best.pt"
    states = {}

    def grab(epoch, record):
        states[epoch] = safe_torch_load(checkpoint_paths(best)[0])

    result = train_arm(config, cache, arm, best, progress=False, on_epoch_end=grab, **kwargs)
    return result, states


def test_cnn_trains_and_frozen_blocks_stay_frozen_until_their_epoch(small_config, small_cache, tmp_path):
    init = _initial_model(small_config, small_cache).state_dict()
    result, states = _snapshots(small_config, small_cache, tmp_path)
    after1 = states[1]["model"]
    cnn = [k for k in init if k.startswith("cnn.") and "running" not in k and "num_batches" not in k]
    assert cnn and all(not torch.equal(init[k], after1[k]) for k in cnn), "CNN must train in epoch 1"
    for k in ("proj.weight", "head.0.weight", "head.2.weight"):
        assert not torch.equal(init[k], after1[k])

    def block(state, i):
        return {k: v for k, v in state.items() if k.startswith(f"backbone.h.{i}.")}

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    # schedule {2: block 0, 3: block 1}; block 2 never unfreezes in 3 epochs
    assert same(block(init, 0), block(states[1]["model"], 0))
    assert not same(block(states[1]["model"], 0), block(states[2]["model"], 0))
    assert same(block(init, 1), block(states[2]["model"], 1))
    assert not same(block(states[2]["model"], 1), block(states[3]["model"], 1))
    assert same(block(init, 2), block(states[3]["model"], 2))
    assert torch.equal(init["backbone.wpe.weight"], states[3]["model"]["backbone.wpe.weight"])
    assert [h["trainable_blocks"] for h in result.history] == [[], [0], [0, 1]]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_optimizer_and_scheduler_are_built_once_and_keep_state(
    small_config, small_cache, tmp_path, monkeypatch
):
    calls = []
    original = train_mod.configure_optimizer
    monkeypatch.setattr(train_mod, "configure_optimizer", lambda *a: calls.append(1) or original(*a))
    _, states = _snapshots(small_config, small_cache, tmp_path)
    assert len(calls) == 1
    opt = states[3]["optimizer"]
    head_state = opt["state"][0]  # first CNN parameter, trained since epoch 1
    steps_epoch1 = int(states[1]["optimizer"]["state"][0]["step"])
    assert int(head_state["step"]) == 3 * steps_epoch1  # Adam state never reset at unfreezes
    assert states[3]["scheduler"]["last_epoch"] == 3
    # both groups exist from the start with the spec's learning rates
    assert [g["lr"] for g in states[1]["optimizer"]["param_groups"]] == [1e-3, 2e-5]


def test_same_seed_gives_identical_metrics(small_config, small_cache, tmp_path):
    a = train_arm(small_config, small_cache, "baseline", tmp_path / "a" / "best.pt", progress=False)
    b = train_arm(small_config, small_cache, "baseline", tmp_path / "b" / "best.pt", progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)


def _full_and_interrupted(config, cache, tmp_path, at_epoch):
    """An uninterrupted run, and one stopped by Ctrl-C after ``at_epoch`` (its best path)."""
    full = train_arm(config, cache, "finetuned", tmp_path / "full" / "best.pt", progress=False)

    def crash(epoch, record):
        if epoch == at_epoch:
            raise KeyboardInterrupt

    path = tmp_path / "cut" / "best.pt"
    with pytest.raises(KeyboardInterrupt):
        train_arm(config, cache, "finetuned", path, progress=False, on_epoch_end=crash)
    return full, path


def test_resume_after_interruption_matches_uninterrupted(small_config, small_cache, tmp_path):
    full, path = _full_and_interrupted(small_config, small_cache, tmp_path, 2)
    assert safe_torch_load(checkpoint_paths(path)[0])["epoch"] == 2
    torn = path.parent / ".best.last.pt.abc123de.audiogpt2-tmp"  # what a kill mid-write leaves
    torn.write_bytes(b"half a checkpoint")
    resumed = train_arm(small_config, small_cache, "finetuned", path, resume=True, progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert not torn.exists()
    assert (
        safe_torch_load(checkpoint_paths(path)[0])["stale"]
        == safe_torch_load(checkpoint_paths(tmp_path / "full" / "best.pt")[0])["stale"]
    )
    a = safe_torch_load(tmp_path / "full" / "best.pt")["model"]
    b = safe_torch_load(path)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_baseline_trainable_all_trains_every_block(small_config, small_cache, tmp_path):
    config = copy.deepcopy(small_config)
    config.train.baseline_trainable = "all"
    config.train.epochs = 1
    init = _initial_model(config, small_cache, "baseline").state_dict()
    _, states = _snapshots(config, small_cache, tmp_path, arm="baseline")
    for i in range(3):
        k = f"backbone.h.{i}.attn.c_attn.weight"
        assert not torch.equal(init[k], states[1]["model"][k])


def test_schedule_helper():
    assert blocks_trainable_at(4, {5: 0, 10: 1, 15: 2}) == []
    assert blocks_trainable_at(10, {5: 0, 10: 1, 15: 2}) == [0, 1]


def test_best_checkpoint_rebuilds_offline(small_config, small_cache, tmp_path):
    from audiogpt2.checkpoint import load_checkpoint

    r = train_arm(small_config, small_cache, "finetuned", tmp_path / "best.pt", progress=False)
    model, info = load_checkpoint(r.best_checkpoint)
    assert info.classes == small_cache.classes and info.epoch == r.best_epoch
    assert len(backbone_blocks(model.backbone)) == 3
    assert (tmp_path / "config.toml").is_file()


@pytest.mark.slow
def test_compiled_training_keeps_freezing_and_checkpoint_format(small_config, small_cache, tmp_path):
    """`train.compile`: unfreezing still takes effect through the compiled graph, checkpoints
    load like eager ones, and training tracks eager (compiled dropout draws other masks)."""
    config = copy.deepcopy(small_config)
    config.train.epochs = 2
    init = _initial_model(config, small_cache).state_dict()
    eager = train_arm(config, small_cache, "finetuned", tmp_path / "eager" / "best.pt", progress=False)
    config.train.compile = True
    compiled, states = _snapshots(config, small_cache, tmp_path)
    assert [h["trainable_blocks"] for h in compiled.history] == [[], [0]]

    def block(state, i):
        return [state[k] for k in state if k.startswith(f"backbone.h.{i}.")]

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a, b))

    assert same(block(init, 0), block(states[1]["model"], 0))
    assert not same(block(states[1]["model"], 0), block(states[2]["model"], 0))
    assert same(block(init, 1), block(states[2]["model"], 1))
    assert states[2]["model"].keys() == init.keys()  # no "_orig_mod." prefixes
    for a, b in zip(eager.history, compiled.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.03)


def test_cosine_schedule_warmup_end_and_last_step():
    from audiogpt2.config import TrainConfig
    from audiogpt2.train import make_scheduler

    t = TrainConfig(schedule="cosine", epochs=10, warmup_epochs=2, lr_head=1e-3)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [param], "lr": 1e-3, "name": "head"}])
    sched = make_scheduler(opt, t, steps_per_epoch=5)  # 50 steps, 10 of warm-up
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])  # the rate the next step uses
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4)  # 1/10 of the way up
    assert lrs[9] == pytest.approx(1e-3)  # warm-up ends at the full rate
    assert max(lrs) == pytest.approx(1e-3)
    assert lrs[30] == pytest.approx(0.5e-3)  # half-way through the decay
    assert lrs[49] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 39 / 40)))  # last step
    assert lrs[49] < 2e-6 and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def _recipe(config):
    config = copy.deepcopy(config)
    config.augment.time_shift, config.augment.mixup_alpha, config.augment.tta = 0.2, 0.4, 3
    config.augment.freq_masks = config.augment.time_masks = 2
    config.train.schedule, config.train.warmup_epochs = "cosine", 1
    config.train.label_smoothing, config.train.grad_clip = 0.1, 1.0
    config.model.dropout = 0.2
    return config


def test_resume_is_exact_with_the_recipe_augmentation(small_config, small_cache, tmp_path):
    config = _recipe(small_config)
    full, path = _full_and_interrupted(config, small_cache, tmp_path, 1)
    resumed = train_arm(config, small_cache, "finetuned", path, resume=True, progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    lrs = [r["lr_head"] for r in full.history]
    assert lrs[0] < lrs[1] and lrs[2] < lrs[1]  # warm-up, then decay, per step
    a = safe_torch_load(checkpoint_paths(tmp_path / "full" / "best.pt")[0])["model"]
    b = safe_torch_load(checkpoint_paths(path)[0])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_diverged_loss_stops_training_and_keeps_the_last_good_checkpoint(small_config, small_cache, tmp_path):
    from audiogpt2.train import TrainingError

    path = tmp_path / "best.pt"
    config = copy.deepcopy(small_config)

    def poison(epoch, record):  # after epoch 1, make the next forward pass produce NaN
        if epoch == 1:
            train_mod.AudioClassifier.forward = lambda self, x: original(self, x) * float("nan")

    original = train_mod.AudioClassifier.forward
    try:
        with pytest.raises(TrainingError, match="loss became nan at epoch 2"):
            train_arm(config, small_cache, "baseline", path, progress=False, on_epoch_end=poison)
    finally:
        train_mod.AudioClassifier.forward = original
    last = safe_torch_load(checkpoint_paths(path)[0])
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    best = safe_torch_load(path)["model"]
    assert all(torch.isfinite(v).all() for v in best.values() if v.is_floating_point())


def test_resume_refuses_a_checkpoint_of_other_data(small_config, small_cache, tmp_path):
    from audiogpt2.train import TrainingError

    path = tmp_path / "best.pt"
    config = copy.deepcopy(small_config)
    config.train.epochs = 1
    train_arm(config, small_cache, "baseline", path, progress=False)
    other = copy.copy(small_cache)
    other.classes = list(reversed(small_cache.classes))
    with pytest.raises(TrainingError, match="classes"):
        train_arm(config, other, "baseline", path, resume=True, progress=False)
    other = copy.copy(small_cache)
    other.key = "another dataset"
    with pytest.raises(TrainingError, match="other audio files or feature settings"):
        train_arm(config, other, "baseline", path, resume=True, progress=False)
    wider = copy.deepcopy(config)
    wider.model.head_hidden = 32
    with pytest.raises(TrainingError, match="architecture"):
        train_arm(wider, small_cache, "baseline", path, resume=True, progress=False)


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_adamw_implementations_compute_the_same_update(impl):
    # "auto" picks fused AdamW for speed; it must train exactly like torch's default loop.
    from audiogpt2.train import make_adamw

    def net_at_start() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def run(impl: str) -> list[torch.Tensor]:
        net = net_at_start()
        frozen = net[0].bias.requires_grad_(False)  # a frozen tensor in the group, as before unfreezing
        opt = make_adamw([{"params": list(net.parameters()), "lr": 1e-2}], 0.01, impl)
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        assert frozen.grad is None
        return [p.detach().clone() for p in net.parameters()]

    start = [p.detach().clone() for p in net_at_start().parameters()]
    reference, other = run("loop"), run(impl)
    assert not torch.equal(reference[0], start[0])  # training moved the weights
    for a, b in zip(reference, other):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_weight_average_of_the_last_epochs_is_saved_and_resumes_exactly(small_config, small_cache, tmp_path):
    import json

    config = _recipe(small_config)
    config.train.average_epochs = 2  # of 3: epochs 2 and 3
    result, states = _snapshots(config, small_cache, tmp_path / "avg", arm="finetuned")
    best = tmp_path / "avg" / "finetuned" / "best.pt"
    saved = safe_torch_load(best)
    assert saved["metrics"]["averaged_epochs"] == "2-3"
    for k, v in saved["model"].items():
        if v.is_floating_point():
            expected = (states[2]["model"][k] + states[3]["model"][k]) / 2
            torch.testing.assert_close(v, expected, rtol=1e-6, atol=1e-7)
    # the average is not the last epoch's weights, and is scored on validation for the record
    assert not torch.equal(saved["model"]["head.0.weight"], states[3]["model"]["head.0.weight"])
    record = json.loads(best.with_name("best.average.json").read_text())
    assert record["val_acc"] == result.best_val_acc and result.best_epoch == 3

    _, cut = _full_and_interrupted(config, small_cache, tmp_path, 2)  # inside the window
    train_arm(config, small_cache, "finetuned", cut, resume=True, progress=False)
    a = safe_torch_load(tmp_path / "full" / "best.pt")["model"]
    b = safe_torch_load(cut)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_split_is_shown_and_written_to_the_run_folder(small_config, small_cache, tmp_path, caplog):
    import json
    import logging

    small_config.train.epochs = 1
    with caplog.at_level(logging.INFO):
        train_arm(small_config, small_cache, "baseline", tmp_path / "b.pt", progress=False)
    record = json.loads((tmp_path / "split.json").read_text())["clips"]
    roles = {c["role"] for c in record}
    assert roles == {"train", "validation", "test"} and len(record) == len(small_cache.names)
    assert all(c["fold"] == small_config.data.test_fold for c in record if c["role"] == "test")
    groups = {r: {c["group"] for c in record if c["role"] == r} for r in roles}
    assert not groups["train"] & groups["validation"]  # whole groups on one side
    assert "whole groups, stratified by class; 20% of the training folds" in caplog.text


def test_a_dead_head_is_counted_and_named_in_the_log(small_config, small_cache, tmp_path, caplog):
    """Dying ReLU in the head (seen on ESC-50 with the spec's recipe: every hidden unit off
    for every clip, loss stuck at ln(50)): the epoch record counts the live units and the
    log says what happened and what to change."""
    import logging

    config = copy.deepcopy(small_config)
    config.train.epochs = 2
    original = train_mod.AudioClassifier.forward

    def kill_head(epoch, record):  # after epoch 1, every head pre-activation far below 0
        def forward(self, x):
            with torch.no_grad():
                self.head[0].bias.fill_(-1e6)
            return original(self, x)

        if epoch == 1:
            train_mod.AudioClassifier.forward = forward

    try:
        with caplog.at_level(logging.INFO):
            result = train_arm(
                config, small_cache, "baseline", tmp_path / "b.pt", progress=False, on_epoch_end=kill_head
            )
    finally:
        train_mod.AudioClassifier.forward = original
    alive = [r["head_units_active"] for r in result.history]
    assert 0 < alive[0] <= config.model.head_hidden and alive[1] == 0
    assert caplog.text.count("the classifier head is dead") == 1 and "--lr-head" in caplog.text


def test_head_units_script_tells_a_live_head_from_a_dead_one(small_config, small_cache, tmp_path):
    import shutil
    import subprocess
    import sys

    config = copy.deepcopy(small_config)
    config.train.epochs = 1
    best = train_arm(
        config, small_cache, "baseline", tmp_path / "live" / "best.pt", progress=False
    ).best_checkpoint
    dead = tmp_path / "dead" / "best.pt"
    dead.parent.mkdir()
    shutil.copy(best.parent / "config.toml", dead.parent)
    saved = safe_torch_load(best)
    saved["model"]["head.0.bias"].fill_(-1e6)  # every unit off for every clip
    torch.save(saved, dead)
    script = [sys.executable, "benchmarks/head_units.py", str(best), str(dead), "--data", config.data.root]
    out = subprocess.run(script, check=True, capture_output=True, text=True).stdout.splitlines()
    assert (
        out[0].startswith(f"{best}: ") and "(alive); head input spread" in out[0] and ": 0 of" not in out[0]
    )
    units = config.model.head_hidden
    assert out[1].startswith(f"{dead}: 0 of {units} head units fire") and "(DEAD: no unit fires)" in out[1]
