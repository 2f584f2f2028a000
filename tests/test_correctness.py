"""Correctness of the attack evaluation on trained digits models (slow: trains two small models).

- PGD at eps = 0 gives the clean accuracy;
- accuracy does not increase with eps;
- at eps = 1.0 (the whole [0, 1] range) PGD drives accuracy to at most 15 %;
- an undefended ``plain`` CNN is clearly less robust than the ER-Classifier at the training eps,
  0.1 for digits.
The ER-Classifier is the one the default ``er-art train`` trains (er-pgd on digits, every default).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import er_art
from er_art.evaluation.running import sweep_attack

pytestmark = pytest.mark.slow

N = 128
TRAIN_EPS = 0.1  # digits' training eps (DatasetSpec.eps)


@pytest.fixture(scope="module")
def test_set(digits):
    return digits[2][:N], digits[3][:N]


@pytest.fixture(scope="module")
def er_pgd(tmp_path_factory):
    """The ER-Classifier of the default ``er-art train`` (er-pgd on digits, every default)."""
    from er_art.training.run import TrainingConfig, train

    run_dir = tmp_path_factory.mktemp("er-pgd") / "run"
    return train(TrainingConfig(device="cpu"), run_dir, latest_root=None).classifier


@pytest.fixture(scope="module")
def plain_cnn(digits):
    """The baseline CNN trained with cross-entropy only (ART's own fit)."""
    torch.manual_seed(0)
    clf = er_art.build_classifier("cnn", input_shape=(1, 8, 8), device_type="cpu")
    clf.fit(digits[0], digits[1], batch_size=64, nb_epochs=3)
    return clf


def test_pgd_sweep_on_a_trained_model(er_pgd, test_set):
    x, y = test_set
    records = sweep_attack(
        er_pgd, x, y, "pgd", [0.0, 0.05, 0.1, 0.2, 0.3, 1.0], max_iter=10, restarts=2, batch_size=N
    )
    acc = [r["robust_accuracy"] for r in records]
    clean = float((er_pgd.predict(x).argmax(1) == y).mean())
    assert acc[0] == records[0]["clean_accuracy"] == pytest.approx(clean)  # eps = 0 changes nothing
    assert clean > 0.8
    for lower, higher in zip(acc, acc[1:], strict=False):
        assert higher <= lower + 1.0 / N, (
            acc
        )  # never more accurate under a larger budget (one example of slack)
    assert acc[-1] <= 0.15, acc  # eps = the whole input range


def test_plain_model_is_clearly_less_robust_than_er_classifier(er_pgd, plain_cnn, digits):
    x, y = (
        digits[2],
        digits[3],
    )  # the whole test split (397): the gap at eps 0.1 is ~10 points on digits
    n = len(y)
    er_clean = float((er_pgd.predict(x).argmax(1) == y).mean())
    plain_clean = float((plain_cnn.predict(x).argmax(1) == y).mean())
    assert er_clean > 0.8 and plain_clean > 0.8, (er_clean, plain_clean)
    er_rob, er_rob2 = (
        r["robust_accuracy"]
        for r in sweep_attack(
            er_pgd, x, y, "pgd", [TRAIN_EPS, 2 * TRAIN_EPS], max_iter=10, restarts=2, batch_size=n
        )
    )
    plain_rob, plain_rob2 = (
        r["robust_accuracy"]
        for r in sweep_attack(
            plain_cnn,
            x,
            y,
            "pgd",
            [TRAIN_EPS, 2 * TRAIN_EPS],
            max_iter=10,
            restarts=2,
            batch_size=n,
        )
    )
    margin = 2 * np.sqrt(
        (er_rob * (1 - er_rob) + plain_rob * (1 - plain_rob)) / n
    )  # 2 std of the difference
    assert er_rob > plain_rob + margin, (er_rob, plain_rob, margin)
    assert er_rob2 > plain_rob2 + 0.15, (
        er_rob2,
        plain_rob2,
    )  # and far apart at twice the training eps
