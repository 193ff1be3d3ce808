"""MobileNetV3 for spectrograms, in the layout of EfficientAT's AudioSet checkpoints.

Schmid, Koutini and Widmer, "Efficient Large-Scale Audio Tagging via Transformer-to-CNN
Knowledge Distillation" (ICASSP 2023) trained MobileNetV3-Large variants on AudioSet ("mn04"
is width 0.4). This is our own implementation of that architecture: inverted residual
blocks, squeeze-excitation over channels, a width multiplier applied to one table of block
settings. Parameter names and shapes follow the released state dicts, which load with
``strict=True``: ``features.N`` are the stem, the 15 blocks and the last 1x1 conv;
``classifier`` is the AudioSet head (pool, linear, hardswish, dropout, linear).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

# MobileNetV3-Large: (kernel, expanded, out, squeeze-excite, activation, stride) per block,
# for width 1.0; the stem has 16 channels and the head 1280.
BLOCKS = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
STEM, LAST_HIDDEN = 16, 1280
BN_EPS = 0.001  # the released statistics were computed with it
ACTIVATIONS = {"relu": nn.ReLU, "hardswish": nn.Hardswish}


def divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor`` without losing more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm_act(
    c_in: int, c_out: int, kernel: int, stride: int, groups: int, act: str | None, bn
) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), bn(c_out)]
    if act is not None:
        layers.append(ACTIVATIONS[act](inplace=True))
    return nn.Sequential(*layers)


class ChannelSE(nn.Module):
    """Squeeze-excitation over channels: the mean over frequency and time gates each channel
    (a sigmoid gate: with it the released weights reproduce the published outputs)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3)))))
        return x * torch.sigmoid(scale)[:, :, None, None]


class SqueezeExcite(nn.Module):
    """The released checkpoints hold the channel gate as ``conc_se_layers.0``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelSE(channels, divisible(channels // 4))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """1x1 expansion, depthwise k x k, optional squeeze-excitation, linear 1x1 projection;
    a residual connection where the shape allows."""

    def __init__(
        self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, act: str, stride: int, bn
    ):
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_norm_act(c_in, expanded, 1, 1, 1, act, bn))
        layers.append(conv_norm_act(expanded, expanded, kernel, stride, expanded, act, bn))
        if se:
            layers.append(SqueezeExcite(expanded))
        layers.append(conv_norm_act(expanded, c_out, 1, 1, 1, None, bn))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3(nn.Module):
    """(batch, 1, mel bands, frames) -> (batch, classes) logits; :meth:`feature_map` gives the
    last convolutional map, (batch, 6 x last block width, bands / 32, frames / 32)."""

    def __init__(self, width: float, num_classes: int = 527, bn_momentum: float = 0.01, dropout: float = 0.2):
        super().__init__()
        bn = partial(nn.BatchNorm2d, eps=BN_EPS, momentum=bn_momentum)
        c = divisible(STEM * width)
        layers: list[nn.Module] = [conv_norm_act(1, c, 3, 2, 1, "hardswish", bn)]
        for kernel, expanded, out, se, act, stride in BLOCKS:
            c_out = divisible(out * width)
            layers.append(
                InvertedResidual(c, kernel, divisible(expanded * width), c_out, se, act, stride, bn)
            )
            c = c_out
        self.out_channels = 6 * c
        layers.append(conv_norm_act(c, self.out_channels, 1, 1, 1, "hardswish", bn))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(self.out_channels, divisible(LAST_HIDDEN * width)),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(divisible(LAST_HIDDEN * width), num_classes),
        )

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
