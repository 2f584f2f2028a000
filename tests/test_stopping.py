"""Restarts converged by a rule (er_art.evaluation.stopping): the rule itself, the restart loop that
applies it to every restarting attack, the evidence each outcome records, and the convergence
check that reads that evidence."""

from __future__ import annotations

import numpy as np
import pytest

from er_art.attacks import AttackSpec
from er_art.evaluation.checks import FAIL, PASS, UNINFORMATIVE, check_converged
from er_art.evaluation.running import run_attack
from er_art.evaluation.stopping import RestartEvidence, StoppingRule
from tests.linear_models import linear_classifier, linear_data


# ---------------------------------------------------------------------------- the rule
def test_stops_after_patience_restarts_that_break_nothing():
    rule = StoppingRule(cap=50, patience=3)
    assert rule.stop([4, 0, 0], remaining=10) is None
    assert rule.stop([4, 0, 0, 0], remaining=10) == "patience"
    assert rule.stop([4, 0, 0, 1, 0, 0], remaining=10) is None  # a break resets the count
    assert rule.stop([4, 0, 0, 1, 0, 0, 0], remaining=10) == "patience"


def test_never_stops_before_the_minimum_and_always_at_the_cap():
    rule = StoppingRule(cap=8, patience=2, minimum=5)
    assert [rule.stop([0] * k, remaining=3) for k in range(1, 6)] == [None] * 4 + ["patience"]
    assert StoppingRule(cap=4, patience=2).stop([1, 1, 1, 1], remaining=3) == "cap"
    assert StoppingRule(cap=4).stop([1, 0, 0], remaining=3) is None  # no patience: a fixed count
    assert StoppingRule(cap=4, patience=2).stop([5], remaining=0) == "all broken"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_settings_are_one_sentence(bad):
    with pytest.raises(ValueError, match="integer >= 1"):
        StoppingRule(cap=4, patience=bad)


def test_evidence_round_trips_through_settings():
    evidence = RestartEvidence([3, 0, 2, 0, 0], "patience", {"cap": 9, "patience": 2})
    assert evidence.restarts_run == 5 and evidence.last_break == 3
    settings = evidence.as_settings()
    assert settings["restarts_run"] == 5 and settings["last_break_restart"] == 3
    back = RestartEvidence.from_settings(settings)
    assert back is not None and back.as_settings() == settings
    assert RestartEvidence([0, 0], "patience").last_break == 0


# ---------------------------------------------------------------------------- the restart loop
class ScriptedAttack:
    """Breaks example ``i`` at restart ``schedule[i]`` (1-based; 0: never) by returning a point the
    linear model classifies otherwise; records how many examples each restart attacked."""

    def __init__(self, x: np.ndarray, schedule: list[int], decoy: np.ndarray) -> None:
        self.rows = {row.tobytes(): i for i, row in enumerate(x)}
        self.schedule, self.decoy, self.attacked = schedule, decoy, []

    def generate(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        self.attacked.append(len(x))
        restart, out = len(self.attacked), x.copy()
        for j, row in enumerate(x):
            i = self.rows[row.tobytes()]
            if self.schedule[i] == restart:
                out[j] = self.decoy[i]
        return out


def scripted(schedule: list[int], patience: int | None, minimum: int = 1, cap: int = 20):
    """``run_attack`` of a scripted restarting attack on the linear model: (outcome, attack)."""
    clf = linear_classifier()
    x = linear_data(len(schedule))
    y = clf.predict(x).argmax(1)
    pool = linear_data(64)[16:]
    pool_pred = clf.predict(pool).argmax(1)
    decoy = np.stack([pool[np.flatnonzero(pool_pred != label)[0]] for label in y])
    attack = ScriptedAttack(x, schedule, decoy)
    spec = AttackSpec(
        name="scripted",
        factory=lambda classifier, **kwargs: attack,
        norm="inf",
        threat="white-box",
        iterative=True,
        defaults={"num_random_init": 1, "batch_size": 128},
        restarts_param="num_random_init",
        patience=patience,
        min_restarts=minimum,
    )
    (outcome,) = run_attack(clf, x, y, spec, [0.1], restarts=cap, batch_size=1000)
    return outcome, attack


def test_restarts_stop_after_patience_restarts_that_broke_nothing():
    # examples 0-5 break at restarts 1, 1, 2, 5, 12 (after the stop), never
    outcome, attack = scripted([1, 1, 2, 5, 12, 0], patience=3)
    s = outcome.settings
    assert s["breaks_per_restart"] == [2, 1, 0, 0, 1, 0, 0, 0]
    assert s["restarts_run"] == 8 and s["last_break_restart"] == 5
    assert s["stopped_by"] == "patience" and s["stopping_rule"]["patience"] == 3
    assert attack.attacked == [6, 4, 3, 3, 3, 2, 2, 2]  # each restart: only what is still robust
    assert outcome.robust.tolist() == [False, False, False, False, True, True]


def test_restarts_never_stop_before_the_minimum():
    outcome, attack = scripted([1, 0, 0, 0], patience=2, minimum=6)
    assert outcome.settings["restarts_run"] == 6 and outcome.settings["stopped_by"] == "patience"
    outcome, _ = scripted([1, 0, 0, 0], patience=2)
    assert outcome.settings["restarts_run"] == 3


def test_restarts_stop_at_the_cap_or_when_everything_is_broken():
    outcome, _ = scripted([1, 2, 3, 4, 5, 0], patience=2, cap=4)
    assert outcome.settings["stopped_by"] == "cap" and outcome.settings["restarts_run"] == 4
    assert outcome.settings["breaks_per_restart"] == [1, 1, 1, 1]
    outcome, attack = scripted([1, 2, 2], patience=5)
    assert outcome.settings["stopped_by"] == "all broken" and attack.attacked == [3, 2]
    outcome, attack = scripted([1, 3, 0], patience=None, cap=5)  # a fixed count runs them all
    assert outcome.settings["restarts_run"] == 5 and outcome.settings["stopping_rule"] == {
        "cap": 5,
        "patience": None,
        "minimum": 1,
    }


def test_patience_from_the_caller_wins_and_zero_means_every_restart():
    clf = linear_classifier()
    x = linear_data(8)
    y = clf.predict(x).argmax(1)
    (one,) = run_attack(clf, x, y, "pgd", [0.01], max_iter=2, restarts=6, patience=2)
    (every,) = run_attack(clf, x, y, "pgd", [0.01], max_iter=2, restarts=6, patience=0)
    assert one.settings["restarts_run"] == 2 and one.settings["stopped_by"] == "patience"
    assert (
        every.settings["restarts_run"] == 6 and every.settings["stopping_rule"]["patience"] is None
    )
    with pytest.raises(ValueError, match="--patience"):
        run_attack(clf, x, y, "pgd", [0.01], max_iter=2, restarts=6, patience=-1)


# ---------------------------------------------------------------------------- the check
def test_the_convergence_check_reads_the_evidence():
    settled = RestartEvidence([9, 1, 0, 0, 0], "patience", {"cap": 64, "patience": 3})
    ok = check_converged(0.40, 0.40, 400, settled, eps=0.1, chance=0.1)
    assert ok.status == PASS and ok.values["converged"] and ok.values["last_break_restart"] == 2
    assert "stopped by patience after 5" in ok.message
    # still breaking examples when the cap ended it: the restarts did not converge
    capped = RestartEvidence([9, 1, 2, 1], "cap", {"cap": 4, "patience": 3})
    bad = check_converged(0.40, 0.40, 400, capped, eps=0.1, chance=0.1)
    assert bad.status == FAIL and "--restarts" in bad.warning
    # capped, but the last `patience` restarts broke nothing: converged all the same
    quiet = RestartEvidence([9, 0, 0, 0], "cap", {"cap": 4, "patience": 3})
    assert check_converged(0.40, 0.40, 400, quiet, eps=0.1, chance=0.1).passed


def test_the_convergence_check_fails_when_more_steps_break_more_than_the_tolerance():
    settled = RestartEvidence([9, 0, 0], "patience", {"cap": 64, "patience": 2})
    assert check_converged(0.40, 0.39, 400, settled, chance=0.1).passed  # 4 of 400: 1 point
    worse = check_converged(0.40, 0.38, 400, settled, chance=0.1)  # 8 of 400: 2 points
    assert worse.status == FAIL and "--max-iter" in worse.warning
    assert check_converged(0.5, 0.45, 20, None, chance=0.1).passed  # one example of 20
    assert check_converged(0.05, 0.02, 100, settled, chance=0.1).status == UNINFORMATIVE
