"""What a dataset plugin is: a loader plus the facts and defaults that belong to the data.

A dataset plugin's entry point names a :class:`DatasetSpec`. ``spec.load(split, data_dir)`` returns
a ``torch.utils.data.Dataset`` of ``(x, y)`` with ``x`` a float32 tensor of ``input_shape`` in
``clip_values`` and ``y`` an int; ``spec.arrays(...)`` gives NumPy arrays for small data and
evaluation. Labels that cannot be right are refused in one sentence when a split is loaded
(:func:`check_labels`): not integers, outside ``[0, nb_classes)``, a training split of one class.
Defaults (architecture, PGD epsilon / step / steps, epochs, batch size, the paper's
epsilon grid) are the reference code's where the paper has them (NOTES.md), kept in one table per
dataset as in MadryLab's robustness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from er_art.registry import get_plugin


class DatasetNotFoundError(FileNotFoundError):
    """The files a dataset needs are not where they were looked for."""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset plugin."""

    name: str
    loader: Callable[
        ..., Any
    ]  # loader(split: "train"|"test", data_dir: Path | None, **options) -> Dataset
    input_shape: tuple[int, ...]
    nb_classes: int
    default_arch: str
    eps: float  # default PGD epsilon (training and evaluation), in the data's units
    eps_step: float
    max_iter: int
    epochs: int = 30
    batch_size: int = 100
    clip_values: tuple[float, float] = (0.0, 1.0)
    eps_grid: tuple[float, ...] = ()  # the paper's evaluation grid (Figure 2)
    needs_files: bool = True
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def load(
        self,
        split: str = "train",
        data_dir: str | Path | None = None,
        *,
        labels: bool = True,
        **options: Any,
    ) -> Any:
        """The ``split`` ("train" or "test") as a ``torch.utils.data.Dataset``; ``options`` go to
        the plugin's loader.

        Where the dataset holds its labels as an array ``y`` (in-memory datasets), they are
        checked with :func:`check_labels`: integers in ``[0, nb_classes)`` (when the spec
        declares ``nb_classes``), and a training split of at least two classes; where the class
        count is read from the labels (``nb_classes`` 0, or ``extra["classes_from_labels"]``, as
        ``npz``), each class of the model-to-be must have a training example. ``labels=False``
        skips these checks, for a caller that uses the images only (the intrinsic dimension).
        """
        if split not in ("train", "test"):
            raise ValueError(f"Unknown split {split!r}; accepted: train, test.")
        dataset = self.loader(split, None if data_dir is None else Path(data_dir), **options)
        y = getattr(dataset, "y", None)
        if labels and isinstance(y, np.ndarray):
            where = f"dataset {self.name!r}" + ("" if data_dir is None else f" at {data_dir}")
            check_labels(
                y,
                f"{where} ({split} split)",
                nb_classes=self.nb_classes or None,
                training=split == "train",
                complete=not self.nb_classes or bool(self.extra.get("classes_from_labels")),
            )
        return dataset

    def resolve(self, data_dir: str | Path | None = None) -> DatasetSpec:
        """This spec completed from the files at ``data_dir`` where the plugin reads its facts
        from the data (``npz`` learns shape and classes from its shards); others are unchanged."""
        hook = self.extra.get("resolve")
        return self if hook is None or data_dir is None else hook(data_dir)

    def arrays(
        self,
        split: str = "test",
        data_dir: str | Path | None = None,
        limit: int | None = None,
        **options: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` examples of ``split``: x float32 (N, *input_shape), y int64."""
        dataset = self.load(split, data_dir, **options)
        if hasattr(dataset, "arrays"):  # in-memory datasets: ``arrays(limit) -> (x, y)``
            return dataset.arrays(limit=limit)
        n = len(dataset) if limit is None else min(limit, len(dataset))
        xs, ys = zip(*(dataset[i] for i in range(n)), strict=True)
        return np.stack([np.asarray(x, dtype=np.float32) for x in xs]), np.asarray(
            ys, dtype=np.int64
        )


class ArrayDataset:
    """An in-memory ``Dataset`` over NumPy arrays (``x`` float32 in the data range, ``y`` int64)."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, transform: Callable[[Any], Any] | None = None
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}.")
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = _integer_labels(y, "ArrayDataset")  # 1.5 or "cat": a sentence, not truncated
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        x = torch.from_numpy(self.x[i])
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.y[i])

    def arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.x[:limit], self.y[:limit]


KINDS = {
    "U": "text",
    "S": "bytes",
    "O": "objects",
    "f": "non-integer numbers",
    "c": "complex numbers",
}


def _integer_labels(y: Any, where: str) -> np.ndarray:
    """``y`` as int64 when it holds integers (of any integer dtype, or floats / booleans of
    integral value), else one sentence naming ``where`` and a bad value."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        return y.astype(np.int64, copy=False)
    bad = np.ones(y.shape, bool)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (np.mod(y, 1) != 0)
        if not bad.any():
            return y.astype(np.int64)
    example = y[bad].flat[0] if bad.any() else None
    example = example.item() if isinstance(example, np.generic) else example
    raise ValueError(
        f"{where}: labels must be integers, got {KINDS.get(y.dtype.kind, str(y.dtype))} such as "
        f"{example!r}; accepted: class indices 0, 1, ... (or one-hot rows)."
    )


def _first_missing(present: np.ndarray, k: int, n: int = 3) -> list[int]:
    """The first ``n`` classes of ``0 .. k-1`` absent from the sorted unique ``present``."""
    found: list[int] = []
    c = 0
    for p in (int(v) for v in present):
        while c < p and len(found) < n:
            found.append(c)
            c += 1
        c = p + 1
    found.extend(range(c, min(k, c + n - len(found))))
    return found[:n]


def check_labels(
    y: np.ndarray,
    where: str,
    nb_classes: int | None = None,
    *,
    training: bool = False,
    complete: bool = False,
    classes_of: str | None = None,
) -> np.ndarray:
    """``y`` as int64 class labels, or one :class:`ValueError` sentence naming ``where`` (the
    dataset or file), the bad value and what is accepted.

    :param nb_classes: labels must lie in ``[0, nb_classes)``; ``None``: only ``>= 0``.
    :param training: ``y`` are training labels: at least two classes must be present.
    :param complete: with ``training``, every class of ``0 .. K-1`` must have an example, ``K``
        being ``nb_classes`` or else the largest label + 1: for data whose class count is read
        from its labels (``npz``), where one stray label such as 60000 would build a head of
        60001 outputs.
    :param classes_of: whose classes ``nb_classes`` counts, for the sentence (default: the
        dataset's), e.g. ``"the model at runs/x"``.
    """
    y = _integer_labels(y, where)
    if y.ndim != 1:
        raise ValueError(
            f"{where}: labels must be one integer per example (or one-hot rows), got shape "
            f"{y.shape}."
        )
    if not y.size:
        return y
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise ValueError(f"{where}: label {low} is negative; accepted: integers 0, 1, ...")
    if nb_classes is not None and high >= nb_classes:
        raise ValueError(
            f"{where}: label {high} is outside the {nb_classes} classes of "
            f"{classes_of or 'the dataset'}; accepted: integers 0 to {nb_classes - 1}."
        )
    if training:
        present = np.unique(y)
        if len(present) < 2:
            raise ValueError(
                f"{where}: every training label is {int(present[0])}; training needs examples "
                "of at least two classes."
            )
        k = nb_classes if nb_classes is not None else high + 1
        if complete and len(present) < k:
            first = _first_missing(present, k)
            shown = ", ".join(map(str, first)) + (", ..." if k - len(present) > len(first) else "")
            made = f"the largest label, {high}, makes" if high + 1 == k else "the labels make"
            raise ValueError(
                f"{where}: {made} {k} classes (0 to {k - 1}) but {k - len(present)} of them "
                f"({shown}) have no training example; accepted: classes numbered 0 to K-1, each "
                "with a training example."
            )
    return y


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name`` (unknown names raise with close matches)."""
    return get_plugin("datasets", name)
