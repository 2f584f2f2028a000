"""Attack and defence plugins: the contract of every spec, step-size rules, third-party plugins."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import er_art
from er_art import registry
from er_art.attacks import NORMS, THREATS, AttackSpec, attack_names, get_attack, pgd_step
from er_art.defences import (
    DefenceSpec,
    DefenceUnavailableError,
    apply_defences,
    defence_names,
    get_defence,
)

BUILT_IN_ATTACKS = {
    "pgd",
    "fgsm",
    "bim",
    "cw",
    "cw-linf",
    "apgd-ce",
    "apgd-dlr",
    "autoattack",
    "deepfool",
    "square",
    "hsj",
    "apgd-t",
    "fab-t",
    "cw-fast",
}
BUILT_IN_DEFENCES = {"feature-squeezing", "spatial-smoothing", "spatial-smoothing-pytorch", "jpeg"}

# Tiny settings per attack so that every one runs in well under a second on an untrained tiny model.
FAST = {
    "pgd": {"max_iter": 2},
    "fgsm": {},
    "bim": {"max_iter": 2},
    "cw": {"max_iter": 2, "binary_search_steps": 1},
    "cw-linf": {"max_iter": 2, "largest_const": 0.1, "decrease_factor": 0.1},
    "apgd-ce": {"max_iter": 2},
    "apgd-dlr": {"max_iter": 2},
    "autoattack": {"max_iter": 2, "restarts": 1, "square_max_iter": 2, "deepfool_max_iter": 2},
    "deepfool": {"max_iter": 2},
    "square": {"max_iter": 2},
    "hsj": {"max_iter": 1, "max_eval": 10, "init_eval": 5, "init_size": 5},
    "apgd-t": {"max_iter": 2, "n_target_classes": 2},
    "fab-t": {"max_iter": 2, "n_target_classes": 2},
    "cw-fast": {"max_iter": 2, "binary_search_steps": 1},
}


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny ER model on 8x8 inputs and 4 digits (contract tests only)."""
    from er_art.datasets import get_dataset

    clf = er_art.build_classifier("test_digits", device_type="cpu", seed=0)
    x, y = get_dataset("digits").arrays("test", limit=4)
    return clf, x, y


def test_built_in_attacks_are_registered_specs():
    assert BUILT_IN_ATTACKS <= set(attack_names())
    for name in BUILT_IN_ATTACKS:
        spec = get_attack(name)
        assert isinstance(spec, AttackSpec) and spec.name == name
        assert spec.norm in NORMS and spec.threat in THREATS
        assert "batch_size" in spec.defaults
        assert spec.description and spec.paper
        assert spec.factory.__module__.startswith("er_art.plugins.attacks")
    assert get_attack("square").threat == "black-box" and get_attack("hsj").threat == "black-box"
    assert {n for n in BUILT_IN_ATTACKS if get_attack(n).normalised_l2} == {"cw", "cw-fast"}
    assert {n for n in BUILT_IN_ATTACKS if get_attack(n).attacks_predictions} == {"deepfool"}
    eot = {n for n in BUILT_IN_ATTACKS if get_attack(n).eot}
    assert eot == {"pgd", "bim", "fgsm", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "cw-fast"}
    assert not get_attack("fgsm").iterative and get_attack("pgd").iterative
    assert {n for n in BUILT_IN_ATTACKS if not get_attack(n).budgeted} == {
        "cw",
        "cw-fast",
        "cw-linf",
        "deepfool",
        "hsj",
    }


def test_autoattack_is_named_for_what_it_runs():
    spec = get_attack("autoattack")
    for member in ("APGD-CE", "APGD-DLR", "DeepFool", "Square"):
        assert member in spec.description
    assert "not comparable" in spec.description


def test_unknown_attack_names_close_matches():
    with pytest.raises(registry.UnknownPluginError, match="pgd"):
        get_attack("pgdd")


def test_step_size_scales_with_eps():
    pgd = get_attack("pgd")
    # a fixed step of eps / 4: doubling the steps searches longer, not more finely
    for iters in (10, 20, 40):
        assert pgd.art_kwargs(eps=0.2, max_iter=iters)["eps_step"] == pytest.approx(0.05)
    assert pgd.art_kwargs(eps=0.4, max_iter=10)["eps_step"] == pytest.approx(0.1)
    assert pgd.art_kwargs(eps=0.2, eps_step=0.01, max_iter=10)["eps_step"] == 0.01
    assert pgd.art_kwargs(eps=0.2)["max_iter"] == pgd.defaults["max_iter"] == 40
    assert pgd.defaults["num_random_init"] == 128
    assert get_attack("bim").art_kwargs(eps=0.1, max_iter=5)["eps_step"] == pytest.approx(0.025)
    assert pgd_step(0.2, 10) == pytest.approx(0.05)  # Madry's rule stays available
    assert get_attack("fgsm").art_kwargs(eps=0.3)["eps_step"] == pytest.approx(0.3)
    assert get_attack("apgd-ce").art_kwargs(eps=0.1)["eps_step"] == pytest.approx(0.2)


def test_common_options_map_onto_art_names():
    assert get_attack("pgd").art_kwargs(eps=0.1, restarts=3)["num_random_init"] == 3
    assert get_attack("apgd-dlr").art_kwargs(eps=0.1, restarts=2)["nb_random_init"] == 2
    assert get_attack("square").art_kwargs(eps=0.1, restarts=2, max_iter=7)["nb_restarts"] == 2
    assert get_attack("autoattack").art_kwargs(eps=0.1, max_iter=7)["apgd_max_iter"] == 7
    assert get_attack("pgd").art_kwargs(eps=0.1, batch_size=16, targeted=True)["targeted"] is True
    cw = get_attack("cw").art_kwargs(eps=0.5, max_iter=3, confidence=1.0)
    assert "eps" not in cw and cw["max_iter"] == 3 and cw["confidence"] == 1.0


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("pgd", {"eps": -0.1}, "eps"),
        ("pgd", {"eps": 0.1, "max_iter": 0}, "max_iter"),
        ("pgd", {"eps": 0.1, "batch_size": 0}, "batch_size"),
        ("pgd", {"eps": 0.1, "eps_step": -1.0}, "eps_step"),
        ("pgd", {"eps": 0.1, "bogus": 1}, "bogus.*accepted"),
        ("square", {"eps": 0.1, "targeted": True}, "targeted"),
        ("deepfool", {"targeted": True}, "targeted"),
    ],
)
def test_bad_options_are_one_sentence_value_errors(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_attack(name).art_kwargs(**options)


def test_spec_rejects_unknown_norm_or_threat():
    with pytest.raises(ValueError, match="norm"):
        AttackSpec("x", factory=lambda c, **k: None, norm="1", threat="white-box", iterative=True)
    with pytest.raises(ValueError, match="threat"):
        AttackSpec("x", factory=lambda c, **k: None, norm="inf", threat="grey-box", iterative=True)


@pytest.mark.parametrize("name", sorted(BUILT_IN_ATTACKS))
def test_every_attack_generates_valid_adversarial_examples(tiny, name):
    from er_art.evaluation.outcome import perturbation_norms
    from er_art.evaluation.running import generate_adversarial

    clf, x, y = tiny
    spec = get_attack(name)
    options = dict(FAST[name])
    common = {k: options.pop(k) for k in ("max_iter", "restarts") if k in options}
    eps = 0.1 if spec.budgeted else None
    x_adv, seconds, kwargs = generate_adversarial(
        clf, x, y, spec, eps, batch_size=4, params=options, **common
    )
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 - 1e-6 and x_adv.max() <= 1.0 + 1e-6
    assert seconds >= 0
    if spec.budgeted:
        assert perturbation_norms(x, x_adv, spec.norm).max() <= 0.1 + 1e-5
        assert kwargs["eps"] == 0.1


def test_pgd_lowers_accuracy_of_trained_model(trained_digits, digits):
    x, y = digits[2][:48], digits[3][:48]
    clean = (trained_digits.predict(x).argmax(1) == y).mean()
    x_adv = get_attack("pgd").build(trained_digits, eps=0.3, max_iter=5).generate(x, y)
    assert (trained_digits.predict(x_adv).argmax(1) == y).mean() < clean


def _fake_entry_points(monkeypatch, group_name: str, name: str, obj):
    real = registry._entry_points

    def fake(group: str):
        found = real(group)
        if group == group_name:
            found.append(
                SimpleNamespace(
                    name=name,
                    value=f"third_party:{name}",
                    dist=SimpleNamespace(name="third-party"),
                    load=lambda: obj,
                )
            )
        return found

    monkeypatch.setattr(registry, "_entry_points", fake)
    registry.clear_cache()


def test_third_party_attack_through_entry_points(monkeypatch, tiny):
    from er_art.evaluation.running import evaluate_attack

    def factory(classifier, **kwargs):
        from art.attacks.evasion import FastGradientMethod

        return FastGradientMethod(classifier, **kwargs)

    plugin = AttackSpec(
        "my-fgsm",
        factory=factory,
        norm="inf",
        threat="white-box",
        iterative=False,
        defaults={"batch_size": 32},
        eps_step_rule=lambda e, _n: e,
        max_iter_param=None,
        description="third-party FGSM",
        paper="-",
    )
    _fake_entry_points(monkeypatch, "er_art.attacks", "my-fgsm", plugin)
    try:
        assert "my-fgsm" in attack_names()
        assert get_attack("my-fgsm") is plugin
        clf, x, y = tiny
        record = evaluate_attack(clf, x, y, "my-fgsm", 0.1)
        assert (
            record["method"] == "my-fgsm"
            and 0.0 <= record["robust_accuracy"] <= record["clean_accuracy"]
        )
    finally:
        monkeypatch.undo()
        registry.clear_cache()
    assert "my-fgsm" not in attack_names()


def test_third_party_plugin_of_the_wrong_type_is_refused(monkeypatch):
    _fake_entry_points(monkeypatch, "er_art.attacks", "not-a-spec", object())
    try:
        with pytest.raises(TypeError, match="AttackSpec"):
            get_attack("not-a-spec")
    finally:
        monkeypatch.undo()
        registry.clear_cache()


# ---------------------------------------------------------------------------- defences
def test_built_in_defences_are_registered_specs():
    assert BUILT_IN_DEFENCES <= set(defence_names())
    for name in BUILT_IN_DEFENCES:
        spec = get_defence(name)
        assert isinstance(spec, DefenceSpec) and spec.name == name and spec.description


def _kornia_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("kornia") is None


@pytest.mark.parametrize(
    "name", ["feature-squeezing", "spatial-smoothing", "jpeg", "spatial-smoothing-pytorch"]
)
def test_defence_builds_with_the_classifiers_settings(tiny, name):
    clf, x, _ = tiny
    if name == "spatial-smoothing-pytorch" and _kornia_missing():
        with pytest.raises(DefenceUnavailableError, match="kornia"):
            get_defence(name).build(clf)
        return
    defence = get_defence(name).build(clf)
    if hasattr(defence, "channels_first"):
        assert defence.channels_first is True
    if getattr(defence, "clip_values", None) is not None:
        assert tuple(defence.clip_values) == (0.0, 1.0)
    x_def, _ = defence(x)
    assert np.asarray(x_def).shape == x.shape


def test_defence_parameters_are_checked(tiny):
    clf, _, _ = tiny
    assert get_defence("feature-squeezing").build(clf, bit_depth=2).bit_depth == 2
    with pytest.raises(ValueError, match="window"):
        get_defence("feature-squeezing").build(clf, window=3)


@pytest.mark.parametrize("arch", ["test_digits", "test_cnn"])
def test_apply_defences_on_er_and_baseline_classifiers(arch, digits):
    clf = er_art.build_classifier(arch, input_shape=(1, 8, 8), device_type="cpu", seed=0)
    x, y = digits[2][:8], digits[3][:8]
    built = apply_defences(clf, ["feature-squeezing", "spatial-smoothing"])
    assert [type(d).__name__ for d in built] == ["FeatureSqueezing", "SpatialSmoothing"]
    (chain,) = clf.preprocessing_defences  # one NumPy preprocessor: ART chains at most one
    assert chain.members == built and chain in clf.preprocessing_operations
    squeezed = apply_defences(clf, [get_defence("feature-squeezing").build(clf, bit_depth=1)])
    preds = clf.predict(x)
    assert preds.shape == (8, 10)
    manual = clf.predict(np.round(x))  # bit depth 1 on [0, 1] is rounding
    np.testing.assert_allclose(preds, manual, atol=1e-5)
    x_adv = get_attack("pgd").build(clf, eps=0.1, max_iter=2).generate(x, y)  # BPDA gradients flow
    assert x_adv.shape == x.shape and np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert len(squeezed) == 1
    apply_defences(clf, [])
    assert not clf.preprocessing_defences
