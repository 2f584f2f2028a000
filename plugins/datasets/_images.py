"""Helpers shared by the image dataset plugins (not a plugin itself: no entry point names it).

- :class:`UInt8ImageDataset`: images kept as uint8 ``(N, C, H, W)`` (4x less memory than float32),
  converted to float32 in [0, 1] one item at a time;
- :func:`resolve_root`: ``data_dir`` or the default ``./data``;
- :func:`find_folder`: the first candidate folder that holds the files a loader needs;
- :func:`crop_flip`: the reference code's training augmentation (random crop with padding + flip),
  per image or, for data kept on the GPU, per batch on the device (:class:`CropFlip`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from er_art.datasets import _integer_labels

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
        self.y = _integer_labels(y, "UInt8ImageDataset")  # 1.5 or "cat": a sentence
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


class CropFlip:
    """Random crop of ``size`` after zero-padding by ``padding``, then a horizontal flip with
    probability 1/2: torchvision's ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip()``.

    ``transform(x)`` augments one ``(C, H, W)`` image; ``transform.batch(x)`` a ``(B, C, H, W)``
    batch on its own device, each image with its own offsets and flip, drawn with torch's RNG on
    that device (no host round trip): what the training loop uses for data kept on the GPU.
    """

    def __init__(self, size: int, padding: int = 4) -> None:
        self.size, self.padding = int(size), int(padding)

    def __call__(self, x: Any) -> Any:
        return self.batch(x[None])[0]

    def batch(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        b, c, h, w = x.shape
        p, s = self.padding, self.size
        padded = F.pad(x, (p, p, p, p)) if p else x  # (B, C, H + 2p, W + 2p), zeros
        top = torch.randint(0, h + 2 * p - s + 1, (b, 1), device=x.device)
        left = torch.randint(0, w + 2 * p - s + 1, (b, 1), device=x.device)
        flip = torch.rand(b, device=x.device) < 0.5
        steps = torch.arange(s, device=x.device)
        rows = top + steps  # (B, s)
        cols = torch.where(flip[:, None], left + s - 1 - steps, left + steps)  # (B, s)
        batch_idx = torch.arange(b, device=x.device)[:, None, None, None]
        channel_idx = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[batch_idx, channel_idx, rows[:, None, :, None], cols[:, None, None, :]]

    def __repr__(self) -> str:
        return f"CropFlip(size={self.size}, padding={self.padding})"


def crop_flip(size: int, padding: int = 4) -> CropFlip:
    """Random crop of ``size`` after zero-padding by ``padding``, then a random horizontal flip
    (per image, or per batch on the device: :class:`CropFlip`)."""
    return CropFlip(size, padding)


def hwc_to_chw(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` -> ``(N, C, H, W)``."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
