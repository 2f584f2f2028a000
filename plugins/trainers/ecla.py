"""``ecla``: the paper's E-CLA ablation: the ER architecture's encoder + head trained with
cross-entropy only (no discriminator, no encoder regularisation; ``regularize=False``)."""

from __future__ import annotations

from typing import Any

from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, algorithm1_batch_step


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    return algorithm1_batch_step(classifier, regularize=False)


TRAINER = TrainerSpec(
    name="ecla",
    kind="er",
    description="E-CLA ablation: encoder + head with cross-entropy only (no discriminator).",
    make_step=make_step,
)
