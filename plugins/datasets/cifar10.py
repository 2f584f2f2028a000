"""CIFAR-10: 50,000 / 10,000 colour images of 10 classes, shape (3, 32, 32), in [0, 1].

Two layouts are read from ``data_dir`` (the folder that contains them, or the folder itself):

- torchvision's ``cifar-10-batches-py/`` (``data_batch_1`` ... ``data_batch_5``, ``test_batch``),
  the genuine download; its pickles are read with an unpickler that admits only NumPy arrays, so
  reading them cannot run code;
- ``.npz`` shards ``train-*.npz`` / ``test-*.npz`` holding ``x`` uint8 (N, 32, 32, 3) and ``y``,
  directly in ``data_dir`` or in ``data_dir/cifar10/`` (the layout of
  ``../shared/datasets/cifar10``, whose test shard holds only the first 1,000 test images).

``download=True`` lets torchvision fetch the archive (needs internet); the default never downloads.
Training images are augmented as in the reference code (random crop 32 with 4-pixel padding +
horizontal flip) unless ``augment=False``. Defaults (NOTES.md): architecture ``cifar10``, PGD
ε = 0.03, step 0.01, 20 steps, batch 100, 30 epochs; the paper's ε grid 0 .. 0.06 step 0.005.
"""

from __future__ import annotations

import codecs
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from er_art.plugins.datasets import npz
from er_art.plugins.datasets._images import UInt8ImageDataset, crop_flip, find_folder, resolve_root

from er_art.datasets import DatasetNotFoundError, DatasetSpec

logger = logging.getLogger(__name__)

BATCHES_DIR = "cifar-10-batches-py"
BATCH_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array-unpickling function


class _RefusedGlobal(pickle.UnpicklingError):
    """A batch names a global the unpickler does not admit (it would import or run code)."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays; refuses every other global."""

    # Refused globals raise _RefusedGlobal (an UnpicklingError): a tampered batch fails to load
    # instead of running code (read_batch turns it into one sentence naming the file).

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        (
            "_codecs",
            "encode",
        ): codecs.encode,  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"refusing to load {module}.{name} from a CIFAR-10 batch"
            ) from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images uint8 ``(N, 3, 32, 32)`` and labels int64.

    A file that is not a genuine batch (one that would import anything but NumPy's array
    constructors, or is cut short, or lacks ``data`` / ``labels``) is one sentence naming it.
    """
    redo = "download it again or replace it with an intact copy"
    try:
        with open(path, "rb") as fh:
            batch = _ArrayOnlyUnpickler(fh, encoding="latin1").load()
    except _RefusedGlobal as err:
        raise ValueError(f"{path} is not a CIFAR-10 batch ({err}); {redo}.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); {redo}.") from None
    except (LookupError, OverflowError) as err:  # e.g. a corrupt memo index or length
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); {redo}.") from None
    if isinstance(batch, dict):
        batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch (no data and labels in it); {redo}.")
    try:
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({err}); {redo}.") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise ValueError(
            f"{path} is damaged: {len(data)} images but labels of shape {labels.shape}; {redo}."
        )
    return data, labels


def _npz_shards(folder: Path, split: str) -> list[Path]:
    shards = sorted(folder.glob(f"{split}*.npz"))
    return shards


def load(
    split: str, data_dir: Path | None = None, augment: bool | None = None, download: bool = False
) -> Any:
    """``split`` of CIFAR-10; ``augment`` defaults to True for the training split."""
    root = resolve_root(data_dir)
    names = BATCH_FILES[split]
    batches = [root / BATCHES_DIR, root]

    def has_batches(folder: Path) -> bool:
        return all((folder / n).is_file() for n in names)

    folder = find_folder(batches, has_batches)
    shard_folder = (
        None
        if folder
        else find_folder([root / "cifar10", root], lambda f: bool(_npz_shards(f, split)))
    )
    if folder is None and shard_folder is None and download:
        import torchvision

        logger.info("downloading CIFAR-10 into %s", root)
        torchvision.datasets.CIFAR10(str(root), train=split == "train", download=True)
        folder = find_folder(batches, has_batches)
    if folder is not None:
        parts = [read_batch(folder / n) for n in names]
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    elif shard_folder is not None:
        x, y = npz.read_arrays(_npz_shards(shard_folder, split), split)
        if x.shape[1:] != (3, 32, 32) or x.dtype != np.uint8:
            raise ValueError(
                f"CIFAR-10 shards in {shard_folder} hold {x.dtype} images {x.shape[1:]}, "
                "not uint8 32x32x3."
            )
        folder = shard_folder
    else:
        raise DatasetNotFoundError(
            f"CIFAR-10 not found: expected {BATCHES_DIR}/{', '.join(names)} (torchvision's layout) "
            f"or {split}-*.npz shards in {root} or {root / 'cifar10'}; "
            "pass --data-dir pointing at the folder "
            f"that contains {BATCHES_DIR}/ or the shards."
        )
    logger.info("CIFAR-10 %s: %d images from %s", split, len(y), folder)
    augment = split == "train" if augment is None else augment
    return UInt8ImageDataset(x, y, crop_flip(32, 4) if augment else None)


DATASET = DatasetSpec(
    name="cifar10",
    loader=load,
    input_shape=(3, 32, 32),
    nb_classes=10,
    default_arch="cifar10",
    eps=0.03,
    eps_step=0.01,
    max_iter=20,
    epochs=30,
    batch_size=100,
    eps_grid=tuple(round(0.005 * i, 3) for i in range(13)),  # 0 .. 0.06
    description="CIFAR-10 (50,000 train / 10,000 test): cifar-10-batches-py/ or .npz shards.",
    extra={"augmentation": "random crop 32 (pad 4) + horizontal flip on the training split"},
)
