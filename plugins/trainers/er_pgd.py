"""``er-pgd``: the ER-Classifier with PGD min-max training (the paper's full method).

Per batch, ART's ``ProjectedGradientDescent`` (the dataset's eps / step / iterations, one random
start) attacks the current model in eval mode; Algorithm 1 then trains on the clean and the
adversarial batch: ``(CE_clean + CE_adv) / 2``, discriminator and encoder regularisation on both.
See :class:`er_art.training.adversarial.ERAdversarialTrainer`.
"""

from __future__ import annotations

from typing import Any

from er_art.training.adversarial import ERAdversarialTrainer
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, er_min_max_trainer


def make_trainer(
    classifier: Any, attack: AttackSettings | None, **fit_defaults: Any
) -> ERAdversarialTrainer:
    return er_min_max_trainer("er-pgd", classifier, attack, **fit_defaults)


def make_step(classifier: Any, attack: AttackSettings | None, amp: bool = False) -> BatchStep:
    return make_trainer(classifier, attack).step


TRAINER = TrainerSpec(
    name="er-pgd",
    kind="er",
    description="ER-Classifier, Algorithm 1 with PGD min-max (clean + adversarial batches).",
    make_step=make_step,
    adversarial=True,
    make_art_trainer=make_trainer,
)
