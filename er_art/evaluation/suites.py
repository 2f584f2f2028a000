"""What an evaluation runs: attacks with their settings (:class:`AttackRun`), grouped in suites.

- ``fast`` (``er-art evaluate``'s default): a cascade, each attack on the examples the earlier ones
  left robust, the cheap and strong first: APGD-CE (restarts until 4 in a row break nothing: the
  stopping rule), then every attack of the standard AutoAttack at its published budget: APGD-T
  (targeted DLR over the top 9 classes), FAB-T and Square (5000 queries: on a model that masks its
  gradients the black-box attack is the one that breaks it). FGSM (one gradient) runs on every
  example as the single-step reference. The worst case per example is the number to report
  (docs/EVALUATION.md).
- ``standard``: the standard AutoAttack of Croce & Hein (2020) with its published parameters:
  APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations over the top min(9, classes - 1)
  target classes), FAB-T (100 iterations, the same targets) and Square (5,000 queries), each on the
  examples every earlier attack left robust (a cascade, as AutoAttack runs them).

The ``paper`` protocol (:func:`paper_protocol`) is the authors' own: PGD with the dataset's step
and number of steps from the reference code (NOTES.md), one random start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from er_art.attacks import AttackSpec, get_attack
from er_art.evaluation.stopping import StoppingRule

SUITES = ("fast", "standard")
PROTOCOLS = ("converged", "paper")
FAST_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-t", "fab-t", "square", "fgsm")
# the stopping rule's patience of the restarting attacks inside a fast cascade: the attacks after
# the first catch what its last restarts would (docs/EVALUATION.md, "The stopping rule")
CASCADE_PATIENCE = 4
# attacks a fast suite runs on every example rather than in its cascade: single-step references
ON_EVERY_EXAMPLE = ("fgsm",)
SQUARE_QUERIES_FAST = 5000  # as the standard AutoAttack's (docs/BENCHMARKS.md: 1000 missed masking)
AUTOATTACK_TARGETS = 9  # APGD-T and FAB-T: the top 9 classes other than the true one


@dataclass(frozen=True)
class AttackRun:
    """One attack with its settings; ``key`` names its results (e.g. ``"pgd-x2"``).

    ``None`` settings are the plugin's own defaults.
    """

    key: str
    attack: str
    max_iter: int | None = None
    restarts: int | None = None
    eps_step: float | None = None
    targeted: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    patience: int | None = None  # the stopping rule's (None: the attack's own; 0: none)

    @property
    def spec(self) -> AttackSpec:
        return get_attack(self.attack)

    def resolved_max_iter(self) -> int | None:
        spec = self.spec
        if self.max_iter is not None or spec.max_iter_param is None:
            return self.max_iter
        return self.params.get(spec.max_iter_param, spec.defaults.get(spec.max_iter_param))

    def resolved_restarts(self) -> int | None:
        spec = self.spec
        if self.restarts is not None or spec.restarts_param is None:
            return self.restarts
        return self.params.get(spec.restarts_param, spec.defaults.get(spec.restarts_param))

    def resolved_patience(self) -> int | None:
        """The stopping rule's patience this run restarts with (None: every restart runs)."""
        restarts = self.resolved_restarts()
        if self.spec.restarts_param is None or restarts is None:
            return None
        return StoppingRule.of(self.spec, int(restarts), self.patience).patience

    def doubled(self) -> AttackRun:
        """Twice the iterations and twice the restarts (at least one more), under ``key-x2``.

        A step size that follows a rule of ``max_iter`` follows it to the new count. Under a
        stopping rule the patience and the cap double too."""
        iters, restarts = self.resolved_max_iter(), self.resolved_restarts()
        patience = self.resolved_patience()
        return replace(
            self,
            key=f"{self.key}-x2",
            max_iter=None if iters is None else 2 * int(iters),
            restarts=None if restarts is None else max(2 * int(restarts), int(restarts) + 1),
            patience=None if patience is None else 2 * patience,
        )

    def doubled_steps(self) -> AttackRun:
        """The convergence check's run, under ``key-x2``: twice the iterations; the restarts
        follow the same stopping rule (its evidence speaks for them), or double when their number
        is fixed."""
        if self.resolved_patience() is not None:
            iters = self.resolved_max_iter()
            return replace(
                self, key=f"{self.key}-x2", max_iter=None if iters is None else 2 * int(iters)
            )
        return self.doubled()

    def options(self) -> dict[str, Any]:
        """The options :func:`~er_art.evaluation.running.run_attack` takes for this run."""
        return {
            "max_iter": self.max_iter,
            "restarts": self.restarts,
            "eps_step": self.eps_step,
            "targeted": self.targeted,
            "params": dict(self.params) or None,
            "patience": self.patience,
        }

    def describe(self) -> dict[str, Any]:
        """JSON-able settings (for manifests and records)."""
        return {
            "key": self.key,
            "attack": self.attack,
            "max_iter": self.resolved_max_iter(),
            "restarts": self.resolved_restarts(),
            "eps_step": self.eps_step,
            "targeted": self.targeted,
            "params": dict(self.params),
            "patience": self.resolved_patience(),
        }


@dataclass(frozen=True)
class Suite:
    """Attacks run at every eps. ``cascade``: each attack only on the examples the earlier ones
    left robust. ``independent``: attacks run on every example whatever the cascade does (cheap
    references such as FGSM). ``primary``: the key of the attack the checks double and compare
    with FGSM (the first of a cascade: it alone sees every example)."""

    name: str
    runs: tuple[AttackRun, ...]
    cascade: bool = False
    primary: str = "pgd"
    description: str = ""
    independent: tuple[AttackRun, ...] = ()

    def run(self, key: str) -> AttackRun | None:
        return next((r for r in (*self.runs, *self.independent) if r.key == key), None)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cascade": self.cascade,
            "runs": [r.describe() for r in self.runs],
            "independent": [r.describe() for r in self.independent],
        }


def fast_suite(
    attacks: tuple[str, ...] | list[str] = FAST_ATTACKS,
    *,
    max_iter: int | None = None,
    restarts: int | None = None,
    square_queries: int = SQUARE_QUERIES_FAST,
    params: dict[str, dict[str, Any]] | None = None,
    patience: int | None = None,
) -> Suite:
    """The fast suite: ``attacks`` as a cascade in the order given (each on the examples the
    earlier ones left robust; FGSM on every example), the worst case per example.

    :param max_iter: iterations of the white-box iterative attacks (default: each one's own).
    :param restarts: the restart cap of the iterative attacks (default: each one's own); FGSM
        stays the classic single step from ``x``.
    :param square_queries: Square's queries unless ``params["square"]["max_iter"]`` sets them.
    :param params: per-attack ART parameters, e.g. ``{"square": {"p_init": 0.5}}``.
    :param patience: the stopping rule's patience for every restarting attack (default
        ``CASCADE_PATIENCE`` with more than one attack, else the attack's own; 0: every restart
        runs).
    """
    params = params or {}
    specs = [get_attack(a) for a in attacks]
    if not specs:
        raise ValueError("A suite needs at least one attack.")
    norms = {s.norm for s in specs}
    if len(norms) > 1:
        raise ValueError(f"The attacks of an ensemble must share one norm, got {sorted(norms)}.")
    if patience is None and len(specs) > 1:
        patience = CASCADE_PATIENCE
    cascade, independent = [], []
    for spec in specs:
        own = dict(params.get(spec.name, {}))
        iters = max_iter if (spec.threat == "white-box" and spec.iterative) else None
        if spec.name == "square":
            iters = own.pop("max_iter", square_queries)
        run = AttackRun(
            key=spec.name,
            attack=spec.name,
            max_iter=iters,
            restarts=restarts if spec.iterative else None,
            params=own,
            patience=patience if spec.iterative else None,
        )
        (independent if spec.name in ON_EVERY_EXAMPLE and len(specs) > 1 else cascade).append(run)
    primary = next(
        (r.key for r in cascade if r.spec.threat == "white-box" and r.spec.iterative),
        cascade[0].key,
    )
    if cascade[0].key != primary:  # the primary leads: the checks need its accuracy on all
        cascade.sort(key=lambda r: r.key != primary)
    return Suite(
        "fast", tuple(cascade), cascade=True, primary=primary, independent=tuple(independent)
    )


def standard_suite(nb_classes: int) -> Suite:
    """The standard AutoAttack (Linf), its published parameters, as a cascade."""
    targets = min(AUTOATTACK_TARGETS, nb_classes - 1)
    runs = (
        AttackRun("apgd-ce", "apgd-ce", max_iter=100, restarts=1, patience=0),
        AttackRun(
            "apgd-t", "apgd-t", max_iter=100, restarts=1, params={"n_target_classes": targets}
        ),
        AttackRun("fab-t", "fab-t", max_iter=100, restarts=1, params={"n_target_classes": targets}),
        AttackRun("square", "square", max_iter=5000, restarts=1, params={"p_init": 0.8}),
    )
    return Suite(
        "standard",
        runs,
        cascade=True,
        primary="apgd-ce",
        description="standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square (Croce & Hein, 2020)",
    )


def paper_protocol(dataset: Any) -> AttackRun:
    """The authors' PGD (NOTES.md): the dataset's step and number of steps, one random start."""
    return AttackRun(
        key="pgd",
        attack="pgd",
        max_iter=int(dataset.max_iter),
        restarts=1,
        eps_step=float(dataset.eps_step),
    )


FGSM_RUN = AttackRun("fgsm", "fgsm")  # the single-step reference of check (iii)
SQUARE_RUN = AttackRun("square", "square", max_iter=SQUARE_QUERIES_FAST)  # check (iv)'s reference
