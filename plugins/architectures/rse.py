"""RSE (Random Self-Ensemble) versions of the paper's baseline classifiers: the ``cnn`` and
``vgg19`` baselines with a noise layer ``x + N(0, sigma^2)`` before every convolution, on in
training and at test time, predicting by the mean softmax of ``ensemble`` noisy passes
(:mod:`er_art.baselines.rse`; ``er-art train --trainer rse``).

Noise levels (options ``sigma_init`` before the first convolution, ``sigma_inner`` before the
others, in pixel units of [0, 1] inputs):

- ``rse-vgg19`` (CIFAR-10, STL-10, Tiny ImageNet): 0.2 / 0.1, the RSE authors' CIFAR-10 values;
- ``rse-cnn`` (MNIST, Fashion-MNIST): 0.8 / 0.4, the values reported for MNIST;
- ``rse-digits`` (the bundled 8x8 digits): our choice, 0.2 / 0.1, and 30 epochs. Measured on
  digits (``er-art train --trainer rse``, seed 0, clean / PGD eps 0.1 with 4 restarts, plain and
  with ``--eot 16``; 40 epochs): 0.8 / 0.4 gave 80 / 55 / 51%, 0.4 / 0.2 90 / 70 / 71%,
  0.2 / 0.1 93 / 72 / 70%, the undefended ``cnn`` 95 / 61%. An 8x8 digit has 12x fewer pixels
  than an MNIST one, so per-pixel noise averages out far less: 0.2 / 0.1 is as robust as
  0.4 / 0.2 at 3 points more clean accuracy. Noise slows training (after the dataset's 15 epochs
  0.2 / 0.1 was at 91% clean, after 40 at 93%), hence ``epochs`` 30 in its defaults.

``ensemble`` (default 10): the RSE authors averaged 50 passes; 10 is within a point of 50 on
digits (clean and under attack) at a fifth of the cost of every prediction, and attacks ask for
predictions at every restart. Set it per run with ``--arch-option ensemble=50`` or on a loaded
classifier (``clf.ensemble = 50``).
"""

from __future__ import annotations

from er_art.plugins.architectures.cnn import SmallCNN
from er_art.plugins.architectures.vgg19 import VGG19

from er_art.baselines.rse import RSEClassifier, RSENet
from er_art.models.architectures import Architecture

ENSEMBLE = 10  # noisy passes per prediction (the RSE authors: 50)


def build_cnn(
    nb_classes: int = 10,
    input_shape: tuple[int, ...] = (1, 28, 28),
    sigma_init: float = 0.8,
    sigma_inner: float = 0.4,
    ensemble: int = ENSEMBLE,
) -> RSENet:
    return RSENet(SmallCNN(tuple(input_shape), nb_classes), sigma_init, sigma_inner, ensemble)


def build_digits(
    nb_classes: int = 10,
    input_shape: tuple[int, ...] = (1, 8, 8),
    sigma_init: float = 0.2,
    sigma_inner: float = 0.1,
    ensemble: int = ENSEMBLE,
) -> RSENet:
    return RSENet(SmallCNN(tuple(input_shape), nb_classes), sigma_init, sigma_inner, ensemble)


def build_vgg19(
    nb_classes: int = 10,
    input_shape: tuple[int, ...] = (3, 32, 32),
    sigma_init: float = 0.2,
    sigma_inner: float = 0.1,
    ensemble: int = ENSEMBLE,
) -> RSENet:
    return RSENet(VGG19(nb_classes, input_shape[0]), sigma_init, sigma_inner, ensemble)


RSE_CNN = Architecture(
    name="rse-cnn",
    builder=build_cnn,
    input_shape=(1, 28, 28),
    nb_classes=10,
    kind="rse",
    defaults={"lr": 1e-3},
    description="RSE: the baseline cnn with noise before every conv (0.8 / 0.4; MNIST).",
    classifier_class=RSEClassifier,
)
RSE_DIGITS = Architecture(
    name="rse-digits",
    builder=build_digits,
    input_shape=(1, 8, 8),
    nb_classes=10,
    kind="rse",
    # threads: one torch thread (small net; see the digits architecture)
    defaults={"lr": 1e-3, "threads": 1, "epochs": 30},
    description="RSE: the baseline cnn with noise before every conv (0.2 / 0.1; 8x8 digits).",
    classifier_class=RSEClassifier,
)
RSE_VGG19 = Architecture(
    name="rse-vgg19",
    builder=build_vgg19,
    input_shape=(3, 32, 32),
    nb_classes=10,
    kind="rse",
    defaults={"lr": 1e-3},
    description="RSE: VGG19-BN with noise before every conv (0.2 / 0.1; CIFAR-10).",
    classifier_class=RSEClassifier,
)
