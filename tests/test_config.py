from pathlib import Path

import pytest

from audiogpt2.cli import build_parser, main
from audiogpt2.config import Config, ConfigError, load_config, read_config_file

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_spec_numbers():
    c = Config()
    assert (c.audio.sample_rate, c.audio.n_mfcc, c.audio.n_frames) == (16000, 40, 100)
    assert (c.augment.freq_mask, c.augment.time_mask, c.augment.noise_sigma) == (5, 10, 0.005)
    assert (c.augment.pitch_semitones, c.augment.stretch_min, c.augment.stretch_max) == (2, 0.8, 1.2)
    assert (c.train.batch_size, c.train.epochs, c.train.lr_backbone, c.train.lr_head) == (16, 20, 2e-5, 1e-3)
    assert (c.train.weight_decay, c.train.plateau_patience, c.train.plateau_factor) == (1e-2, 5, 0.5)
    assert c.train.early_stop_patience == 500
    assert c.train.unfreeze_schedule() == {5: 0, 10: 1, 15: 2}
    assert c.model.num_classes == 50
    assert c.data.cache == "data/preprocessed/preprocessed.pt"
    assert c.paths.finetuned_checkpoint == "models/best_model.pt"
    assert c.paths.baseline_checkpoint == "models/best_baseline_model.pt"
    assert c.audio.hop_length == 800  # 100 frames tile 5 s at 16 kHz


def test_seed_toml_reproduces_the_defaults():
    assert load_config(ROOT / "configs" / "seed.toml").to_dict() == Config().to_dict()
    written = read_config_file(ROOT / "configs" / "seed.toml")
    for section, values in Config().to_dict().items():  # a complete reference, not a partial one
        assert written[section].keys() == values.keys(), section


def test_layering_default_file_flag(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nepochs = 7\nlr_head = 0.01\n[model]\nbackbone = 'minilm'\n")
    c = load_config(f, {"train.epochs": 3})
    assert c.train.epochs == 3  # flag beats file
    assert c.train.lr_head == 0.01  # file beats default
    assert c.train.batch_size == 16  # default
    assert c.model.backbone == "minilm"


@pytest.mark.parametrize("name", ["recipe.toml", "esc50-16k.toml"])
def test_recipe_toml_sets_only_keys_that_differ_and_says_why(name):
    recipe = read_config_file(ROOT / "configs" / name)
    spec = Config().to_dict()
    lines = (ROOT / "configs" / name).read_text().splitlines()
    for section, values in recipe.items():
        for key, value in values.items():
            assert spec[section][key] != value, f"{section}.{key} equals the spec's value"
    commented = [line for line in lines if "=" in line and not line.startswith("#")]
    # every key but the companions of a commented line above it carries a reason
    assert sum("#" in line for line in commented) >= len(commented) - 2
    c = load_config(ROOT / "configs" / name)
    assert (c.audio.features, c.audio.n_frames, c.train.schedule) == ("logmel", 125, "cosine")


def test_esc50_recipe_is_its_search_base_refit_on_every_training_clip():
    """configs/esc50-16k.toml is what the ESC-50 search chose: its base plus the changes it
    kept (docs/recipe.md), with the validation split given back to training."""
    recipe = load_config(ROOT / "configs" / "esc50-16k.toml").to_dict()
    base = load_config(ROOT / "configs" / "search" / "esc50-16k.toml").to_dict()
    changed = {(s, k) for s in recipe for k in recipe[s] if recipe[s][k] != base[s][k]}
    assert changed == {("data", "val_fraction")}
    assert recipe["data"]["val_fraction"] == 0 and recipe["audio"]["sample_rate"] == 16000


def test_a_search_on_the_refit_recipe_is_refused_in_one_line(tmp_path, capsys):
    from audiogpt2.cli import main

    recipe = str(ROOT / "configs" / "recipe.toml")
    args = ["cv", "--config", recipe, "--data", str(tmp_path), "--validation-only"]
    assert main(args) == 2
    assert "no validation set to search on" in capsys.readouterr().err


def test_legacy_n_frames_key_sets_the_hop():
    c = load_config(overrides={"audio.n_frames": 50})
    assert (c.audio.hop_length, c.audio.n_frames) == (1600, 50)


def test_written_config_round_trips(tmp_path):
    from audiogpt2.config import write_config

    c = load_config(overrides={"train.epochs": 4, "train.unfreeze": {"1": 0}})
    assert load_config(write_config(c, tmp_path)).to_dict() == c.to_dict()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"train.epoch": 3}, "train.epoch"),
        ({"nosuch.key": 1}, "nosuch"),
        ({"train.epochs": "many"}, "train.epochs"),
        ({"train.epochs": 0}, "train.epochs"),
        ({"data.test_fold": 9}, "data.test_fold"),
        ({"model.pooling": "max"}, "model.pooling"),
        ({"train.amp": "maybe"}, "train.amp"),
        ({"augment.stretch_min": 2.0}, "stretch_min"),
        ({"train.lr_head": "nan"}, "train.lr_head"),
        ({"train.weight_decay": float("nan")}, "train.weight_decay"),
        ({"audio.clip_seconds": "nan"}, "audio.clip_seconds"),
        ({"audio.clip_seconds": "inf"}, "audio.clip_seconds"),
        ({"augment.noise_sigma": "inf"}, "augment.noise_sigma"),
        ({"augment.stretch_max": float("inf")}, "augment.stretch_max"),
        ({"audio.n_mfcc": 200}, "audio.n_mfcc"),
        ({"audio.fmin": 9000, "audio.fmax": 100}, "audio.fmin"),
        ({"train.threads": -1}, "train.threads"),
        ({"audio.features": "cqt"}, "audio.features"),
        ({"audio.hop_length": 777}, "audio.hop_length"),
        ({"model.cnn_channels": "[64]"}, "model.cnn_channels"),
        ({"model.cnn_channels": "[8, 8, 8, 8, 8, 8, 8]"}, "model.cnn_channels"),
        ({"train.schedule": "step"}, "train.schedule"),
        ({"augment.tta": 3}, "augment.tta"),
        ({"augment.time_shift": 0.9}, "augment.time_shift"),
        ({"model.frontend_head": "imagenet"}, "model.frontend_head"),
        ({"model.frontend_head": "audioset", "model.backbone": "none"}, "model.frontend_head"),  # seed CNN
    ],
)
def test_bad_values_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(overrides=overrides)


def test_bad_file_key_names_file_and_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nepohcs = 3\n")
    with pytest.raises(ConfigError, match="epohcs") as err:
        load_config(f)
    assert str(f) in str(err.value)


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = ["demo", "preprocess", "train", "evaluate", "cv", "report", "select", "compare", "predict",
                "download"]  # fmt: skip
    for command in commands:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "usage: audiogpt2 " + command in out
        assert f"examples:\n  audiogpt2 {command}" in out


def test_unknown_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--frobnicate"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--frobnicate" in err and len(err.splitlines()) == 1


def test_bad_config_value_from_cli_is_one_line(capsys):
    assert main(["preprocess", "--set", "train.epochs=zero"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.epochs" in err and len(err.splitlines()) == 1


def test_two_datasets_with_the_same_manifest_name_get_their_own_outputs(tmp_path):
    from audiogpt2.config import load_config, separate_outputs

    outputs = []
    for owner in ("digits", "birds"):
        (tmp_path / owner).mkdir()
        (tmp_path / owner / "manifest.csv").write_text("path,label\n")
        root = str(tmp_path / owner / "manifest.csv")
        config = separate_outputs(load_config(overrides={"data.root": root}), {"data.root"})
        outputs.append((config.data.cache, config.paths.models))
        assert f"{owner}-manifest-" in config.data.cache
    assert outputs[0][0] != outputs[1][0] and outputs[0][1] != outputs[1][1]
