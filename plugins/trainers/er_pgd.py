"""``er-pgd``: the ER-Classifier with PGD min-max training (the paper's full method).

Per batch, ART's ``ProjectedGradientDescent`` (the dataset's eps / step / iterations, one random
start) attacks the current model in eval mode; Algorithm 1 then trains on the clean and the
adversarial batch: ``(CE_clean + CE_adv) / 2``, discriminator and encoder regularisation on both.
See :class:`er_art.adversarial_trainer.ERAdversarialTrainer`.
"""

from __future__ import annotations

from typing import Any

from er_art.adversarial_trainer import ERAdversarialTrainer
from er_art.trainers import AttackSettings, BatchStep, TrainerSpec, as_er


def make_trainer(
    classifier: Any, attack: AttackSettings | None, **fit_defaults: Any
) -> ERAdversarialTrainer:
    if attack is None:
        raise ValueError("Trainer 'er-pgd' needs attack settings (eps, eps_step, max_iter).")
    return ERAdversarialTrainer(
        as_er(classifier),
        eps=attack.eps,
        eps_step=attack.eps_step,
        max_iter=attack.max_iter,
        num_random_init=attack.num_random_init,
        ratio=attack.adv_ratio,
        use_predictions=attack.use_predictions,
        **fit_defaults,
    )


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
