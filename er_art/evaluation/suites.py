"""What an evaluation runs: attacks with their settings (:class:`AttackRun`), grouped in suites.

- ``fast`` (``er-art evaluate``'s default): PGD, APGD-CE, APGD-DLR, FGSM and Square, each on every
  example, at each attack's converged defaults (docs/EVALUATION.md); the worst case per example is
  the number to report.
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

SUITES = ("fast", "standard")
PROTOCOLS = ("converged", "paper")
FAST_ATTACKS: tuple[str, ...] = ("pgd", "apgd-ce", "apgd-dlr", "fgsm", "square")
SQUARE_QUERIES_FAST = 1000
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

    def doubled(self) -> AttackRun:
        """Twice the iterations and twice the restarts (at least one more), under ``key-x2``.

        A step size that follows a rule of ``max_iter`` follows it to the new count."""
        iters, restarts = self.resolved_max_iter(), self.resolved_restarts()
        return replace(
            self,
            key=f"{self.key}-x2",
            max_iter=None if iters is None else 2 * int(iters),
            restarts=None if restarts is None else max(2 * int(restarts), int(restarts) + 1),
        )

    def options(self) -> dict[str, Any]:
        """The options :func:`~er_art.evaluation.running.run_attack` takes for this run."""
        return {
            "max_iter": self.max_iter,
            "restarts": self.restarts,
            "eps_step": self.eps_step,
            "targeted": self.targeted,
            "params": dict(self.params) or None,
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
        }


@dataclass(frozen=True)
class Suite:
    """Attacks run at every eps. ``cascade``: each attack only on the examples the earlier ones
    left robust. ``primary``: the key of the attack the checks double and compare with FGSM."""

    name: str
    runs: tuple[AttackRun, ...]
    cascade: bool = False
    primary: str = "pgd"
    description: str = ""

    def run(self, key: str) -> AttackRun | None:
        return next((r for r in self.runs if r.key == key), None)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cascade": self.cascade,
            "runs": [r.describe() for r in self.runs],
        }


def fast_suite(
    attacks: tuple[str, ...] | list[str] = FAST_ATTACKS,
    *,
    max_iter: int | None = None,
    restarts: int | None = None,
    square_queries: int = SQUARE_QUERIES_FAST,
    params: dict[str, dict[str, Any]] | None = None,
) -> Suite:
    """The fast ensemble: every attack on every example, the worst case per example.

    :param max_iter: iterations of the white-box iterative attacks (default: each one's own).
    :param restarts: restarts of the iterative attacks (default: each one's own); FGSM stays the
        classic single step from ``x``.
    :param square_queries: Square's queries unless ``params["square"]["max_iter"]`` sets them.
    :param params: per-attack ART parameters, e.g. ``{"square": {"p_init": 0.5}}``.
    """
    params = params or {}
    specs = [get_attack(a) for a in attacks]
    norms = {s.norm for s in specs}
    if len(norms) > 1:
        raise ValueError(f"The attacks of an ensemble must share one norm, got {sorted(norms)}.")
    runs = []
    for spec in specs:
        own = dict(params.get(spec.name, {}))
        iters = max_iter if (spec.threat == "white-box" and spec.iterative) else None
        if spec.name == "square":
            iters = own.pop("max_iter", square_queries)
        runs.append(
            AttackRun(
                key=spec.name,
                attack=spec.name,
                max_iter=iters,
                restarts=restarts if spec.iterative else None,
                params=own,
            )
        )
    primary = next(
        (r.key for r in runs if r.spec.threat == "white-box" and r.spec.iterative), runs[0].key
    )
    return Suite("fast", tuple(runs), cascade=False, primary=primary)


def standard_suite(nb_classes: int) -> Suite:
    """The standard AutoAttack (Linf), its published parameters, as a cascade."""
    targets = min(AUTOATTACK_TARGETS, nb_classes - 1)
    runs = (
        AttackRun("apgd-ce", "apgd-ce", max_iter=100, restarts=1),
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
