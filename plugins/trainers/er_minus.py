"""``er-minus``: the ER-Classifier trained with Algorithm 1 on clean data only (the paper's ER⁻,
no min-max): discriminator step, cross-entropy step and encoder regularisation per batch."""

from __future__ import annotations

from typing import Any

import torch

from er_art.algorithm import StepResult
from er_art.trainers import AttackSettings, BatchStep, TrainerSpec, as_er


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    clf = as_er(classifier)

    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x_t, y_t = clf._prepare_batch(x, y)
        return clf.train_step(x_t, y_t, regularize=True)

    return step


TRAINER = TrainerSpec(
    name="er-minus",
    kind="er",
    description="ER-Classifier without min-max (ER-minus): Algorithm 1 on clean batches.",
    make_step=make_step,
)
