"""The ``audiogpt2`` command: parses arguments and calls the package's functions, nothing more."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audiogpt2.arms import ARM_NAMES, ARMS
from audiogpt2.config import PRECISIONS, ConfigError, cli_flags, load_config


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--epoch 2` must not silently mean `--epochs 2`.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _add_config_args(
    p: argparse.ArgumentParser,
    training: bool = True,
    skip: tuple[str, ...] = (),
    defaults: dict | None = None,
) -> None:
    """The config flags; ``training=False`` leaves out the ones only training uses, ``skip``
    the keys a command sets itself, and ``defaults`` shows a command's own presets."""
    g = p.add_argument_group("configuration (defaults < --config file < these flags)")
    g.add_argument("--config", metavar="FILE", help="TOML file overriding the defaults")
    g.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override any config key, e.g. --set train.weight_decay=0.05 (repeatable)",
    )
    # Each flag is declared on its config field (config.flag), with its help text.
    for f in cli_flags():
        if (training or not f.training) and f.key not in skip:
            if f.type is bool:  # a switch that turns the key on
                kind: dict[str, Any] = {"action": "store_const", "const": True, "help": f"{f.help} [{f.key}]"}
            else:
                default = (defaults or {}).get(f.key, f.default)
                kind = {"type": f.type, "default": None, "help": f"{f.help}; default {default} [{f.key}]"}
            g.add_argument(f.flag, dest=f.key, **kind)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = value.strip()
    for f in cli_flags():
        value = getattr(args, f.key, None)
        if value is not None:
            overrides[f.key] = value
    return overrides


def explicit_keys(args: argparse.Namespace) -> set[str]:
    """The config keys the user set, in the --config file or as flags."""
    from audiogpt2.config import flat_keys, read_config_file

    keys = flat_keys(cli_overrides(args))
    return keys | flat_keys(read_config_file(args.config)) if args.config else keys


def resolve_config(args: argparse.Namespace):
    from audiogpt2.config import separate_outputs

    explicit = explicit_keys(args)
    config = load_config(args.config, cli_overrides(args))
    if args.command in ("preprocess", "train", "cv") and "audio.clip_seconds" not in explicit:
        from audiogpt2.data import DatasetError
        from audiogpt2.preprocess import fit_clip_seconds

        # the command itself reports a problem with the data, after checking its own flags
        with contextlib.suppress(DatasetError):
            fit_clip_seconds(config)  # your own clips: a window that fits them (ESC-50 keeps 5 s)
    # after the window is fitted: the cache's name follows the features it holds
    return separate_outputs(config, explicit)


def _arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    for arm in arms:
        if arm not in ARM_NAMES:
            raise argparse.ArgumentTypeError(f"unknown arm {arm!r}; use {' and/or '.join(ARM_NAMES)}")
    return arms


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct seeds such as 0,1,2, got {text!r}")
    return seeds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1-65535, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _positive_float(text)


# Shown at the end of each command's --help.
EXAMPLES = {
    "demo": ["audiogpt2 demo", "audiogpt2 demo --out /tmp/demo --epochs 4"],
    "preprocess": ["audiogpt2 preprocess", "audiogpt2 preprocess --data data/ESC-50 --subset esc10"],
    "train": [
        "audiogpt2 train --data data/ESC-50 --subset esc10 --backbone minilm",
        "audiogpt2 train --config configs/recipe.toml --backbone none --data my_clips/",
    ],
    "evaluate": ["audiogpt2 evaluate", "audiogpt2 evaluate --checkpoint models/ESC-50-esc10/best_model.pt"],
    "cv": [
        "audiogpt2 cv --name esc10 --subset esc10 --backbone minilm",
        "audiogpt2 cv --name recipe --subset esc10 --config configs/recipe.toml --backbone none --fold 1",
    ],
    "report": ["audiogpt2 report runs/esc10", "audiogpt2 report runs/esc10-* --summary docs/results.md"],
    "select": [
        "audiogpt2 select runs/lr2e-5 runs/lr1e-4 --out runs/tuned",
        "audiogpt2 select runs/lr2e-5 runs/lr1e-4 --scope arm --out runs/one-rate",
    ],
    "compare": ["audiogpt2 compare runs/esc10:finetuned runs/esc10:baseline"],
    "predict": [
        "audiogpt2 predict models/best_model.pt clip.wav --top-k 3",
        "audiogpt2 predict models/best_model.pt long_recording.flac --timeline --timeline-dir timelines/",
        "audiogpt2 predict runs/r/seed0/fold1/baseline/best.pt clip.wav --ensemble runs/r/seed1/fold1/baseline/best.pt",  # noqa: E501
    ],
    "export": [
        "audiogpt2 export models/best_model.pt exported/",
        "audiogpt2 export models/best_model.pt exported-onnx/ --format onnx --int8",
    ],
    "download": ["audiogpt2 download esc50", "audiogpt2 download esc50 --dest /data"],
    "serve": [
        "audiogpt2 serve models/best_model.pt            # page at http://127.0.0.1:8000/",
        "curl -F file=@dog.wav 'http://127.0.0.1:8000/v1/predict?top_k=3&windows=true'",
    ],
}


def _add_arms(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arms", type=_arms, default=list(ARM_NAMES), help=f"comma-separated (default {','.join(ARM_NAMES)})"
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="audiogpt2",
        description="Environmental-sound classification: CNN over MFCCs + GPT-2, "
        "pretrained vs. random init, on ESC-50 or your own clips.",
    )
    from audiogpt2 import __version__

    parser.add_argument("--version", action="version", version=f"audiogpt2 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_parser = sub.add_parser

    def command(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's name
        examples = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.get(name, []))
        raw = argparse.RawDescriptionHelpFormatter
        return add_parser(name, help=help, description=help, epilog=examples, formatter_class=raw)

    sub.required = True

    _pipeline_commands(command)
    _analysis_commands(command)
    _model_commands(command)
    return parser


Command = Callable[[str, str], argparse.ArgumentParser]


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    """Where and in what arithmetic a trained model runs (predict, serve)."""
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N] | mps (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="forward pass: auto (bf16 where native), fp32 or bf16 (default auto)")  # fmt: skip


def _pipeline_commands(command: Command) -> None:
    """demo, preprocess, train, evaluate and cv: the commands that read the config."""
    p = command("demo", help="whole pipeline on a synthetic dataset, offline, in minutes")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    from audiogpt2.demo import DEMO_OVERRIDES, DEMO_SETS_ITSELF

    _add_config_args(p, skip=DEMO_SETS_ITSELF, defaults=DEMO_OVERRIDES)

    p = command("preprocess", help="MFCC features and augmented variants -> cache")
    _add_config_args(p, training=False)
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is current")

    p = command("train", help="train the fine-tuned and baseline arms on one split")
    _add_config_args(p)
    _add_arms(p)
    p.add_argument("--resume", action="store_true", help="continue from the last completed epoch")

    p = command("evaluate", help="test-fold metrics and confusion matrices")
    _add_config_args(p, training=False)
    _add_arms(p)
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="evaluate this checkpoint (default: each arm's; data and features come from it)",
    )

    p = command("cv", help="cross-validation over all folds, with a report")
    _add_config_args(p)
    _add_arms(p)
    p.add_argument("--fold", type=int, action="append", help="run only this fold (repeatable)")
    p.add_argument("--name", default="cv", help="experiment name (default cv)")
    p.add_argument("--out", help="output folder (default <paths.runs>/<name>)")
    p.add_argument("--restart", action="store_true", help="ignore finished folds and checkpoints")
    p.add_argument(
        "--validation-only",
        action="store_true",
        help="recipe searches: train and validate, leave the test folds unscored and unseen "
        "(a later cv without this flag scores them)",
    )
    p.add_argument(
        "--seeds",
        type=_seed_list,
        help="repeated CV: comma-separated seeds, each into <out>/seed<k>/ (default: train.seed only)",
    )


def _analysis_commands(command: Command) -> None:
    """report, select and compare: the commands that read finished runs."""
    p = command("report", help="rebuild cv reports from saved outputs, without training")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by `audiogpt2 cv`")
    p.add_argument(
        "--summary",
        metavar="FILE.md",
        help="also write one table of all runs between the results markers of this file",
    )

    p = command("select", help="per fold and arm (or per arm), the run with the best validation accuracy")
    p.add_argument("run_dirs", nargs="+", help="cv folders of the same experiment at different settings")
    p.add_argument("--out", required=True, help="folder for the selected results and report")
    p.add_argument(
        "--scope",
        choices=["fold", "arm"],
        default="fold",
        help="per fold and arm (default), or one run per arm for every fold (mean validation accuracy)",
    )

    p = command("compare", help="paired comparison of two cv runs with CV-corrected statistics")
    p.add_argument("side_a", metavar="RUN_DIR_A[:ARM]", help="cv folder(s), comma-separated for seeds")
    p.add_argument("side_b", metavar="RUN_DIR_B[:ARM]")
    p.add_argument("--out", help="folder for compare.json and compare.md (default runs/compare)")
    p.add_argument("--n-folds", type=_positive_int, default=5, help="folds of the CV (default 5)")


def _model_commands(command: Command) -> None:
    """predict, export, serve and download."""
    p = command("predict", help="classify audio files with a trained checkpoint")
    p.add_argument("checkpoint", help="a .pt checkpoint written by train or cv, or an export folder")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files, or folders to search")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes shown per file (default 3)")
    p.add_argument("--timeline", action="store_true", help="show per-window labels of long files")
    p.add_argument(
        "--timeline-dir",
        metavar="DIR",
        help="also draw each file's timeline as DIR/<file>.png and write DIR/<file>.csv",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="CHECKPOINT",
        help="average with this checkpoint or export too, e.g. another seed's (repeatable)",
    )  # noqa: E501
    _add_runtime_args(p)

    p = command("export", help="write a checkpoint as safetensors or ONNX for other runtimes")
    p.add_argument("checkpoint", help="a .pt checkpoint written by train or cv")
    p.add_argument("out_dir", help="folder for config.json and the weights")
    formats = ["safetensors", "onnx"]
    p.add_argument("--format", choices=formats, default="safetensors", help="(default safetensors)")
    p.add_argument(
        "--int8", action="store_true", help="ONNX only: also write int8 matrix products (convolutions fp32)"
    )

    p = command("serve", help="HTTP API and web page for a trained checkpoint or export")
    p.add_argument("checkpoint", help="a .pt checkpoint or an export folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument("--max-batch", type=_positive_int, default=16,
                   help="micro-batching: most windows per forward pass (1 = off; default 16)")  # fmt: skip
    p.add_argument("--max-wait-ms", type=_non_negative_float, default=10.0,
                   help="micro-batching: longest wait for more requests (default 10)")  # fmt: skip
    p.add_argument("--max-seconds", type=_positive_float, default=600.0,
                   help="longest audio accepted (default 600)")  # fmt: skip
    p.add_argument("--no-page", action="store_true", help="API only, no web page at /")
    p.add_argument("--ensemble", action="append", default=[], metavar="CHECKPOINT",
                   help="average with this checkpoint or export too (repeatable)")  # fmt: skip
    _add_runtime_args(p)

    p = command("download", help="download a dataset (network)")
    p.add_argument("dataset", choices=["esc50"], help="the dataset to fetch: esc50 (about 600 MB)")
    p.add_argument("--dest", default="data", help="parent folder (default data -> data/ESC-50)")
    p.add_argument("--url", default=None, help="archive URL (default: the official one)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")


def _write_timelines(done: list, directory: Path) -> None:
    from audiogpt2.io import display
    from audiogpt2.predict import timeline_names, write_timeline

    for (path, result), name in zip(done, timeline_names([path for path, _ in done])):
        png, table = write_timeline(result, directory / name, title=display(path.name))
        print(f"timeline of {display(path)}: {png} and {table}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from audiogpt2.data import AUDIO_EXTENSIONS
    from audiogpt2.io import display
    from audiogpt2.predict import Classifier, NoAudioError, expand_inputs, predict_paths

    paths = expand_inputs(args.inputs)
    if not paths:
        raise NoAudioError(
            f"no audio files found in {', '.join(map(display, args.inputs))} "
            f"(looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    try:
        clf = Classifier.ensemble([args.checkpoint, *args.ensemble], args.device, args.precision)
    except FileNotFoundError as exc:
        from audiogpt2.config import PathsConfig
        from audiogpt2.experiment import latest_checkpoint

        latest = latest_checkpoint(PathsConfig(), ARM_NAMES)
        hint = f"the most recently trained one is {latest}" if latest else "run `audiogpt2 train` first"
        raise FileNotFoundError(f"{exc}; {hint}") from exc
    done, skipped = predict_paths(clf, paths)
    if args.timeline_dir:
        _write_timelines(done, Path(args.timeline_dir))
    if args.json:
        print(
            json.dumps(
                {
                    "predictions": [
                        {
                            "file": display(p),
                            "top": [
                                {"label": label, "probability": prob} for label, prob in r.top(args.top_k)
                            ],
                            **({"windows": r.windows} if args.timeline else {}),
                        }
                        for p, r in done
                    ],
                    "skipped": [{"file": display(p), "reason": why} for p, why in skipped],
                },
                indent=2,
                allow_nan=False,
            )
        )
    else:
        for path, r in done:
            print(
                f"{display(path)}: " + ", ".join(f"{label} {prob:.3f}" for label, prob in r.top(args.top_k))
            )
            if args.timeline:
                for w in r.windows:
                    print(f"  {w['start']:7.2f}-{w['end']:7.2f} s  {w['label']} {w['probability']:.3f}")
        for path, why in skipped:
            print(f"skipped {display(path)}: {why}", file=sys.stderr)
        if skipped:
            print(f"{len(done)} file(s) classified, {len(skipped)} skipped", file=sys.stderr)
    return 0 if done or not skipped else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from audiogpt2.demo import run_demo

    run_demo(args.out, cli_overrides(args), config_file=args.config)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from audiogpt2.report import build_report, build_seed_report, seed_dirs, update_summary

    for run_dir in args.run_dirs:
        report = build_seed_report(run_dir) if seed_dirs(run_dir) else build_report(run_dir)
        print(f"Report written to {report}")
    if args.summary:
        print(f"Summary table written to {update_summary(args.summary, args.run_dirs)}")
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from audiogpt2.report import select_by_validation

    print(f"Report written to {select_by_validation(args.run_dirs, args.out, args.scope)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from audiogpt2.compare import write_comparison

    _, path = write_comparison(args.side_a, args.side_b, args.out or "runs/compare", args.n_folds)
    print(path.read_text(), end="")
    print(f"Written to {path} and {path.with_suffix('.json')}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from audiogpt2.export import export

    if args.int8 and args.format != "onnx":
        raise ConfigError("--int8 quantises the ONNX model: add --format onnx (safetensors stays fp32)")
    weights = export(args.checkpoint, args.out_dir, args.format, args.int8)
    files = sorted(p.name for p in weights.parent.iterdir())
    what = {"model.int8.onnx": "int8 weights, used by predict and serve", "model.onnx": "fp32 ONNX",
            "model.safetensors": "fp32 weights", "config.json": "classes and settings"}  # fmt: skip
    print(
        f"Exported {args.checkpoint} to {weights.parent}/: "
        + ", ".join(f"{f} ({what.get(f, 'data')})" for f in files)
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from audiogpt2.serve import serve
    except ImportError as exc:
        hint = "pip install 'audiogpt2[serve]'"
        raise ConfigError(f"serve needs the [serve] extra ({exc.name} is missing): {hint}") from None
    serve([args.checkpoint, *args.ensemble], args.host, args.port, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms, max_seconds=args.max_seconds, page=not args.no_page,
          device=args.device, precision=args.precision)  # fmt: skip
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from audiogpt2.download import ESC50_URL, download_esc50

    download_esc50(args.dest, args.url or ESC50_URL, args.sha256)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """preprocess, train, evaluate and cv: the commands that read the config and the cache."""
    from audiogpt2.preprocess import preprocess

    config = resolve_config(args)
    if args.command == "evaluate":
        from audiogpt2.experiment import checkpoint_config

        # Evaluate what the checkpoint was trained on: its data, features and classes,
        # unless flags or --config say otherwise.
        config = checkpoint_config(config, explicit_keys(args), args.checkpoint, args.arms)
    if args.command == "preprocess":
        preprocess(config, force=args.force)
        return 0
    if getattr(args, "validation_only", False) and config.data.val_fraction == 0:
        raise ConfigError(
            "--validation-only with data.val_fraction = 0: there is no validation set to "
            "search on; use a val_fraction in (0, 1) for the search, 0 only for the final refit"
        )
    seeded = args.command == "cv" and args.seeds
    cache = None if seeded else preprocess(config)  # repeated CV preprocesses per seed
    if config.model.backbone == "none" and len(args.arms) > 1:
        # Without a transformer there is nothing to pretrain: both arms would be one network.
        print("--backbone none: no transformer, so no pretrained arm; running the CNN-only arm (baseline)")
        args.arms = [name for name in ARM_NAMES if not ARMS[name].pretrained]
    from audiogpt2 import distributed, experiment

    if args.command == "train":
        experiment.train_arms(config, cache, args.arms, resume=args.resume)
        experiment.evaluate_arms(config, cache, args.arms)  # under torchrun: split over the ranks
        if distributed.rank() == 0:  # one voice under torchrun
            first = experiment.arm_checkpoint(config, args.arms[0])
            print(f"Next: audiogpt2 predict {first} YOUR_CLIP.wav --top-k 3")
    elif args.command == "evaluate" and args.checkpoint:
        experiment.evaluate_one(config, cache, Path(args.checkpoint))
    elif args.command == "evaluate":
        experiment.evaluate_arms(config, cache, args.arms)
    elif args.command == "cv":
        out = Path(args.out or Path(config.paths.runs) / args.name)
        resume = not args.restart
        scored = not args.validation_only
        if args.seeds:
            report = experiment.run_seeds(
                config, out, args.arms, args.seeds, args.fold, resume=resume, score_test=scored
            )
        else:
            report = experiment.run_cv(
                config, cache, out, args.arms, args.fold, resume=resume, score_test=scored
            )
        print(f"Report written to {report}")
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "report": cmd_report,
    "select": cmd_select,
    "compare": cmd_compare,
    "predict": cmd_predict,
    "export": cmd_export,
    "download": cmd_download,
    "serve": cmd_serve,
}


def run(args: argparse.Namespace) -> int:
    return COMMANDS.get(args.command, cmd_pipeline)(args)


class _StdoutHandler(logging.Handler):
    """The package's log lines as plain text on whatever ``sys.stdout`` is at the time
    (so redirections and captures made after set-up still receive them)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            sys.stdout.write(f"{prefix}{self.format(record)}\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def setup_logging() -> None:
    """Library modules log through ``logging``; the command shows their INFO lines."""
    logger = logging.getLogger("audiogpt2")
    # Under torchrun only rank 0 speaks; the others report warnings and errors. (The
    # environment is read here, not through distributed.rank(): that module imports torch.)
    logger.setLevel(logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())


def main(argv: list[str] | None = None) -> int:
    from audiogpt2.errors import AudioGPT2Error

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (AudioGPT2Error, FileNotFoundError) as exc:
        print(f"audiogpt2: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is a file, not writable, a full disk, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"audiogpt2: error: {where}{exc.strerror or exc}; check that path (is it a folder, "
              "writable, on a disk with space?) or choose another", file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        hint = {
            "train": "; completed epochs are saved, rerun with --resume",
            "cv": "; finished folds and completed epochs are saved, rerun the same command",
        }.get(args.command, "")
        print(f"audiogpt2: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
