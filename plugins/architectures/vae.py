"""VAE-CLA versions of the ER architectures (the paper's Figure 3 ablation;
``er-art train --trainer vae-cla``): the same encoder backbone giving ``mu`` and ``log sigma^2``
(``2k`` outputs), the reparameterised ``z`` into the same head, loss CE + beta * KL; prediction
through ``mu``. See :mod:`er_art.baselines.vae_cla` (beta, the architecture option ``beta``,
defaults to
0.01 there, with the reasons).
"""

from __future__ import annotations

from er_art.plugins.architectures.cifar10 import ARCHITECTURE as CIFAR10
from er_art.plugins.architectures.digits import ARCHITECTURE as DIGITS
from er_art.plugins.architectures.mnist import ARCHITECTURE as MNIST
from er_art.plugins.architectures.mnist_small import ARCHITECTURE as MNIST_SMALL
from er_art.plugins.architectures.stl10 import ARCHITECTURE as STL10
from er_art.plugins.architectures.tinyimagenet import ARCHITECTURE as TINYIMAGENET

from er_art.baselines.vae_cla import vae_architecture

VAE_DIGITS = vae_architecture(DIGITS)
VAE_MNIST = vae_architecture(MNIST)
VAE_MNIST_SMALL = vae_architecture(MNIST_SMALL)
VAE_CIFAR10 = vae_architecture(CIFAR10)
VAE_STL10 = vae_architecture(STL10)
VAE_TINYIMAGENET = vae_architecture(TINYIMAGENET)
