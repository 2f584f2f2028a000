"""Fashion-MNIST (Zalando): 60,000 / 10,000 clothing images, shape (1, 28, 28), in [0, 1].

Same idx format and layout as MNIST: ``<data_dir>/FashionMNIST/raw/`` (or that folder itself),
``.gz`` or plain, read without extracting; ``download=True`` lets torchvision fetch the files (needs
internet). Not in the paper: the defaults are MNIST's (architecture ``mnist``, PGD ε = 0.3, step
0.01, 40 steps, ε grid 0 .. 0.4) so results are comparable with MNIST's.
"""

from __future__ import annotations

from er_art.plugins.datasets.mnist import make_idx_loader

from er_art.datasets import DatasetSpec

load = make_idx_loader("FashionMNIST", "Fashion-MNIST", "FashionMNIST")

DATASET = DatasetSpec(
    name="fashion-mnist",
    loader=load,
    input_shape=(1, 28, 28),
    nb_classes=10,
    default_arch="mnist",
    eps=0.3,
    eps_step=0.01,
    max_iter=40,
    epochs=30,
    batch_size=100,
    eps_grid=tuple(round(0.025 * i, 3) for i in range(17)),  # 0 .. 0.4
    description="Fashion-MNIST (60,000 train / 10,000 test), idx files in FashionMNIST/raw.",
)
