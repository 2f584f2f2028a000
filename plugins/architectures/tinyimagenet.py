"""Tiny ImageNet ER-Classifier (our design; the authors did not publish one), k = 20, 200 classes.

In the spirit of the CIFAR10 model: ImageNet normalisation inside, a VGG16-style stack with
BatchNorm on 64x64 (five max-pools -> 512 x 2 x 2), Linear(2048, k); head Linear(k, 512)-BN-ReLU,
Linear(512, 512)-BN-ReLU, Linear(512, 200).
"""

from __future__ import annotations

import torch
from er_art.plugins.architectures.cifar10 import vgg_features
from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import IMAGENET_MEAN, IMAGENET_STD, ERModel, Normalize, mlp_head

# fmt: off
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
# fmt: on


class TinyImageNetEncoder(nn.Module):
    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.features = vgg_features(VGG16_CFG, batch_norm=True)
        self.fc = nn.Linear(512 * 2 * 2, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.normalize(x))  # (B, 512, 2, 2)
        return self.fc(torch.flatten(h, 1))  # (B, k)


def build(embedding_dim: int = 20, nb_classes: int = 200) -> ERModel:
    head = mlp_head(embedding_dim, nb_classes, hidden=(512, 512))
    return ERModel(TinyImageNetEncoder(embedding_dim), head, embedding_dim)


ARCHITECTURE = Architecture(
    name="tinyimagenet",
    builder=build,
    input_shape=(3, 64, 64),
    nb_classes=200,
    embedding_dim=20,
    defaults={"lr": 5e-5, "lambda_reg": 0.1},
    description="VGG16-BN style encoder on 64x64 -> k=20, MLP head to 200 classes (our design).",
)
