"""Tiny architectures for fast tests (a few thousand parameters; not for real use).

``test_digits`` (1, 8, 8), ``test_mnist`` (1, 28, 28), ``test_cifar10`` (3, 32, 32) are ER models
with the full encoder / head / discriminator structure; ``test_cnn`` is a tiny baseline.
"""

from __future__ import annotations

from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import Discriminator, ERModel


def _tiny(in_channels: int, embedding_dim: int, nb_classes: int) -> ERModel:
    encoder = nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, embedding_dim),
    )
    head = nn.Sequential(
        nn.Linear(embedding_dim, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, nb_classes)
    )
    return ERModel(encoder, head, embedding_dim, Discriminator(embedding_dim, hidden=32, depth=1))


def build_gray(embedding_dim: int = 4, nb_classes: int = 10) -> ERModel:
    return _tiny(1, embedding_dim, nb_classes)


def build_rgb(embedding_dim: int = 4, nb_classes: int = 10) -> ERModel:
    return _tiny(3, embedding_dim, nb_classes)


def build_cnn(nb_classes: int = 10, input_shape: tuple[int, ...] = (1, 8, 8)) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, nb_classes),
    )


_FAST = {"lr": 1e-2, "lambda_reg": 1e-2}
TEST_DIGITS = Architecture(
    "test_digits",
    build_gray,
    (1, 8, 8),
    10,
    4,
    defaults=_FAST,
    description="Tiny ER model for 8x8 digits (tests).",
)
TEST_MNIST = Architecture(
    "test_mnist",
    build_gray,
    (1, 28, 28),
    10,
    4,
    defaults=_FAST,
    description="Tiny ER model for 28x28 grey images (tests).",
)
TEST_CIFAR10 = Architecture(
    "test_cifar10",
    build_rgb,
    (3, 32, 32),
    10,
    4,
    defaults=_FAST,
    description="Tiny ER model for 32x32 colour images (tests).",
)
TEST_CNN = Architecture(
    "test_cnn",
    build_cnn,
    (1, 8, 8),
    10,
    kind="baseline",
    defaults={"lr": 1e-2},
    description="Tiny baseline CNN (tests).",
)
