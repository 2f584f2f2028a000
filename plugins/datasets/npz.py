"""Generic array files: images and labels in one or several NumPy ``.npz`` shards.

``data_dir`` is a ``.npz`` file, a folder of them, or a glob (``../shared/datasets/cifar10/*.npz``).
Each shard holds ``x`` (images) and ``y`` (labels), or ``x_train``/``y_train``/``x_test``/``y_test``
(Keras' ``mnist.npz`` layout). When some shard names start with ``train`` or ``test``, the split
takes only the shards with its prefix (``train-0.npz`` ... , ``test-1000.npz``); when none does,
every shard serves both splits (e.g. one file of adversarial examples to evaluate on).

Images may be uint8 in [0, 255] or float in [0, 1], ``(N, H, W, C)``, ``(N, C, H, W)`` or
``(N, H, W)``; they come out float32 ``(C, H, W)`` in [0, 1] (uint8 shards stay uint8 in memory).
Labels are integers (or one-hot rows); strings, fractions and negative numbers are refused in one
sentence naming the file. The class count is the largest label + 1, so a training split must
hold an example of each class 0 .. K-1 (one stray label such as 60000 would otherwise build a
60001-way head) and of at least two classes. No augmentation unless ``augment=True`` (random crop
with 4-pixel padding + horizontal flip).

The shape and class count are facts of the files, so the registered ``DATASET`` declares
``input_shape=()`` and ``nb_classes=0``; :func:`spec_for` (also ``DATASET.extra["resolve"]``) reads
the files' headers and labels and returns the complete spec, taking the architecture and PGD
defaults of the built-in dataset with the same image shape (e.g. ``cifar10`` for 3x32x32)::

    spec = get_dataset("npz")
    spec = spec.extra["resolve"](data_dir)      # input_shape, nb_classes, default_arch, eps, ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from er_art.plugins.datasets._images import UInt8ImageDataset, crop_flip

from er_art.datasets import ArrayDataset, DatasetNotFoundError, DatasetSpec, check_labels

logger = logging.getLogger(__name__)

SPLIT_PREFIXES = ("train", "test")
# Built-in datasets whose defaults a shard of the same image shape inherits.
SHAPE_DEFAULTS = {
    (1, 8, 8): "digits",
    (1, 28, 28): "mnist",
    (3, 32, 32): "cifar10",
    (3, 64, 64): "tinyimagenet",
    (3, 96, 96): "stl10",
}


def find_shards(data_dir: str | Path | None) -> list[Path]:
    """The ``.npz`` files named by ``data_dir``: a file, a folder (its ``*.npz``) or a glob."""
    if data_dir is None:
        raise DatasetNotFoundError(
            "The npz dataset needs --data-dir: a .npz file, a folder of .npz shards or a glob."
        )
    text = str(data_dir)
    if glob.has_magic(text):
        shards = sorted(Path(p) for p in glob.glob(text) if p.endswith(".npz"))
    elif Path(text).is_dir():
        shards = sorted(Path(text).glob("*.npz"))
    elif Path(text).is_file():
        shards = [Path(text)]
    else:
        shards = []
    if not shards:
        raise DatasetNotFoundError(
            f"No .npz files found at {text}: expected a .npz file, a folder of .npz shards "
            "or a glob such as "
            "data/*.npz, each holding arrays x and y."
        )
    return shards


def shards_for_split(shards: list[Path], split: str) -> list[Path]:
    """The shards of ``split``: those named ``split*``, or all when no name has a split prefix."""
    if not any(p.name.startswith(SPLIT_PREFIXES) for p in shards):
        return shards
    chosen = [p for p in shards if p.name.startswith(split)]
    if not chosen:
        raise DatasetNotFoundError(
            f"No {split} shard among {', '.join(p.name for p in shards)} in {shards[0].parent}: "
            f"expected file names starting with {split!r}."
        )
    return chosen


def _keys(names: list[str], split: str, path: Path) -> tuple[str, str]:
    for x_key, y_key in (("x", "y"), (f"x_{split}", f"y_{split}")):
        if x_key in names and y_key in names:
            return x_key, y_key
    raise ValueError(
        f"{path} holds arrays {', '.join(sorted(names))}; "
        f"expected x and y (or x_{split} and y_{split})."
    )


def read_header(path: Path, split: str = "train") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a shard's image array, read from its ``.npy`` header (no loading)."""
    with reading(path), zipfile.ZipFile(path) as archive:
        names = [n.removesuffix(".npy") for n in archive.namelist()]
        x_key, _ = _keys(names, split, path)
        with archive.open(f"{x_key}.npy") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(fh)
    return tuple(shape), np.dtype(dtype)


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` of one image of an array of ``shape`` (see :func:`to_chw`)."""
    if len(shape) == 3:
        return (1, shape[1], shape[2])
    if len(shape) == 4:
        if shape[1] in (1, 3):
            return (shape[1], shape[2], shape[3])
        if shape[3] in (1, 3):
            return (shape[3], shape[1], shape[2])
    raise ValueError(
        f"Cannot read images of shape {shape}; "
        "accepted: (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3."
    )


def to_chw(x: np.ndarray) -> np.ndarray:
    """Images as ``(N, C, H, W)``, dtype unchanged (channels-last: C in {1, 3} comes last)."""
    c, h, w = image_shape(x.shape)
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.shape[1:] == (c, h, w):
        return x
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_labels(y: np.ndarray, path: Path) -> np.ndarray:
    """Integer class labels (one-hot rows are turned into their argmax); anything else (strings,
    fractions, negative numbers) is one sentence naming ``path``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.dtype.kind in "biuf":
        y = y.argmax(axis=1)
    return check_labels(y, str(path))


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """A shard that cannot be read as a ``.npz`` of plain arrays is one sentence naming it."""
    try:
        yield
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path} is damaged or not a .npz file ({err}); re-create it with numpy.savez."
        ) from None
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise
        raise ValueError(
            f"{path} holds an array of Python objects, which er-art does not unpickle; "
            "accepted: arrays of numbers (images, integer labels)."
        ) from None


def read_arrays(shards: list[Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated images ``(N, C, H, W)`` (uint8, or float32 in [0, 1]) and labels."""
    xs, ys = [], []
    for path in shards:
        with reading(path), np.load(path, allow_pickle=False) as data:
            x_key, y_key = _keys(list(data.files), split, path)
            x, y = to_chw(data[x_key]), to_labels(data[y_key], path)
        if x.dtype.kind not in "biuf":
            raise ValueError(
                f"{path}: images x must be numbers, got {x.dtype}; accepted: uint8 in [0, 255] "
                "or floats in [0, 1]."
            )
        if len(x) != len(y):
            raise ValueError(f"{path}: {len(x)} images but {len(y)} labels.")
        if x.dtype != np.uint8:
            x = x.astype(np.float32, copy=False)
            if not np.isfinite(x).all():  # NaN passes the range test below
                raise ValueError(
                    f"{path}: images hold NaN or infinite values; accepted: finite values in "
                    "[0, 1] (or uint8 in [0, 255])."
                )
            if x.size and (x.min() < 0.0 or x.max() > 1.0):
                raise ValueError(
                    f"{path}: float images must lie in [0, 1], "
                    f"found [{x.min():.3g}, {x.max():.3g}]; "
                    "store uint8 in [0, 255] or divide by 255."
                )
        xs.append(x)
        ys.append(y)
    if len({x.shape[1:] for x in xs}) > 1:
        raise ValueError(
            f"Shards hold images of different shapes: {sorted({x.shape[1:] for x in xs})}."
        )
    if len({x.dtype for x in xs}) > 1:
        xs = [x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x for x in xs]
    return np.concatenate(xs), np.concatenate(ys)


def load(split: str, data_dir: Path | None = None, augment: bool = False) -> Any:
    """``split`` of the shards at ``data_dir``; ``augment=True`` adds random crop (pad 4) + flip."""
    shards = shards_for_split(find_shards(data_dir), split)
    x, y = read_arrays(shards, split)
    transform = crop_flip(x.shape[-1]) if augment else None
    logger.info("npz %s: %d images %s from %d shard(s)", split, len(y), x.shape[1:], len(shards))
    if x.dtype == np.uint8:
        return UInt8ImageDataset(x, y, transform)
    return ArrayDataset(x, y, transform)


def spec_for(data_dir: str | Path) -> DatasetSpec:
    """The npz spec completed from the files at ``data_dir``: input_shape, nb_classes and the
    defaults (architecture, eps, eps_step, max_iter, epochs, batch size, eps grid) of the built-in
    dataset with the same image shape; other shapes get architecture ``cnn`` (a baseline) and
    ε = 0.03, step 0.01, 20 steps."""
    from er_art.datasets import get_dataset

    shards = find_shards(data_dir)
    shapes = set()
    nb_classes = 0
    for split in SPLIT_PREFIXES:
        try:
            chosen = shards_for_split(shards, split)
        except DatasetNotFoundError:
            continue
        for path in chosen:
            shapes.add(image_shape(read_header(path, split)[0]))
            with reading(path), np.load(path, allow_pickle=False) as data:
                _, y_key = _keys(list(data.files), split, path)
                y = to_labels(data[y_key], path)
            if y.size:
                nb_classes = max(nb_classes, int(y.max()) + 1)
    if len(shapes) != 1:
        raise ValueError(f"Shards at {data_dir} hold images of different shapes: {sorted(shapes)}.")
    shape = shapes.pop()
    known = SHAPE_DEFAULTS.get(shape)
    if known is not None:
        base = get_dataset(known)
        fields: dict[str, Any] = {
            f: getattr(base, f)
            for f in (
                "default_arch",
                "eps",
                "eps_step",
                "max_iter",
                "epochs",
                "batch_size",
                "eps_grid",
            )
        }
    else:
        fields = {"default_arch": "cnn", "eps": 0.03, "eps_step": 0.01, "max_iter": 20}
    return dataclasses.replace(
        DATASET,
        input_shape=shape,
        nb_classes=nb_classes,
        description=f"{len(shards)} .npz shard(s) at {data_dir}: "
        f"images {shape}, {nb_classes} classes" + (f" (defaults of {known})" if known else ""),
        # nb_classes is read from the labels: training checks each class has an example
        extra={**DATASET.extra, "data_dir": str(data_dir), "classes_from_labels": True},
        **fields,
    )


DATASET = DatasetSpec(
    name="npz",
    loader=load,
    input_shape=(),  # read from the files: use spec_for(data_dir) / extra["resolve"]
    nb_classes=0,  # likewise
    default_arch="cnn",
    eps=0.03,
    eps_step=0.01,
    max_iter=20,
    description="Images and labels from .npz shards (x, y); shape and classes read from the files.",
    extra={"resolve": spec_for},
)
