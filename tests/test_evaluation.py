"""er_art.evaluation: eps parsing, scoring against true labels, worst case, sanity checks, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from er_art.attacks import get_attack
from er_art.evaluation import AttackOutcome
from er_art.evaluation.checks import (
    binomial_std,
    check_chance_at_full_range,
    check_iterative_beats_single_step,
    check_more_iterations,
    check_whitebox_beats_blackbox,
    noise_margin,
)
from er_art.evaluation.eps import parse_eps
from er_art.evaluation.outcome import (
    perturbation_norms,
    score,
    summarise,
    target_labels,
    worst_case,
)
from er_art.evaluation.plan import evaluate_ensemble, run_sanity_checks
from er_art.evaluation.running import evaluate_attack, sweep_attack


# ---------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", [0.1]),
        ("0, 0.1,0.3", [0.0, 0.1, 0.3]),
        ("0:0.3:0.1", [0.0, 0.1, 0.2, 0.3]),  # stop included despite 0.1 + 0.1 + 0.1 != 0.3
        ("0:0.3:0.05", [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]),
        ("0.1:0.25:0.1", [0.1, 0.2]),
        ("0:1:0.125", [i * 0.125 for i in range(9)]),
    ],
)
def test_parse_eps(text, expected):
    assert parse_eps(text) == pytest.approx(expected)


def test_parse_eps_paper_uses_the_datasets_grid():
    from er_art.datasets import get_dataset

    grid = get_dataset("digits").eps_grid
    assert parse_eps("paper", grid) == list(grid)
    with pytest.raises(ValueError, match="eps_grid"):
        parse_eps("paper", ())


@pytest.mark.parametrize("text", ["abc", "0:1", "0:1:0", "0.3:0.1:0.1", "-0.1", "", "nan", "1:2:x"])
def test_parse_eps_rejects_bad_values(text):
    with pytest.raises(ValueError, match="eps"):
        parse_eps(text)


# ------------------------------------------------------------------ scoring on synthetic data
class LookupClassifier:
    """A fake ART classifier: the class is the rounded mean of the input (scoring logic only)."""

    nb_classes = 10
    clip_values = (0.0, 1.0)

    def predict(self, x, batch_size=256):
        cls = np.clip(np.round(x.reshape(len(x), -1).mean(axis=1) * 9), 0, 9).astype(int)
        return np.eye(10)[cls]


def test_perturbation_norms():
    x = np.zeros((2, 1, 2, 2), dtype=np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 0.3
    x_adv[1] = 0.1
    np.testing.assert_allclose(perturbation_norms(x, x_adv, "inf"), [0.3, 0.1], rtol=1e-6)
    np.testing.assert_allclose(perturbation_norms(x, x_adv, "2"), [0.3, 0.2], rtol=1e-6)


def test_score_uses_true_labels_and_counts_only_clean_correct_as_robust():
    clf = LookupClassifier()
    x = np.stack([np.full((1, 2, 2), v / 9, np.float32) for v in (1, 2, 3, 4)])
    y = np.array([1, 2, 0, 4])  # example 2 is misclassified from the start
    x_adv = x.copy()
    x_adv[3] = 5 / 9  # flips example 3
    out = score(clf, x, y, x_adv, get_attack("pgd"), 0.2)
    assert out.clean_correct.tolist() == [True, True, False, True]
    assert out.robust.tolist() == [True, True, False, False]
    record = summarise(out)
    assert record["clean_accuracy"] == 0.75 and record["robust_accuracy"] == 0.5
    assert record["success_rate"] == pytest.approx(1 / 3)  # of the 3 originally correct
    assert record["max_perturbation"] == pytest.approx(1 / 9, rel=1e-5)


def test_minimal_perturbation_attack_is_robust_beyond_its_threshold():
    clf = LookupClassifier()
    x = np.stack([np.full((1, 2, 2), v / 9, np.float32) for v in (1, 2)])
    y = np.array([1, 2])
    x_adv = x.copy()
    x_adv[0] += 0.5 / 9  # small change, label flips
    x_adv[1] += 2.0 / 9  # large change, label flips
    deepfool = get_attack("deepfool")
    l2 = perturbation_norms(x, x_adv, "2")
    out = score(clf, x, y, x_adv, deepfool, eps=float(l2.mean()))
    assert out.robust.tolist() == [False, True]
    assert score(clf, x, y, x_adv, deepfool, eps=10.0).robust.tolist() == [False, False]


def test_worst_case_is_per_example():
    base = dict(
        eps=0.1,
        norm="inf",
        clean_correct=np.array([True, True, True, False]),
        perturbation=np.zeros(4),
        time_s=0.0,
    )
    a = AttackOutcome("a", robust=np.array([True, False, True, False]), **base)
    b = AttackOutcome("b", robust=np.array([True, True, False, False]), **base)
    assert worst_case([a, b]).tolist() == [True, False, False, False]
    with pytest.raises(ValueError):
        worst_case([])


def test_target_labels_differ_from_true_labels():
    y = np.arange(100) % 10
    t = target_labels(y, 10, seed=1)
    assert (t != y).all() and t.min() >= 0 and t.max() <= 9


# ------------------------------------------------------------------ checks (pure functions)
def test_binomial_noise():
    assert binomial_std(0.5, 100) == pytest.approx(0.05)
    assert binomial_std(0.0, 100) == 0.0
    assert noise_margin(0.0, 0.0, 50) == pytest.approx(1 / 50)  # at least one example
    assert noise_margin(0.5, 0.5, 100) == pytest.approx(2 * np.sqrt(0.005))
    with pytest.raises(ValueError):
        binomial_std(0.5, 0)


def test_check_chance_at_full_range():
    assert check_chance_at_full_range(0.0, 10, 100, 1.0).passed
    assert check_chance_at_full_range(0.14, 10, 100, 1.0, margin=0.05).passed
    failed = check_chance_at_full_range(0.4, 10, 100, 1.0)
    assert (
        not failed.passed
        and failed.status == "FAIL"
        and "0.400" in failed.message
        and failed.warning
    )


def test_check_more_iterations_allows_noise_only():
    assert check_more_iterations(0.50, 0.45, 200).passed  # more steps lowered accuracy: fine
    assert check_more_iterations(0.50, 0.52, 200).passed  # within 2 std of the difference (0.1)
    result = check_more_iterations(0.30, 0.60, 200)
    assert not result.passed and result.values["accuracy_stronger"] == 0.60


def test_check_iterative_beats_single_step():
    assert check_iterative_beats_single_step(0.2, 0.5, 100).passed
    assert check_iterative_beats_single_step(0.52, 0.5, 100).passed
    assert not check_iterative_beats_single_step(0.8, 0.3, 100).passed


def test_check_whitebox_beats_blackbox_flags_gradient_masking():
    assert check_whitebox_beats_blackbox(0.3, 0.6, 100).passed
    assert check_whitebox_beats_blackbox(0.3, 0.28, 100).passed
    masked = check_whitebox_beats_blackbox(0.8, 0.2, 100)
    assert not masked.passed and "GRADIENT MASKING" in masked.warning
    assert json.dumps(masked.as_dict())  # JSON-able for checks.json


# ---------------------------------------------------------------------------- on a trained model
@pytest.fixture(scope="module")
def sample(digits):
    return digits[2][:32], digits[3][:32]


def test_evaluate_attack_record(trained_digits, sample):
    x, y = sample
    record = evaluate_attack(
        trained_digits, x, y, "pgd", 0.2, max_iter=3, restarts=1, batch_size=16
    )
    for key in (
        "method",
        "eps",
        "norm",
        "clean_accuracy",
        "robust_accuracy",
        "success_rate",
        "mean_perturbation",
        "max_perturbation",
        "time_s",
        "n_samples",
        "eps_step",
        "max_iter",
        "restarts",
    ):
        assert key in record
    assert (
        record["n_samples"] == 32
        and record["max_iter"] == 3
        and record["eps_step"] == pytest.approx(0.2 / 4)  # pgd's fixed step of eps / 4
    )
    assert 0.0 <= record["robust_accuracy"] < record["clean_accuracy"] <= 1.0
    assert record["max_perturbation"] <= 0.2 + 1e-6
    json.dumps(record)


def test_eps_zero_leaves_accuracy_at_clean(trained_digits, sample):
    x, y = sample
    (record,) = sweep_attack(trained_digits, x, y, "pgd", [0.0], max_iter=2)
    assert record["robust_accuracy"] == record["clean_accuracy"]


def test_cw_is_scored_under_a_normalised_l2_threshold(trained_digits, sample):
    x, y = sample
    records = sweep_attack(
        trained_digits,
        x[:16],
        y[:16],
        "cw",
        [0.0, 0.005, 1.0],
        max_iter=3,
        params={"binary_search_steps": 2},
    )
    assert [r["l2_threshold"] for r in records] == [0.0, 0.005, 1.0]
    assert records[1]["threshold_abs"] == pytest.approx(0.005 * 64)  # 8x8 digits: 64 dimensions
    accs = [r["robust_accuracy"] for r in records]
    assert accs[0] == records[0]["clean_accuracy"]  # nothing is within a zero threshold
    assert accs[0] >= accs[1] >= accs[2]


def test_ensemble_worst_case_is_no_better_than_any_attack(trained_digits, sample):
    x, y = sample
    by_eps = evaluate_ensemble(
        trained_digits,
        x,
        y,
        [0.1, 0.2],
        ["pgd", "fgsm", "square"],
        max_iter=3,
        params={"square": {"max_iter": 5}},
    )
    assert sorted(by_eps) == [0.1, 0.2]
    for outcomes in by_eps.values():
        *attacks, worst = outcomes
        # a cascade (PGD, then Square on what PGD left robust) and FGSM on every example
        assert worst.method == "worst-case" and [o.method for o in attacks] == [
            "pgd",
            "square",
            "fgsm",
        ]
        pgd, square, _ = attacks
        assert not (square.robust & ~pgd.robust).any()
        assert worst.robust.mean() <= min(o.robust.mean() for o in attacks)
    with pytest.raises(ValueError, match="norm"):
        evaluate_ensemble(trained_digits, x, y, [0.1], ["pgd", "deepfool"])


@pytest.mark.slow
def test_sanity_checks_on_a_trained_model(trained_digits, sample):
    x, y = sample
    results = run_sanity_checks(trained_digits, x, y, 0.1, max_iter=5, square_max_iter=20)
    names = [r.name for r in results]
    assert names == [
        "deterministic predictions",
        "chance at full range",
        "more iterations and restarts do not help",
        "iterative at least as strong as single-step",
        "white-box at least as strong as black-box",
    ]
    assert all(r.status in ("PASS", "FAIL", "UNINFORMATIVE") for r in results)
    assert results[0].passed and not results[0].values["randomised"]
    assert results[1].passed, results[1].message  # PGD reaches chance: it may change every pixel
    assert [r.values["eps"] for r in results] == [0.0, 1.0, 0.1, 0.1, 0.1]


def test_plot_accuracy_vs_eps(tmp_path):
    from er_art.plotting import plot_accuracy_vs_eps

    records = [
        {"eps": e, "robust_accuracy": 1 - e, "method": m, "label": run}
        for e in (0.0, 0.1, 0.2)
        for m in ("pgd", "fgsm")
        for run in ("a", "b")
    ]
    path = plot_accuracy_vs_eps(records, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_accuracy_vs_eps([], tmp_path / "none.png")
