"""t-SNE pictures of a classifier's embedding, clean and adversarial (the paper's Figure 7).

The embeddings ``Q(x)`` of clean images, and optionally of their adversarial versions, are projected
together to 2-D with scikit-learn's t-SNE; clean points are dots coloured by their true class,
successful adversarial examples (predicted as another class than the true one) are down-triangles
coloured by their true class, so one sees them land inside other classes' clusters.

    >>> x_adv = pgd_examples(clf, x, eps=0.3, eps_step=0.01, max_iter=40)
    >>> plot = embedding_figure(clf, x, y, x_adv, path="embedding.png")
    >>> plot.coords.shape, int(plot.adv_success.sum())

``er-art embed`` does this for a trained run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from er_art.checkpoint import atomic_write

logger = logging.getLogger(__name__)

MIN_POINTS = 10  # t-SNE of fewer points says nothing


@dataclass
class EmbeddingPlot:
    """What :func:`embedding_figure` drew."""

    path: Path  # the PNG written
    coords: np.ndarray  # (N, 2) t-SNE coordinates of the clean images
    coords_adv: np.ndarray | None  # (N, 2) coordinates of the adversarial images, or None
    adv_success: np.ndarray | None  # (N,) bool: adversarial prediction != true label, or None
    clean_accuracy: float  # accuracy on the clean images against the true labels
    adv_accuracy: float | None  # accuracy on the adversarial images, or None


def embeddings(classifier: Any, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """``Q(x)`` for an ER-Classifier; the logits for a classifier without one (baselines)."""
    if hasattr(classifier, "embed"):
        return np.asarray(classifier.embed(x, batch_size=batch_size))
    logger.info("%s has no embedding; projecting its logits instead", type(classifier).__name__)
    return np.asarray(classifier.predict(x, batch_size=batch_size))


def pgd_examples(
    classifier: Any,
    x: np.ndarray,
    eps: float,
    eps_step: float,
    max_iter: int,
    seed: int = 0,
    batch_size: int = 128,
) -> np.ndarray:
    """L∞ PGD examples of ``x`` by er-art's PGD (:class:`er_art.attacks.pgd.PGD`, the one training
    and evaluation use) with ``keep="last"``: ART's ``ProjectedGradientDescent`` arithmetic, one
    random start, no restarts, the last iterate.

    As in the reference code, the attack's labels are the model's own clean predictions.

    :param eps: L∞ budget in the data's units; ``eps_step`` the step; ``max_iter`` the steps.
    :param seed: seeds NumPy and torch for the random start (default 0).
    """
    import torch

    from er_art.attacks.pgd import PGD

    if eps < 0 or eps_step <= 0 or max_iter < 1:
        raise ValueError(
            "PGD needs eps >= 0, eps_step > 0 and max_iter >= 1, "
            f"got {eps}, {eps_step}, {max_iter}."
        )
    np.random.seed(seed)
    torch.manual_seed(seed)
    attack = PGD(
        classifier,
        norm=np.inf,
        eps=eps,
        eps_step=eps_step,
        max_iter=max_iter,
        num_random_init=1,
        batch_size=batch_size,
        keep="last",
    )
    return attack.generate(x.astype(np.float32))


def _tsne(points: np.ndarray, seed: int, perplexity: float | None) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(points) - 1) / 3.0) if perplexity is None else perplexity
    if not 0 < perplexity < len(points):
        raise ValueError(f"perplexity must lie in (0, {len(points)}), got {perplexity}.")
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    )
    return tsne.fit_transform(points.astype(np.float64))


def _draw(
    path: Path,
    coords: np.ndarray,
    y: np.ndarray,
    coords_adv: np.ndarray | None,
    success: np.ndarray | None,
    nb_classes: int,
    title: str,
) -> None:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    cmap = colormaps["tab10" if nb_classes <= 10 else "tab20" if nb_classes <= 20 else "viridis"]
    palette = cmap((np.arange(nb_classes) + 0.5) / nb_classes)  # (classes, 4) RGBA, one per class
    fig = Figure(figsize=(7, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(coords[:, 0], coords[:, 1], c=palette[y], s=10, marker="o", alpha=0.8)
    handles = []
    if nb_classes <= 20:
        handles = [
            Line2D([], [], marker="o", linestyle="", color=palette[c], label=str(c))
            for c in range(nb_classes)
        ]
    if coords_adv is not None and success is not None and success.any():
        ax.scatter(
            coords_adv[success, 0],
            coords_adv[success, 1],
            c=palette[y[success]],
            s=36,
            marker="v",
            edgecolors="black",
            linewidths=0.6,
        )
        handles.append(
            Line2D(
                [],
                [],
                marker="v",
                linestyle="",
                color="grey",
                markeredgecolor="black",
                label="adversarial (misclassified)",
            )
        )
    if handles:
        ax.legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=7,
            frameon=False,
        )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def embedding_figure(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_adv: np.ndarray | None = None,
    *,
    path: str | Path,
    seed: int = 0,
    perplexity: float | None = None,
    title: str | None = None,
    batch_size: int = 128,
) -> EmbeddingPlot:
    """Draw the t-SNE map of ``classifier``'s embedding of ``x`` (and ``x_adv``) to PNG ``path``.

    :param classifier: an :class:`~er_art.models.er_classifier.ERClassifier` (its embedding
    ``Q(x)`` is
        projected) or another ART classifier (its logits are).
    :param x: clean images ``(N, *input_shape)``; ``y``: their true labels ``(N,)`` (or one-hot).
    :param x_adv: adversarial versions of ``x`` (same shape), or ``None`` (default) for clean only.
    :param path: the PNG to write (atomically; parent folders are created).
    :param seed: t-SNE's random state (default 0).
    :param perplexity: t-SNE perplexity (default ``min(30, (points - 1) / 3)``).
    :param title: the figure title (default: counts and accuracies).
    :return: an :class:`EmbeddingPlot` with the 2-D coordinates.
    """
    y = np.asarray(y)
    y = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}.")
    if len(x) < MIN_POINTS:
        raise ValueError(f"Need at least {MIN_POINTS} images for a t-SNE map, got {len(x)}.")
    if x_adv is not None and x_adv.shape != x.shape:
        raise ValueError(f"x_adv has shape {x_adv.shape}, x has {x.shape}; they must match.")
    clean_pred = np.argmax(classifier.predict(x, batch_size=batch_size), axis=1)
    clean_accuracy = float(np.mean(clean_pred == y))
    points = embeddings(classifier, x, batch_size)
    success = adv_accuracy = None
    if x_adv is not None:
        adv_pred = np.argmax(classifier.predict(x_adv, batch_size=batch_size), axis=1)
        success = adv_pred != y
        adv_accuracy = float(np.mean(~success))
        points = np.concatenate([points, embeddings(classifier, x_adv, batch_size)])
    logger.info("t-SNE of %d points of dimension %d", len(points), points.shape[1])
    coords_all = _tsne(points.reshape(len(points), -1), seed, perplexity)
    coords, coords_adv = coords_all[: len(x)], (coords_all[len(x) :] if x_adv is not None else None)
    if title is None:
        title = f"{len(x)} test images, clean accuracy {clean_accuracy:.1%}"
        if adv_accuracy is not None:
            title += (
                f"\n{int(success.sum())} successful adversarial examples (▼), "  # type: ignore[union-attr]
                f"accuracy {adv_accuracy:.1%}"
            )
    nb_classes = max(int(getattr(classifier, "nb_classes", 0) or 0), int(y.max()) + 1)
    path = Path(path)
    _draw(path, coords, y, coords_adv, success, nb_classes, title)
    logger.info("wrote %s", path)
    return EmbeddingPlot(path, coords, coords_adv, success, clean_accuracy, adv_accuracy)
