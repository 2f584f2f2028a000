"""``apgd-t``: targeted Auto-PGD over the top classes, L-infinity (AutoAttack's APGD-T).

[Croce & Hein, 2020] "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks" (https://arxiv.org/abs/2003.01690). Distance measure: Linf. White-box,
iterative. For each of the ``n_target_classes`` classes the model ranks highest after the true one
(on the clean input), Auto-PGD (``er_art.attacks.apgd.AutoPGD``) maximises the targeted DLR loss
``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` towards that target, on the examples no earlier
target has broken. Success is misclassification (not reaching the target), as in AutoAttack. Needs
at least 4 classes.

Arguments (ART names):
    eps (float): maximum perturbation. (Default: given per call)
    eps_step (float): initial step size. (Default: ``2 * eps``, the paper's)
    max_iter (int): iterations per target class and restart. (Default: 100)
    nb_random_init (int): random restarts ("restarts"). (Default: 1)
    n_target_classes (int): target classes, the highest-ranked first; capped at nb_classes - 1.
        (Default: 9, AutoAttack's standard version)
    batch_size (int): attack batch size. (Default: 128)
    implementation (str): ``"torch"`` (``er_art.attacks.apgd.AutoPGD``, batched on the model's
        device) or
        ``"art"`` (ART's ``AutoProjectedGradientDescent``). (Default: "torch")

Shape:
    - images: (N, C, H, W) in ``clip_values``; labels: (N,) int or (N, nb_classes) one-hot, the
      TRUE labels.
    - output: (N, C, H, W) with ``||x_adv - x||_inf <= eps``.

Examples::
    >>> x_adv = get_attack("apgd-t").build(classifier, eps=0.1).generate(x, y)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from art.utils import check_and_transform_label_format

from er_art.attacks import AttackSpec, check_implementation
from er_art.attacks.apgd import build_apgd
from er_art.attacks.view import encode_targets


class APGDTargeted(EvasionAttack):
    """APGD-T: APGD on the targeted DLR loss, one target class after another (``implementation``:
    er-art's ``AutoPGD``, ``"torch"``, or ART's APGD, ``"art"``)."""

    attack_params = EvasionAttack.attack_params + [
        "eps",
        "eps_step",
        "max_iter",
        "nb_random_init",
        "n_target_classes",
        "batch_size",
        "implementation",
        "verbose",
    ]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, ClassifierMixin)

    def __init__(
        self,
        estimator: Any,
        eps: float = 0.3,
        eps_step: float = 0.6,
        max_iter: int = 100,
        nb_random_init: int = 1,
        n_target_classes: int = 9,
        batch_size: int = 128,
        implementation: str = "torch",
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator=estimator)
        self.eps = eps
        self.eps_step = eps_step
        self.max_iter = max_iter
        self.nb_random_init = nb_random_init
        # AutoAttack's rule: at most the classes other than the true one
        self.n_target_classes = min(int(n_target_classes), estimator.nb_classes - 1)
        self.batch_size = batch_size
        self.implementation = check_implementation("apgd-t", implementation)
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        nb_classes = self.estimator.nb_classes
        if nb_classes < 4:
            raise ValueError(f"apgd-t needs at least 4 classes (its DLR loss), got {nb_classes}.")
        if int(self.n_target_classes) < 1:
            raise ValueError(f"n_target_classes must be >= 1, got {self.n_target_classes}.")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for ``x`` with TRUE labels ``y`` (the model's own if None)."""
        x = np.asarray(x, dtype=np.float32)
        logits = self.estimator.predict(x, batch_size=self.batch_size)
        if y is None:
            y_int = logits.argmax(1)
        else:
            y_int = check_and_transform_label_format(y, self.estimator.nb_classes).argmax(1)
        ranked = np.argsort(-logits, axis=1)  # classes by clean logit, highest first
        x_adv = x.copy()
        robust = logits.argmax(1) == y_int
        apgd = build_apgd(
            self.estimator,
            "dlr-targeted",
            self.implementation,
            eps=self.eps,
            eps_step=self.eps_step,
            max_iter=self.max_iter,
            targeted=False,  # success = misclassification; the target lives in the loss
            nb_random_init=self.nb_random_init,
            batch_size=self.batch_size,
        )
        for rank in range(1, int(self.n_target_classes) + 1):
            idx = np.flatnonzero(robust)
            if not len(idx):
                break
            rows = encode_targets(y_int[idx], ranked[idx, rank], self.estimator.nb_classes)
            x_adv[idx] = apgd.generate(x[idx], rows)
            pred = self.estimator.predict(x_adv[idx], batch_size=self.batch_size).argmax(1)
            robust[idx] = pred == y_int[idx]
        return x_adv


def _build(classifier: Any, **kwargs: Any) -> Any:
    return APGDTargeted(classifier, **kwargs)


ATTACK = AttackSpec(
    name="apgd-t",
    factory=_build,
    norm="inf",
    threat="white-box",
    iterative=True,
    defaults={
        "max_iter": 100,
        "nb_random_init": 1,
        "n_target_classes": 9,
        "batch_size": 128,
        "implementation": "torch",
    },
    eps_step_rule=lambda eps, _n: 2.0 * eps,
    restarts_param="nb_random_init",
    targeted=False,
    eot=True,
    description="Targeted Auto-PGD (Linf) on the targeted DLR loss over the top classes (APGD-T).",
    paper="Croce & Hein, 2020, arXiv:2003.01690",
)
