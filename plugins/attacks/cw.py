"""``cw``: Carlini & Wagner L2 attack (ART ``CarliniL2Method``).

[Carlini & Wagner, 2017] "Towards Evaluating the Robustness of Neural Networks"
(https://arxiv.org/abs/1608.04644). Distance measure: L2. White-box, iterative,
minimal perturbation: it has no eps budget; er-art scores it under an L2 threshold (the paper's
Table 2 uses ``l2 <= 0.005`` normalised per input dimension, see docs/EVALUATION.md).

Arguments (ART names):
    confidence (float): margin kappa of the adversarial logit. (Default: 0.0)
    learning_rate (float): Adam step size. (Default: 0.01)
    binary_search_steps (int): binary-search steps on the constant c. (Default: 10)
    max_iter (int): optimisation steps per binary-search step. (Default: 10)
    initial_const (float): first c. (Default: 0.01)
    max_halving (int): step-size halvings in the line search. (Default: 5)
    max_doubling (int): step-size doublings in the line search. (Default: 5)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128; ART's own default is 1)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W); failures are returned unchanged.

Examples::
    >>> x_adv = get_attack("cw").build(classifier, max_iter=10).generate(x, y)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec


def _build(classifier: Any, **kwargs: Any) -> Any:
    from art.attacks.evasion import CarliniL2Method

    return CarliniL2Method(classifier, verbose=False, **kwargs)


ATTACK = AttackSpec(
    name="cw",
    factory=_build,
    norm="2",
    threat="white-box",
    iterative=True,
    budgeted=False,
    defaults={
        "confidence": 0.0,
        "learning_rate": 0.01,
        "binary_search_steps": 10,
        "max_iter": 10,
        "initial_const": 0.01,
        "max_halving": 5,
        "max_doubling": 5,
        "targeted": False,
        "batch_size": 128,
    },
    normalised_l2=True,
    description="Carlini & Wagner L2 (minimal perturbation); scored under an L2 threshold.",
    paper="Carlini & Wagner, 2017, arXiv:1608.04644",
)
