"""What a dataset plugin is: a loader plus the facts and defaults that belong to the data.

A dataset plugin's entry point names a :class:`DatasetSpec`. ``spec.load(split, data_dir)`` returns
a ``torch.utils.data.Dataset`` of ``(x, y)`` with ``x`` a float32 tensor of ``input_shape`` in
``clip_values`` and ``y`` an int; ``spec.arrays(...)`` gives NumPy arrays for small data and
evaluation. Defaults (architecture, PGD epsilon / step / steps, epochs, batch size, the paper's
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

    def load(self, split: str = "train", data_dir: str | Path | None = None, **options: Any) -> Any:
        """The ``split`` ("train" or "test") as a ``torch.utils.data.Dataset``."""
        if split not in ("train", "test"):
            raise ValueError(f"Unknown split {split!r}; accepted: train, test.")
        return self.loader(split, None if data_dir is None else Path(data_dir), **options)

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
        self.y = np.asarray(y, dtype=np.int64)
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


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name`` (unknown names raise with close matches)."""
    return get_plugin("datasets", name)
