"""STL10 ER-Classifier (reference code): 6-conv encoder on 96x96 -> Linear(2048, 16), MNIST head.

Encoder: Conv(3->128, 4, s2, p1)-ReLU, Conv-BN-ReLU to 256, 512, 1024, 2048 (4, s2, p1)
(96 -> 48 -> 24 -> 12 -> 6 -> 3), Conv(2048->2048, 3, s2, p0)-BN-ReLU (-> 1x1), Linear(2048, k).
"""

from __future__ import annotations

from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import ERModel, mlp_head


def build(embedding_dim: int = 16, nb_classes: int = 10) -> ERModel:
    layers: list[nn.Module] = [nn.Conv2d(3, 128, 4, 2, 1, bias=False), nn.ReLU(inplace=True)]
    c = 128
    for w in (256, 512, 1024, 2048):
        layers += [nn.Conv2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c = w
    layers += [nn.Conv2d(c, c, 3, 2, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, embedding_dim))
    return ERModel(encoder, mlp_head(embedding_dim, nb_classes), embedding_dim)


ARCHITECTURE = Architecture(
    name="stl10",
    builder=build,
    input_shape=(3, 96, 96),
    nb_classes=10,
    embedding_dim=16,
    defaults={"lr": 5e-5, "lambda_reg": 0.1},
    description="Reference STL10 encoder (6 convs to 1x1) + MLP head, k=16.",
)
