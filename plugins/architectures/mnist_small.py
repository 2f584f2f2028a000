"""MNIST ER-Classifier at a quarter of the paper's width, for CPU-scale runs.

The paper's MNIST encoder (Figure 9; ``mnist``) with 32-64-128-256 channels instead of
128-256-512-1024: the same four stride-2 4x4 convolutions to 1x1 and the same MLP head, about 40x
fewer multiply-adds, so PGD min-max training and converged attacks fit on a laptop CPU. Results on
it are not the paper's numbers; ``er-art reproduce --scale cpu`` lists it as a deviation.
"""

from __future__ import annotations

from er_art.plugins.architectures.mnist import conv_encoder

from er_art.models.architectures import Architecture
from er_art.models.er_model import ERModel, mlp_head


def build(embedding_dim: int = 4, nb_classes: int = 10) -> ERModel:
    encoder = conv_encoder(1, (32, 64, 128, 256), embedding_dim)
    return ERModel(encoder, mlp_head(embedding_dim, nb_classes), embedding_dim)


ARCHITECTURE = Architecture(
    name="mnist-small",
    builder=build,
    input_shape=(1, 28, 28),
    nb_classes=10,
    embedding_dim=4,
    defaults={
        "lr": 1e-3,
        "lambda_reg": 5e-4,
        "threads": 1,
    },
    description="The paper's MNIST encoder at 1/4 width (32-64-128-256), k=4; for CPU runs.",
)
