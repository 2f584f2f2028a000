"""``deepfool``: DeepFool, L2 (ART ``DeepFool``).

[Moosavi-Dezfooli et al., 2016] "DeepFool: a simple and accurate method to fool deep neural
networks" (https://arxiv.org/abs/1511.04599). Distance measure: L2. White-box, iterative, minimal
perturbation (no eps budget): er-art counts an example as robust at eps when the attack fails or
needs ``||delta||_2 > eps``. Untargeted only.

Arguments (ART names):
    max_iter (int): maximum iterations. (Default: 100)
    epsilon (float): overshoot added to the final step. (Default: 1e-06)
    nb_grads (int): classes (by score) considered per step. (Default: 10)
    batch_size (int): attack batch size. (Default: 128; ART's own default is 1)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: ignored by ART (the model's predictions).
    - output: (N, C, H, W).

Examples::
    >>> x_adv = get_attack("deepfool").build(classifier, max_iter=50).generate(x)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec


def _build(classifier: Any, **kwargs: Any) -> Any:
    from art.attacks.evasion import DeepFool

    return DeepFool(classifier, verbose=False, **kwargs)


ATTACK = AttackSpec(
    name="deepfool",
    factory=_build,
    norm="2",
    threat="white-box",
    iterative=True,
    budgeted=False,
    defaults={"max_iter": 100, "epsilon": 1e-06, "nb_grads": 10, "batch_size": 128},
    targeted=False,
    attacks_predictions=True,  # ART's DeepFool ignores labels
    description="DeepFool (L2, minimal perturbation, untargeted).",
    paper="Moosavi-Dezfooli et al., 2016, arXiv:1511.04599",
)
