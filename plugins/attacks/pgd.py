"""``pgd``: Projected Gradient Descent, L-infinity (``er_art.attacks.pgd.PGD``).

[Madry et al., 2018] "Towards Deep Learning Models Resistant to Adversarial Attacks"
(https://arxiv.org/abs/1706.06083). Distance measure: Linf. White-box, iterative.

Arguments (ART names):
    eps (float): maximum perturbation, in the data's units. (Default: given per call)
    eps_step (float): step size. (Default: ``eps / 4``)
    max_iter (int): number of steps per restart. (Default: 40)
    num_random_init (int): random starts in the eps-ball ("restarts"), at most; an example counts
        as broken as soon as one restart breaks it, and er-art's evaluation runs each restart only
        on the examples the earlier ones left robust, until 12 restarts in a row break none of
        them (the stopping rule, ``--patience``). (Default: 128; docs/EVALUATION.md says why)
    decay (float | None): momentum decay (MI-FGSM); None is plain PGD. (Default: None)
    random_eps (bool): draw eps at random per example. (Default: False)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128)
    implementation (str): ``"torch"``, er-art's ``er_art.attacks.pgd.PGD`` (batched on the model's
        device;
        every adversarial iterate counts), or ``"art"``, ART's ``ProjectedGradientDescent`` (which
        also runs with ``decay`` or ``random_eps``). (Default: "torch")

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W) with ``||x_adv - x||_inf <= eps``.

Examples::
    >>> attack = get_attack("pgd").build(classifier, eps=0.1)   # 128 restarts x 40 steps of eps/4
    >>> # er-art attack / evaluate stop the restarts earlier: 12 in a row that break nothing
    >>> x_adv = attack.generate(x, y)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from er_art.attacks import AttackSpec, check_implementation, quarter_eps_step
from er_art.attacks.view import attack_view

logger = logging.getLogger(__name__)


def _build(classifier: Any, implementation: str = "torch", **kwargs: Any) -> Any:
    view = attack_view(classifier)
    art_only = kwargs.get("decay") is not None or kwargs.get("random_eps")
    if check_implementation("pgd", implementation) == "art" or art_only:
        from art.attacks.evasion import ProjectedGradientDescent

        if implementation == "torch":
            logger.info("pgd: decay and random_eps are ART's options; running ART's PGD")
        return ProjectedGradientDescent(view, norm=np.inf, verbose=False, **kwargs)
    from er_art.attacks.pgd import PGD

    kwargs.pop("decay", None)
    kwargs.pop("random_eps", None)
    return PGD(view, norm=np.inf, **kwargs)


ATTACK = AttackSpec(
    name="pgd",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    defaults={
        "max_iter": 40,
        "num_random_init": 128,
        "decay": None,
        "random_eps": False,
        "targeted": False,
        "batch_size": 128,
        "implementation": "torch",
    },
    eot=True,
    eps_step_rule=quarter_eps_step,
    restarts_param="num_random_init",
    patience=12,
    description="Projected Gradient Descent (Linf): random starts, steps of eps/4.",
    paper="Madry et al., 2018, arXiv:1706.06083",
)
