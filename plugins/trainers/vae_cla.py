"""``vae-cla``: the paper's VAE-CLA ablation (Figure 3): a VAE encoder on the dataset's ER encoder
backbone (``vae-digits``, ``vae-mnist``, ``vae-cifar10``, ...), the reparameterised ``z`` into the
classifier head, one Adam step per batch on CE + beta * KL(N(mu, sigma^2) || N(0, I))
(:func:`er_art.baselines.vae_cla.vae_cla_step`); prediction and attacks through ``mu``.

In the run's metrics ``ce`` is the cross-entropy, ``reg`` the KL divergence unweighted (so a
``beta = 0`` run still shows it) and ``disc`` 0 (no critic).
"""

from __future__ import annotations

from typing import Any

import torch

from er_art.baselines.vae_cla import VAEClassifier, vae_cla_step
from er_art.training.algorithm import StepResult
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, prepare_baseline_batch


def make_step(
    classifier: Any, attack: AttackSettings | None = None, amp: bool = False
) -> BatchStep:
    if not isinstance(classifier, VAEClassifier):
        raise ValueError(
            f"Trainer 'vae-cla' needs a VAEClassifier (a vae-* architecture), "
            f"got {type(classifier).__name__}."
        )

    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x_t, y_t = prepare_baseline_batch(classifier, x, y)
        res = vae_cla_step(classifier.vae, classifier.optimizer, x_t, y_t, amp=amp)
        zero = torch.zeros((), device=x_t.device)
        return StepResult(ce=res.ce, disc=zero, reg=res.kl, correct=res.correct)

    return step


TRAINER = TrainerSpec(
    name="vae-cla",
    kind="vae",
    description="VAE-CLA ablation: VAE encoder (mu, log sigma^2) + head, CE + beta * KL.",
    make_step=make_step,
    default_archs={"*": "vae-{arch}"},  # the VAE version of the dataset's ER architecture
)
