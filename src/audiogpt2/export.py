"""Exports of a trained checkpoint that other tools can load: safetensors and ONNX.

An export folder holds ``config.json`` (the resolved config, class names, backbone config
and training metadata) and the weights: ``model.safetensors`` (loads without executing
code, memory-mapped) or ``model.onnx`` (for ONNX Runtime, other languages and machines;
``--int8`` adds ``model.int8.onnx``, its matrix products' weights dynamically quantised and
its convolutions fp32; fp32 weights over about 2 GB go to ``model.onnx.data``). The model
input is the 2-channel feature tensor that :func:`audiogpt2.features.model_input` builds,
so every runtime computes features with the same function as preprocessing.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from audiogpt2.checkpoint import CHECKPOINT_FORMAT, Checkpoint, check_finite, load_checkpoint, model_for
from audiogpt2.errors import AudioGPT2Error
from audiogpt2.io import atomic_write_bytes, atomic_write_json, display, exclusive_lock
from audiogpt2.model import AudioClassifier

EXPORT_FORMAT = "audiogpt2-export-v1"
logger = logging.getLogger(__name__)


class ExportError(AudioGPT2Error, ValueError):
    """An export that cannot be written or read; the message says what to do."""


def export(checkpoint: str | Path, out_dir: str | Path, fmt: str = "safetensors", int8: bool = False) -> Path:
    """Write ``checkpoint`` as an export folder; returns the weights file written. A previous
    export in ``out_dir`` is replaced whole (its weights would not match the new config); a
    ``config.json`` of anything else is refused, not overwritten."""
    if fmt not in ("safetensors", "onnx"):
        raise ExportError(f"unknown export format {fmt!r}: use safetensors or onnx")
    model, info = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir, beside=True):  # two exports into one folder would mix their files
        _clear_previous_export(out_dir)
        return _write_export(model, info, out_dir, fmt, int8)


def _write_export(model: AudioClassifier, info: Checkpoint, out_dir: Path, fmt: str, int8: bool) -> Path:
    atomic_write_json(out_dir / "config.json", {**info.header(), "format": EXPORT_FORMAT})
    if fmt == "safetensors":
        from safetensors.torch import save

        # Tensors that share storage (none today) or views must be saved as copies.
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        data = save(state, metadata={"format": EXPORT_FORMAT})
        return atomic_write_bytes(out_dir / "model.safetensors", data)
    return _export_onnx(model, info, out_dir, int8)


WEIGHT_FILES = ("model.safetensors", "model.onnx", "model.onnx.data", "model.int8.onnx")


def _clear_previous_export(out_dir: Path) -> None:
    """Only a previous export of this package is replaced; a folder holding anything else
    is refused before a byte is written."""
    config = out_dir / "config.json"
    if not config.exists():
        others = sorted(p.name for p in out_dir.iterdir())
        if others:
            raise ExportError(
                f"{display(out_dir)} already holds files that are not an audiogpt2 export "
                f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); nothing was written. "
                "Export into a new or empty folder."
            )
        return
    try:
        previous = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if not isinstance(previous, dict) or previous.get("format") != EXPORT_FORMAT:
        raise ExportError(
            f"{display(config)} exists and is not an audiogpt2 export; nothing was written. "
            "Export into a new or empty folder."
        )
    removed = [name for name in WEIGHT_FILES if (out_dir / name).is_file()]
    for name in removed:
        (out_dir / name).unlink()
    if removed:
        logger.info(f"Replaced the previous export in {display(out_dir)} ({', '.join(removed)})")


def _export_onnx(model: AudioClassifier, info: Checkpoint, out_dir: Path, int8: bool) -> Path:
    for module in ("onnxruntime", "onnxscript"):  # checked here so the error names the extra
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ExportError(
                f"ONNX export needs the onnx extra ({module} is missing): pip install 'audiogpt2[onnx]'"
            ) from exc
    audio = info.config.audio
    # A batch of 2: torch.export would fix a batch of 1 as a constant. Only the batch axis
    # varies; the token count is fixed by the feature settings (n_frames / 4).
    dummy = torch.zeros(2, 2, audio.n_frames, audio.n_bins)
    path = out_dir / "model.onnx"
    # torch.export's FutureWarnings, its note that torchvision is not installed (no vision
    # operators are used) and the graph optimizer's notes on constants it leaves unfolded
    # are for torch's developers, not for this command's user.
    with warnings.catch_warnings(), _quiet("torch.onnx", "onnxscript"):
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(path),
            input_names=["features"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
            # one self-contained file, as other runtimes expect, unless protobuf's 2 GB limit
            # forces the weights into model.onnx.data beside it
            external_data=_weight_bytes(model) > ONNX_SINGLE_FILE_LIMIT,
        )
    if int8:
        return _quantize_int8(path, out_dir / "model.int8.onnx")
    return path


def _quantize_int8(path: Path, out: Path) -> Path:
    """``out``: ``path`` with int8 weights (onnxruntime's dynamic quantization)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with contextlib.ExitStack() as stack:
        source = path
        if not (path.parent / (path.name + ".data")).exists():
            # The quantizer re-infers every intermediate shape; the exporter's own shape notes
            # on them contradicted its inference with some torch versions (torch 2.11 and
            # onnxruntime 1.30), so it starts from a copy without them.
            model = onnx.load(str(path))
            del model.graph.value_info[:]
            source = Path(stack.enter_context(tempfile.TemporaryDirectory())) / path.name
            onnx.save(model, str(source))
        try:
            # One scale per output channel: with one scale per matrix a fine-tuned
            # transformer's top-1 moved on 5 % of ESC-10 test clips (per channel: under 1 %, at
            # the same speed; docs/speed.md, "Exported models keep their accuracy").
            # Matrix products only: ONNX Runtime's int8 convolutions (ConvInteger) made int8
            # models 1.3x (seed CNN + GPT-2) to 10x (mn04) slower than fp32 convolutions did,
            # so convolutions stay fp32 (docs/speed.md, "int8 for matrix products only").
            with _quiet(""):  # the root logger: its advice to pre-process is for image models
                quantize_dynamic(
                    str(source),
                    str(out),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=list(INT8_OPS),
                )
        except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise types of their own
            raise ExportError(
                f"{display(path)} (fp32) was written, but onnxruntime {onnxruntime.__version__} could "
                f"not quantize it to int8 ({str(exc).splitlines()[0]}): use the fp32 model, export "
                "without --int8, or try another onnxruntime version"
            ) from None
    return out


INT8_OPS = ("MatMul", "Gemm")  # the operators whose weights --int8 quantises
ONNX_SINGLE_FILE_LIMIT = 1_800_000_000  # bytes of weights; an ONNX protobuf cannot exceed 2 GB


def _weight_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Only errors from the loggers ``names`` ("" = root) for the duration."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before):
            logger.setLevel(level)


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` interface prediction uses."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types vary by version
            raise ExportError(
                f"{display(path)} is not a loadable ONNX model ({str(exc).splitlines()[0]})"
            ) from None
        names = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if names != (["features"], ["logits"]):
            raise ExportError(f"{display(path)} is not an audiogpt2 ONNX export (inputs and outputs {names})")
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            (logits,) = self.session.run(
                ["logits"], {"features": x.detach().cpu().numpy().astype(np.float32)}
            )
        except Exception as exc:  # noqa: BLE001 - a graph that does not fit its config
            raise ExportError(
                f"{display(self.path)} does not accept this export's features ({str(exc).splitlines()[0]}); "
                "the folder's model and config.json do not belong together: export it again"
            ) from None
        return torch.from_numpy(logits)


def load_export(directory: str | Path, prefer_onnx: bool = True) -> tuple[torch.nn.Module, Checkpoint]:
    """The model and description of an export folder: ONNX Runtime when ``model.onnx`` (or
    its int8 version) is there and onnxruntime is installed, PyTorch otherwise."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ExportError(f"{display(directory)} is not an audiogpt2 export: it has no config.json")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"{display(config_path)} is not readable JSON ({exc}); export the model again"
        ) from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{display(config_path)} is not an audiogpt2 export config")
    try:
        info = Checkpoint.from_dict({**data, "format": CHECKPOINT_FORMAT}, config_path)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, AudioGPT2Error):
            raise
        raise ExportError(
            f"{display(config_path)} lacks or garbles a field ({exc}); export the model again"
        ) from None
    onnx_files = [p for p in (directory / "model.int8.onnx", directory / "model.onnx") if p.is_file()]
    if prefer_onnx and onnx_files:
        try:
            return OnnxModel(onnx_files[0]), info
        except ImportError:
            pass  # no onnxruntime: fall back to the safetensors weights if present
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ExportError(
            f"{display(directory)} holds no model.safetensors"
            + (" and onnxruntime is not installed: pip install 'audiogpt2[onnx]'" if onnx_files else "")
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from audiogpt2.model import load_weights

    model = model_for(info, config_path)
    try:
        state = load_file(str(weights))
        check_finite(state, weights)
        load_weights(model, state)
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        if isinstance(exc, AudioGPT2Error):
            raise
        raise ExportError(
            f"{display(weights)} does not hold this export's weights ({str(exc).splitlines()[0]}); "
            "the file is truncated or belongs to another model: export it again"
        ) from None
    return model.eval(), info
