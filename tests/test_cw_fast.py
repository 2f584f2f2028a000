"""C&W L2 in PyTorch (``er_art.attacks.cw_fast.CarliniL2Fast``) and the ``cw-fast`` plugin.

On an affine classifier the minimal L2 distance is known in closed form: for true class ``y`` and
another class ``k`` the boundary ``f_y = f_k`` is a hyperplane with normal ``w_y - w_k``, so the
smallest step is ``(f_y - f_k) / ||w_y - w_k||_2``, minimised over ``k`` (inputs kept far from the
clip bounds, so the box never binds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import CarliniL2Method
from art.estimators.classification import PyTorchClassifier

import er_art
from er_art.attacks import get_attack
from er_art.attacks.cw_fast import CarliniL2Fast
from tests.linear_models import SHAPE, linear_classifier, linear_data, minimal_distance


def _l2(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return np.linalg.norm(delta, axis=1)


@pytest.fixture(scope="module")
def few_digits(trained_digits, digits):
    """The trained digits ER-Classifier and 12 test digits: 9 it gets right, 3 it gets wrong."""
    x, y = digits[2], digits[3]
    wrong = trained_digits.predict(x).argmax(1) != y
    idx = np.concatenate([np.flatnonzero(~wrong)[:9], np.flatnonzero(wrong)[:3]])
    return trained_digits, x[idx], y[idx]


@pytest.fixture(scope="module")
def tiny_mlp(digits):
    """A stock ART PyTorchClassifier: a 64-32-10 MLP trained for 10 epochs on digits (< 1 s)."""
    x_train, y_train, x_test, y_test = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    clf = PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    clf.fit(x_train, y_train, batch_size=64, nb_epochs=10, verbose=False)
    return clf, x_test[:40], y_test[:40]


# ---------------------------------------------------------------------------- against ART
def test_no_weaker_than_art_carlini_at_the_same_settings(tiny_mlp):
    """At ``cw``'s budget (10 binary-search steps of 10 iterations, c0 = 0.01), cw-fast's
    adversarial examples are not significantly farther than ART's CarliniL2Method's. Learning rates
    are each attack's own default (ART 0.01, the first step of a line search that may double it
    five times per iteration; cw-fast's plugin 0.05, a fixed Adam step): they do not mean the same
    thing.

    Per clean example, each attack's distance (infinite where it found nothing); the examples where
    cw-fast's is more than 1 % longer are counted against those where ART's is, and a one-sided
    sign test fails at p < 0.001. Counting robust examples below a few L2 thresholds with no
    margin, as this test did before, failed by one example of 40 when the fixture was trained
    from other seeds. Measured (training seeds 0-4): cw-fast longer on 6-12 examples, ART's on
    25-29, median distance ratio 0.95-0.97."""
    from scipy.stats import binomtest

    clf, x, y = tiny_mlp
    clean = clf.predict(x).argmax(1) == y
    assert clean.sum() >= 35
    budget = {"binary_search_steps": 10, "max_iter": 10, "initial_const": 0.01}
    x_art = CarliniL2Method(clf, batch_size=64, verbose=False, **budget).generate(
        x, np.eye(10, dtype=np.float32)[y]
    )
    x_fast = CarliniL2Fast(clf, learning_rate=0.05, **budget).generate(x, y)
    assert x_fast.dtype == np.float32 and x_fast.min() >= 0.0 and x_fast.max() <= 1.0
    l2_art, l2_fast = _l2(x_art, x), _l2(x_fast, x)
    assert np.isfinite(l2_fast).all()
    pred_art, pred_fast = clf.predict(x_art).argmax(1), clf.predict(x_fast).argmax(1)
    changed = l2_fast > 0
    assert (pred_fast[changed] != y[changed]).all()  # only adversarial examples move
    d_art = np.where(clean & (pred_art != y), l2_art, np.inf)
    d_fast = np.where(clean & (pred_fast != y), l2_fast, np.inf)
    longer = int((clean & (d_fast > 1.01 * d_art)).sum())
    shorter = int((clean & (d_art > 1.01 * d_fast)).sum())
    p = binomtest(longer, longer + shorter, alternative="greater").pvalue if longer else 1.0
    assert p >= 1e-3, (longer, shorter, p)
    assert (pred_fast[clean] != y[clean]).mean() > 0.9  # it breaks nearly everything


# ---------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("clip_values", [(0.0, 1.0), None])
def test_finds_the_minimal_distance_of_an_affine_model(n_classes, clip_values):
    clf = linear_classifier(n_classes, clip_values)
    x = linear_data()
    y, dist = minimal_distance(clf, x, norm=2)
    x_adv = CarliniL2Fast(clf, max_iter=100, binary_search_steps=10).generate(x, y)
    found = _l2(x_adv, x)
    assert (clf.predict(x_adv).argmax(1) != y).all()
    assert (found >= dist * (1 - 1e-3)).all()  # nothing beats the closed form
    assert (found <= dist * 1.03).all()  # C&W gets within a few percent of it


def test_confidence_is_the_margin_of_the_adversarial_logit():
    clf = linear_classifier()
    x = linear_data(8)
    y, _ = minimal_distance(clf, x, norm=2)
    plain = CarliniL2Fast(clf, max_iter=50).generate(x, y)
    confident = CarliniL2Fast(clf, max_iter=50, confidence=0.3).generate(x, y)
    logits = clf.predict(confident)
    rows = np.arange(len(x))
    other = np.where(np.eye(5, dtype=bool)[y], -np.inf, logits).max(1)
    assert (other - logits[rows, y] >= 0.3 - 1e-5).all()
    assert (_l2(confident, x) > _l2(plain, x)).all()


# ---------------------------------------------------------------------------- output contract
def test_targeted_attack_reaches_the_target(few_digits):
    clf, x, y = few_digits
    target = (y + 1) % clf.nb_classes
    # an unbounded targeted attack reaches every target given the steps: 100 did on fixtures
    # trained from seeds 0-5; 50 left one of 12 short on one of them
    attack = CarliniL2Fast(clf, targeted=True, learning_rate=0.05, max_iter=100)
    x_adv = attack.generate(x, np.eye(clf.nb_classes, dtype=np.float32)[target])
    np.testing.assert_array_equal(clf.predict(x_adv).argmax(1), target)
    with pytest.raises(ValueError, match="target labels"):
        attack.generate(x)


def test_output_float32_in_the_box_and_misclassified_unchanged(few_digits):
    clf, x, y = few_digits
    misclassified = clf.predict(x).argmax(1) != y
    assert misclassified.sum() == 3
    x64 = x.astype(np.float64)
    x_adv = CarliniL2Fast(clf, learning_rate=0.05).generate(x64, y)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    np.testing.assert_array_equal(x_adv[misclassified], x[misclassified])
    changed = (x_adv != x).reshape(len(x), -1).any(1)
    assert changed[~misclassified].all()
    assert (clf.predict(x_adv[changed]).argmax(1) != y[changed]).all()  # only broken ones move
    one_hot = CarliniL2Fast(clf, learning_rate=0.05).generate(x, np.eye(10)[y])
    np.testing.assert_array_equal(one_hot, x_adv)


def test_per_feature_clip_values_bound_the_output():
    lo = np.full(SHAPE, 0.3, dtype=np.float32)
    hi = np.full(SHAPE, 0.7, dtype=np.float32)
    lo[0, 0], hi[0, 0] = 0.49, 0.51  # the first row may hardly move
    clf = linear_classifier(clip_values=(lo, hi))
    x = np.clip(linear_data(8), lo, hi)
    y, _ = minimal_distance(clf, x, norm=2)
    x_adv = CarliniL2Fast(clf, max_iter=50, learning_rate=0.05).generate(x, y)
    assert (x_adv >= lo).all() and (x_adv <= hi).all()
    assert (clf.predict(x_adv).argmax(1) != y).sum() >= 6


# ---------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("arch", ["test_digits", "test_cnn"])  # ERClassifier, stock classifier
def test_works_on_er_and_stock_classifiers_without_weight_gradients(arch, digits):
    clf = er_art.build_classifier(arch, input_shape=(1, 8, 8), device_type="cpu", seed=0)
    x, y = digits[2][:8], digits[3][:8]
    clf.model.train()  # C&W attacks in eval mode and restores the caller's mode
    from_train = CarliniL2Fast(clf, max_iter=5, binary_search_steps=3).generate(x, y)
    assert clf.model.training
    assert all(p.grad is None for p in clf.model.parameters())
    clf.model.eval()
    from_eval = CarliniL2Fast(clf, max_iter=5, binary_search_steps=3).generate(x, y)
    np.testing.assert_array_equal(from_train, from_eval)
    assert not clf.model.training


def test_breaks_the_trained_digits_classifier(trained_digits, digits):
    x, y = digits[2][:48], digits[3][:48]
    clean = trained_digits.predict(x).argmax(1) == y
    x_adv = CarliniL2Fast(trained_digits, learning_rate=0.05).generate(x, y)
    broken = clean & (trained_digits.predict(x_adv).argmax(1) != y)
    assert broken.sum() >= 0.9 * clean.sum()


def test_numpy_preprocessing_defence_gradients_pass_through_bpda():
    from art.defences.preprocessor import FeatureSqueezing

    squeeze = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=16)
    clf = linear_classifier(preprocessing_defences=squeeze)
    assert not clf.all_framework_preprocessing

    def predict(x: np.ndarray) -> np.ndarray:
        squeezed = squeeze(x)[0].astype(np.float32)
        return clf.model(torch.from_numpy(squeezed)).argmax(1).numpy()

    x = linear_data(8)
    y = predict(x)
    x_adv = CarliniL2Fast(clf, max_iter=50, learning_rate=0.05).generate(x, y)
    assert (predict(x_adv) != y).all()


def test_eot_samples_average_over_forward_passes():
    clf = linear_classifier()
    calls = {"n": 0}
    clf.model.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    x = linear_data(4)
    y = clf.predict(x).argmax(1)
    counts, outputs = [], []
    for samples in (1, 3):
        clf.eot_samples = samples
        calls["n"] = 0
        outputs.append(CarliniL2Fast(clf, max_iter=5, binary_search_steps=2).generate(x, y))
        counts.append(calls["n"])
    assert counts[1] == 3 * counts[0]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)  # a deterministic model


class _Noisy(torch.nn.Module):
    """Gaussian input noise in every mode: a randomised model drawing from torch's generator."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.05 * torch.randn_like(x)


def test_seeded_runs_are_identical():
    clf = linear_classifier()
    clf.model.insert(0, _Noisy())
    clf.eot_samples = 2
    x = linear_data(6)
    y, _ = minimal_distance(linear_classifier(), x, norm=2)
    attack = CarliniL2Fast(clf, max_iter=10, binary_search_steps=3, learning_rate=0.05)
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        runs.append(attack.generate(x, y))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])  # the model's noise comes from torch's generator


# ---------------------------------------------------------------------------- parameters, plugin
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("confidence", -1.0),
        ("confidence", float("nan")),
        ("targeted", "yes"),
        ("learning_rate", 0.0),
        ("binary_search_steps", 0),
        ("max_iter", 2.5),
        ("initial_const", -0.01),
        ("batch_size", -4),
        ("verbose", "no"),
    ],
)
def test_bad_parameter_is_a_value_error_naming_the_value(param, value):
    clf = linear_classifier()
    with pytest.raises(ValueError, match=param) as err:
        CarliniL2Fast(clf, **{param: value})
    assert repr(value) in str(err.value)


def test_bad_labels_are_value_errors():
    clf = linear_classifier()
    x = linear_data(4)
    with pytest.raises(ValueError, match="4 examples but y has 3"):
        CarliniL2Fast(clf).generate(x, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\]"):
        CarliniL2Fast(clf).generate(x, np.full(4, 5))


def test_plugin_resolves_to_cw_fast(few_digits):
    clf, x, y = few_digits
    spec = get_attack("cw-fast")
    attack = spec.build(clf)
    assert isinstance(attack, CarliniL2Fast) and not attack.targeted
    assert (attack.binary_search_steps, attack.max_iter, attack.batch_size) == (10, 10, 128)
    assert (attack.learning_rate, attack.initial_const, attack.confidence) == (0.05, 0.01, 0.0)
    assert spec.norm == "2" and spec.threat == "white-box" and spec.iterative
    assert not spec.budgeted and spec.max_iter_param == "max_iter" and spec.targeted
    assert spec.restarts_param is None
    assert spec.build(clf, targeted=True, max_iter=3).targeted
    with pytest.raises(ValueError, match="max_halving"):
        spec.build(clf, max_halving=5)
    x_adv = spec.build(clf, max_iter=3, batch_size=4).generate(x, np.eye(10)[y])  # as er-art
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
