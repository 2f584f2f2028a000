"""CIFAR10 ER-Classifier (reference code): VGG19 conv stack (no BN) -> Linear(512, 16), MLP head.

The encoder normalises with ImageNet mean/std inside ``forward`` (inputs stay in [0, 1] for ART).
The
authors initialised its convolutions from ImageNet-pretrained VGG19; offline we train from scratch,
or load a user-supplied file with ``init_weights=PATH``: a state dict of torchvision's
``vgg19().features`` (keys ``"0.weight"`` ... or ``"features.0.weight"`` ...), read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import torch
from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import IMAGENET_MEAN, IMAGENET_STD, ERModel, Normalize

# fmt: off
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)
# fmt: on


def vgg_features(
    cfg: tuple[int | str, ...], in_channels: int = 3, batch_norm: bool = False
) -> nn.Sequential:
    """A VGG convolution stack in torchvision's layer order (so its state dicts load)."""
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(c, int(v), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        c = int(v)
    return nn.Sequential(*layers)


def load_features(features: nn.Sequential, path: str) -> None:
    """Load a VGG19 ``features`` state dict from ``path`` (no code can run while loading)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # corrupted, foreign, or would run code (UnpicklingError)
        kind = type(err).__name__
        raise ValueError(f"{path} is not a readable VGG19 features state dict ({kind}).") from err
    if not isinstance(state, dict):
        kind = type(state).__name__
        raise ValueError(f"{path} is not a VGG19 features state dict (it holds a {kind}).")
    state = {
        k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")
    }
    missing, unexpected = features.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} is not a VGG19 features state dict: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}."
        )


class VGGEncoder(nn.Module):
    def __init__(self, embedding_dim: int, init_weights: str | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.features = vgg_features(VGG19_CFG)
        if init_weights:
            load_features(self.features, init_weights)
        self.fc = nn.Linear(512, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.normalize(x))  # (B, 512, 1, 1)
        return self.fc(torch.flatten(h, 1))  # (B, k)


def cifar_head(embedding_dim: int, nb_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(embedding_dim, 512),
        nn.Dropout(0.5),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, nb_classes),
    )


def build(
    embedding_dim: int = 16, nb_classes: int = 10, init_weights: str | None = None
) -> ERModel:
    encoder = VGGEncoder(embedding_dim, init_weights)
    return ERModel(encoder, cifar_head(embedding_dim, nb_classes), embedding_dim)


ARCHITECTURE = Architecture(
    name="cifar10",
    builder=build,
    input_shape=(3, 32, 32),
    nb_classes=10,
    embedding_dim=16,
    defaults={"lr": 5e-5, "lambda_reg": 0.1},
    description="VGG19 conv stack (from scratch or init_weights=PATH) -> k=16, dropout MLP head.",
)
