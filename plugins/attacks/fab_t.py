"""``fab-t``: targeted Fast Adaptive Boundary attack, Linf, as in the standard AutoAttack
(er-art's own ``er_art.attacks.fab.FABAttack``; ART has no FAB).

[Croce & Hein, 2020] "Minimally distorted adversarial examples with a fast adaptive boundary
attack" (https://arxiv.org/abs/1907.02044). Distance measure: Linf. White-box, iterative. FAB
minimises the perturbation by projecting onto linearised decision boundaries; run with a budget,
an example is broken only when FAB's smallest adversarial point is within ``eps``. FAB-T runs once
per target class, the targets being the classes with the highest clean logits after the true one;
it chooses its own targets, so the plugin takes no user targets (the labels are the TRUE labels).

Arguments (ART-style names; defaults are the standard AutoAttack's):
    eps (float): maximum perturbation. (Default: given per call)
    max_iter (int): iterations per run. (Default: 100)
    nb_random_init (int): runs per target ("restarts"); the first starts at x, later ones at a
        random point at distance eps / 2. (Default: 1)
    n_target_classes (int): target classes, by clean logit rank; at most nb_classes - 1 are
        used. (Default: 9)
    alpha_max (float): largest weight of the original point's projection in a step. (Default: 0.1)
    eta (float): overshoot of each projection step. (Default: 1.05)
    beta (float): backward step towards x after a success. (Default: 0.9)
    batch_size (int): attack batch size. (Default: 128)

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot, TRUE.
    - output: (N, C, H, W) float32 with ``||x_adv - x||_inf <= eps``; unbroken examples unchanged.

Examples::
    >>> x_adv = get_attack("fab-t").build(classifier, eps=0.1).generate(x, y)
"""

from __future__ import annotations

from typing import Any

from er_art.attacks import AttackSpec


def _build(classifier: Any, **kwargs: Any) -> Any:
    from er_art.attacks.fab import FABAttack

    return FABAttack(classifier, norm="inf", targeted=True, verbose=False, **kwargs)


ATTACK = AttackSpec(
    name="fab-t",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    budgeted=True,
    defaults={
        "max_iter": 100,
        "nb_random_init": 1,
        "n_target_classes": 9,
        "alpha_max": 0.1,
        "eta": 1.05,
        "beta": 0.9,
        "batch_size": 128,
    },
    max_iter_param="max_iter",
    restarts_param="nb_random_init",
    targeted=False,
    eot=True,
    description="FAB-T: targeted Fast Adaptive Boundary attack (Linf), standard AutoAttack's.",
    paper="Croce & Hein, 2020, arXiv:1907.02044",
)
