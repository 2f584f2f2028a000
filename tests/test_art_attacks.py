"""Real ART evasion attacks run against the ER-Classifier (small batches, few iterations)."""

from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import (
    AutoAttack,
    AutoProjectedGradientDescent,
    BasicIterativeMethod,
    CarliniL2Method,
    CarliniLInfMethod,
    DeepFool,
    FastGradientMethod,
    HopSkipJump,
    ProjectedGradientDescent,
    SquareAttack,
)
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)

EPS = 0.2


def accuracy(clf, x, y) -> float:
    return float((clf.predict(x).argmax(1) == y).mean())


def check_examples(x_adv, x, eps=None):
    assert x_adv.shape == x.shape
    assert np.isfinite(x_adv).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    if eps is not None:
        assert np.abs(x_adv - x).max() <= eps + 1e-5


def test_pgd_uses_the_pytorch_implementation_and_lowers_accuracy(trained_digits, digits):
    clf = trained_digits
    x, y = digits[2][:100], digits[3][:100]
    attack = ProjectedGradientDescent(
        clf, eps=EPS, eps_step=0.02, max_iter=10, batch_size=100, verbose=False
    )
    assert isinstance(attack._attack, ProjectedGradientDescentPyTorch)
    x_adv = attack.generate(x)
    check_examples(x_adv, x, EPS)
    clean, robust = accuracy(clf, x, y), accuracy(clf, x_adv, y)
    assert clean > 0.5
    assert robust < clean - 0.2
    assert not clf.er_model.training


def test_pgd_on_float64_input(trained_digits, digits):
    x = digits[2][:16].astype(np.float64)
    attack = ProjectedGradientDescent(
        trained_digits, eps=EPS, eps_step=0.05, max_iter=3, verbose=False
    )
    check_examples(attack.generate(x), x, EPS)


ATTACKS = {
    "fgsm": lambda c: FastGradientMethod(c, eps=EPS),
    "bim": lambda c: BasicIterativeMethod(c, eps=EPS, eps_step=0.05, max_iter=5, verbose=False),
    "cw-l2": lambda c: CarliniL2Method(
        c, max_iter=3, binary_search_steps=2, batch_size=16, verbose=False
    ),
    "cw-linf": lambda c: CarliniLInfMethod(
        c,
        max_iter=3,
        initial_const=0.1,
        largest_const=0.5,
        decrease_factor=0.3,
        batch_size=16,
        verbose=False,
    ),
    "deepfool": lambda c: DeepFool(c, max_iter=5, nb_grads=10, batch_size=16, verbose=False),
    "apgd-ce": lambda c: AutoProjectedGradientDescent(
        c, eps=EPS, eps_step=0.05, max_iter=5, nb_random_init=1, batch_size=16, verbose=False
    ),
    "apgd-dlr": lambda c: AutoProjectedGradientDescent(
        c,
        eps=EPS,
        eps_step=0.05,
        max_iter=5,
        nb_random_init=1,
        batch_size=16,
        loss_type="difference_logits_ratio",
        verbose=False,
    ),
    "square": lambda c: SquareAttack(
        c, eps=EPS, max_iter=10, nb_restarts=1, batch_size=16, verbose=False
    ),
    "hsj": lambda c: HopSkipJump(
        c, max_iter=2, max_eval=20, init_eval=5, init_size=10, batch_size=16, verbose=False
    ),
}
LINF_BOUNDED = {"fgsm", "bim", "apgd-ce", "apgd-dlr", "square"}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_runs_and_returns_valid_examples(name, trained_digits, digits):
    x, y = digits[2][:16], digits[3][:16]
    attack = ATTACKS[name](trained_digits)
    x_adv = attack.generate(x, y=np.eye(10)[y]) if name != "hsj" else attack.generate(x)
    check_examples(x_adv, x, EPS if name in LINF_BOUNDED else None)
    if name in LINF_BOUNDED:  # attacks on the true label never help it (DeepFool / C&W may)
        assert accuracy(trained_digits, x_adv, y) <= accuracy(trained_digits, x, y)
    assert not trained_digits.er_model.training


def test_hopskipjump_on_float64_input(trained_digits, digits):
    x = digits[2][:8].astype(np.float64)
    attack = HopSkipJump(
        trained_digits, max_iter=1, max_eval=10, init_eval=5, init_size=10, verbose=False
    )
    check_examples(attack.generate(x), x)


def test_autoattack_runs(trained_digits, digits):
    x, y = digits[2][:16], digits[3][:16]
    attacks = [
        AutoProjectedGradientDescent(
            trained_digits,
            eps=EPS,
            eps_step=0.05,
            max_iter=3,
            nb_random_init=1,
            batch_size=16,
            verbose=False,
        ),
        SquareAttack(
            trained_digits, eps=EPS, max_iter=5, nb_restarts=1, batch_size=16, verbose=False
        ),
        DeepFool(trained_digits, max_iter=3, nb_grads=10, batch_size=16, verbose=False),
    ]
    attack = AutoAttack(
        trained_digits, norm=np.inf, eps=EPS, eps_step=0.05, attacks=attacks, batch_size=16
    )
    x_adv = attack.generate(x, y=np.eye(10)[y])
    check_examples(x_adv, x)
    assert accuracy(trained_digits, x_adv, y) <= accuracy(trained_digits, x, y)  # keeps the worst


@pytest.mark.slow
def test_autoattack_in_parallel(trained_digits, digits):
    """ART's parallel AutoAttack pickles the estimator into worker processes (``multiprocess``)."""
    pytest.importorskip("multiprocess")
    x, y = digits[2][:8], digits[3][:8]
    attacks = [
        FastGradientMethod(trained_digits, eps=EPS),
        SquareAttack(trained_digits, eps=EPS, max_iter=3, nb_restarts=1, verbose=False),
    ]
    attack = AutoAttack(
        trained_digits, eps=EPS, eps_step=0.05, attacks=attacks, batch_size=8, parallel_pool_size=2
    )
    x_adv = attack.generate(x, y=np.eye(10)[y])
    check_examples(x_adv, x)
