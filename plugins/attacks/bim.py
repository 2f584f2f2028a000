"""``bim``: Basic Iterative Method, L-infinity (``er_art.attacks.pgd.PGD`` from ``x``).

[Kurakin et al., 2017] "Adversarial examples in the physical world"
(https://arxiv.org/abs/1607.02533). Distance measure: Linf. White-box, iterative; PGD without
the random start.

Arguments (ART names):
    eps (float): maximum perturbation. (Default: given per call)
    eps_step (float): step size. (Default: ``eps / 4``)
    max_iter (int): number of steps. (Default: 50)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128)
    implementation (str): ``"torch"``, er-art's ``er_art.attacks.pgd.PGD`` from ``x`` (batched on
        the
        model's device; every adversarial iterate counts), or ``"art"``, ART's
        ``BasicIterativeMethod``. (Default: "torch")

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W) with ``||x_adv - x||_inf <= eps``.

Examples::
    >>> x_adv = get_attack("bim").build(classifier, eps=0.1, max_iter=20).generate(x, y)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec, check_implementation, quarter_eps_step
from er_art.attacks.view import attack_view


def _build(classifier: Any, implementation: str = "torch", **kwargs: Any) -> Any:
    if check_implementation("bim", implementation) == "art":
        from art.attacks.evasion import BasicIterativeMethod

        return BasicIterativeMethod(attack_view(classifier), verbose=False, **kwargs)
    from er_art.attacks.pgd import PGD

    return PGD(attack_view(classifier), num_random_init=0, **kwargs)


ATTACK = AttackSpec(
    name="bim",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    defaults={"max_iter": 50, "targeted": False, "batch_size": 128, "implementation": "torch"},
    eot=True,
    eps_step_rule=quarter_eps_step,
    description="Basic Iterative Method (Linf): PGD from x, no random start.",
    paper="Kurakin et al., 2017, arXiv:1607.02533",
)
