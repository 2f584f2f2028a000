"""Robustness evaluation: attacks scored against the true labels, sweeps over epsilon, restarts
that stop by a rule, the worst case over a cascade of attacks, the standard AutoAttack, and the
sanity checks a reviewer expects at every epsilon (docs/EVALUATION.md). Resumable through an
:class:`EvaluationStore`.

    >>> from er_art.evaluation import evaluate_suite, fast_suite, standard_suite
    >>> result = evaluate_suite(classifier, x, y, [0.1, 0.2], standard_suite(10))
    >>> result.worst_case(0.2).accuracy, [c.status for c in result.checks]
    >>> attack_sweep(classifier, x, y, AttackRun("pgd", "pgd"), [0.1, 0.2])   # one attack

``er_art.evaluate`` (:mod:`er_art.robustness`) is the one-call entry point for any model. This
package exports what a user of the pieces needs: the two entry points (:func:`evaluate_suite`,
:func:`attack_sweep`), what they take (suites, attack runs, a store) and what they return
(outcomes, results, check results). The rest lives in its modules: ``eps`` (parsing and ranges),
``outcome`` (scoring, records, worst case), ``running`` (one attack: batches, restarts, EOT,
seeds), ``stopping`` (when restarts stop), ``suites`` (what runs), ``checks`` (the sanity checks,
pure functions that take numbers from anywhere), ``plan`` (a suite and its checks on one model),
``store`` (resumable runs).
"""

from __future__ import annotations

from er_art.evaluation.checks import CheckResult
from er_art.evaluation.outcome import AttackOutcome
from er_art.evaluation.plan import EvaluationResult, attack_sweep, evaluate_suite
from er_art.evaluation.store import EvaluationStore
from er_art.evaluation.suites import (
    FAST_ATTACKS,
    SUITES,
    AttackRun,
    Suite,
    fast_suite,
    paper_protocol,
    standard_suite,
)

__all__ = [
    "FAST_ATTACKS",
    "SUITES",
    "AttackOutcome",
    "AttackRun",
    "CheckResult",
    "EvaluationResult",
    "EvaluationStore",
    "Suite",
    "attack_sweep",
    "evaluate_suite",
    "fast_suite",
    "paper_protocol",
    "standard_suite",
]
