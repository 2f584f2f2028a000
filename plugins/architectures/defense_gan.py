"""Defense-GAN (Samangouei et al., ICLR 2018) for the bundled digits, MNIST and CIFAR-10: a WGAN-GP
generator and critic (:mod:`er_art.baselines.defense_gan`) and the dataset's baseline classifier
(``cnn`` for
1-channel data, ``vgg19`` for CIFAR-10, so that Defense-GAN and "No Defense" differ only by the
defence), as a :class:`~er_art.baselines.defense_gan_classifier.DefenseGANClassifier`
(``er-art train --trainer defense-gan``).

Options (``--arch-option KEY=VALUE``; every one is recorded in the run's config and checkpoint):

- the projection: ``projection_steps`` (L), ``restarts`` (R), ``projection_lr``,
  ``projection_momentum``, ``z_init``, ``start_seed``; and ``gradient`` (``bpda`` or ``naive``).
  None of them changes the weights, so each can also be changed on a trained model:
  ``er_art.load_classifier(run, options={"gradient": "naive", "restarts": 10})``;
- the nets: ``z_dim``, ``width`` (G and D's base width; default 32 for 8x8, the authors' 64);
- training: ``n_critic``, ``lambda_gp``, ``classifier_lr`` (the base ``--lr`` is G and D's).

Presets (the paper: L = 200, R = 10, z_dim 128, G / D lr 1e-4, betas (0.5, 0.9)):

- ``defense-gan-mnist`` (1x28x28, also Fashion-MNIST): the paper's L, R, z_dim and lr.
- ``defense-gan-digits`` (8x8): L = 50, R = 4, z_dim 32, lr 1e-3, 60 epochs. Measured with
  ``er-art train --trainer defense-gan --threads 1`` (seed 0; 0.6 s an epoch, 44 s in all on a
  2-core CPU) on the 397 test digits: mean squared reconstruction error 0.008 and 92.7% accuracy
  through the projection at L = 50, R = 4 (about 3 s to predict the 397 images), 0.005 and 93.7%
  at the paper's L = 200, R = 10 (25 s), 0.013 and 90.7% at L = 20, R = 2; the classifier alone
  95.0%. In a run of the same settings outside the loop, 30 epochs gave 91% at L = 50, R = 4 and
  60 epochs 93%. A quarter of the paper's steps and a fifth of its starts keep attacks affordable:
  every attack step projects every image.
- ``defense-gan-cifar10`` (3x32x32): the paper's L, R and z_dim (Defense-GAN is not in the
  paper's CIFAR-10 experiments; this is for completeness).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from er_art.plugins.architectures.cnn import SmallCNN
from er_art.plugins.architectures.vgg19 import VGG19
from torch import nn

from er_art.baselines.defense_gan import (
    CLASSIFIER_LR,
    GAN_LR,
    LAMBDA_GP,
    N_CRITIC,
    DefenseGANModel,
    build_defense_gan,
)
from er_art.baselines.defense_gan_classifier import DefenseGANClassifier
from er_art.models.architectures import Architecture

# Options every preset shares, with their defaults (the authors' values).
COMMON: dict[str, Any] = {
    "width": None,
    "projection_lr": 10.0,
    "projection_momentum": 0.7,
    "gradient": "bpda",
    "z_init": "fixed",
    "start_seed": 0,
    "n_critic": N_CRITIC,
    "lambda_gp": LAMBDA_GP,
    "classifier_lr": CLASSIFIER_LR,
}


def _builder(
    input_shape: tuple[int, int, int],
    classifier: Callable[[tuple[int, int, int], int], nn.Module],
    **preset: Any,
) -> Callable[..., DefenseGANModel]:
    """The builder of one preset: ``build(nb_classes=10, *, z_dim=, projection_steps=, ...)``,
    its signature listing every option with the preset's default (what a run records)."""
    defaults = {**COMMON, **preset}

    def build(nb_classes: int = 10, **options: Any) -> DefenseGANModel:
        settings = {**defaults, **options}
        z_dim, width = settings.pop("z_dim"), settings.pop("width")
        return build_defense_gan(
            input_shape,
            nb_classes,
            z_dim=z_dim,
            width=width,
            classifier=classifier(input_shape, nb_classes),
            **settings,
        )

    params = [inspect.Parameter("nb_classes", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=10)]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
        for name, value in defaults.items()
    ]
    build.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return build


def _cnn(input_shape: tuple[int, int, int], nb_classes: int) -> nn.Module:
    return SmallCNN(input_shape, nb_classes)


def _vgg19(input_shape: tuple[int, int, int], nb_classes: int) -> nn.Module:
    return VGG19(nb_classes, input_shape[0])


def _architecture(
    name: str, shape: tuple[int, int, int], builder: Callable[..., DefenseGANModel], **kw: Any
) -> Architecture:
    return Architecture(
        name=name,
        builder=builder,
        input_shape=shape,
        nb_classes=10,
        kind="defense-gan",
        classifier_class=DefenseGANClassifier,
        **kw,
    )


DEFENSE_GAN_DIGITS = _architecture(
    "defense-gan-digits",
    (1, 8, 8),
    _builder((1, 8, 8), _cnn, z_dim=32, projection_steps=50, restarts=4),
    # threads: one torch thread (small nets; see the digits architecture)
    defaults={"lr": 1e-3, "threads": 1, "epochs": 60},
    description="Defense-GAN: WGAN-GP G / D + the cnn baseline, L = 50, R = 4 (8x8 digits).",
)
DEFENSE_GAN_MNIST = _architecture(
    "defense-gan-mnist",
    (1, 28, 28),
    _builder((1, 28, 28), _cnn, z_dim=128, projection_steps=200, restarts=10),
    defaults={"lr": GAN_LR},
    description="Defense-GAN: the authors' WGAN-GP G / D + the cnn baseline, L = 200, R = 10.",
)
DEFENSE_GAN_CIFAR10 = _architecture(
    "defense-gan-cifar10",
    (3, 32, 32),
    _builder((3, 32, 32), _vgg19, z_dim=128, projection_steps=200, restarts=10),
    defaults={"lr": GAN_LR},
    description="Defense-GAN: WGAN-GP G / D + the vgg19 baseline, L = 200, R = 10 (CIFAR-10).",
)
