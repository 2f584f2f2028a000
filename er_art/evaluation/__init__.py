"""Robustness evaluation: attacks scored against the true labels, sweeps over epsilon, restarts
that stop by a rule, the worst case over a cascade of attacks, the standard AutoAttack, and the
sanity checks a reviewer expects at every epsilon (docs/EVALUATION.md). Resumable through an
:class:`EvaluationStore`.

    >>> from er_art.evaluation import evaluate_attack, evaluate_suite, fast_suite, standard_suite
    >>> record = evaluate_attack(classifier, x, y, "pgd", eps=0.1)     # converged defaults
    >>> result = evaluate_suite(classifier, x, y, [0.1, 0.2], standard_suite(10))
    >>> result.worst_case(0.2).accuracy, [c.status for c in result.checks]

The package's modules: ``eps`` (parsing), ``outcome`` (scoring, records, worst case),
``running`` (one attack: batches, restarts, EOT, seeds), ``stopping`` (when restarts stop),
``suites`` (what runs), ``checks``
(the sanity checks), ``plan`` (a suite and its checks on one model), ``store`` (resumable runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from er_art.evaluation.checks import (
    FAIL,
    PASS,
    UNINFORMATIVE,
    CheckResult,
    binomial_std,
    check_chance_at_full_range,
    check_converged,
    check_deterministic,
    check_iterative_beats_single_step,
    check_more_iterations,
    check_whitebox_beats_blackbox,
    noise_margin,
)
from er_art.evaluation.eps import EPS_TOLERANCE, parse_eps
from er_art.evaluation.outcome import (
    AttackOutcome,
    perturbation_norms,
    predict_labels,
    score,
    summarise,
    target_labels,
    worst_case,
    worst_case_outcome,
)
from er_art.evaluation.plan import (
    EvaluationResult,
    UnitRunner,
    attack_sweep,
    evaluate_suite,
    full_range,
)
from er_art.evaluation.running import (
    CW_L2_THRESHOLD,
    evaluate_attack,
    generate_adversarial,
    run_attack,
    sweep_attack,
    unit_seed,
)
from er_art.evaluation.stopping import RestartEvidence, StoppingRule
from er_art.evaluation.store import EvaluationStore
from er_art.evaluation.suites import (
    FAST_ATTACKS,
    PROTOCOLS,
    SUITES,
    AttackRun,
    Suite,
    fast_suite,
    paper_protocol,
    standard_suite,
)

DEFAULT_ENSEMBLE = FAST_ATTACKS

__all__ = [
    "CW_L2_THRESHOLD",
    "DEFAULT_ENSEMBLE",
    "EPS_TOLERANCE",
    "FAIL",
    "FAST_ATTACKS",
    "PASS",
    "PROTOCOLS",
    "RestartEvidence",
    "SUITES",
    "StoppingRule",
    "UNINFORMATIVE",
    "AttackOutcome",
    "AttackRun",
    "CheckResult",
    "EvaluationResult",
    "EvaluationStore",
    "Suite",
    "UnitRunner",
    "attack_sweep",
    "binomial_std",
    "check_chance_at_full_range",
    "check_converged",
    "check_deterministic",
    "check_iterative_beats_single_step",
    "check_more_iterations",
    "check_whitebox_beats_blackbox",
    "evaluate_attack",
    "evaluate_ensemble",
    "evaluate_suite",
    "fast_suite",
    "full_range",
    "generate_adversarial",
    "noise_margin",
    "paper_protocol",
    "parse_eps",
    "perturbation_norms",
    "predict_labels",
    "run_attack",
    "run_sanity_checks",
    "score",
    "standard_suite",
    "summarise",
    "sweep_attack",
    "target_labels",
    "unit_seed",
    "worst_case",
    "worst_case_outcome",
]


def evaluate_ensemble(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps_values: Sequence[float],
    attacks: Sequence[str] = FAST_ATTACKS,
    *,
    max_iter: int | None = None,
    restarts: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    params: dict[str, dict[str, Any]] | None = None,
    eot: int = 1,
    progress: Callable[..., Any] | None = None,
) -> dict[float, list[AttackOutcome]]:
    """The fast suite of ``attacks`` at every epsilon (a cascade in that order, FGSM on every
    example), plus a ``worst-case`` outcome per eps (last); no checks (see
    :func:`evaluate_suite`). Options as :func:`fast_suite`'s."""
    suite = fast_suite(tuple(attacks), max_iter=max_iter, restarts=restarts, params=params)
    return evaluate_suite(
        classifier,
        x,
        y,
        eps_values,
        suite,
        checks=False,
        seed=seed,
        batch_size=batch_size,
        eot=eot,
        progress=progress,  # type: ignore[arg-type]
    ).by_eps


def run_sanity_checks(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    *,
    max_iter: int | None = None,
    restarts: int | None = None,
    square_max_iter: int = 1000,
    batch_size: int = 128,
    seed: int = 0,
    eot: int = 1,
) -> list[CheckResult]:
    """The checks of docs/EVALUATION.md at ``eps`` (Linf), running the PGD, FGSM and Square they
    need: determinism, chance at full range, then (ii)-(iv) at ``eps``."""
    suite = fast_suite(
        ("pgd", "fgsm", "square"),
        max_iter=max_iter,
        restarts=restarts,
        square_queries=square_max_iter,
    )
    return evaluate_suite(
        classifier, x, y, [eps], suite, seed=seed, batch_size=batch_size, eot=eot
    ).checks
