"""``fgsm``: Fast Gradient Sign Method, L-infinity (ART ``FastGradientMethod``).

[Goodfellow et al., 2015] "Explaining and Harnessing Adversarial Examples"
(https://arxiv.org/abs/1412.6572). Distance measure: Linf. White-box, single step.

Arguments (ART names):
    eps (float): maximum perturbation. (Default: given per call)
    eps_step (float): the step (only used with ``minimal=True``). (Default: ``eps``)
    num_random_init (int): random starts; 0 is the classic FGSM from ``x``. (Default: 0)
    minimal (bool): search the smallest eps that succeeds, steps of ``eps_step``. (Default: False)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W) with ``||x_adv - x||_inf <= eps``.

Examples::
    >>> x_adv = get_attack("fgsm").build(classifier, eps=0.1).generate(x, y)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from er_art.attacks import AttackSpec
from er_art.attacks.view import attack_view


def _build(classifier: Any, **kwargs: Any) -> Any:
    from art.attacks.evasion import FastGradientMethod

    return FastGradientMethod(attack_view(classifier), norm=np.inf, **kwargs)


ATTACK = AttackSpec(
    name="fgsm",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=False,
    defaults={"num_random_init": 0, "minimal": False, "targeted": False, "batch_size": 128},
    eot=True,
    eps_step_rule=lambda eps, _n: eps,
    max_iter_param=None,
    restarts_param="num_random_init",
    description="Fast Gradient Sign Method (Linf), one step of size eps.",
    paper="Goodfellow et al., 2015, arXiv:1412.6572",
)
