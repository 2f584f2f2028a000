"""Tiny ImageNet: 100,000 training / 10,000 validation colour images of 200 classes, (3, 64, 64).

Reads the standard folder ``tiny-imagenet-200/`` (``data_dir`` is the folder that contains it, or
the folder itself): ``wnids.txt``; ``train/<wnid>/images/*.JPEG``; ``val/images/*.JPEG`` with
``val/val_annotations.txt`` (file, wnid, box). The official test images have no labels, so the
``test`` split is the validation set, as in the paper. Class indices follow the sorted wnids (the
order of torchvision's ``ImageFolder``). Images are decoded with PIL one at a time (the training set
would take 4.9 GB as float32). Not downloadable through torchvision: fetch ``tiny-imagenet-200.zip``
yourself.

Defaults: architecture ``tinyimagenet``; PGD ε = 0.01 (the paper's); the reference code has no Tiny
ImageNet, so the step 0.0025 (ε/4) and 20 steps are our choice, in the same spirit as CIFAR-10's
(20 steps that together travel several times ε); the training augmentation is CIFAR-10's scaled
to 64 pixels (random crop 64 with 4-pixel padding + flip); ε grid 0 .. 0.02 step 0.002.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from er_art.plugins.datasets._images import crop_flip, find_folder, resolve_root

from er_art.datasets import DatasetNotFoundError, DatasetSpec

logger = logging.getLogger(__name__)

FOLDER = "tiny-imagenet-200"


class ImageFileDataset:
    """A ``Dataset`` of ``(image file, label)`` pairs, decoded to float32 RGB ``(3, H, W)``."""

    def __init__(self, samples: list[tuple[Path, int]], transform: Any = None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.samples[i]
        try:
            with Image.open(path) as image:
                x = pil_to_tensor(image.convert("RGB")).float().div_(255.0)
        except OSError as err:  # PIL: not an image, or cut short
            raise ValueError(
                f"{path} is damaged ({err}); download it again or replace it with an intact copy."
            ) from None
        if tuple(x.shape[1:]) != (64, 64):
            raise ValueError(
                f"{path} is {x.shape[2]}x{x.shape[1]} pixels; Tiny ImageNet's are 64x64."
            )
        if self.transform is not None:
            x = self.transform(x)
        return x, label


def _samples(folder: Path, split: str) -> list[tuple[Path, int]]:
    wnids = sorted(
        line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip()
    )
    index = {wnid: i for i, wnid in enumerate(wnids)}
    if split == "train":
        return [
            (path, index[wnid])
            for wnid in wnids
            for path in sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
        ]
    samples = []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            if fields[1] not in index:
                raise ValueError(
                    f"{folder / 'val' / 'val_annotations.txt'} names class {fields[1]!r}, "
                    "absent from wnids.txt."
                )
            samples.append((folder / "val" / "images" / fields[0], index[fields[1]]))
    return samples


def load(split: str, data_dir: Path | None = None, augment: bool | None = None) -> ImageFileDataset:
    """``split`` of Tiny ImageNet (``test``: the labelled validation set).

    ``augment`` defaults to True for the training split.
    """
    root = resolve_root(data_dir)
    needed = (
        ("wnids.txt", "train")
        if split == "train"
        else ("wnids.txt", "val/val_annotations.txt", "val/images")
    )
    folder = find_folder([root / FOLDER, root], lambda f: all((f / n).exists() for n in needed))
    if folder is None:
        raise DatasetNotFoundError(
            f"Tiny ImageNet not found: expected {', '.join(needed)} in {root / FOLDER}; "
            f"pass --data-dir pointing at the folder that contains {FOLDER}/."
        )
    samples = _samples(folder, split)
    if not samples:
        raise DatasetNotFoundError(f"Tiny ImageNet in {folder} has no {split} images (*.JPEG).")
    logger.info("Tiny ImageNet %s: %d images from %s", split, len(samples), folder)
    augment = split == "train" if augment is None else augment
    return ImageFileDataset(samples, crop_flip(64, 4) if augment else None)


DATASET = DatasetSpec(
    name="tinyimagenet",
    loader=load,
    input_shape=(3, 64, 64),
    nb_classes=200,
    default_arch="tinyimagenet",
    eps=0.01,
    eps_step=0.0025,
    max_iter=20,
    epochs=30,
    batch_size=100,
    eps_grid=tuple(round(0.002 * i, 3) for i in range(11)),  # 0 .. 0.02
    description="Tiny ImageNet (100,000 train / 10,000 val as test, 200 classes).",
    extra={"augmentation": "random crop 64 (pad 4) + horizontal flip on the training split"},
)
