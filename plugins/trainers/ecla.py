"""``ecla``: the paper's E-CLA ablation: the ER architecture's encoder + head trained with
cross-entropy only (no discriminator, no encoder regularisation; ``regularize=False``)."""

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
        return clf.train_step(x_t, y_t, regularize=False)

    return step


TRAINER = TrainerSpec(
    name="ecla",
    kind="er",
    description="E-CLA ablation: encoder + head with cross-entropy only (no discriminator).",
    make_step=make_step,
)
