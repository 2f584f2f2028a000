"""ER-Classifier for scikit-learn's bundled 8x8 handwritten digits (shape (1, 8, 8), in [0, 1]).

Small and fast (trains with PGD min-max in about a minute on a 2-core CPU): three 3x3 convs
(8 -> 8 -> 4 -> 2), Linear(512, k = 8); head Linear(k, 128)-BN-ReLU, Linear(128, 10).
"""

from __future__ import annotations

from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import ERModel, mlp_head


def build(embedding_dim: int = 8, nb_classes: int = 10) -> ERModel:
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(128),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(128 * 2 * 2, embedding_dim),
    )
    return ERModel(encoder, mlp_head(embedding_dim, nb_classes, hidden=(128,)), embedding_dim)


ARCHITECTURE = Architecture(
    name="digits",
    builder=build,
    input_shape=(1, 8, 8),
    nb_classes=10,
    embedding_dim=8,
    # threads: torch CPU threads for training: this small net runs fastest on one (two OpenMP
    # threads on a busy 2-core machine were 10-70x slower per step).
    defaults={
        "lr": 1e-3,
        "lambda_reg": 5e-3,
        "threads": 1,
    },
    description="Small conv encoder for 8x8 digits -> k=8, MLP head.",
)
