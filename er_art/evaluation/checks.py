"""The sanity checks a reviewer runs on a robustness evaluation (docs/EVALUATION.md).

Each check is a pure function of accuracies (fractions) and the number of examples, so it can be
applied to numbers from elsewhere. A check is ``PASS``, ``FAIL`` or ``UNINFORMATIVE``: a
comparison whose accuracies are all at or below chance (``1 / nb_classes``) at its eps says
nothing about the attacks, and is never reported as a pass. Every result carries the eps it was
made at in ``values["eps"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, UNINFORMATIVE = "PASS", "FAIL", "UNINFORMATIVE"
# (ii): the most the doubled-steps attack may lower the worst case (a fraction; never less than
# one example) for the evaluation to count as converged: er-art's convergence criterion of
# 1.5 points (docs/EVALUATION.md). It bounds a bias, not noise: the doubled attack runs on the
# very examples the others left robust and can only lower the worst case.
CONVERGED_DROP = 0.015


@dataclass(frozen=True)
class CheckResult:
    """One sanity check: its verdict, a one-line explanation with its numbers, and the numbers.

    ``passed`` is True (PASS), False (FAIL) or None (UNINFORMATIVE).
    """

    name: str
    passed: bool | None
    message: str
    values: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None

    @property
    def status(self) -> str:
        return UNINFORMATIVE if self.passed is None else PASS if self.passed else FAIL

    @property
    def failed(self) -> bool:
        return self.passed is False

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "message": self.message,
            "values": self.values,
            "warning": self.warning,
        }


def binomial_std(p: float, n: int) -> float:
    """Standard deviation of an accuracy ``p`` on ``n`` examples: ``sqrt(p (1 - p) / n)``."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}.")
    p = min(max(float(p), 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def noise_margin(p1: float, p2: float, n: int, z: float = 2.0) -> float:
    """How far two accuracies on ``n`` examples may differ by chance: ``z`` std of their difference,
    at least one example (``1 / n``)."""
    return max(z * math.sqrt(binomial_std(p1, n) ** 2 + binomial_std(p2, n) ** 2), 1.0 / n)


def _comparison(
    name: str,
    passed: bool,
    message: str,
    values: dict[str, Any],
    warning: str,
    chance: float | None,
    compared: tuple[float, ...],
) -> CheckResult:
    """A comparison check: UNINFORMATIVE when every compared accuracy is at or below chance."""
    if chance is not None and all(a <= chance + 1e-12 for a in compared):
        return CheckResult(
            name,
            None,
            f"{message}; all at or below chance {chance:.3f}: says nothing",
            {**values, "chance": chance},
        )
    values = values if chance is None else {**values, "chance": chance}
    return CheckResult(name, passed, message, values, None if passed else warning)


def check_chance_at_full_range(
    accuracy: float, nb_classes: int, n: int, eps: float, margin: float = 0.05
) -> CheckResult:
    """(i) At eps = the whole input range every input is reachable: accuracy must be at most
    ``1 / nb_classes + margin``."""
    limit = 1.0 / nb_classes + margin
    passed = accuracy <= limit
    msg = (
        f"accuracy {accuracy:.3f} at eps={eps:g} (whole input range) "
        f"{'<=' if passed else '>'} chance 1/{nb_classes} + {margin:g} = {limit:.3f} (n={n})"
    )
    warning = (
        None
        if passed
        else "The attack cannot reach chance with an unlimited budget: gradient masking or a "
        "broken attack."
    )
    return CheckResult(
        "chance at full range",
        passed,
        msg,
        {"accuracy": accuracy, "limit": limit, "eps": eps},
        warning,
    )


def check_more_iterations(
    acc_base: float,
    acc_stronger: float,
    n: int,
    label: str = "2x steps + restarts",
    *,
    eps: float | None = None,
    chance: float | None = None,
    attack: str = "PGD",
) -> CheckResult:
    """(ii) More steps and restarts must not raise accuracy beyond noise (if they do, the attack
    is not converging: noisy or masked gradients). ``values["converged"]`` says whether they also
    did not lower it beyond noise (else the base attack alone overstates robustness)."""
    margin = noise_margin(acc_base, acc_stronger, n)
    passed = acc_stronger <= acc_base + margin
    converged = acc_stronger >= acc_base - margin
    msg = (
        f"{attack} accuracy {acc_base:.3f} -> {acc_stronger:.3f} with {label} "
        f"(allowed rise {margin:.3f}, n={n})" + ("" if converged else "; base not converged")
    )
    warning = (
        f"A stronger {attack} gives HIGHER accuracy: the attack is not converging (noisy or "
        "masked gradients)."
    )
    return _comparison(
        "more iterations do not help the model",
        passed,
        msg,
        {
            "accuracy": acc_base,
            "accuracy_stronger": acc_stronger,
            "margin": margin,
            "converged": converged,
            "eps": eps,
        },
        warning,
        chance,
        (acc_base, acc_stronger),
    )


def check_converged(
    acc_before: float,
    acc_after: float,
    n: int,
    evidence: Any = None,
    label: str = "2x steps",
    *,
    eps: float | None = None,
    chance: float | None = None,
    attack: str = "APGD-CE",
) -> CheckResult:
    """(ii) More iterations and restarts do not help the attacker: the evaluation is converged.

    Restarts: the primary attack's restarts (``evidence``, a
    :class:`~er_art.evaluation.stopping.RestartEvidence`) stopped because its stopping rule saw
    ``patience`` restarts in a row break nothing, or nothing was left to break, and not at its cap
    while still breaking examples. Steps: its doubled-steps attack, run only on the examples every
    attack left robust, takes the worst case from ``acc_before`` to ``acc_after`` by no more than
    :data:`CONVERGED_DROP` (at least one example). FAIL when either says the evaluation has not
    converged (its numbers overstate robustness: raise ``--restarts`` / ``--max-iter``).
    ``evidence`` ``None`` or a fixed count of restarts: the doubled run doubles the restarts too,
    and the steps part stands for both."""
    margin = max(CONVERGED_DROP, 1.0 / n)
    steps_ok = acc_after >= acc_before - margin - 1e-12
    values: dict[str, Any] = {
        "accuracy": acc_before,
        "accuracy_stronger": acc_after,
        "margin": margin,
        "eps": eps,
    }
    restarts_ok, restarts_msg = True, ""
    if evidence is not None:
        patience = evidence.rule.get("patience")
        values.update(
            restarts_run=evidence.restarts_run,
            last_break_restart=evidence.last_break,
            stopped_by=evidence.stopped_by,
            patience=patience,
        )
        if patience:
            restarts_ok = evidence.stopped_by != "cap" or not any(evidence.breaks[-patience:])
        restarts_msg = (
            f"restarts stopped by {evidence.stopped_by} after {evidence.restarts_run} "
            f"(the last to break an example: {evidence.last_break or 'none'}"
            + (f"; patience {patience}" if patience else "; fixed count")
            + "); "
        )
    values["converged"] = passed = bool(steps_ok and restarts_ok)
    msg = (
        f"{attack}: {restarts_msg}{label} on the examples every attack left robust: worst case "
        f"{acc_before:.3f} -> {acc_after:.3f} (allowed drop {margin:.3f}, n={n})"
    )
    if not restarts_ok:
        warning = (
            f"{attack}'s restarts were still breaking examples at their cap: the numbers overstate "
            "robustness; raise --restarts."
        )
    else:
        warning = (
            f"{attack} with more steps broke more examples than noise allows: the numbers "
            "overstate robustness; raise --max-iter."
        )
    return _comparison(
        "more iterations and restarts do not help",
        passed,
        msg,
        values,
        warning,
        chance,
        (acc_before, acc_after),
    )


def check_iterative_beats_single_step(
    acc_iterative: float,
    acc_single: float,
    n: int,
    *,
    eps: float | None = None,
    chance: float | None = None,
    iterative: str = "PGD",
) -> CheckResult:
    """(iii) The iterative attack must be at least as strong as single-step FGSM (within noise)."""
    margin = noise_margin(acc_iterative, acc_single, n)
    passed = acc_iterative <= acc_single + margin
    msg = (
        f"{iterative} accuracy {acc_iterative:.3f} vs FGSM {acc_single:.3f} "
        f"(allowed excess {margin:.3f}, n={n})"
    )
    return _comparison(
        "iterative at least as strong as single-step",
        passed,
        msg,
        {"pgd": acc_iterative, "fgsm": acc_single, "margin": margin, "eps": eps},
        f"Single-step FGSM beats iterative {iterative}: a sign of gradient masking.",
        chance,
        (acc_iterative, acc_single),
    )


def check_whitebox_beats_blackbox(
    acc_whitebox: float,
    acc_blackbox: float,
    n: int,
    *,
    eps: float | None = None,
    chance: float | None = None,
    whitebox: str = "PGD",
    blackbox: str = "Square",
) -> CheckResult:
    """(iv) The black-box attack must be no stronger than the strongest white-box attack (within
    noise); if it is, the gradients are masked and the white-box numbers overstate robustness."""
    margin = noise_margin(acc_whitebox, acc_blackbox, n)
    passed = acc_blackbox >= acc_whitebox - margin
    msg = (
        f"{blackbox} (black-box) accuracy {acc_blackbox:.3f} vs {whitebox} (white-box) "
        f"{acc_whitebox:.3f} (allowed gap {margin:.3f}, n={n})"
    )
    return _comparison(
        "white-box at least as strong as black-box",
        passed,
        msg,
        {"whitebox": acc_whitebox, "square": acc_blackbox, "margin": margin, "eps": eps},
        "GRADIENT MASKING: the black-box attack is stronger than the white-box ones; white-box "
        "figures overstate robustness.",
        chance,
        (acc_whitebox, acc_blackbox),
    )


def check_deterministic(max_difference: float, n: int, eot: int = 1) -> CheckResult:
    """(v) Two identical ``predict`` calls must agree; a randomised model needs EOT (``--eot N``)
    for its gradient attacks, and passes only when they used it."""
    randomised = max_difference > 1e-6
    if not randomised:
        return CheckResult(
            "deterministic predictions",
            True,
            f"two predict calls on {n} inputs agree (max difference {max_difference:.2g})",
            {"max_difference": max_difference, "eps": 0.0, "randomised": False, "eot": eot},
        )
    used = eot > 1
    return CheckResult(
        "deterministic predictions",
        used,
        f"RANDOMISED: two predict calls on {n} inputs differ by up to {max_difference:.3g}; "
        + (f"gradient attacks averaged {eot} passes (EOT)" if used else "no EOT was used"),
        {"max_difference": max_difference, "eps": 0.0, "randomised": True, "eot": eot},
        None
        if used
        else "The model is randomised: its gradient attacks need --eot N (expectation over "
        "transformation), else they are weak and the numbers overstate robustness.",
    )
