"""FAB / FAB-T (``er_art.attacks.fab.FABAttack``) and the ``fab-t`` plugin.

On a linear classifier the minimal adversarial distance is known in closed form: for true class
``y`` and another class ``k``, the boundary ``f_y = f_k`` is a hyperplane with normal
``w_y - w_k``, so the smallest Linf (L2) step is ``(f_y - f_k) / ||w_y - w_k||_1`` (``_2``),
minimised over ``k`` (inputs kept far from the clip bounds, so the box never binds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import er_art
from er_art.attacks import get_attack
from er_art.attacks.fab import FABAttack
from tests.linear_models import N_CLASSES, linear_classifier, linear_data, minimal_distance


def _norms(x_adv: np.ndarray, x: np.ndarray, norm: str = "inf") -> np.ndarray:
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return np.abs(delta).max(1) if norm == "inf" else np.linalg.norm(delta, axis=1)


@pytest.fixture(scope="module")
def few_digits(trained_digits, digits):
    """The trained digits ER-Classifier and 12 test digits: 9 it gets right, 3 it gets wrong."""
    x, y = digits[2], digits[3]
    wrong = trained_digits.predict(x).argmax(1) != y
    idx = np.concatenate([np.flatnonzero(~wrong)[:9], np.flatnonzero(wrong)[:3]])
    return trained_digits, x[idx], y[idx]


# ---------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("norm", ["inf", 2])
@pytest.mark.parametrize("clip_values", [(0.0, 1.0), None])
def test_untargeted_fab_finds_the_minimal_distance_of_a_linear_model(norm, clip_values):
    clf = linear_classifier(clip_values=clip_values)
    x = linear_data()
    y, dist = minimal_distance(clf, x, str(norm))
    x_adv = FABAttack(clf, norm=norm, eps=1.0, targeted=False).generate(x, y)
    found = _norms(x_adv, x, str(norm))
    assert (clf.predict(x_adv).argmax(1) != y).all()
    assert (found >= dist * (1 - 1e-3)).all()  # nothing beats the closed form
    assert (found <= dist * 1.03).all()  # FAB gets within a few percent of it


def test_fab_t_succeeds_just_above_the_minimal_distance_and_not_below():
    clf = linear_classifier()
    x = linear_data(4)
    y, dist = minimal_distance(clf, x)
    for i in range(len(x)):
        xi, yi = x[i : i + 1], y[i : i + 1]
        above = FABAttack(clf, eps=1.05 * dist[i], max_iter=25).generate(xi, yi)
        assert clf.predict(above).argmax(1)[0] != yi[0]
        assert _norms(above, xi)[0] <= 1.05 * dist[i] * (1 + 1e-6)
        below = FABAttack(clf, eps=0.95 * dist[i], max_iter=25).generate(xi, yi)
        np.testing.assert_array_equal(below, xi)


def test_fab_t_targets_the_top_classes_when_fewer_than_nine_exist(monkeypatch):
    clf = linear_classifier()  # 5 classes: n_target_classes = 9 means the 4 others
    x = linear_data(4)
    y, _ = minimal_distance(clf, x)
    logits = clf.predict(x)
    expected = np.argsort(-logits, axis=1)[:, 1:]  # runner-up first; the true class is the top
    seen: list[np.ndarray] = []
    real_run = FABAttack._run

    def spy(self, x0, y0, target, random_start, box):
        seen.append(target.numpy().copy())
        return real_run(self, x0, y0, target, random_start, box)

    monkeypatch.setattr(FABAttack, "_run", spy)
    # eps 1e-9: nothing breaks, all targets run (at eps 0 the engine returns x without a search)
    FABAttack(clf, eps=1e-9, max_iter=1).generate(x, y)
    assert len(seen) == N_CLASSES - 1
    np.testing.assert_array_equal(np.stack(seen, axis=1), expected)


# ---------------------------------------------------------------------------- output contract
def test_output_within_eps_and_box_float32_and_misclassified_unchanged(few_digits):
    clf, x, y = few_digits
    misclassified = clf.predict(x).argmax(1) != y
    assert misclassified.sum() == 3
    x64 = x.astype(np.float64)
    x_adv = FABAttack(clf, eps=0.1, max_iter=10, n_target_classes=3).generate(x64, y)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert _norms(x_adv, x64).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    np.testing.assert_array_equal(x_adv[misclassified], x[misclassified])
    changed = (x_adv != x).reshape(len(x), -1).any(1)
    assert (clf.predict(x_adv[changed]).argmax(1) != y[changed]).all()  # only broken ones move


def test_one_hot_labels_give_the_same_result(few_digits):
    clf, x, y = few_digits
    attack = FABAttack(clf, eps=0.2, max_iter=5, n_target_classes=2)
    torch.manual_seed(3)
    a = attack.generate(x, y)
    torch.manual_seed(3)
    b = attack.generate(x, np.eye(clf.nb_classes, dtype=np.float32)[y])
    np.testing.assert_array_equal(a, b)


def test_lowers_accuracy_of_the_trained_digits_classifier(trained_digits, digits):
    x, y = digits[2][:48], digits[3][:48]
    clean = (trained_digits.predict(x).argmax(1) == y).mean()
    x_adv = FABAttack(trained_digits, eps=0.2, max_iter=20, n_target_classes=3).generate(x, y)
    assert _norms(x_adv, x).max() <= 0.2 + 1e-6
    assert (trained_digits.predict(x_adv).argmax(1) == y).mean() < clean


# ---------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("arch", ["test_digits", "test_cnn"])  # ERClassifier, stock classifier
def test_works_on_er_and_stock_classifiers_without_weight_gradients(arch, digits):
    clf = er_art.build_classifier(arch, input_shape=(1, 8, 8), device_type="cpu", seed=0)
    x, y = digits[2][:8], digits[3][:8]
    out = clf.model(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and out.shape == (8, 10)  # estimator.model gives logits
    clf.model.train()  # FAB attacks in eval mode and restores the caller's mode
    torch.manual_seed(0)
    from_train = FABAttack(clf, eps=0.1, max_iter=5, n_target_classes=2).generate(x, y)
    assert clf.model.training
    assert all(p.grad is None for p in clf.model.parameters())
    clf.model.eval()
    torch.manual_seed(0)
    from_eval = FABAttack(clf, eps=0.1, max_iter=5, n_target_classes=2).generate(x, y)
    np.testing.assert_array_equal(from_train, from_eval)
    assert not clf.model.training


def test_numpy_preprocessing_defence_gradients_pass_through_bpda():
    from art.defences.preprocessor import FeatureSqueezing

    squeeze = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=16)
    clf = linear_classifier(preprocessing_defences=squeeze)
    assert not clf.all_framework_preprocessing

    def predict(x: np.ndarray) -> np.ndarray:  # ART's own predict hands float64 to the model
        squeezed = squeeze(x)[0].astype(np.float32)
        return clf.model(torch.from_numpy(squeezed)).argmax(1).numpy()

    x = linear_data(8)
    y = predict(x)
    x_adv = FABAttack(clf, eps=0.1, max_iter=20).generate(x, y)
    assert _norms(x_adv, x).max() <= 0.1 + 1e-6
    assert (predict(x_adv) != y).all()  # every minimal distance here is < 0.1


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
        outputs.append(FABAttack(clf, eps=0.05, max_iter=3, n_target_classes=1).generate(x, y))
        counts.append(calls["n"])
    assert counts[1] == 3 * counts[0]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)  # a deterministic model


# ---------------------------------------------------------------------------- randomness, params
def test_seeded_runs_are_identical(few_digits, monkeypatch):
    clf, x, y = few_digits
    starts: list[np.ndarray] = []
    real_start = FABAttack._random_start

    def spy(self, x0, box):
        point = real_start(self, x0, box)
        starts.append(point.numpy().copy())
        return point

    monkeypatch.setattr(FABAttack, "_random_start", spy)
    attack = FABAttack(clf, eps=0.05, max_iter=3, nb_random_init=2, n_target_classes=1)
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        runs.append(attack.generate(x, y))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len(starts) == 3  # restart 1 starts at a random point; restart 0 at x
    np.testing.assert_array_equal(starts[0], starts[1])
    assert not np.array_equal(starts[0], starts[2])  # drawn from torch's global generator
    middle = torch.full((4, 1, 8, 8), 0.5)
    offset = (attack._random_start(middle, None) - middle).abs().reshape(4, -1).amax(1)
    np.testing.assert_allclose(offset.numpy(), 0.025, rtol=1e-5)  # eps / 2, as the reference


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("norm", 1),
        ("eps", -0.1),
        ("eps", float("inf")),
        ("max_iter", 0),
        ("nb_random_init", 0),
        ("n_target_classes", 2.5),
        ("targeted", "yes"),
        ("alpha_max", 1.5),
        ("eta", 0.5),
        ("beta", 0.0),
        ("batch_size", -4),
        ("verbose", "no"),
    ],
)
def test_bad_parameter_is_a_value_error_naming_the_value(few_digits, param, value):
    clf, _, _ = few_digits
    with pytest.raises(ValueError, match=param) as err:
        FABAttack(clf, **{"eps": 0.1, param: value})
    assert repr(value) in str(err.value)


# ---------------------------------------------------------------------------- plugin
def test_plugin_resolves_to_fab_t_with_the_standard_settings(few_digits):
    clf, _, _ = few_digits
    spec = get_attack("fab-t")
    attack = spec.build(clf, eps=0.1)
    assert isinstance(attack, FABAttack)
    assert attack.targeted and attack.norm == "inf" and attack.eps == 0.1
    assert (attack.max_iter, attack.nb_random_init, attack.n_target_classes) == (100, 1, 9)
    assert (attack.alpha_max, attack.eta, attack.beta) == (0.1, 1.05, 0.9)
    assert spec.norm == "inf" and spec.threat == "white-box" and spec.budgeted
    assert spec.art_kwargs(eps=0.1, restarts=3, max_iter=7)["nb_random_init"] == 3
    with pytest.raises(ValueError, match="targeted"):
        spec.art_kwargs(eps=0.1, targeted=True)


def test_plugin_generates_valid_adversarial_examples(few_digits):
    clf, x, y = few_digits
    attack = get_attack("fab-t").build(clf, eps=0.1, max_iter=2, batch_size=4)
    x_adv = attack.generate(x, np.eye(clf.nb_classes, dtype=np.float32)[y])  # one-hot, as er-art
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert _norms(x_adv, x).max() <= 0.1 + 1e-6
