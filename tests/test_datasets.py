"""Dataset plugins: declared facts, missing-file errors, synthetic layouts, the real shared data."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from er_art.datasets import DatasetNotFoundError, get_dataset

FILE_DATASETS = ["mnist", "fashion-mnist", "cifar10", "stl10", "tinyimagenet"]

# name: (input_shape, nb_classes, default_arch, eps, eps_step, max_iter, batch, grid end, grid step)
FACTS = {
    "mnist": ((1, 28, 28), 10, "mnist", 0.3, 0.01, 40, 100, 0.4, 0.025),
    "fashion-mnist": ((1, 28, 28), 10, "mnist", 0.3, 0.01, 40, 100, 0.4, 0.025),
    "cifar10": ((3, 32, 32), 10, "cifar10", 0.03, 0.01, 20, 100, 0.06, 0.005),
    "stl10": ((3, 96, 96), 10, "stl10", 0.03, 2 / 255, 20, 64, 0.06, 0.005),
    "tinyimagenet": ((3, 64, 64), 200, "tinyimagenet", 0.01, 0.0025, 20, 100, 0.02, 0.002),
}


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_declared_facts(name: str) -> None:
    spec = get_dataset(name)
    shape, classes, arch, eps, step, steps, batch, grid_end, grid_step = FACTS[name]
    assert (spec.name, spec.input_shape, spec.nb_classes, spec.default_arch) == (
        name,
        shape,
        classes,
        arch,
    )
    assert (spec.eps, spec.max_iter, spec.batch_size) == (eps, steps, batch)
    assert spec.eps_step == pytest.approx(step)
    assert spec.clip_values == (0.0, 1.0) and spec.needs_files
    assert spec.eps_grid[0] == 0.0 and spec.eps_grid[-1] == pytest.approx(grid_end)
    assert np.allclose(np.diff(spec.eps_grid), grid_step)
    assert eps in spec.eps_grid


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", ["train-images-idx3-ubyte", "MNIST/raw", "--data-dir"]),
        ("fashion-mnist", ["train-images-idx3-ubyte", "FashionMNIST/raw", "--data-dir"]),
        ("cifar10", ["data_batch_1", "train-*.npz", "--data-dir"]),
        ("stl10", ["train_X.bin", "stl10_binary", "--data-dir"]),
        ("tinyimagenet", ["wnids.txt", "tiny-imagenet-200", "--data-dir"]),
    ],
)
def test_missing_files_name_files_and_folder(
    name: str, expected: list[str], tmp_path: Path
) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        get_dataset(name).load("train", tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    for text in expected:
        assert text in message
    assert isinstance(info.value, FileNotFoundError)


def test_npz_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="No .npz files"):
        get_dataset("npz").load("train", tmp_path / "*.npz")
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        get_dataset("npz").load("train", None)


# ------------------------------------------------------------------ synthetic layouts
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_gz_layout(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(7) % 10)
    spec = get_dataset("mnist")
    for data_dir in (
        tmp_path,
        tmp_path / "MNIST",
        raw,
    ):  # the root, the dataset folder, or raw/ itself
        x, y = spec.arrays("test", data_dir)
        assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32
        assert np.allclose(x[:, 0] * 255, images) and list(y) == list(range(7))
    item, label = spec.load("test", tmp_path)[3]
    assert isinstance(item, torch.Tensor) and item.dtype == torch.float32 and label == 3


def test_cifar10_batches_layout_and_augmentation(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    for name in ("test_batch", *(f"data_batch_{i}" for i in range(1, 6))):
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": [1, 2, 3, 4], "batch_label": name}, fh, protocol=2)
    spec = get_dataset("cifar10")
    x, y = spec.arrays("test", tmp_path)
    assert (
        x.shape == (4, 3, 32, 32)
        and np.allclose(x.reshape(4, -1) * 255, data)
        and list(y) == [1, 2, 3, 4]
    )
    train = spec.load("train", folder)
    assert len(train) == 20 and train.transform is not None  # crop + flip on the training split
    assert train[0][0].shape == (3, 32, 32)
    assert spec.load("train", tmp_path, augment=False).transform is None
    assert spec.load("test", tmp_path).transform is None


def test_cifar10_refuses_pickled_code(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": Path("x"), "labels": [0]}, fh)  # a global other than a NumPy array
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch .*refusing"):
        get_dataset("cifar10").load("test", tmp_path)  # one sentence for the CLI, no traceback


def test_stl10_binary_layout(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)
    images.transpose(0, 1, 3, 2).tofile(folder / "test_X.bin")  # stored column-major
    np.array([1, 5, 10], dtype=np.uint8).tofile(folder / "test_y.bin")
    x, y = get_dataset("stl10").arrays("test", tmp_path)
    assert x.shape == (3, 3, 96, 96) and np.allclose(x * 255, images)
    assert list(y) == [0, 4, 9]


def _write_tiny_imagenet(root: Path, wnids: list[str], per_class: int = 2) -> Path:
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    rng = np.random.default_rng(0)
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    lines = []
    for c, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{wnid}_{i}.JPEG", format="JPEG")
        Image.fromarray(np.full((64, 64, 3), 40 * c, np.uint8)).save(
            folder / "val" / "images" / f"val_{c}.JPEG", format="JPEG"
        )
        lines.append(f"val_{c}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_tinyimagenet_folder_layout(tmp_path: Path) -> None:
    folder = _write_tiny_imagenet(tmp_path, ["n02", "n01", "n03"])
    spec = get_dataset("tinyimagenet")
    train = spec.load("train", tmp_path)
    assert len(train) == 6 and train.transform is not None
    x, label = train[0]
    assert (
        x.shape == (3, 64, 64)
        and x.dtype == torch.float32
        and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
    )
    assert sorted({train.samples[i][1] for i in range(6)}) == [0, 1, 2]
    x_test, y_test = spec.arrays("test", folder)  # the folder itself works too
    assert x_test.shape == (3, 3, 64, 64) and x_test.dtype == np.float32
    # labels follow the sorted wnids: val_0 is n02 -> index 1, val_1 is n01 -> 0, val_2 is n03 -> 2
    assert list(y_test) == [1, 0, 2]
    assert np.allclose(x_test[1], 40 / 255, atol=0.02)  # JPEG of a flat grey image


def test_npz_shards_split_by_prefix_and_normalised(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "train-0.npz", x=hwc, y=np.arange(5))
    np.savez(tmp_path / "train-1.npz", x=hwc[:2], y=np.array([5, 6]))
    np.savez(tmp_path / "test-0.npz", x=hwc[:3], y=np.array([0, 1, 2]))
    spec = get_dataset("npz")
    for data_dir in (tmp_path, str(tmp_path / "*.npz")):
        x, y = spec.arrays("train", data_dir)
        assert x.shape == (7, 3, 8, 8) and x.dtype == np.float32
        assert np.allclose(x[:5] * 255, hwc.transpose(0, 3, 1, 2)) and list(y) == [
            0,
            1,
            2,
            3,
            4,
            5,
            6,
        ]
        assert spec.arrays("test", data_dir)[0].shape == (3, 3, 8, 8)
    resolved = spec.extra["resolve"](tmp_path)
    assert (
        resolved.input_shape == (3, 8, 8)
        and resolved.nb_classes == 7
        and resolved.default_arch == "cnn"
    )
    with pytest.raises(DatasetNotFoundError, match="test"):
        spec.load("test", tmp_path / "train-0.npz")  # a train-only selection has no test split
    augmented = spec.load("train", tmp_path, augment=True)
    assert augmented[0][0].shape == (3, 8, 8)


def test_npz_single_file_float_chw_and_known_shape(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float32)
    path = tmp_path / "adversarial.npz"
    np.savez(path, x=x, y=np.eye(10)[[3, 1, 4, 1]])  # one-hot labels
    spec = get_dataset("npz")
    x_test, y_test = spec.arrays("test", path)  # no split prefix: the file serves both splits
    assert np.allclose(x_test, x) and list(y_test) == [3, 1, 4, 1]
    resolved = spec.extra["resolve"](path)
    assert (resolved.input_shape, resolved.nb_classes, resolved.default_arch, resolved.eps) == (
        (1, 28, 28),
        5,
        "mnist",
        0.3,
    )
    np.savez(tmp_path / "bad.npz", x=x * 255, y=np.zeros(4, int))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        spec.arrays("test", tmp_path / "bad.npz")


def test_npz_keras_layout(tmp_path: Path) -> None:
    grey = np.zeros((3, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=grey, y_train=[0, 1, 2], x_test=grey[:1], y_test=[9])
    spec = get_dataset("npz")
    assert spec.arrays("train", tmp_path / "mnist.npz")[0].shape == (3, 1, 28, 28)
    assert list(spec.arrays("test", tmp_path / "mnist.npz")[1]) == [9]
    assert spec.extra["resolve"](tmp_path / "mnist.npz").nb_classes == 10


# ------------------------------------------------------------------ real data (../shared/datasets)
@pytest.mark.integration
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_mnist_like(name: str, shared_datasets: Path) -> None:
    spec = get_dataset(name)
    test = spec.load("test", shared_datasets)
    assert len(test) == 10000
    x, y = spec.arrays("test", shared_datasets)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    train = spec.load("train", shared_datasets)
    assert len(train) == 60000
    item, label = train[0]
    assert item.shape == (1, 28, 28) and item.dtype == torch.float32 and 0 <= label < 10


@pytest.mark.integration
def test_real_cifar10_shards(shared_datasets: Path) -> None:
    if not (shared_datasets / "cifar10" / "test-1000.npz").is_file():
        pytest.skip("no shared CIFAR-10 shards")
    spec = get_dataset("cifar10")
    x, y = spec.arrays("test", shared_datasets)
    assert x.shape == (1000, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) == set(range(10))
    assert np.allclose(x.mean(axis=(0, 2, 3)), (0.4914, 0.4822, 0.4465), atol=0.02)
    same = get_dataset("npz").arrays("test", shared_datasets / "cifar10" / "*.npz")
    assert np.array_equal(same[0], x) and np.array_equal(same[1], y)


@pytest.mark.integration
@pytest.mark.slow
def test_real_cifar10_train(shared_datasets: Path) -> None:
    if not (shared_datasets / "cifar10" / "train-0.npz").is_file():
        pytest.skip("no shared CIFAR-10 shards")
    train = get_dataset("cifar10").load("train", shared_datasets / "cifar10")
    assert len(train) == 50000 and train.transform is not None
    item, label = train[0]
    assert (
        item.shape == (3, 32, 32)
        and 0.0 <= float(item.min())
        and float(item.max()) <= 1.0
        and 0 <= label < 10
    )


def test_download_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    calls = []

    def fake_mnist(root: str, train: bool, download: bool) -> None:  # writes what a download would
        calls.append((root, train, download))
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        _write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
        _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([4, 2]))

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    with pytest.raises(DatasetNotFoundError):
        get_dataset("mnist").load("test", tmp_path)  # the default never downloads
    assert calls == []
    _, labels = get_dataset("mnist").arrays("test", tmp_path, download=True)  # no-network-ok: faked
    assert list(labels) == [4, 2]
    assert calls == [(str(tmp_path), False, True)]
