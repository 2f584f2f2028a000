"""``square``: Square Attack, L-infinity (``er_art.attacks.square.SquareAttackTorch``, or ART's
``SquareAttack``).

[Andriushchenko et al., 2020] "Square Attack: a query-efficient black-box adversarial attack via
random search" (https://arxiv.org/abs/1912.00049). Distance measure: Linf. Black-box (predictions
only, no gradients): it is the gradient-masking detector of the evaluation, as it should never be
stronger than white-box PGD. Untargeted only.

By default the search runs as tensors on the estimator's device (``SquareAttackTorch``: one window
per example per iteration, one forward pass per iteration; see ``er_art.attacks.square``);
``implementation="art"`` builds ART's ``SquareAttack`` instead (a NumPy loop through ``predict``,
one window per batch).

Arguments (ART names):
    eps (float): maximum perturbation. (Default: given per call)
    max_iter (int): queries (iterations) per restart. (Default: 100)
    p_init (float): initial fraction of pixels changed per square. (Default: 0.8)
    nb_restarts (int): random restarts ("restarts"). (Default: 1)
    batch_size (int): attack batch size. (Default: 128)
    implementation (str): ``"torch"`` (``SquareAttackTorch``) or ``"art"`` (ART's
        ``SquareAttack``). (Default: ``"torch"``)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W) with ``||x_adv - x||_inf <= eps``.

Examples::
    >>> x_adv = get_attack("square").build(classifier, eps=0.1, max_iter=500).generate(x, y)
    >>> art_square = get_attack("square").build(classifier, eps=0.1, implementation="art")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from er_art.attacks import AttackSpec, check_implementation


def _build(classifier: Any, implementation: str = "torch", **kwargs: Any) -> Any:
    if check_implementation("square", implementation) == "art":
        from art.attacks.evasion import SquareAttack

        return SquareAttack(classifier, norm=np.inf, verbose=False, **kwargs)
    from er_art.attacks.square import SquareAttackTorch

    return SquareAttackTorch(classifier, norm=np.inf, verbose=False, **kwargs)


ATTACK = AttackSpec(
    name="square",
    factory=_build,
    norm="inf",
    threat="black-box",
    iterative=True,
    defaults={
        "max_iter": 100,
        "p_init": 0.8,
        "nb_restarts": 1,
        "batch_size": 128,
        "implementation": "torch",
    },
    restarts_param="nb_restarts",
    targeted=False,
    description="Square Attack (Linf, black-box random search).",
    paper="Andriushchenko et al., 2020, arXiv:1912.00049",
)
