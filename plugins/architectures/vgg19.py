"""Baseline VGG19 for CIFAR10-like data (the paper's "No Defense" / "Madry's Adv" on CIFAR10).

VGG19 with BatchNorm (trainable from scratch), ImageNet normalisation inside, Linear(512, classes).
"""

from __future__ import annotations

import torch
from er_art.plugins.architectures.cifar10 import VGG19_CFG, vgg_features
from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import IMAGENET_MEAN, IMAGENET_STD, Normalize


class VGG19(nn.Module):
    def __init__(self, nb_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.features = vgg_features(VGG19_CFG, in_channels, batch_norm=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, nb_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.features(self.normalize(x)))
        return self.classifier(torch.flatten(h, 1))


def build(nb_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32)) -> VGG19:
    return VGG19(nb_classes, input_shape[0])


ARCHITECTURE = Architecture(
    name="vgg19",
    builder=build,
    input_shape=(3, 32, 32),
    nb_classes=10,
    kind="baseline",
    defaults={"lr": 1e-3},
    description="Baseline: VGG19-BN for 32x32 colour images.",
)
