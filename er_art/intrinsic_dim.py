"""Intrinsic dimension of a data set by maximum likelihood (Levina & Bickel, NIPS 2004).

The paper picks the embedding dimension near the data's intrinsic dimension (Table 3: 13 / 17 / 20 /
19 for MNIST / CIFAR10 / STL10 / Tiny ImageNet, from 1,000 samples each). With ``T_j(x)`` the
distance from ``x`` to its j-th nearest neighbour (itself excluded)::

    m_k(x) = (k - 2) / sum_{j=1}^{k-1} log(T_k(x) / T_j(x))      # the bias-corrected form

- ``levina-bickel``: average ``m_k(x)`` over the points, then over ``k = k1 .. k2``;
- ``mackay``: MacKay & Ghahramani's variant, the inverse of the average of ``1 / m_k(x)`` over the
  points, then the average over k; with the (k - 2) numerator it reads about (k - 2) / (k - 1) of
  Levina-Bickel's value (≈ 4.3 instead of ≈ 4.95 on a 5-dimensional manifold).

    >>> estimate_intrinsic_dim(x.reshape(len(x), -1), k1=6, k2=12)   # x: (N, ...) array

``er-art intrinsic-dim --dataset mnist --data-dir ../shared/datasets`` runs it on a dataset plugin.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

METHODS = ("levina-bickel", "mackay")


def _check(n_points: int, k1: int, k2: int, method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; accepted: {', '.join(METHODS)}.")
    if k1 < 3:
        raise ValueError(f"k1 must be at least 3 (the estimator divides by k - 2), got {k1}.")
    if k2 < k1:
        raise ValueError(f"k2 must be at least k1 = {k1}, got {k2}.")
    if n_points <= k2:
        raise ValueError(
            f"Need more than k2 = {k2} distinct points to estimate the intrinsic dimension, "
            f"got {n_points}."
        )


def _prepare(x: np.ndarray, n_samples: int | None, seed: int) -> np.ndarray:
    """Points as float64 rows: a random subset of ``n_samples`` (if given), duplicates removed."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"x must hold one point per row (shape (N, ...)), got shape {x.shape}.")
    x = x.reshape(len(x), -1)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values.")
    if n_samples is not None:
        if n_samples <= 0:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples}.")
        if n_samples < len(x):
            x = x[np.random.default_rng(seed).choice(len(x), n_samples, replace=False)]
    unique = np.unique(x, axis=0)  # a duplicate would be a neighbour at distance 0: log(T_k / 0)
    if len(unique) < len(x):
        logger.info("dropped %d duplicate points of %d", len(x) - len(unique), len(x))
    return unique


def intrinsic_dim_by_k(
    x: np.ndarray,
    k1: int = 6,
    k2: int = 12,
    method: str = "levina-bickel",
    n_samples: int | None = None,
    seed: int = 0,
) -> dict[int, float]:
    """The estimate for each ``k`` in ``k1 .. k2`` (see :func:`estimate_intrinsic_dim`)."""
    from sklearn.neighbors import NearestNeighbors

    points = _prepare(x, n_samples, seed)
    _check(len(points), k1, k2, method)
    # kneighbors() without X leaves each point out of its own neighbours: T[:, j-1] = T_j(x).
    dist, _ = NearestNeighbors(n_neighbors=k2).fit(points).kneighbors()
    log_dist = np.log(dist)  # all > 0: duplicates were removed
    estimates: dict[int, float] = {}
    for k in range(k1, k2 + 1):
        sums = log_dist[:, k - 1 : k].sum(axis=1) * (k - 1) - log_dist[:, : k - 1].sum(
            axis=1
        )  # sum_j log(T_k/T_j)
        valid = sums > 0  # zero when the k nearest neighbours are all equidistant: no information
        if not valid.any():
            raise ValueError(
                f"All points have their {k} nearest neighbours at one distance; cannot estimate."
            )
        if not valid.all():
            logger.info(
                "k=%d: skipped %d points whose %d neighbours are equidistant",
                k,
                int((~valid).sum()),
                k,
            )
        inverse = sums[valid] / (k - 2)  # 1 / m_k(x)
        if method == "levina-bickel":
            estimates[k] = float(np.mean(1.0 / inverse))
        else:
            estimates[k] = float(1.0 / np.mean(inverse))
    return estimates


def estimate_intrinsic_dim(
    x: np.ndarray,
    k1: int = 6,
    k2: int = 12,
    method: str = "levina-bickel",
    n_samples: int | None = None,
    seed: int = 0,
) -> float:
    """Maximum-likelihood intrinsic dimension of the points ``x``.

    :param x: points, shape ``(N, ...)``; each is flattened to a vector.
    :param k1: smallest neighbourhood size (default 6; at least 3).
    :param k2: largest neighbourhood size (default 12; at least k1, below the number of points).
    :param method: ``"levina-bickel"`` (default: average m_k over points) or ``"mackay"`` (MacKay &
        Ghahramani: invert the average of 1/m_k).
    :param n_samples: estimate on a random subset of this many points (default: all).
    :param seed: seed of that subset (default 0).
    :return: the estimate averaged over ``k = k1 .. k2``.
    """
    return float(np.mean(list(intrinsic_dim_by_k(x, k1, k2, method, n_samples, seed).values())))


def dataset_sample(
    name: str,
    data_dir: str | Path | None = None,
    split: str = "train",
    n_samples: int | None = 1000,
    seed: int = 0,
) -> np.ndarray:
    """``n_samples`` random images (default 1,000; ``None``: all) of a dataset plugin's ``split``,
    without training augmentation, as float32 ``(n, *input_shape)``."""
    from er_art.datasets import get_dataset

    if n_samples is not None and n_samples <= 0:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples}.")
    spec = get_dataset(name)
    options = {"augment": False} if "augment" in inspect.signature(spec.loader).parameters else {}
    dataset = spec.load(split, data_dir, labels=False, **options)  # the images are all it uses
    n = len(dataset)
    index = (
        np.arange(n)
        if n_samples is None or n_samples >= n
        else np.random.default_rng(seed).choice(n, n_samples, replace=False)
    )
    if (
        hasattr(dataset, "arrays") and len(index) == n
    ):  # everything: in-memory datasets hand it over
        return np.asarray(dataset.arrays()[0], dtype=np.float32)
    # item by item: no float copy of a whole split (MNIST's would take 188 MB for 1,000 images)
    return np.stack([np.asarray(dataset[int(i)][0], dtype=np.float32) for i in np.sort(index)])


def dataset_intrinsic_dim(
    name: str,
    data_dir: str | Path | None = None,
    n_samples: int | None = 1000,
    k1: int = 6,
    k2: int = 12,
    method: str = "levina-bickel",
    split: str = "train",
    seed: int = 0,
) -> dict[int, float]:
    """Per-k intrinsic dimension estimates of ``n_samples`` random images (default 1,000, as in
    the paper) of a dataset plugin's ``split`` (default ``train``); their mean is the estimate."""
    x = dataset_sample(name, data_dir, split, n_samples, seed)
    return intrinsic_dim_by_k(x, k1, k2, method)


def suggest_embedding_dim(
    name: str,
    data_dir: str | Path | None = None,
    n_samples: int = 1000,
    k1: int = 6,
    k2: int = 12,
    seed: int = 0,
) -> int:
    """The rounded Levina-Bickel intrinsic dimension of a dataset (at least 2).

    The paper's guide for the embedding size k (its Table 3 keeps k near it, except MNIST's 4).
    """
    by_k = dataset_intrinsic_dim(name, data_dir, n_samples, k1, k2, "levina-bickel", "train", seed)
    estimate = float(np.mean(list(by_k.values())))
    logger.info("intrinsic dimension of %s: %.2f", name, estimate)
    return max(2, int(round(estimate)))
