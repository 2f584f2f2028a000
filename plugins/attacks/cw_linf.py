"""``cw-linf``: Carlini & Wagner L-infinity attack (ART ``CarliniLInfMethod``).

[Carlini & Wagner, 2017] "Towards Evaluating the Robustness of Neural Networks"
(https://arxiv.org/abs/1608.04644). Distance measure: Linf. White-box, iterative, minimal
perturbation (ART 1.20's version takes no eps): er-art counts an example as robust at eps when the
attack fails or needs ``||delta||_inf > eps``.

Arguments (ART names):
    confidence (float): margin kappa of the adversarial logit. (Default: 0.0)
    learning_rate (float): Adam step size. (Default: 0.01)
    max_iter (int): optimisation steps per constant. (Default: 10)
    decrease_factor (float): shrink factor of the Linf bound tau. (Default: 0.9)
    initial_const (float): first constant c. (Default: 1e-05)
    largest_const (float): largest c tried. (Default: 20.0)
    const_factor (float): growth factor of c. (Default: 2.0)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128; ART's own default is 1)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W).

Examples::
    >>> x_adv = get_attack("cw-linf").build(classifier, max_iter=10).generate(x, y)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec


def _build(classifier: Any, **kwargs: Any) -> Any:
    from art.attacks.evasion import CarliniLInfMethod

    return CarliniLInfMethod(classifier, verbose=False, **kwargs)


ATTACK = AttackSpec(
    name="cw-linf",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    budgeted=False,
    defaults={
        "confidence": 0.0,
        "learning_rate": 0.01,
        "max_iter": 10,
        "decrease_factor": 0.9,
        "initial_const": 1e-05,
        "largest_const": 20.0,
        "const_factor": 2.0,
        "targeted": False,
        "batch_size": 128,
    },
    description="Carlini & Wagner Linf (minimal perturbation); robust at eps if it needs more.",
    paper="Carlini & Wagner, 2017, arXiv:1608.04644",
)
