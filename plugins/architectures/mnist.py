"""MNIST ER-Classifier (paper Figure 9; reference code): 4-conv encoder to k = 4, MLP head.

Encoder: Conv(1->128, 4, s2, p1)-ReLU, Conv(->256)-BN-ReLU, Conv(->512)-BN-ReLU,
Conv(->1024)-BN-ReLU
(28 -> 14 -> 7 -> 3 -> 1), Linear(1024, k); convolutions without bias.
Head: Linear(k, 500)-BN-ReLU, Linear(500, 256)-BN-ReLU, Linear(256, 10).
"""

from __future__ import annotations

from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import ERModel, mlp_head


def conv_encoder(in_channels: int, widths: tuple[int, ...], embedding_dim: int) -> nn.Sequential:
    """Stride-2 4x4 convolutions (first without BN), flatten, Linear to the embedding."""
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        layers.append(nn.Conv2d(c, w, 4, stride=2, padding=1, bias=False))
        if i > 0:
            layers.append(nn.BatchNorm2d(w))
        layers.append(nn.ReLU(inplace=True))
        c = w
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, embedding_dim))


def build(embedding_dim: int = 4, nb_classes: int = 10) -> ERModel:
    encoder = conv_encoder(1, (128, 256, 512, 1024), embedding_dim)
    return ERModel(encoder, mlp_head(embedding_dim, nb_classes), embedding_dim)


ARCHITECTURE = Architecture(
    name="mnist",
    builder=build,
    input_shape=(1, 28, 28),
    nb_classes=10,
    embedding_dim=4,
    defaults={"lr": 1e-4, "lambda_reg": 5e-4},
    description="Paper Figure 9 MNIST encoder (4 convs to 1x1) + MLP head, k=4.",
)
