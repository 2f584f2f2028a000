"""ART's ``fit`` / ``fit_generator`` over a classifier's own per-batch step.

For classifiers whose training is not ART's cross-entropy (VAE-CLA's CE + beta * KL, Defense-GAN's
WGAN-GP + classifier step): :class:`StepFitted` gives them ART's training API over their
``train_step(x_b, y_b)``.

    class VAEClassifier(StepFitted, PyTorchClassifier):
        step_log = (("ce", "ce"), ("kl", "kl"))
        def train_step(self, x, y): ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

logger = logging.getLogger(__name__)


def fit_with_step(
    classifier: PyTorchClassifier,
    train_step: Callable[[torch.Tensor, torch.Tensor], Any],
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 128,
    nb_epochs: int = 10,
    drop_last: bool = False,
    on_epoch: Callable[[int, Any], None] | None = None,
) -> None:
    """ART's ``fit(x, y, batch_size, nb_epochs)`` over a model's own per-batch step (a
    classifier whose training is not ART's cross-entropy: VAE-CLA, Defense-GAN).

    Labels may be one-hot or integers; each epoch takes a fresh permutation from torch's global
    RNG; batches of one example are skipped (BatchNorm cannot train on them);
    ``train_step(x_b, y_b)`` gets raw CPU tensors (float32, int64) and returns the step's result,
    handed with the epoch number to ``on_epoch`` after the epoch's last batch. The model is left
    in eval mode.
    """
    from art.utils import check_and_transform_label_format

    y_arr = np.asarray(check_and_transform_label_format(y, nb_classes=classifier.nb_classes))
    if y_arr.ndim == 2:
        y_arr = y_arr.argmax(axis=1)
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    y_t = torch.from_numpy(y_arr.astype(np.int64))
    n = len(x_t)
    n_batches = n // batch_size if drop_last else int(np.ceil(n / batch_size))
    for epoch in range(nb_epochs):
        perm = torch.randperm(n)
        result = None
        for b in range(n_batches):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            if len(idx) >= 2:
                result = train_step(x_t[idx], y_t[idx])
        if on_epoch is not None:
            on_epoch(epoch, result)
    classifier.model.eval()


def fit_generator_with_step(
    classifier: PyTorchClassifier,
    train_step: Callable[[torch.Tensor, torch.Tensor], Any],
    generator: Any,
    nb_epochs: int = 20,
) -> None:
    """ART's ``fit_generator`` over a model's own per-batch step (see :func:`fit_with_step`)."""
    from er_art.models.er_classifier import generator_batches

    for _ in range(nb_epochs):
        for x_b, y_b in generator_batches(generator):
            y_arr = np.asarray(y_b)
            if y_arr.ndim == 2:
                y_arr = y_arr.argmax(axis=1)
            x_t = x_b if isinstance(x_b, torch.Tensor) else torch.from_numpy(np.asarray(x_b))
            train_step(x_t.float(), torch.from_numpy(y_arr.astype(np.int64)))
    classifier.model.eval()


class StepFitted:
    """ART's ``fit`` / ``fit_generator`` over ``self.train_step(x_b, y_b)`` (a mixin, before
    ``PyTorchClassifier`` in the bases). ``step_log`` names the step result's fields logged after
    each epoch with ``verbose``: ``(label, attribute)`` pairs."""

    step_log: tuple[tuple[str, str], ...] = (("ce", "ce"),)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        raise NotImplementedError

    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int = 128,
        nb_epochs: int = 10,
        training_mode: bool = True,
        drop_last: bool = False,
        scheduler: Any = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        """Train with :meth:`train_step` for ``nb_epochs`` over ``(x, y)`` (one-hot or integer
        labels); ``scheduler`` (optional) is stepped once per epoch."""

        def on_epoch(epoch: int, res: Any) -> None:
            if scheduler is not None:
                scheduler.step()
            if verbose and res is not None:
                fields = "  ".join(
                    f"{label} {float(getattr(res, attr)):.4f}" for label, attr in self.step_log
                )
                logger.info("epoch %d/%d: last batch %s", epoch + 1, nb_epochs, fields)

        fit_with_step(self, self.train_step, x, y, batch_size, nb_epochs, drop_last, on_epoch)  # type: ignore[arg-type]

    def fit_generator(self, generator: Any, nb_epochs: int = 20, **kwargs: Any) -> None:
        """Train with :meth:`train_step` from an ART ``DataGenerator``."""
        fit_generator_with_step(self, self.train_step, generator, nb_epochs)  # type: ignore[arg-type]
