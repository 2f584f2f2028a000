"""Model factories for the ``--model PKG.MODULE:FACTORY`` tests (tests/test_any_model.py): each
builds a ``torch.nn.Module`` without arguments and without downloading anything."""

from __future__ import annotations

import torch
from torch import nn


def er_digits() -> nn.Module:
    """The network of an er-art ``test_digits`` run (its weights come from ``--weights``)."""
    import er_art

    return er_art.build_classifier("test_digits", device_type="cpu", seed=0).er_model


def resnet18() -> nn.Module:
    """An untrained torchvision ResNet-18 for 10 classes (weights=None: nothing downloaded)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10)


def tiny_cifar() -> nn.Module:
    """A small CNN on 3x32x32 inputs, 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 15 * 15, 10),
    )


class _Dict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_cifar()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": x.flatten(1), "logits": self.net(x)}


class _Tuple(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_cifar()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), x.flatten(1)


def dict_output() -> nn.Module:
    """Returns ``{"features": ..., "logits": ...}`` (pick with ``--logits logits``)."""
    return _Dict()


def tuple_output() -> nn.Module:
    """Returns ``(logits, features)`` (pick with ``--logits 0``)."""
    return _Tuple()


def five_classes() -> nn.Module:
    """A CNN on 3x32x32 inputs with 5 logits (wrong for 10-class data)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))


NOT_CALLABLE = 3
