"""MNIST: 60,000 / 10,000 handwritten digits, shape (1, 28, 28), in [0, 1].

Reads the original idx files in torchvision's layout, ``<data_dir>/MNIST/raw/`` (``data_dir`` may
also be the ``MNIST/`` or ``raw/`` folder itself), compressed (``.gz``) or not, without extracting
or writing anything (so a read-only copy works). ``download=True`` lets torchvision fetch them first
(needs internet); the default never downloads. A damaged file (cut short, not gzip, not idx) is
one sentence naming it. Defaults: the reference code's (NOTES.md), PGD
ε = 0.3, step 0.01, 40 steps; the paper's ε grid 0 .. 0.4 step 0.025.
"""

from __future__ import annotations

import gzip
import logging
import math
import zlib
from pathlib import Path

import numpy as np
from er_art.plugins.datasets._images import UInt8ImageDataset, find_folder, resolve_root

from er_art.datasets import DatasetNotFoundError, DatasetSpec

logger = logging.getLogger(__name__)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (``.gz`` or plain) of unsigned bytes as a NumPy array of its declared shape.

    A file that is not one, or is cut short (an interrupted download), is one sentence naming it.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(
            f"{path} is damaged ({err}); download it again or replace it with an intact copy."
        ) from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(
            f"{path} is not an idx file of unsigned bytes; download it again or replace it with "
            "an intact copy."
        )
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"{path} is damaged (its header is cut short); download it again or replace it with "
            "an intact copy."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = 4 + 4 * ndim + math.prod(dims)
    if len(data) != expected:
        raise ValueError(
            f"{path} is damaged: its header declares shape {dims} ({expected:,} bytes) but it "
            f"holds {len(data):,} bytes; download it again or replace it with an intact copy."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_path(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def make_idx_loader(folder_name: str, title: str, torchvision_class: str):
    """A loader for an MNIST-like dataset in torchvision's ``<root>/<folder_name>/raw/`` layout."""

    def load(split: str, data_dir: Path | None = None, download: bool = False) -> UInt8ImageDataset:
        """``split`` of the dataset; ``download=False`` (default) never touches the network."""
        root = resolve_root(data_dir)
        names = IDX_FILES[split]
        candidates = [root / folder_name / "raw", root / "raw", root]

        def has_files(folder: Path) -> bool:
            return all(_idx_path(folder, n) is not None for n in names)

        folder = find_folder(candidates, has_files)
        if folder is None and download:
            import torchvision

            logger.info("downloading %s into %s", title, root / folder_name)
            getattr(torchvision.datasets, torchvision_class)(
                str(root), train=split == "train", download=True
            )
            folder = find_folder(candidates, has_files)
        if folder is None:
            raise DatasetNotFoundError(
                f"{title} not found: expected {' and '.join(names)} (or .gz) "
                f"in {root / folder_name / 'raw'}; "
                f"pass --data-dir pointing at the folder that contains {folder_name}/."
            )
        image_path, label_path = _idx_path(folder, names[0]), _idx_path(folder, names[1])
        images = read_idx(image_path)  # type: ignore[arg-type]
        labels = read_idx(label_path).astype(np.int64)  # type: ignore[arg-type]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{image_path} and {label_path} do not match: images {images.shape} and labels "
                f"{labels.shape}; expected (N, H, W) images and N labels."
            )
        logger.info("%s %s: %d images from %s", title, split, len(labels), folder)
        return UInt8ImageDataset(images[:, None, :, :], labels)

    return load


load = make_idx_loader("MNIST", "MNIST", "MNIST")

DATASET = DatasetSpec(
    name="mnist",
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
    description="MNIST digits (60,000 train / 10,000 test), idx files in <data-dir>/MNIST/raw.",
)
