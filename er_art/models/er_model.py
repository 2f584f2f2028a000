"""The ER-Classifier network: encoder Q, classifier head C and latent discriminator D.

``ERModel.forward(x)`` returns the logits ``C(Q(x))`` and nothing else, so ART and its attacks can
call it like any classifier; ``encode(x)`` gives the embedding; D is never on the inference path.
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Sequential):
    """WGAN-style critic on the embedding (reference code): Linear(k, 512)-ReLU, 3 x [Linear(512,
    512)-ReLU], Linear(512, 1), LogSigmoid."""

    def __init__(self, embedding_dim: int, hidden: int = 512, depth: int = 3) -> None:
        layers: list[nn.Module] = [nn.Linear(embedding_dim, hidden), nn.ReLU(inplace=True)]
        for _ in range(depth):
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        layers += [nn.Linear(hidden, 1), nn.LogSigmoid()]
        super().__init__(*layers)


class ERModel(nn.Module):
    """Encoder + classifier head (the classifier ART sees) + discriminator (used only in training).

    :param encoder: maps ``(B, *input_shape)`` to ``(B, embedding_dim)``.
    :param classifier: maps ``(B, embedding_dim)`` to logits ``(B, nb_classes)``.
    :param discriminator: maps ``(B, embedding_dim)`` to ``(B, 1)``; default :class:`Discriminator`.
    """

    def __init__(
        self,
        encoder: nn.Module,
        classifier: nn.Module,
        embedding_dim: int,
        discriminator: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim}.")
        self.embedding_dim = embedding_dim
        self.encoder = encoder
        self.classifier = classifier
        self.discriminator = (
            discriminator if discriminator is not None else Discriminator(embedding_dim)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))  # (B, nb_classes)


class Normalize(nn.Module):
    """Per-channel mean/std normalisation inside the network (inputs stay in [0, 1] for ART)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def mlp_head(
    embedding_dim: int, nb_classes: int, hidden: tuple[int, ...] = (500, 256)
) -> nn.Sequential:
    """The reference MNIST/STL10 head: [Linear-BN-ReLU] per hidden width, then Linear to classes."""
    layers: list[nn.Module] = []
    width = embedding_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, nb_classes))
    return nn.Sequential(*layers)
