"""Helpers shared by the image dataset plugins (not a plugin itself: no entry point names it).

- :class:`UInt8ImageDataset`: images kept as uint8 ``(N, C, H, W)`` (4x less memory than float32),
  converted to float32 in [0, 1] one item at a time;
- :func:`resolve_root`: ``data_dir`` or the default ``./data``;
- :func:`find_folder`: the first candidate folder that holds the files a loader needs;
- :func:`crop_flip`: the reference code's training augmentation (random crop with padding + flip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA_DIR = Path("data")  # torchvision's customary root, used when no data_dir is given


class UInt8ImageDataset:
    """A ``Dataset`` over uint8 images ``(N, C, H, W)`` and int labels; items are float32 in [0, 1].

    ``arrays()`` returns the whole split as float32 without the (training) ``transform``, like
    :class:`er_art.datasets.ArrayDataset`.
    """

    def __init__(
        self, x: np.ndarray, y: np.ndarray, transform: Callable[[Any], Any] | None = None
    ) -> None:
        if x.dtype != np.uint8 or x.ndim != 4:
            raise ValueError(
                f"Expected uint8 images of shape (N, C, H, W), got {x.dtype} {x.shape}."
            )
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}.")
        self.x = np.require(x, requirements=["C", "W"])  # torch tensors need writable memory
        self.y = np.asarray(y, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        x = torch.from_numpy(self.x[i]).float().div_(255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.y[i])

    def arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` (default: all) images as float32 in [0, 1], and their labels."""
        return self.x[:limit].astype(np.float32) / np.float32(255.0), self.y[:limit]


def resolve_root(data_dir: Path | None) -> Path:
    """``data_dir`` expanded, or ``./data`` when it is ``None``."""
    return DEFAULT_DATA_DIR if data_dir is None else Path(data_dir).expanduser()


def find_folder(candidates: Iterable[Path], has_files: Callable[[Path], bool]) -> Path | None:
    """The first existing folder among ``candidates`` for which ``has_files(folder)`` holds."""
    for folder in candidates:
        if folder.is_dir() and has_files(folder):
            return folder
    return None


def crop_flip(size: int, padding: int = 4) -> Callable[[Any], Any]:
    """Random crop of ``size`` after zero-padding by ``padding``, then a random horizontal flip."""
    from torchvision import transforms

    return transforms.Compose(
        [transforms.RandomCrop(size, padding=padding), transforms.RandomHorizontalFlip()]
    )


def hwc_to_chw(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` -> ``(N, C, H, W)``."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
