"""``defense-gan``: Defense-GAN (Samangouei et al., ICLR 2018), the paper's Table 2 baseline: a
WGAN-GP generator and critic trained on the clean training data and a classifier trained on clean
data (``defense-gan-digits``, ``defense-gan-mnist``, ``defense-gan-cifar10``), one batch at a time
by :func:`er_art.baselines.defense_gan.defense_gan_step`: a critic step, a generator step every
``n_critic``-th batch, a cross-entropy step of the classifier; one Adam over the model's three
parameter groups (G and D at ``--lr`` with betas (0.5, 0.9), the classifier at the
``classifier_lr`` option).

In the run's metrics ``ce`` is the classifier's cross-entropy, ``disc`` the critic's Wasserstein
estimate E D(x) - E D(G(z)) and ``reg`` its weighted gradient penalty. ``test_acc`` is the
classifier's accuracy on the test images themselves, without the projection (L x R generator
passes per image are too slow for every epoch); the trained ART classifier predicts through the
projection, ``C(G(z*))``. Attack it with both gradient modes (``gradient`` option: ``bpda``, the
honest one, and ``naive``) and count the worst case."""

from __future__ import annotations

import logging
from typing import Any

import torch

from er_art.baselines.defense_gan_classifier import DefenseGANClassifier
from er_art.training.algorithm import StepResult
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec

logger = logging.getLogger(__name__)


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    if not isinstance(classifier, DefenseGANClassifier):
        raise ValueError(
            "Trainer 'defense-gan' needs a DefenseGANClassifier (a defense-gan-* architecture), "
            f"got {type(classifier).__name__}."
        )
    if amp:  # the gradient penalty's double backward is kept in float32
        logger.warning("trainer 'defense-gan' trains in float32; --amp is ignored")

    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        return classifier.train_step(x, y)

    return step


TRAINER = TrainerSpec(
    name="defense-gan",
    kind="defense-gan",
    description="Defense-GAN: WGAN-GP generator / critic + classifier on clean data.",
    make_step=make_step,
    default_archs={
        "digits": "defense-gan-digits",
        1: "defense-gan-mnist",  # MNIST, Fashion-MNIST
        3: "defense-gan-cifar10",
    },
)
