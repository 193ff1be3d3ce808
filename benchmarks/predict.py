"""End-to-end prediction latency with a GPT-2-small-sized backbone (12 layers, 768 wide).

Prints, side by side for the checkpoint (PyTorch fp32, and bf16 autocast where the CPU has
native bf16), its safetensors export and its ONNX exports (fp32, int8, and int8 with the
convolutions quantised too, as ``export --int8`` did before; ONNX Runtime):
the cold start (load plus first prediction), the median warm latency of one 5 s, 44.1 kHz
WAV file (decode, resample, features, model) and batched model throughput in clips per
second.

    python benchmarks/predict.py [--repeats 20] [--threads N] [--no-export]
    python benchmarks/predict.py --config configs/mn04.toml --backbone none   # the AudioSet front end
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiogpt2.checkpoint import Checkpoint
from audiogpt2.config import Config
from audiogpt2.features import compute_features
from audiogpt2.io import atomic_torch_save
from audiogpt2.model import build_model
from audiogpt2.predict import Classifier, predict_proba


def write_checkpoint(path: Path, config_file: str | None = None, backbone_name: str | None = None) -> None:
    """An untrained checkpoint of the default model (GPT-2-small-sized) or of ``config_file``."""
    from audiogpt2.config import load_config

    config = load_config(config_file, {"model.frontend_weights": ""}) if config_file else Config()
    if backbone_name:
        config.model.backbone = backbone_name
    model, backbone = build_model(config.model, config.audio, False, config.model.num_classes)
    info = Checkpoint(
        config=config,
        arm="baseline",
        classes=[f"class{i}" for i in range(50)],
        test_fold=5,
        backbone=config.model.backbone,
        backbone_source=backbone.source,
        backbone_config=backbone.config_json,
    )
    atomic_torch_save({**info.header(), "model": model.state_dict()}, path)


def measure(load, wav: Path, repeats: int, feats: np.ndarray) -> dict[str, float]:
    """Cold start (load + first prediction), warm median latency of one file, and batched
    model throughput, for one way of loading the model."""
    t = time.perf_counter()
    clf = load()
    clf.predict_file(wav)
    cold = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        clf.predict_file(wav)
        times.append(time.perf_counter() - t)
    out = {"cold start (s)": cold, "warm, one file (ms)": statistics.median(times) * 1000}
    for bs in (1, 16, 64):
        predict_proba(clf.model, feats[:bs], clf.config.augment, batch_size=bs, precision=clf.precision)
        t = time.perf_counter()
        predict_proba(clf.model, feats, clf.config.augment, batch_size=bs, precision=clf.precision)
        out[f"clips/s, batch {bs}"] = len(feats) / (time.perf_counter() - t)
    return out


def print_stages(clf: Classifier, wav: Path, repeats: int) -> None:
    """Median time of each stage of one warm prediction, PyTorch fp32."""
    from audiogpt2.audio import load_audio

    stages = {"decode+resample": [], "features": [], "model": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = load_audio(wav, clf.config.audio.sample_rate)
        t1 = time.perf_counter()
        f = compute_features(y, clf.config.audio)
        t2 = time.perf_counter()
        predict_proba(clf.model, f[None], clf.config.augment)
        t3 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[k].append(v)
    medians = ", ".join(f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in stages.items())
    print(f"stages of one warm prediction (median, PyTorch fp32): {medians}")


def quantize_all_ops(fp32_dir: Path, out_dir: Path) -> Path:
    """An export folder whose int8 model quantises every operator ONNX Runtime can,
    convolutions included: the alternative ``export --int8`` was measured against."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir()
    (out_dir / "config.json").write_bytes((fp32_dir / "config.json").read_bytes())
    model = onnx.load(str(fp32_dir / "model.onnx"))
    del model.graph.value_info[:]  # as export does: the quantizer re-infers the shapes
    source = out_dir / "source.onnx"
    onnx.save(model, str(source))
    out = out_dir / "model.int8.onnx"
    quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True)
    source.unlink()
    return out_dir


def runtime_paths(ckpt: Path, tmp: Path, with_exports: bool) -> dict:
    """Loaders of each prediction path to measure: the checkpoint in fp32 (and bf16 where
    the CPU has it), then its safetensors, ONNX fp32 and ONNX int8 exports."""
    paths = {"checkpoint, PyTorch fp32": lambda: Classifier.from_checkpoint(ckpt, precision="fp32")}
    from audiogpt2.precision import native_bf16

    if native_bf16("cpu")[0]:
        paths["checkpoint, PyTorch bf16"] = lambda: Classifier.from_checkpoint(ckpt, precision="bf16")
    if with_exports:
        from audiogpt2.export import export

        export(ckpt, tmp / "st")
        paths["safetensors, PyTorch fp32"] = lambda: Classifier.from_pretrained(tmp / "st", precision="fp32")
        try:
            export(ckpt, tmp / "onnx", "onnx", int8=True)
            int8 = tmp / "onnx" / "model.int8.onnx"
            (tmp / "onnx32").mkdir()
            for path in (tmp / "onnx").iterdir():  # all but the int8 model
                if path != int8:
                    (tmp / "onnx32" / path.name).write_bytes(path.read_bytes())
            paths["ONNX Runtime fp32"] = lambda: Classifier.from_pretrained(tmp / "onnx32")
            paths["ONNX Runtime int8"] = lambda: Classifier.from_pretrained(int8.parent)
            all_ops = quantize_all_ops(tmp / "onnx32", tmp / "onnx8all")
            paths["ONNX Runtime int8, convolutions too"] = lambda: Classifier.from_pretrained(all_ops)
        except Exception as exc:  # noqa: BLE001 - report and measure the rest
            print(f"ONNX paths skipped: {exc}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-export", action="store_true", help="only the checkpoint (fp32 PyTorch) path")
    parser.add_argument(
        "--config", help="model of this config (e.g. configs/mn04.toml) instead of the default"
    )
    parser.add_argument("--backbone", help="its backbone (e.g. none, minilm)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, wav = Path(tmp) / "model.pt", Path(tmp) / "clip.wav"
        write_checkpoint(ckpt, args.config, args.backbone)
        rng = np.random.default_rng(0)
        sf.write(wav, rng.uniform(-0.3, 0.3, 5 * 44100).astype(np.float32), 44100, subtype="PCM_16")
        clf = Classifier.from_checkpoint(ckpt, precision="fp32")
        size = ckpt.stat().st_size / 1e6
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; checkpoint {size:.0f} MB")
        print_stages(clf, wav, args.repeats)
        feats = np.stack(
            [
                compute_features(
                    rng.uniform(-0.3, 0.3, clf.config.audio.clip_samples).astype(np.float32), clf.config.audio
                )
                for _ in range(64)
            ]
        )
        paths = runtime_paths(ckpt, Path(tmp), not args.no_export)
        results = {name: measure(load, wav, args.repeats, feats) for name, load in paths.items()}
        keys = list(next(iter(results.values())))
        print("\n| path | " + " | ".join(keys) + " |")
        print("| --- |" + " --- |" * len(keys))
        for name, r in results.items():
            cells = [f"{r[k]:.2f}" if k.endswith("(s)") else f"{r[k]:.0f}" for k in keys]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
