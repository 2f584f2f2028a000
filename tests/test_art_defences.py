"""ART preprocessing defences compose with the ER-Classifier through ``preprocessing_defences``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import FastGradientMethod, HopSkipJump, ProjectedGradientDescent
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)
from art.defences.preprocessor import (
    FeatureSqueezing,
    JpegCompression,
    SpatialSmoothing,
    SpatialSmoothingPyTorch,
)
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

import er_art

EPS = 0.2


class MeanBlurPyTorch(PreprocessorPyTorch):
    """A framework-native (differentiable) 3x3 mean filter: a kornia-free stand-in for
    SpatialSmoothingPyTorch."""

    def __init__(self) -> None:
        super().__init__(device_type="cpu", apply_fit=False, apply_predict=True)

    def forward(self, x, y=None):
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), y


DEFENCES = {
    "feature-squeezing": lambda: FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=1),
    "spatial-smoothing": lambda: SpatialSmoothing(
        window_size=3, channels_first=True, clip_values=(0.0, 1.0)
    ),
    "jpeg": lambda: JpegCompression(clip_values=(0.0, 1.0), quality=10, channels_first=True),
    "spatial-smoothing-pytorch": lambda: SpatialSmoothingPyTorch(
        window_size=3, channels_first=True, clip_values=(0.0, 1.0), device_type="cpu"
    ),
    "mean-blur-pytorch": MeanBlurPyTorch,
}
FRAMEWORK_NATIVE = {"spatial-smoothing-pytorch", "mean-blur-pytorch"}


def defended(trained, defence):
    """A copy of ``trained`` (same weights) with ``defence`` in front of it."""
    clf = er_art.build_classifier("digits", device_type="cpu", preprocessing_defences=[defence])
    clf.er_model.load_state_dict(trained.er_model.state_dict())
    clf.er_model.eval()
    return clf


def accuracy(clf, x, y) -> float:
    return float((clf.predict(x).argmax(1) == y).mean())


@pytest.mark.parametrize("name", list(DEFENCES))
def test_defence_changes_predictions_and_attacks_still_run(name, trained_digits, digits):
    if name == "spatial-smoothing-pytorch":
        pytest.importorskip("kornia", reason="ART's SpatialSmoothingPyTorch needs kornia")
    x, y = digits[2][:32], digits[3][:32]
    clf = defended(trained_digits, DEFENCES[name]())
    assert clf.all_framework_preprocessing == (name in FRAMEWORK_NATIVE)
    plain = trained_digits.predict(x)
    pred = clf.predict(x)
    assert pred.shape == (32, 10) and np.isfinite(pred).all()
    assert not np.allclose(pred, plain), "the defence did not change the model's input"
    assert accuracy(clf, x, y) > 0.3  # still a classifier, not noise

    pgd = ProjectedGradientDescent(clf, eps=EPS, eps_step=0.05, max_iter=3, verbose=False)
    expected = (
        ProjectedGradientDescentPyTorch
        if clf.all_framework_preprocessing
        else ProjectedGradientDescentNumpy
    )
    assert isinstance(pgd._attack, expected)
    for attack in (pgd, FastGradientMethod(clf, eps=EPS)):
        x_adv = attack.generate(x)
        assert x_adv.shape == x.shape and np.isfinite(x_adv).all()
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert np.abs(x_adv - x).max() <= EPS + 1e-5

    grad = clf.loss_gradient(x, y)
    assert grad.shape == x.shape and np.isfinite(grad).all()
    assert all(p.grad is None for p in clf.er_model.parameters())
    if name == "mean-blur-pytorch":  # the gradient flows through the defence itself
        x_t = torch.from_numpy(x).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(
            clf.er_model(MeanBlurPyTorch().forward(x_t)[0]), torch.from_numpy(y)
        )
        (expected,) = torch.autograd.grad(loss, x_t)
        np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-4, atol=1e-7)


def test_feature_squeezing_with_float64_and_hopskipjump(trained_digits, digits):
    """NumPy 2 makes ART hand float64 to the estimator here."""
    clf = defended(trained_digits, DEFENCES["feature-squeezing"]())
    x = digits[2][:8].astype(np.float64)
    pred = clf.predict(x)
    assert pred.shape == (8, 10) and np.isfinite(pred).all()
    grad = clf.loss_gradient(x, digits[3][:8])
    assert grad.shape == x.shape and np.isfinite(grad).all()
    attack = HopSkipJump(clf, max_iter=1, max_eval=10, init_eval=5, init_size=10, verbose=False)
    x_adv = attack.generate(x)
    assert x_adv.shape == x.shape and np.isfinite(x_adv).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_a_defended_classifier_survives_pickling(trained_digits, digits):
    import pickle

    clf = defended(trained_digits, DEFENCES["spatial-smoothing"]())
    x = digits[2][:16]
    pred = clf.predict(x)
    clone = pickle.loads(pickle.dumps(clf))
    assert len(clone.preprocessing_defences) == 1
    np.testing.assert_array_equal(clone.predict(x), pred)


def test_training_through_a_fit_time_defence(digits):
    x, y = digits[0][:128], digits[1][:128]
    squeeze = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=2, apply_fit=True)
    clf = er_art.build_classifier(
        "test_digits", device_type="cpu", preprocessing_defences=[squeeze]
    )
    before = [p.detach().clone() for p in clf.er_model.parameters()]
    clf.fit(x, y, batch_size=64, nb_epochs=1)
    assert all(
        not np.array_equal(b.numpy(), p.detach().numpy())
        for b, p in zip(before, clf.er_model.parameters(), strict=True)
    )
