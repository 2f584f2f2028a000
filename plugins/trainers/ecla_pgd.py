"""``ecla-pgd``: E-CLA + min-max, the control for the ER-Classifier's regulariser.

The ER architecture's encoder and head trained with exactly ``er-pgd``'s PGD min-max (the same
training attack, clean + adversarial batches, ``(CE_clean + CE_adv) / 2``, the same optimisers,
epochs and data), with no discriminator and no encoder regularisation: Algorithm 1 with steps (a)
and (c) left out (:class:`er_art.training.adversarial.ERAdversarialTrainer` with
``regularize=False``). Against ``er-pgd`` it answers the question the paper did not ask: does the
embedding regulariser add robustness to adversarial training? (The paper's own E-CLA, ``ecla``,
trains without min-max.)
"""

from __future__ import annotations

from typing import Any

from er_art.training.adversarial import ERAdversarialTrainer
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, er_min_max_trainer


def make_trainer(
    classifier: Any, attack: AttackSettings | None, **fit_defaults: Any
) -> ERAdversarialTrainer:
    return er_min_max_trainer("ecla-pgd", classifier, attack, regularize=False, **fit_defaults)


def make_step(classifier: Any, attack: AttackSettings | None, amp: bool = False) -> BatchStep:
    return make_trainer(classifier, attack).step


TRAINER = TrainerSpec(
    name="ecla-pgd",
    kind="er",
    description="E-CLA + min-max: er-pgd's encoder, head and PGD min-max, no discriminator.",
    make_step=make_step,
    adversarial=True,
    make_art_trainer=make_trainer,
)
