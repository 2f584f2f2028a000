"""``madry``: Madry et al.'s PGD adversarial training of the baseline CNN, as ART's
``AdversarialTrainerMadryPGD`` does it.

``AdversarialTrainerMadryPGD`` builds ART's ``ProjectedGradientDescent(classifier, eps, eps_step,
max_iter, num_random_init=1)`` and runs ``AdversarialTrainer(classifier, attack, ratio=1.0)``: per
batch every example is replaced by its PGD example crafted with the true labels against the current
model (eval mode while attacked), then one cross-entropy optimizer step on the adversarial batch
(``classifier.fit(x_adv, y, nb_epochs=1)``). The run loop of ``er-art train`` drives batches itself
(for checkpoints and exact resumption), so this plugin builds ART's ``AdversarialTrainerMadryPGD``,
takes its attack object and does exactly that per batch: the same attack (its settings run on
device tensors by ``er_art.attacks.pgd.PGD`` with ``keep="last"``, the arithmetic of ART's PyTorch
PGD iteration; the random start drawn with torch's RNG), ratio 1.0, the same optimizer step. The
training accuracy it reports is on the adversarial batch. ``make_art_trainer`` returns ART's own
``AdversarialTrainerMadryPGD`` for library use.
"""

from __future__ import annotations

from typing import Any

import torch
from art.defences.trainer import AdversarialTrainerMadryPGD

from er_art.training.adversarial import generate_on_device
from er_art.training.algorithm import StepResult
from er_art.training.trainers import AttackSettings, BatchStep, TrainerSpec, cross_entropy_step


def _need(attack: AttackSettings | None) -> AttackSettings:
    if attack is None:
        raise ValueError("Trainer 'madry' needs attack settings (eps, eps_step, max_iter).")
    return attack


def make_trainer(
    classifier: Any, attack: AttackSettings | None, nb_epochs: int = 20, batch_size: int = 128
) -> AdversarialTrainerMadryPGD:
    attack = _need(attack)
    return AdversarialTrainerMadryPGD(
        classifier,
        nb_epochs=nb_epochs,
        batch_size=batch_size,
        eps=attack.eps,
        eps_step=attack.eps_step,
        max_iter=attack.max_iter,
        num_random_init=attack.num_random_init,
    )


def make_step(classifier: Any, attack: AttackSettings | None, amp: bool = False) -> BatchStep:
    pgd = make_trainer(classifier, attack).attack  # ART's own trainer, for its PGD object

    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x_adv = generate_on_device(pgd, x, y, amp=amp)  # ratio 1.0: the whole batch, true labels
        return cross_entropy_step(classifier, x_adv, y, amp=amp)

    return step


TRAINER = TrainerSpec(
    name="madry",
    kind="baseline",
    description="Madry's PGD adversarial training of the baseline CNN (ART's MadryPGD trainer).",
    make_step=make_step,
    adversarial=True,
    make_art_trainer=make_trainer,
)
