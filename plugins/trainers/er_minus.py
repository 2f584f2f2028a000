"""``er-minus``: the ER-Classifier trained with Algorithm 1 on clean data only (the paper's ER⁻,
no min-max): discriminator step, cross-entropy step and encoder regularisation per batch."""

from __future__ import annotations

from typing import Any

from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, algorithm1_batch_step


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    return algorithm1_batch_step(classifier, regularize=True)


TRAINER = TrainerSpec(
    name="er-minus",
    kind="er",
    description="ER-Classifier without min-max (ER-minus): Algorithm 1 on clean batches.",
    make_step=make_step,
)
