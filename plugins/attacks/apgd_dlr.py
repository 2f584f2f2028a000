"""``apgd-dlr``: Auto-PGD, difference-of-logits-ratio loss, Linf (``er_art.attacks.apgd.AutoPGD``).

[Croce & Hein, 2020] "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks" (https://arxiv.org/abs/2003.01690). Distance measure: Linf. White-box,
iterative. The DLR loss is shift- and scale-invariant in the logits, so it is not fooled by
saturated softmax outputs; it needs at least 3 classes.

Arguments (ART names):
    eps (float): maximum perturbation. (Default: given per call)
    eps_step (float): initial step size. (Default: ``2 * eps``)
    max_iter (int): iterations per restart. (Default: 50; the paper's runs use 100. The DLR loss
        needed more iterations than cross-entropy to converge: docs/EVALUATION.md)
    nb_random_init (int): random restarts ("restarts"), at most, each on the examples the earlier
        ones left robust, until 8 restarts in a row break none of them (the stopping rule,
        ``--patience``; not measured for DLR: APGD-CE's). (Default: 128: many restarts converged
        where few long ones did not;
        docs/EVALUATION.md. ART's default and AutoAttack's "plus" version use 5 x 100, the standard
        AutoAttack 1 x 100)
    targeted (bool): targeted attack. (Default: False)
    batch_size (int): attack batch size. (Default: 128)
    implementation (str): ``"torch"``, er-art's ``er_art.attacks.apgd.AutoPGD`` (batched on the
        model's
        device; every adversarial iterate counts), or ``"art"``, ART's
        ``AutoProjectedGradientDescent`` (a NumPy loop; returns the last iterate). (Default:
        "torch")

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot.
    - output: (N, C, H, W) with ``||x_adv - x||_inf <= eps``.

Examples::
    >>> x_adv = get_attack("apgd-dlr").build(classifier, eps=0.1, max_iter=50).generate(x, y)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec
from er_art.attacks.apgd import build_apgd


def _build(classifier: Any, **kwargs: Any) -> Any:
    # ART's own loss_type="difference_logits_ratio" re-wraps the model in a stock classifier (weight
    # gradients filled, no EOT); er-art's attack view gives the loss with input-only gradients.
    return build_apgd(classifier, "dlr", **kwargs)


ATTACK = AttackSpec(
    name="apgd-dlr",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    defaults={
        "max_iter": 50,
        "nb_random_init": 128,
        "targeted": False,
        "batch_size": 128,
        "implementation": "torch",
    },
    eps_step_rule=lambda eps, _n: 2.0 * eps,
    restarts_param="nb_random_init",
    patience=8,
    eot=True,
    description="Auto-PGD (Linf) on the difference-of-logits-ratio loss.",
    paper="Croce & Hein, 2020, arXiv:2003.01690",
)
