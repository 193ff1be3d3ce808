"""Front ends: the networks that turn a clip's features into the transformer's tokens.

Registered by name (``model.frontend``): ``cnn`` is the seed README's conv blocks (built in
model.py); ``mn01`` ... ``mn30`` are AudioSet MobileNets of EfficientAT's architecture at
that width (mobilenet.py), whose released weights weights.py fetches and checks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audiogpt2.frontends.mobilenet import MobileNetV3

MOBILENET_WIDTHS = {"mn01": 0.1, "mn02": 0.2, "mn04": 0.4, "mn05": 0.5, "mn10": 1.0, "mn20": 2.0, "mn30": 3.0}
FRONTENDS = ("cnn", *MOBILENET_WIDTHS)
STRIDE_LAYERS = 5  # the stem and four blocks halve both axes: stride 32


class MobileNetFrontend(nn.Module):
    """(batch, 2, frames, bands) model input -> (batch, channels, frames / 32, bands / 32).

    The model input's two channels are the features and a SpecAugmented copy: the network
    sees the masked copy while training and the clean features otherwise (it has one input
    channel, as AudioSet trained it). The output keeps the CNN's layout (time before
    frequency), so tokens are made the same way for every front end.
    """

    def __init__(
        self, name: str, pretrained: bool = False, keep_head: bool = False, dropout: float = 0.2
    ) -> None:
        super().__init__()
        # The authors' slow BatchNorm momentum suits weights that already have statistics;
        # a network from random weights needs its statistics to follow training.
        momentum = 0.01 if pretrained else 0.1
        self.net = MobileNetV3(MOBILENET_WIDTHS[name], bn_momentum=momentum, dropout=dropout)
        self.out_channels = self.net.out_channels
        if keep_head:  # the AudioSet head up to its 527-class layer: pool, linear, hardswish, dropout
            self.net.classifier = self.net.classifier[:-1]
            self.embed_dim = self.net.classifier[2].out_features
        else:  # the model has its own head
            del self.net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(x).transpose(2, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 2, frames, bands) -> (batch, embed_dim): the kept AudioSet head's hidden layer."""
        return self.net.classifier(self._map(x))

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional map in the network's own layout (bands before frames)."""
        x = x[:, 1:2] if self.training else x[:, :1]
        return self.net.features(x.transpose(2, 3))


def output_size(n: int) -> int:
    """Length of an axis of ``n`` after the MobileNet's five stride-2 layers."""
    for _ in range(STRIDE_LAYERS):
        n = math.ceil(n / 2)
    return n
