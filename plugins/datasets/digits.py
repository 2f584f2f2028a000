"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, shape (1, 8, 8), scaled to [0, 1].

The default dataset of er-art: it ships inside scikit-learn, so it needs no files and no network.
The first 1,400 images are the training split, the remaining 397 the test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from er_art.datasets import ArrayDataset, DatasetSpec

N_TRAIN = 1400


def load(split: str, data_dir: Path | None = None) -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # (1797, 1, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    sl = slice(0, N_TRAIN) if split == "train" else slice(N_TRAIN, None)
    return ArrayDataset(x[sl], y[sl])


DATASET = DatasetSpec(
    name="digits",
    loader=load,
    input_shape=(1, 8, 8),
    nb_classes=10,
    default_arch="digits",
    eps=0.1,
    eps_step=0.025,
    max_iter=10,
    epochs=15,
    batch_size=64,
    eps_grid=tuple(round(0.025 * i, 3) for i in range(13)),  # 0 .. 0.3
    needs_files=False,
    description="scikit-learn's bundled 8x8 digits (1,400 train / 397 test); needs no files.",
)
