"""``autoattack``: ART's ``AutoAttack`` ensemble, L-infinity — NOT the standard AutoAttack.

ART's ``AutoAttack`` runs APGD-CE, APGD-DLR, DeepFool and Square and keeps, per example, the first
attack that succeeds. The standard AutoAttack of [Croce & Hein, 2020]
(https://arxiv.org/abs/2003.01690) runs APGD-CE, APGD-T (targeted DLR), FAB-T and Square, so
figures from this plugin are NOT comparable to published AutoAttack numbers (e.g. Madry et al.'s
88.5% on MNIST at eps 0.3). Distance measure: Linf. Mixed: white-box parts plus black-box Square.

The members are built here with ART's own default settings (those of ``AutoAttack(attacks=None)``)
but without progress bars, and with their iteration counts exposed:

Arguments (ART names, member settings prefixed):
    eps (float): maximum perturbation. (Default: given per call)
    eps_step (float): initial step size of the APGD members. (Default: ``2 * eps``)
    apgd_max_iter (int): APGD-CE / APGD-DLR iterations (``max_iter`` sets it). (Default: 100)
    nb_random_init (int): APGD restarts and Square restarts (``restarts`` sets it). (Default: 5)
    deepfool_max_iter (int): DeepFool iterations. (Default: 100)
    deepfool_epsilon (float): DeepFool overshoot. (Default: 1e-3)
    square_max_iter (int): Square Attack queries per restart. (Default: 5000)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128)
    parallel_pool_size (int): processes running attacks in parallel; 0: in turn. (Default: 0)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W).

Examples::
    >>> x_adv = get_attack("autoattack").build(classifier, eps=0.1).generate(x, y)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from er_art.attacks import AttackSpec
from er_art.attacks.view import attack_view


def _build(
    classifier: Any,
    *,
    eps: float,
    eps_step: float,
    apgd_max_iter: int,
    nb_random_init: int,
    deepfool_max_iter: int,
    deepfool_epsilon: float,
    square_max_iter: int,
    batch_size: int,
    targeted: bool = False,
    parallel_pool_size: int = 0,
) -> Any:
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, DeepFool, SquareAttack

    apgd = {
        "norm": np.inf,
        "eps": eps,
        "eps_step": eps_step,
        "max_iter": apgd_max_iter,
        "targeted": False,
        "nb_random_init": nb_random_init,
        "batch_size": batch_size,
        "verbose": False,
    }
    members = [
        # the attack view's losses: ART's own loss_type re-wraps the model in a stock classifier
        # whose loss_gradient fills the model's weight gradients
        AutoProjectedGradientDescent(attack_view(classifier, "ce"), loss_type=None, **apgd),
        AutoProjectedGradientDescent(attack_view(classifier, "dlr"), loss_type=None, **apgd),
        DeepFool(
            classifier,
            max_iter=deepfool_max_iter,
            epsilon=deepfool_epsilon,
            nb_grads=10,
            batch_size=batch_size,
            verbose=False,
        ),
        SquareAttack(
            classifier,
            norm=np.inf,
            max_iter=square_max_iter,
            eps=eps,
            p_init=0.8,
            nb_restarts=max(nb_random_init, 1),
            batch_size=batch_size,
            verbose=False,
        ),
    ]
    return AutoAttack(
        classifier,
        norm=np.inf,
        eps=eps,
        eps_step=eps_step,
        attacks=members,
        batch_size=batch_size,
        targeted=targeted,
        parallel_pool_size=parallel_pool_size,
    )


ATTACK = AttackSpec(
    name="autoattack",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    defaults={
        "apgd_max_iter": 100,
        "nb_random_init": 5,
        "deepfool_max_iter": 100,
        "deepfool_epsilon": 1e-3,
        "square_max_iter": 5000,
        "targeted": False,
        "batch_size": 128,
        "parallel_pool_size": 0,
    },
    eps_step_rule=lambda eps, _n: 2.0 * eps,
    max_iter_param="apgd_max_iter",
    restarts_param="nb_random_init",
    description=(
        "ART's AutoAttack ensemble (APGD-CE, APGD-DLR, DeepFool, Square) — "
        "not comparable to published AutoAttack numbers"
    ),
    paper="Croce & Hein, 2020, arXiv:2003.01690 (ART's variant)",
)
