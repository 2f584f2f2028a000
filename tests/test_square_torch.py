"""Square Attack in PyTorch (``er_art.attacks.square.SquareAttackTorch``) and the ``square`` plugin.

Most tests attack a stock ART ``PyTorchClassifier`` (a 64-32-10 MLP trained on digits in under a
second); the ER-Classifier path runs on the session's ``trained_digits``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from art.attacks.evasion import SquareAttack
from art.estimators.classification import PyTorchClassifier

import er_art
from er_art.attacks import get_attack
from er_art.attacks.square import SquareAttackTorch, p_selection, window_side
from tests.linear_models import SHAPE, linear_classifier, linear_data


def _mlp_classifier(model: torch.nn.Module, device_type: str = "cpu") -> PyTorchClassifier:
    return PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type=device_type,
    )


@pytest.fixture(scope="module")
def tiny_mlp(digits):
    """A stock ART PyTorchClassifier: a 64-32-10 MLP trained for 10 epochs on digits (< 1 s),
    and 100 test digits (93 classified correctly)."""
    x_train, y_train, x_test, y_test = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    clf = _mlp_classifier(model)
    clf.fit(x_train, y_train, batch_size=64, nb_epochs=10, verbose=False)
    return clf, x_test[:100].astype(np.float32), y_test[:100]


def _accuracy(clf, x: np.ndarray, y: np.ndarray) -> float:
    return float((clf.predict(x).argmax(1) == y).mean())


def _linf(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.abs(x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1).max(1)


# ---------------------------------------------------------------------------- output contract
def test_output_within_eps_and_the_box(tiny_mlp):
    clf, x, y = tiny_mlp
    x_adv = SquareAttackTorch(clf, eps=0.1, max_iter=50).generate(x.astype(np.float64), y)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert _linf(x_adv, x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (_linf(x_adv, x) > 0.1 - 1e-6).any()  # it uses its budget


def test_per_feature_clip_values_bound_the_output():
    lo = np.full(SHAPE, 0.3, dtype=np.float32)
    hi = np.full(SHAPE, 0.7, dtype=np.float32)
    lo[0, 0], hi[0, 0] = 0.49, 0.51  # the first row may hardly move
    clf = linear_classifier(clip_values=(lo, hi))
    x = np.clip(linear_data(16), lo, hi)
    y = clf.predict(x).argmax(1)
    x_adv = SquareAttackTorch(clf, eps=0.25, max_iter=30).generate(x, y)
    assert (x_adv >= lo).all() and (x_adv <= hi).all()
    assert _linf(x_adv, x).max() <= 0.25 + 1e-6


def test_lowers_accuracy_of_the_trained_er_classifier(trained_digits, digits):
    x, y = digits[2][:48], digits[3][:48]
    clean = _accuracy(trained_digits, x, y)
    x_adv = SquareAttackTorch(trained_digits, eps=0.2, max_iter=100).generate(x, y)
    assert _linf(x_adv, x).max() <= 0.2 + 1e-6
    assert _accuracy(trained_digits, x_adv, y) < clean - 0.1


def test_not_weaker_than_art_square_attack(tiny_mlp):
    """Same 100 digits, eps and query budget (100 iterations, 1 restart): SquareAttackTorch leaves
    at most 5 points more robust accuracy than ART's SquareAttack (measured: 0.62-0.66 against
    0.72-0.76 for seeds 0-2)."""
    clf, x, y = tiny_mlp
    np.random.seed(0)  # ART's SquareAttack draws from NumPy's global generator
    x_art = SquareAttack(clf, eps=0.1, max_iter=100, verbose=False).generate(x, y)
    torch.manual_seed(0)
    x_torch = SquareAttackTorch(clf, eps=0.1, max_iter=100).generate(x, y)
    robust_art, robust_torch = _accuracy(clf, x_art, y), _accuracy(clf, x_torch, y)
    clean = _accuracy(clf, x, y)
    assert 0.2 < robust_art < clean and 0.2 < robust_torch < clean  # an informative setting
    assert robust_torch <= robust_art + 0.05, (robust_torch, robust_art)


def test_same_seed_same_output_other_seed_other_output(tiny_mlp):
    clf, x, y = tiny_mlp
    attack = SquareAttackTorch(clf, eps=0.1, max_iter=20, nb_restarts=2)
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        runs.append(attack.generate(x[:32], y[:32]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_misclassified_examples_unchanged_and_labels_either_format(tiny_mlp):
    clf, x, y = tiny_mlp
    wrong = clf.predict(x).argmax(1) != y
    assert 3 <= wrong.sum() < 20
    torch.manual_seed(0)
    x_adv = SquareAttackTorch(clf, eps=0.1, max_iter=30).generate(x, y)
    np.testing.assert_array_equal(x_adv[wrong], x[wrong])
    assert (x_adv[~wrong] != x[~wrong]).reshape((~wrong).sum(), -1).any(1).all()
    torch.manual_seed(0)
    one_hot = SquareAttackTorch(clf, eps=0.1, max_iter=30).generate(x, np.eye(10)[y])
    np.testing.assert_array_equal(one_hot, x_adv)


def test_restarts_only_help_and_eps_zero_is_the_identity(tiny_mlp):
    clf, x, y = tiny_mlp
    torch.manual_seed(0)
    one = SquareAttackTorch(clf, eps=0.08, max_iter=30, nb_restarts=1).generate(x, y)
    torch.manual_seed(0)
    three = SquareAttackTorch(clf, eps=0.08, max_iter=30, nb_restarts=3).generate(x, y)
    assert _accuracy(clf, three, y) <= _accuracy(clf, one, y)
    np.testing.assert_array_equal(SquareAttackTorch(clf, eps=0.0).generate(x, y), x)


def test_no_numpy_round_trip_during_generate(trained_digits, digits, monkeypatch):
    """Every query is a torch forward pass: ``predict`` and the gradient methods are never called,
    not even to find the labels when ``y`` is None; the model's mode is restored."""
    x = digits[2][:24]
    clean = trained_digits.predict(x).argmax(1)

    def refuse(*args, **kwargs):
        raise AssertionError("SquareAttackTorch went through the NumPy estimator API")

    for name in ("predict", "loss_gradient", "class_gradient"):
        monkeypatch.setattr(trained_digits, name, refuse)
    trained_digits.model.train()
    try:
        torch.manual_seed(0)
        with_labels = SquareAttackTorch(trained_digits, eps=0.2, max_iter=20).generate(x, clean)
        torch.manual_seed(0)
        own_labels = SquareAttackTorch(trained_digits, eps=0.2, max_iter=20).generate(x)
        assert trained_digits.model.training
    finally:
        trained_digits.model.eval()
    np.testing.assert_array_equal(with_labels, own_labels)


def test_rse_is_queried_through_its_ensemble(digits, monkeypatch):
    """A classifier with ``predict_tensor`` (RSE: ``predict`` is the mean over ``ensemble`` noisy
    passes) is queried through it, as ``predict`` would be, not through one noisy pass."""
    clf = er_art.build_classifier("rse-digits", device_type="cpu", seed=0)
    x, y = digits[2][:8], digits[3][:8]
    sizes = []
    ensemble = clf.predict_tensor

    def spy(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(len(batch))
        return ensemble(batch)

    monkeypatch.setattr(clf, "predict_tensor", spy)
    monkeypatch.setattr(clf, "predict", lambda *a, **k: pytest.fail("predict was called"))
    x_adv = SquareAttackTorch(clf, eps=0.1, max_iter=3).generate(x, y)
    assert sizes and _linf(x_adv, x).max() <= 0.1 + 1e-6


def test_postprocessing_defences_see_every_query():
    from art.defences.postprocessor import Rounded

    clf = linear_classifier(postprocessing_defences=Rounded(decimals=1))
    x = linear_data(8)
    y = clf.predict(x).argmax(1)
    seen = []
    apply = clf._apply_postprocessing

    def spy(preds, fit):
        seen.append(preds)
        return apply(preds=preds, fit=fit)

    clf._apply_postprocessing = spy
    SquareAttackTorch(clf, eps=0.1, max_iter=5).generate(x, y)
    assert len(seen) >= 6  # the clean point, the stripes and 5 iterations (while any is robust)


# ---------------------------------------------------------------------------- schedule, parameters
def test_p_schedule_and_window_side_follow_the_reference():
    assert p_selection(0.8, 0, 10000) == 0.8 and p_selection(0.8, 10, 10000) == 0.8
    assert p_selection(0.8, 11, 10000) == 0.4 and p_selection(0.8, 51, 10000) == 0.2
    assert p_selection(0.8, 9999, 10000) == pytest.approx(0.8 / 512)
    # rescaled to the number of iterations: iteration 1 of 100 is iteration 100 of 10000
    assert p_selection(0.8, 1, 100) == 0.2 and p_selection(0.8, 99, 100) == pytest.approx(0.8 / 512)
    assert window_side(0.8, 8, 8) == 7 and window_side(1.0, 8, 8) == 7  # capped at H - 1
    assert window_side(0.8 / 512, 8, 8) == 1 and window_side(0.05, 32, 32) == 7
    assert window_side(0.5, 1, 4) == 1


@pytest.mark.parametrize("norm", [2, 1, "l2", "2"])
def test_only_linf_is_accepted(tiny_mlp, norm):
    with pytest.raises(ValueError, match="only the Linf norm") as err:
        SquareAttackTorch(tiny_mlp[0], norm=norm)
    assert repr(norm) in str(err.value)
    for linf in (np.inf, float("inf"), "inf", "Linf"):
        assert SquareAttackTorch(tiny_mlp[0], norm=linf).norm == linf


@pytest.mark.parametrize(
    ("param", "value"),
    [("eps", -0.1), ("max_iter", 0), ("p_init", 1.5), ("nb_restarts", 0), ("batch_size", 2.5)],
)
def test_bad_parameter_is_a_value_error(tiny_mlp, param, value):
    with pytest.raises(ValueError, match=param):
        SquareAttackTorch(tiny_mlp[0], **{param: value})


# ---------------------------------------------------------------------------- the plugin
def test_plugin_builds_the_torch_attack_by_default_and_art_on_request(tiny_mlp):
    clf, x, y = tiny_mlp
    spec = get_attack("square")
    attack = spec.build(clf, eps=0.1, max_iter=7, restarts=2)
    assert isinstance(attack, SquareAttackTorch)
    assert (attack.eps, attack.max_iter, attack.nb_restarts, attack.p_init) == (0.1, 7, 2, 0.8)
    art = spec.build(clf, eps=0.1, max_iter=7, implementation="art")
    assert type(art) is SquareAttack and art.max_iter == 7 and art.eps == 0.1
    assert art.generate(x[:4], y[:4]).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="no implementation 'numpy'; accepted: torch, art"):
        spec.build(clf, eps=0.1, implementation="numpy")
    assert spec.threat == "black-box" and not spec.targeted and spec.restarts_param == "nb_restarts"


# ---------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
def test_runs_on_cuda_without_leaving_the_device(tiny_mlp):
    clf_cpu, x, y = tiny_mlp
    clf = _mlp_classifier(copy.deepcopy(clf_cpu.model), device_type="gpu")
    assert clf.device.type == "cuda"
    devices = set()
    clf.model.register_forward_hook(lambda _m, args, _out: devices.add(args[0].device.type))
    torch.manual_seed(0)
    x_adv = SquareAttackTorch(clf, eps=0.1, max_iter=100).generate(x, y)
    assert devices == {"cuda"}
    assert x_adv.dtype == np.float32 and _linf(x_adv, x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert _accuracy(clf_cpu, x_adv, y) < _accuracy(clf_cpu, x, y) - 0.1  # 0.3 on the CPU
    torch.manual_seed(0)
    np.testing.assert_array_equal(
        SquareAttackTorch(clf, eps=0.1, max_iter=100).generate(x, y), x_adv
    )
