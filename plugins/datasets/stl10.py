"""STL-10: 5,000 / 8,000 labelled colour images of 10 classes, shape (3, 96, 96), in [0, 1].

Reads torchvision's layout, ``<data_dir>/stl10_binary/{train,test}_{X,y}.bin`` (``data_dir`` may be
the ``stl10_binary/`` folder itself); the unlabelled split is not used. ``download=True`` lets
torchvision fetch the archive (2.6 GB, needs internet); the default never downloads. Training
images are augmented as in the reference code (random crop 96 with 4-pixel padding + horizontal
flip) unless ``augment=False``. Defaults (NOTES.md): architecture ``stl10``, PGD ε = 0.03,
step 2/255, 20 steps, batch 64, 30 epochs; the paper's ε grid 0 .. 0.06 step 0.005.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from er_art.plugins.datasets._images import UInt8ImageDataset, crop_flip, find_folder, resolve_root

from er_art.datasets import DatasetNotFoundError, DatasetSpec

logger = logging.getLogger(__name__)

FOLDER = "stl10_binary"


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, 3, 96, 96)`` and labels 0..9 of ``split``.

    The files store the images column-major and the labels as 1..10.
    """
    raw = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise ValueError(
            f"{folder / f'{split}_X.bin'} is damaged: {raw.size:,} bytes is not a whole number of "
            "3x96x96 images; download it again or replace it with an intact copy."
        )
    x = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    y = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    if len(x) != len(y):
        raise ValueError(f"{folder}: {len(x)} images but {len(y)} labels in the {split} split.")
    return np.ascontiguousarray(x), y


def load(
    split: str, data_dir: Path | None = None, augment: bool | None = None, download: bool = False
) -> Any:
    """``split`` of STL-10; ``augment`` defaults to True for the training split."""
    root = resolve_root(data_dir)
    names = (f"{split}_X.bin", f"{split}_y.bin")
    candidates = [root / FOLDER, root]

    def has_files(folder: Path) -> bool:
        return all((folder / n).is_file() for n in names)

    folder = find_folder(candidates, has_files)
    if folder is None and download:
        import torchvision

        logger.info("downloading STL-10 into %s", root)
        torchvision.datasets.STL10(str(root), split=split, download=True)
        folder = find_folder(candidates, has_files)
    if folder is None:
        raise DatasetNotFoundError(
            f"STL-10 not found: expected {' and '.join(names)} in {root / FOLDER}; "
            f"pass --data-dir pointing at the folder that contains {FOLDER}/."
        )
    x, y = read_split(folder, split)
    logger.info("STL-10 %s: %d images from %s", split, len(y), folder)
    augment = split == "train" if augment is None else augment
    return UInt8ImageDataset(x, y, crop_flip(96, 4) if augment else None)


DATASET = DatasetSpec(
    name="stl10",
    loader=load,
    input_shape=(3, 96, 96),
    nb_classes=10,
    default_arch="stl10",
    eps=0.03,
    eps_step=2 / 255,
    max_iter=20,
    epochs=30,
    batch_size=64,
    eps_grid=tuple(round(0.005 * i, 3) for i in range(13)),  # 0 .. 0.06
    description="STL-10 labelled images (5,000 train / 8,000 test) in <data-dir>/stl10_binary.",
    extra={"augmentation": "random crop 96 (pad 4) + horizontal flip on the training split"},
)
