"""``plain``: the undefended baseline ("No Defense"): a plain CNN (``cnn`` for 1-channel data,
``vgg19`` for 3-channel) trained with cross-entropy, one Adam step per batch exactly as ART's
``PyTorchClassifier.fit`` does."""

from __future__ import annotations

from typing import Any

import torch

from er_art.training.algorithm import StepResult
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, cross_entropy_step


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        return cross_entropy_step(classifier, x, y, amp=amp)

    return step


TRAINER = TrainerSpec(
    name="plain",
    kind="baseline",
    description="Undefended baseline CNN (cnn / vgg19) with cross-entropy.",
    make_step=make_step,
)
