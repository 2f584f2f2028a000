"""``rse``: Random Self-Ensemble (Liu et al., ECCV 2018): the dataset's baseline classifier with
RSE noise layers (``rse-digits``, ``rse-cnn`` or ``rse-vgg19``; :mod:`er_art.baselines.rse`)
trained with
cross-entropy, one Adam step per batch, the noise on, as the RSE authors trained it (no adversarial
training). Its predictions are the mean softmax of ``ensemble`` noisy passes; attack it with
``--eot N`` (its gradients are those of one noisy pass)."""

from __future__ import annotations

from typing import Any

import torch

from er_art.training.algorithm import StepResult
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, cross_entropy_step


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        return cross_entropy_step(classifier, x, y, amp=amp)  # the noise layers are always on

    return step


TRAINER = TrainerSpec(
    name="rse",
    kind="rse",
    description="Random Self-Ensemble: the baseline CNN with noise layers, cross-entropy.",
    make_step=make_step,
    default_archs={"digits": "rse-digits", 1: "rse-cnn", 3: "rse-vgg19"},
)
