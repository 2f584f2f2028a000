"""``hsj``: HopSkipJump, L2 (ART ``HopSkipJump``).

[Chen et al., 2020] "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack"
(https://arxiv.org/abs/1904.02144). Distance measure: L2. Black-box (decision-based: predicted
labels only), iterative, minimal perturbation (no eps budget): er-art counts an example as robust
at eps when the attack fails or needs ``||delta||_2 > eps``.

Arguments (ART names):
    max_iter (int): iterations. (Default: 50)
    max_eval (int): maximum evaluations for the gradient estimate. (Default: 10000)
    init_eval (int): initial evaluations for the gradient estimate. (Default: 100)
    init_size (int): maximum trials for the initial adversarial example. (Default: 100)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): prediction batch size. (Default: 128)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W).

Examples::
    >>> x_adv = get_attack("hsj").build(classifier, max_iter=10, max_eval=1000).generate(x, y)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec


def _build(classifier: Any, **kwargs: Any) -> Any:
    from art.attacks.evasion import HopSkipJump

    return HopSkipJump(classifier, norm=2, verbose=False, **kwargs)


ATTACK = AttackSpec(
    name="hsj",
    factory=_build,
    norm="2",
    threat="black-box",
    iterative=True,
    budgeted=False,
    defaults={
        "max_iter": 50,
        "max_eval": 10000,
        "init_eval": 100,
        "init_size": 100,
        "targeted": False,
        "batch_size": 128,
    },
    description="HopSkipJump (L2, decision-based black-box, minimal perturbation).",
    paper="Chen et al., 2020, arXiv:1904.02144",
)
