"""Fashion-MNIST (Zalando): 60,000 / 10,000 clothing images, shape (1, 28, 28), in [0, 1].

Same idx format and layout as MNIST: ``<data_dir>/FashionMNIST/raw/`` (or that folder itself),
``.gz`` or plain, read without extracting; ``download=True`` lets torchvision fetch the files (needs
internet). Not in the paper: the defaults are MNIST's (architecture ``mnist``, PGD ε = 0.3, step
0.01, 40 steps, ε grid 0 .. 0.4) so results are comparable with MNIST's.
"""

from __future__ import annotations

import dataclasses

from er_art.plugins.datasets.mnist import DATASET as MNIST
from er_art.plugins.datasets.mnist import make_idx_loader

load = make_idx_loader("FashionMNIST", "Fashion-MNIST", "FashionMNIST")

DATASET = dataclasses.replace(
    MNIST,
    name="fashion-mnist",
    loader=load,
    description="Fashion-MNIST (60,000 train / 10,000 test), idx files in FashionMNIST/raw.",
)
