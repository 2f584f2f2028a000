"""Evaluations of one model: a suite at every eps, the sanity checks at every eps, the worst case.

    >>> from er_art.evaluation import evaluate_suite, fast_suite
    >>> result = evaluate_suite(classifier, x, y, [0.1, 0.2], fast_suite())
    >>> result.worst_case(0.2).accuracy, [c.status for c in result.checks]

Work is done in units, one (attack, eps) each, in a fixed order: every suite attack at every eps,
then what the checks need. With a :class:`~er_art.evaluation.store.EvaluationStore` each unit is
saved when it finishes and loaded instead of run when it is there, so an interrupted evaluation
resumes to exactly the numbers of an uninterrupted one (each unit has its own seed).

The checks at each eps > 0 (at eps = 0 no attack may change anything):
- (ii) converged: the primary attack's restarts stopped by their rule, and the primary attack with
  twice the steps, run on the examples every attack left robust, lowers the worst case by at most
  1.5 points;
- (iii) the primary attack (the first of a cascade, which sees every example) is at least as
  strong as FGSM (run on every example);
- (iv) Square is no stronger than the strongest white-box attack (cascade: Square breaks no more
  examples than noise allows after the white-box attacks);
and once per model: (i) the primary attack at eps = the whole input range reaches chance, and (v)
two identical predictions agree (else the model is randomised and needs EOT).
Every attack run at an eps, the checks' too, counts in that eps's worst case.

Under torchrun (``world``: :class:`er_art.distributed.World`) every process runs every unit on its
share of the chunks of examples and gets the gathered per-example outcomes, identical to one
process's; only rank 0 writes the store and reports progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from er_art.distributed import World
from er_art.evaluation.checks import (
    CheckResult,
    check_chance_at_full_range,
    check_converged,
    check_deterministic,
    check_iterative_beats_single_step,
    check_whitebox_beats_blackbox,
)
from er_art.evaluation.outcome import AttackOutcome, worst_case_outcome
from er_art.evaluation.running import (
    ProgressHook,
    _seed_everything,
    predict_chunks,
    run_attack,
    unit_seed,
)
from er_art.evaluation.stopping import RestartEvidence
from er_art.evaluation.store import EvaluationStore
from er_art.evaluation.suites import (
    FAST_ATTACKS,
    FGSM_RUN,
    SQUARE_RUN,
    AttackRun,
    Suite,
    fast_suite,
)

logger = logging.getLogger(__name__)

CHANCE_MARGIN = 0.05  # check (i): accuracy at the full range must be <= chance + this


@dataclass
class EvaluationResult:
    """Everything measured on one model: outcomes per eps (worst case last) and the checks."""

    label: str
    by_eps: dict[float, list[AttackOutcome]]
    checks: list[CheckResult] = field(default_factory=list)

    def worst_case(self, eps: float) -> AttackOutcome:
        return self.by_eps[float(eps)][-1]

    def outcomes(self) -> list[AttackOutcome]:
        return [o for outs in self.by_eps.values() for o in outs]


class _Described:
    """A progress hook whose descriptions name the model, the attack and the eps."""

    def __init__(self, inner: ProgressHook, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def start(self, description: str, total: int) -> None:
        self.inner.start(self.prefix, total)

    def advance(self, n: int) -> None:
        self.inner.advance(n)

    def end(self) -> None:
        self.inner.end()


class UnitRunner:
    """Runs (attack, eps) units on one model, loading finished ones from ``store``.

    :param world: the processes that share every unit's work (default: this one alone); only
        rank 0 saves to ``store`` and reports to ``progress``.
    """

    def __init__(
        self,
        classifier: Any,
        x: np.ndarray,
        y: np.ndarray,
        *,
        label: str = "model",
        seed: int = 0,
        batch_size: int = 128,
        eot: int = 1,
        store: EvaluationStore | None = None,
        progress: ProgressHook | None = None,
        l2_threshold: float | None = None,
        world: World | None = None,
    ) -> None:
        self.classifier, self.x, self.y = classifier, x, np.asarray(y)
        self.label, self.seed, self.batch_size, self.eot = label, seed, batch_size, eot
        self.world = world or World()
        self.store, self.l2_threshold = store, l2_threshold
        self.progress = progress if self.world.is_main else None
        self._clean_pred: np.ndarray | None = None
        self._memory: dict[tuple[str, float], AttackOutcome] = {}

    @property
    def clean_pred(self) -> np.ndarray:
        if self._clean_pred is None:
            seed = unit_seed(self.seed, None, "clean")
            self._clean_pred = predict_chunks(self.classifier, self.x, seed=seed, world=self.world)
        return self._clean_pred

    def _cached(self, key: str, eps: float) -> AttackOutcome | None:
        found = self._memory.get((key, float(eps)))
        if found is None and self.store is not None:
            found = self.store.load(self.label, key, eps, n=len(self.y))
            if found is not None:
                self._memory[(key, float(eps))] = found
        return found

    def get_many(
        self, run: AttackRun, eps_values: Sequence[float], active: np.ndarray | None = None
    ) -> list[AttackOutcome]:
        """The outcomes of ``run`` at each eps: stored ones loaded, the others run and stored.

        A minimal-perturbation attack runs once for all the missing eps values."""
        missing = [e for e in eps_values if self._cached(run.key, e) is None]
        if missing:
            budgeted = run.spec.budgeted
            for group in [[e] for e in missing] if budgeted else [missing]:
                progress = None
                if self.progress is not None:
                    where = f"eps={group[0]:g}" if len(group) == 1 else "all eps"
                    progress = _Described(self.progress, f"{self.label}: {run.key} {where}")
                outcomes = run_attack(
                    self.classifier,
                    self.x,
                    self.y,
                    run.attack,
                    group,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    l2_threshold=self.l2_threshold,
                    clean_pred=self.clean_pred,
                    eot=self.eot,
                    active=active,
                    key=run.key,
                    progress=progress,
                    world=self.world,
                    **run.options(),
                )
                for eps, outcome in zip(group, outcomes, strict=True):
                    self._memory[(run.key, float(eps))] = outcome
                    if self.store is not None and self.world.is_main:
                        self.store.save(self.label, run.key, eps, outcome)
        return [self._cached(run.key, e) for e in eps_values]  # type: ignore[misc]

    def get(self, run: AttackRun, eps: float, active: np.ndarray | None = None) -> AttackOutcome:
        (outcome,) = self.get_many(run, [eps], active)
        return outcome

    def prediction_difference(self, n: int = 256) -> float:
        """The largest difference between two identical ``predict`` calls on the first ``n`` (the
        same seed first on every process)."""
        _seed_everything(unit_seed(self.seed, None, "determinism"))
        x = self.x[:n]
        first = np.asarray(self.classifier.predict(x, batch_size=self.batch_size))
        second = np.asarray(self.classifier.predict(x, batch_size=self.batch_size))
        return float(np.abs(first - second).max()) if len(x) else 0.0


def full_range(classifier: Any) -> float:
    """The eps that lets an attack reach every input: ``max(clip) - min(clip)`` (1 without)."""
    if classifier.clip_values is None:
        return 1.0
    lo, hi = classifier.clip_values
    return float(np.max(hi) - np.min(lo))


def evaluate_suite(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps_values: Sequence[float],
    suite: Suite,
    *,
    checks: bool = True,
    label: str = "model",
    seed: int = 0,
    batch_size: int = 128,
    eot: int = 1,
    store: EvaluationStore | None = None,
    progress: ProgressHook | None = None,
    world: World | None = None,
) -> EvaluationResult:
    """``suite`` at every eps, then (``checks``) the sanity checks; a ``worst-case`` outcome per
    eps (last) over every attack run at that eps. ``world``: see :class:`UnitRunner`."""
    eps_values = [float(e) for e in eps_values]
    units = UnitRunner(
        classifier,
        x,
        y,
        label=label,
        seed=seed,
        batch_size=batch_size,
        eot=eot,
        store=store,
        progress=progress,
        world=world,
    )
    by_eps: dict[float, list[AttackOutcome]] = {}
    if suite.cascade:
        for eps in eps_values:
            active = None
            outs = []
            for run in suite.runs:
                outcome = units.get(run, eps, active)
                outs.append(outcome)
                active = outcome.robust.copy()
            by_eps[eps] = outs + [units.get(run, eps) for run in suite.independent]
    else:
        runs = (*suite.runs, *suite.independent)
        per_run = {run.key: units.get_many(run, eps_values) for run in runs}
        by_eps = {e: [per_run[r.key][i] for r in runs] for i, e in enumerate(eps_values)}
    results = _checks(units, suite, by_eps, eot) if checks else []
    for eps, outs in by_eps.items():
        outs.append(worst_case_outcome(outs, eps))
    for r in results:
        (logger.warning if r.failed else logger.info)("%s %s: %s", r.status, r.name, r.message)
    return EvaluationResult(label, by_eps, results)


def _checks(
    units: UnitRunner, suite: Suite, by_eps: dict[float, list[AttackOutcome]], eot: int
) -> list[CheckResult]:
    """Run what the checks need (adding those outcomes to ``by_eps``) and return the checks."""
    classifier = units.classifier
    n = len(units.y)
    chance = 1.0 / classifier.nb_classes
    primary = suite.run(suite.primary)
    assert primary is not None, f"suite {suite.name} has no attack {suite.primary!r}"
    name = primary.attack.upper()
    results = [check_deterministic(units.prediction_difference(), min(n, 256), eot)]
    full = full_range(classifier)
    results.append(
        check_chance_at_full_range(
            units.get(primary, full).accuracy, classifier.nb_classes, n, full, CHANCE_MARGIN
        )
    )
    doubled = primary.doubled_steps()
    for eps, outs in by_eps.items():
        if eps <= 0:
            continue
        found = {o.method: o for o in outs}
        base = found[primary.key]
        fgsm = found.get("fgsm")
        if fgsm is None or not _on_every_example(suite, "fgsm"):
            reference = FGSM_RUN if fgsm is None else replace(FGSM_RUN, key="fgsm-all")
            fgsm = units.get(reference, eps)
            outs.append(fgsm)
        # (ii) on the examples every attack so far left robust: the doubled-steps attack
        before = worst_case_outcome(outs, eps).robust
        stronger = units.get(doubled, eps, before)
        outs.append(stronger)
        results.append(
            check_converged(
                float(before.mean()),
                stronger.accuracy,
                n,
                RestartEvidence.from_settings(base.settings),
                label=f"{doubled.resolved_max_iter()} steps"
                + (
                    f", {doubled.resolved_restarts()} restarts"
                    if primary.resolved_patience() is None and doubled.resolved_restarts()
                    else ""
                ),
                eps=eps,
                chance=chance,
                attack=name,
            )
        )
        results.append(
            check_iterative_beats_single_step(
                base.accuracy, fgsm.accuracy, n, eps=eps, chance=chance, iterative=name
            )
        )
        results.append(_square_check(units, suite, outs, eps, n, chance))
    return results


def _on_every_example(suite: Suite, key: str) -> bool:
    """Whether the run ``key`` of ``suite`` attacked every example (its accuracy stands alone)."""
    if not suite.cascade or any(r.key == key for r in suite.independent):
        return True
    return bool(suite.runs) and suite.runs[0].key == key


def _square_check(
    units: UnitRunner,
    suite: Suite,
    outs: list[AttackOutcome],
    eps: float,
    n: int,
    chance: float,
) -> CheckResult:
    """(iv) Square against the strongest white-box attack at ``eps`` (see the module docstring)."""
    keys = [r.key for r in suite.runs]
    if suite.cascade and "square" in keys:
        i = keys.index("square")
        before = outs[i - 1] if i else None
        after = outs[i]
        whitebox_acc = before.accuracy if before is not None else 1.0
        return check_whitebox_beats_blackbox(
            whitebox_acc,
            after.accuracy,
            n,
            eps=eps,
            chance=chance,
            whitebox="+".join(k.upper() for k in keys[:i]),
            blackbox="+".join(k.upper() for k in keys[: i + 1]),
        )
    square = next((o for o in outs if o.method == "square"), None)
    if square is None:
        square = units.get(SQUARE_RUN, eps)
        outs.append(square)
    whitebox = [o for o in outs if o.settings.get("threat") == "white-box"]
    strongest = min(whitebox, key=lambda o: o.accuracy)
    return check_whitebox_beats_blackbox(
        strongest.accuracy,
        square.accuracy,
        n,
        eps=eps,
        chance=chance,
        whitebox=strongest.method.upper(),
    )


def attack_sweep(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    run: AttackRun,
    eps_values: Sequence[float],
    **units: Any,
) -> list[AttackOutcome]:
    """One attack at each eps through the unit machinery (stored and resumable with ``store``)."""
    return UnitRunner(classifier, x, y, **units).get_many(run, [float(e) for e in eps_values])


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
    example), plus a ``worst-case`` outcome per eps (last); no checks. Kept for the tests that
    use it: ``evaluate_suite(..., fast_suite(attacks), checks=False).by_eps`` is the same."""
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
    need: determinism, chance at full range, then (ii)-(iv) at ``eps``. Kept for the tests that
    use it: ``evaluate_suite(...).checks`` of a suite is the same."""
    suite = fast_suite(
        ("pgd", "fgsm", "square"),
        max_iter=max_iter,
        restarts=restarts,
        square_queries=square_max_iter,
    )
    return evaluate_suite(
        classifier, x, y, [eps], suite, seed=seed, batch_size=batch_size, eot=eot
    ).checks
