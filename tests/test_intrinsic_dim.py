"""Levina-Bickel / MacKay-Ghahramani intrinsic dimension: known manifolds, validation, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from er_art.intrinsic_dim import dataset_sample, estimate_intrinsic_dim, intrinsic_dim_by_k


def _subspace(n: int = 1500, dim: int = 5, ambient: int = 50, seed: int = 0) -> np.ndarray:
    """Gaussian points on a random ``dim``-dimensional linear subspace of R^ambient."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((ambient, ambient)))
    return rng.standard_normal((n, dim)) @ rotation[:dim]


def test_levina_bickel_recovers_linear_subspace() -> None:
    assert estimate_intrinsic_dim(_subspace()) == pytest.approx(5.0, rel=0.10)


def test_mackay_variant_reads_lower() -> None:
    x = _subspace()
    lb = intrinsic_dim_by_k(x, 6, 12, "levina-bickel")
    mk = intrinsic_dim_by_k(x, 6, 12, "mackay")
    assert list(lb) == list(mk) == list(range(6, 13))
    for k in lb:
        assert mk[k] < lb[k]  # the mean of inverses is inverted: Jensen
    mackay = estimate_intrinsic_dim(x, method="mackay")
    assert 0.75 * 5 < mackay < 0.95 * 5  # NOTES: ≈ 4.3 where Levina-Bickel gives ≈ 4.95


def test_swiss_roll_is_two_dimensional() -> None:
    from sklearn.datasets import make_swiss_roll

    x, _ = make_swiss_roll(1500, random_state=0)
    assert estimate_intrinsic_dim(x) == pytest.approx(2.0, rel=0.15)


def test_duplicates_and_image_shapes_are_handled() -> None:
    x = _subspace(800)
    with_duplicates = np.concatenate([x, x[:200]]).reshape(1000, 2, 5, 5)  # images, 200 repeated
    estimate = estimate_intrinsic_dim(with_duplicates)
    assert np.isfinite(estimate) and estimate == pytest.approx(estimate_intrinsic_dim(x))


def test_subsampling_is_seeded() -> None:
    x = _subspace(2000)
    a = estimate_intrinsic_dim(x, n_samples=500, seed=1)
    assert a == estimate_intrinsic_dim(x, n_samples=500, seed=1)
    assert a != estimate_intrinsic_dim(x, n_samples=500, seed=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k1": 2}, "k1 must be at least 3"),
        ({"k1": 8, "k2": 6}, "k2 must be at least k1"),
        ({"method": "mle"}, "accepted: levina-bickel, mackay"),
        ({"n_samples": 10}, "more than k2 = 12"),
        ({"n_samples": 0}, "positive"),
    ],
)
def test_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_intrinsic_dim(_subspace(100), **kwargs)


def test_too_few_distinct_points() -> None:
    x = np.repeat(_subspace(5), 10, axis=0)  # 50 rows, 5 distinct points
    with pytest.raises(ValueError, match="distinct points"):
        estimate_intrinsic_dim(x)


def test_dataset_sample_digits() -> None:
    x = dataset_sample("digits", n_samples=300, seed=0)
    assert x.shape == (300, 1, 8, 8) and x.dtype == np.float32
    assert np.array_equal(x, dataset_sample("digits", n_samples=300, seed=0))


def _run(*args: str):
    from er_art.cli.app import app

    return CliRunner().invoke(app, ["intrinsic-dim", *args])


@pytest.mark.integration
def test_cli_prints_estimate_and_per_k() -> None:
    result = _run(
        "--dataset", "digits", "--n-samples", "500", "--k1", "6", "--k2", "8", "--verbose"
    )
    assert result.exit_code == 0, result.output
    assert "k=6" in result.output and "k=8" in result.output and "k=9" not in result.output
    estimate = float(result.output.strip().splitlines()[-1].rsplit(":", 1)[1])
    assert 2.0 < estimate < 64.0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--k1", "2"], "k1 must be at least 3"),
        (["--n-samples", "0"], "--n-samples must be a positive integer"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "MNIST not found"),
    ],
)
def test_cli_user_errors(args: list[str], match: str) -> None:
    result = _run(*args)
    assert result.exit_code == 2
    assert match in result.output and "Traceback" not in result.output


@pytest.mark.integration
def test_real_mnist_near_paper_value(shared_datasets: Path) -> None:
    x = dataset_sample("mnist", shared_datasets, n_samples=1000, seed=0)
    assert 10.0 < estimate_intrinsic_dim(x) < 16.0  # the paper reports 13 (Table 3)


def test_suggest_embedding_dim_digits() -> None:
    from er_art.intrinsic_dim import suggest_embedding_dim

    k = suggest_embedding_dim("digits", n_samples=500)
    assert isinstance(k, int) and 2 <= k <= 64
