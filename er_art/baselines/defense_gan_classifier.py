"""The ART classifier of a Defense-GAN (:class:`~er_art.baselines.defense_gan.DefenseGANModel`).

:class:`DefenseGANClassifier` is a ``PyTorchClassifier`` whose module is the whole defence:

- ``predict`` is the classifier on the projection, ``C(G(z*))``, with the model's projection
  settings (``projection_steps`` L, ``restarts`` R, ...);
- ``loss_gradient`` / ``class_gradient`` follow the model's gradient mode: ``"bpda"`` (identity
  backward through the projection, Athalye et al. 2018; the honest one) or ``"naive"`` (through the
  unrolled L steps). Switch it on a loaded classifier, ``clf.gradient = "naive"``, or at load
  time, ``er_art.load_classifier(run, options={"gradient": "naive"})``; either is recorded in the
  classifier's config, so a copy saved with ``er_art.save_classifier`` keeps it;
- ``fit`` / ``fit_generator`` train the defence
(:func:`~er_art.baselines.defense_gan.defense_gan_step`: a
  WGAN-GP critic step, a generator step every ``n_critic``-th call, a cross-entropy step of C on
  the clean batch), not ART's cross-entropy through the projection;
- ``epoch_logits`` is C on the input itself, without the projection: the per-epoch test accuracy
  of ``er-art train`` reads it (L x R generator passes per image are too slow for every epoch).

    >>> clf = er_art.load_classifier("runs/digits-defense-gan-...")   # a DefenseGANClassifier
    >>> clf.configure(projection_steps=200, restarts=10)              # the paper's L, R
    >>> clf.gradient = "naive"                                        # attack through the steps
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier

from er_art.baselines.defense_gan import DefenseGANModel, defense_gan_step
from er_art.training.algorithm import StepResult
from er_art.training.step_fit import StepFitted

logger = logging.getLogger(__name__)


class DefenseGANClassifier(StepFitted, PyTorchClassifier):
    """The ART classifier of a :class:`DefenseGANModel` (see the module docstring)."""

    step_log = (("ce", "ce"), ("wasserstein", "disc"))

    @property
    def defense_gan(self) -> DefenseGANModel:
        model = self.model
        if not isinstance(model, DefenseGANModel):
            raise TypeError(
                f"DefenseGANClassifier needs a DefenseGANModel, got {type(model).__name__}."
            )
        return model

    # ------------------------------------------------------------------ settings
    def configure(self, **settings: Any) -> None:
        """Set projection or training settings of the model (``gradient``,
        ``projection_steps``, ``restarts``, ``projection_lr``, ...; each checked, one sentence
        naming a bad value) and record them in the classifier's config."""
        model = self.defense_gan
        known = model.settings()
        for name, value in settings.items():
            if name not in known:
                raise ValueError(
                    f"Defense-GAN has no setting {name!r}; accepted: {', '.join(sorted(known))}."
                )
            setattr(model, name, value)
        config = getattr(self, "er_art_config", None)
        if isinstance(config, dict):
            options = config.setdefault("arch_options", {})
            options.update({name: model.settings()[name] for name in settings})
        if settings:
            logger.info("Defense-GAN settings: %s", model.settings())

    @property
    def gradient(self) -> str:
        """``"bpda"`` or ``"naive"``: how ``loss_gradient`` / ``class_gradient`` pass the
        projection."""
        return self.defense_gan.gradient

    @gradient.setter
    def gradient(self, value: str) -> None:
        self.configure(gradient=value)

    @property
    def projection_steps(self) -> int:
        """L: gradient steps of the projection."""
        return self.defense_gan.projection_steps

    @projection_steps.setter
    def projection_steps(self, value: int) -> None:
        self.configure(projection_steps=value)

    @property
    def restarts(self) -> int:
        """R: random starts of the projection."""
        return self.defense_gan.restarts

    @restarts.setter
    def restarts(self, value: int) -> None:
        self.configure(restarts=value)

    # ------------------------------------------------------------------ training
    def epoch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """C's logits ``(B, nb_classes)`` on a preprocessed batch itself, without the projection
        (no gradient): what the training loop's per-epoch test accuracy reads."""
        with torch.no_grad():
            return self.defense_gan.classifier(x.to(self._device, torch.float32))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """One :func:`defense_gan_step` on a raw batch (through ART's fit-time preprocessing),
        with the model's ``n_critic`` and ``lambda_gp``."""
        from er_art.training.trainers import prepare_baseline_batch

        if self.optimizer is None:
            raise ValueError("The classifier has no optimizer to train with.")
        model = self.defense_gan
        x_t, y_t = prepare_baseline_batch(self, x, y)
        return defense_gan_step(
            model, self.optimizer, x_t, y_t, n_critic=model.n_critic, lambda_gp=model.lambda_gp
        )

    def __repr__(self) -> str:
        s = self.defense_gan.settings()
        return (
            f"DefenseGANClassifier(projection_steps={s['projection_steps']}, "
            f"restarts={s['restarts']}, gradient={s['gradient']!r}, "
            f"nb_classes={self.nb_classes}, device={self._device})"
        )
