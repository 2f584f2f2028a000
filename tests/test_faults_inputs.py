"""Inputs that cannot be right are refused once, at the boundary, in one sentence.

Labels (strings, one class, a stray huge label, a test label the model has no class for), eps
above the data's range, an eps list too long to build, ``--param`` keys an option owns, damaged
MNIST / CIFAR-10 / npz files. Every CLI case exits 2 with one ``error:`` line on stderr and no
traceback; the attack and evaluate cases must be refused before any attack starts (the
``no_attacks`` fixture fails the test if one does). No downloads: the files are tiny fakes in tmp.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art
from er_art.checkpoint import save_classifier
from er_art.datasets import ArrayDataset, get_dataset
from er_art.runs import write_json

runner = CliRunner()
QUICK = ["-n", "8", "--batch-size", "8", "--no-checks", "--device", "cpu"]
TRAIN = ["--arch", "test_digits", "--device", "cpu", "--epochs", "1", "--threads", "1"]


def one_sentence_error(result) -> str:
    """The one ``error:`` line of a refused command (exit 2, nothing else on stderr)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and runs/LATEST land in the test's directory


@pytest.fixture
def no_attacks(monkeypatch):
    """Fail the test if an attack starts: each refusal must come before any work."""

    def started(*args, **kwargs):
        raise AssertionError("an attack started")

    import er_art.evaluation

    monkeypatch.setattr(er_art.evaluation, "attack_sweep", started)
    monkeypatch.setattr(er_art.evaluation, "evaluate_suite", started)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """An untrained 10-class digits model as ``er-art train`` leaves it (run.json, checkpoint)."""
    run_dir = tmp_path_factory.mktemp("runs") / "cnn"
    clf = er_art.build_classifier("test_cnn", input_shape=(1, 8, 8), device_type="cpu", seed=0)
    save_classifier(clf, run_dir / "checkpoint.pt")
    write_json(
        run_dir / "run.json",
        {
            "config": {"dataset": "digits", "data_dir": None, "trainer": "plain", "eps": 0.1},
            "status": "finished",
        },
    )
    return run_dir


def npz(path: Path, labels, n: int | None = None) -> Path:
    """A .npz of ``len(labels)`` blank 8x8 uint8 images and ``labels``."""
    labels = np.asarray(labels)
    np.savez(path, x=np.zeros((n or len(labels), 8, 8), np.uint8), y=labels)
    return path


# ------------------------------------------------------------------------------------ labels
def test_train_refuses_labels_of_one_class(tmp_path):
    data = npz(tmp_path / "one.npz", [3] * 12)
    result = runner.invoke(app, ["train", "--dataset", "npz", "--data-dir", str(data), *TRAIN])
    err = one_sentence_error(result)
    assert str(data) in err and "every training label is 3" in err and "two classes" in err


def test_train_refuses_a_stray_huge_label(tmp_path):
    data = npz(tmp_path / "stray.npz", [0, 1, 2, 0, 1, 2, 0, 1, 2, 60000])
    result = runner.invoke(app, ["train", "--dataset", "npz", "--data-dir", str(data), *TRAIN])
    err = one_sentence_error(result)
    assert str(data) in err and "60000" in err and "60001 classes" in err
    assert "no training example" in err


def test_train_refuses_string_labels(tmp_path):
    data = npz(tmp_path / "text.npz", ["cat", "dog", "cat", "dog"])
    result = runner.invoke(app, ["train", "--dataset", "npz", "--data-dir", str(data), *TRAIN])
    err = one_sentence_error(result)
    assert str(data) in err and "integers" in err and "'cat'" in err


@pytest.mark.parametrize("command", ["attack", "evaluate", "embed"])
def test_test_label_outside_the_models_classes_is_refused(run, tmp_path, command, no_attacks):
    data = npz(tmp_path / "test-0.npz", [0, 1, 2, 3, 12, 5, 6, 7, 8, 9, 0, 1])
    args = [command, "-c", str(run), "--dataset", "npz", "--data-dir", str(data)]
    args += QUICK if command != "embed" else ["-n", "12", "--device", "cpu"]
    err = one_sentence_error(runner.invoke(app, args))
    assert str(data) in err and "label 12" in err and "10 classes of the model" in err
    assert "0 to 9" in err


def test_check_labels_library():
    from er_art.datasets import check_labels

    assert check_labels(np.array([0.0, 2.0, 1.0]), "f", 3).dtype == np.int64
    with pytest.raises(ValueError, match=r"^f: labels must be integers, got non-integer .* 1\.5"):
        check_labels(np.array([0.0, 1.5]), "f")
    with pytest.raises(ValueError, match="label -1 is negative"):
        check_labels(np.array([0, -1]), "f")
    with pytest.raises(ValueError, match=r"label 10 is outside the 10 classes .* 0 to 9\."):
        check_labels(np.array([0, 10]), "f", 10)
    with pytest.raises(ValueError, match="every training label is 4"):
        check_labels(np.array([4, 4]), "f", training=True)
    with pytest.raises(
        ValueError, match=r"largest label, 5, makes 6 classes .*\(1, 2, 3, \.\.\.\)"
    ):
        check_labels(np.array([0, 5]), "f", training=True, complete=True)
    check_labels(np.array([0, 5]), "f", 10, training=True)  # a declared count: gaps may be


def test_array_dataset_refuses_fractional_labels_instead_of_truncating():
    with pytest.raises(ValueError, match="labels must be integers"):
        ArrayDataset(np.zeros((2, 1, 8, 8)), np.array([0.0, 1.7]))


def test_declared_dataset_refuses_a_label_beyond_its_classes(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, labels=bytes([0, 1, 2, 12]), split="t10k")
    with pytest.raises(ValueError, match=r"'mnist' .*label 12 is outside the 10 classes"):
        get_dataset("mnist").load("test", tmp_path)


# ---------------------------------------------------------------------------------------- eps
@pytest.mark.parametrize("command", ["attack", "evaluate"])
def test_eps_above_the_data_range_is_refused(run, command, no_attacks):
    result = runner.invoke(app, [command, "-c", str(run), "--eps", "8", *QUICK])
    err = one_sentence_error(result)
    assert err == "error: eps must be in [0, 1] for data in [0, 1], got 8."


def test_l2_eps_is_bounded_by_the_l2_diameter_of_the_data(run, no_attacks):
    # deepfool measures L2: on 8x8 images in [0, 1] no two inputs are further apart than 8
    result = runner.invoke(app, ["attack", "-c", str(run), "--method", "deepfool", "--eps", "8.5"])
    assert "[0, 8]" in one_sentence_error(result)
    # cw-fast's thresholds are ||delta||_2 / 64: at most 8 / 64
    args = ["attack", "-c", str(run), "--method", "cw-fast", "--l2-threshold", "0.5", *QUICK]
    err = one_sentence_error(runner.invoke(app, args))
    assert err.startswith("error: --l2-threshold") and "[0, 0.125]" in err


def test_check_eps_range_library():
    from er_art.evaluation.eps import check_eps_range, eps_bound

    assert check_eps_range([0.0, 0.3, 1.0]) == [0.0, 0.3, 1.0]
    assert eps_bound("2", (0, 1), (1, 8, 8)) == pytest.approx(8.0)
    assert eps_bound("2", (0, 1), (1, 8, 8), normalised_l2=True) == pytest.approx(0.125)
    assert check_eps_range([7.9], "2", (0, 1), (1, 8, 8)) == [7.9]  # a large L2 eps can be right
    with pytest.raises(ValueError, match=r"eps must be in \[0, 2\] for data in \[-1, 1\], got 3"):
        check_eps_range([3.0], "inf", (-1.0, 1.0))


def test_an_eps_list_too_long_is_refused_before_it_is_built(run, no_attacks):
    result = runner.invoke(app, ["attack", "-c", str(run), "--eps", "0:1:1e-4", *QUICK])
    err = one_sentence_error(result)
    assert "10,001 eps values" in err and "at most 1,000" in err


def test_parse_eps_counts_a_sweep_before_building_it():
    from er_art.evaluation.eps import MAX_EPS_VALUES, parse_eps

    assert len(parse_eps("0:0.999:0.001")) == MAX_EPS_VALUES == 1000
    for text in ("0:1:1e-9", "0:1:1e-320", ",".join(["0.1"] * 1001)):  # 1e-320: a count of inf
        with pytest.raises(ValueError, match="at most 1,000"):
            parse_eps(text)


# ------------------------------------------------------------------------------------ --param
@pytest.mark.parametrize(
    ("command", "args", "key", "option"),
    [
        ("attack", ["--param", "batch_size=3"], "batch_size", "--batch-size"),
        ("attack", ["--param", "targeted=true"], "targeted", "--targeted"),
        ("attack", ["--param", "max_iter=3"], "max_iter", "--max-iter"),
        ("attack", ["--param", "num_random_init=2"], "num_random_init", "--restarts"),
        ("attack", ["--param", "eps_step=0.01"], "eps_step", "--eps-step"),
        ("attack", ["--method", "all", "--param", "apgd-ce.max_iter=3"], "apgd-ce.max_iter",
         "--max-iter"),
        ("evaluate", ["--param", "square.max_iter=5"], "square.max_iter", "--square-iter"),
        ("evaluate", ["--param", "apgd-ce.nb_random_init=2"], "apgd-ce.nb_random_init",
         "--restarts"),
        ("evaluate", ["--param", "batch_size=3"], "batch_size", "--batch-size"),
        ("evaluate", ["--param", "targeted=true"], "targeted", "--targeted"),
    ],
)  # fmt: skip
def test_param_may_not_set_what_an_option_sets(run, command, args, key, option, no_attacks):
    result = runner.invoke(app, [command, "-c", str(run), "--eps", "0.1", *args, *QUICK])
    err = one_sentence_error(result)
    assert f"--param {key}" in err and option in err


def test_unknown_param_lists_only_the_keys_param_may_set(run, no_attacks):
    result = runner.invoke(app, ["attack", "-c", str(run), "--param", "foo=1", *QUICK])
    err = one_sentence_error(result)
    accepted = err.split("accepted: ")[1].rstrip(".").split(", ")
    assert "'foo'" in err and "decay" in accepted
    assert not {"batch_size", "max_iter", "num_random_init", "targeted"} & set(accepted)


def test_paper_protocol_refuses_params_it_would_ignore(run, no_attacks):
    args = ["attack", "-c", str(run), "--protocol", "paper", "--param", "decay=0.9", *QUICK]
    assert "drop --param" in one_sentence_error(runner.invoke(app, args))


def test_params_no_option_sets_pass_the_check():
    from er_art.cli.report import check_params

    check_params({"decay": 0.9, "implementation": "art"}, "attack", ["pgd"])
    check_params({"pgd.decay": 0.9}, "attack", ["pgd"])
    check_params({"square.max_iter": 5, "square.p_init": 0.5}, "attack", ["pgd", "square"], True)
    check_params({"apgd-ce.eps_step": 0.05, "fgsm.num_random_init": 1}, "evaluate",
                 ["apgd-ce", "fgsm"], True)  # fmt: skip


# ------------------------------------------------------------------------------ damaged files
def idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an idx file."""
    dims = np.array(array.shape, ">i4").tobytes()
    return b"\x00\x00\x08" + bytes([array.ndim]) + dims + array.astype(np.uint8).tobytes()


def write_mnist(raw: Path, labels: bytes, split: str = "t10k", images: bytes | None = None):
    raw.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    images = idx(np.zeros((n, 28, 28), np.uint8)) if images is None else images
    (raw / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (raw / f"{split}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx(np.frombuffer(labels, np.uint8)))
    )


def test_truncated_mnist_archive_is_one_sentence_naming_it(run, tmp_path, no_attacks):
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_mnist(raw, labels=bytes(range(10)))
    archive = raw / "t10k-images-idx3-ubyte.gz"
    archive.write_bytes(archive.read_bytes()[:-40])  # an interrupted download
    args = ["attack", "-c", str(run), "--dataset", "mnist", "--data-dir", str(tmp_path / "data")]
    err = one_sentence_error(runner.invoke(app, [*args, *QUICK]))
    assert str(archive) in err and "damaged" in err and "download it again" in err


def test_mnist_idx_cut_short_is_one_sentence():
    from er_art.plugins.datasets.mnist import read_idx

    path = Path("short-idx3-ubyte")
    path.write_bytes(idx(np.zeros((4, 28, 28), np.uint8))[:-100])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte is damaged: .*\(4, 28, 28\)"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(path)


class _RunsCode:
    """A pickle payload that would run a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_batch_with_code_is_one_sentence_and_runs_nothing(run, tmp_path, no_attacks):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    batch = {"data": _RunsCode(marker), "labels": [0]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    args = ["attack", "-c", str(run), "--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]
    err = one_sentence_error(runner.invoke(app, [*args, *QUICK]))
    assert str(folder / "test_batch") in err and "not a CIFAR-10 batch" in err
    assert not marker.exists()


def test_cifar10_batch_cut_short_is_one_sentence(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(data, protocol=2)[:-50])
    with pytest.raises(ValueError, match="test_batch is damaged"):
        get_dataset("cifar10").load("test", tmp_path)


def test_damaged_npz_is_one_sentence(tmp_path):
    good = npz(tmp_path / "good.npz", [0, 1, 2, 3])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:120])
    result = runner.invoke(app, ["train", "--dataset", "npz", "--data-dir", str(bad), *TRAIN])
    err = one_sentence_error(result)
    assert str(bad) in err and "damaged or not a .npz file" in err


# ----------------------------------------------------------------- found while testing the above
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--eps-step", "5"], "--eps-step must be in (0, 1] for data in [0, 1], got 5."),
        (["--param", "decay=0.9", "--param", "random_eps=3"], "takes true or false"),
        (["--method", "all", "--attacks", "pgd,fgsm,pgd"], "'pgd' twice"),
    ],
)
def test_more_attack_options_that_cannot_be_right(run, args, expected, no_attacks):
    result = runner.invoke(app, ["attack", "-c", str(run), "--eps", "0.1", *args, *QUICK])
    assert expected in one_sentence_error(result)


def test_npz_images_with_nan_are_refused(tmp_path):
    path = tmp_path / "nan.npz"
    np.savez(path, x=np.full((2, 8, 8), np.nan, np.float32), y=np.array([0, 1]))
    with pytest.raises(ValueError, match="nan.npz: images hold NaN or infinite values"):
        get_dataset("npz").arrays("test", path)


def test_an_empty_test_split_is_refused(run, tmp_path, no_attacks):
    data = npz(tmp_path / "empty.npz", np.zeros(0, int))
    args = ["attack", "-c", str(run), "--dataset", "npz", "--data-dir", str(data), "--eps", "0.1"]
    assert "has no test examples" in one_sentence_error(runner.invoke(app, [*args, *QUICK]))
