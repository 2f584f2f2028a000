"""Baseline CNN for MNIST-like data (the paper's "No Defense" / "Madry's Adv" model on MNIST).

The standard small CNN of Madry et al.'s MNIST challenge: Conv(32, 5x5)-ReLU-MaxPool,
Conv(64, 5x5)-ReLU-MaxPool, Linear(1024)-ReLU, Linear(nb_classes). Works for any (C, H, W) input
(the flattened size is inferred), e.g. (1, 28, 28) or (1, 8, 8).
"""

from __future__ import annotations

import torch
from torch import nn

from er_art.models.architectures import Architecture


class SmallCNN(nn.Module):
    def __init__(
        self, input_shape: tuple[int, ...] = (1, 28, 28), nb_classes: int = 10, width: int = 1024
    ) -> None:
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.classifier = nn.Sequential(
            nn.Linear(flat, width), nn.ReLU(inplace=True), nn.Linear(width, nb_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(nb_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28)) -> SmallCNN:
    return SmallCNN(tuple(input_shape), nb_classes)


ARCHITECTURE = Architecture(
    name="cnn",
    builder=build,
    input_shape=(1, 28, 28),
    nb_classes=10,
    kind="baseline",
    defaults={"lr": 1e-3},
    description="Baseline: Madry et al.'s small MNIST CNN (any input shape).",
)
