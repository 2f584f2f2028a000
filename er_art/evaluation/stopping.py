"""When a restarting attack stops: converged by a rule, not by a fixed count (docs/EVALUATION.md).

Every restart of an attack (PGD, APGD, Square, FAB, ...) runs only on the examples no earlier
restart broke. Under a :class:`StoppingRule` the restarts go on until ``patience`` consecutive
restarts have broken none of those examples, never fewer than ``minimum`` and never more than
``cap`` (the attack's restart count), and stop at once when nothing is left to break. Without a
patience every restart up to the cap runs (a fixed count, as the standard AutoAttack's).

    >>> rule = StoppingRule(cap=128, patience=8, minimum=8)
    >>> rule.stop([5, 2, 0, 0, 0, 0, 0, 0, 0, 0], remaining=40)   # 8 restarts in a row broke none
    'patience'

What happened is kept as :class:`RestartEvidence` (how many restarts ran, how many examples each
one broke, which restart last broke one, why it stopped) in every outcome's settings, where the
convergence check reads it (:func:`er_art.evaluation.checks.check_converged`). The rule lives here
and is applied in one place, :func:`er_art.evaluation.running.generate_adversarial`'s restart
loop, for every attack that restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from er_art.arg_checks import is_int

ALL_BROKEN, PATIENCE, CAP = "all broken", "patience", "cap"


def _positive_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return value


@dataclass(frozen=True)
class StoppingRule:
    """Restart until ``patience`` consecutive restarts break nothing (``None``: run all ``cap``),
    at least ``minimum`` restarts, at most ``cap``."""

    cap: int
    patience: int | None = None
    minimum: int = 1

    def __post_init__(self) -> None:
        _positive_int("The restart cap", self.cap)
        _positive_int("The minimum number of restarts", self.minimum)
        if self.patience is not None:
            _positive_int("--patience", self.patience)

    @classmethod
    def of(cls, spec: Any, runs: int, patience: int | None = None) -> StoppingRule:
        """The rule of the attack ``spec`` (an :class:`~er_art.attacks.AttackSpec`) over at most
        ``runs`` restarts: ``patience`` (default the attack's own; 0: none, every restart runs;
        no smaller than ``runs``: a fixed count too, the rule could never stop it early) and the
        attack's minimum."""
        patience = spec.patience if patience is None else patience
        if patience is not None and (isinstance(patience, bool) or int(patience) < 0):
            raise ValueError(f"--patience must be an integer >= 0, got {patience!r}.")
        patience = int(patience) if patience and int(patience) < runs else None
        return cls(cap=max(1, runs), patience=patience, minimum=max(1, spec.min_restarts))

    def stop(self, breaks: Sequence[int], remaining: int) -> str | None:
        """Why to stop after restarts that broke ``breaks`` examples each (in order), with
        ``remaining`` examples still robust; ``None`` to run another restart."""
        if remaining <= 0:
            return ALL_BROKEN
        if len(breaks) >= self.cap:
            return CAP
        r = self.patience
        if r is not None and len(breaks) >= max(self.minimum, r) and not any(breaks[-r:]):
            return PATIENCE
        return None

    def describe(self) -> dict[str, Any]:
        return {"cap": self.cap, "patience": self.patience, "minimum": self.minimum}


@dataclass
class RestartEvidence:
    """What the restarts of one (attack, eps) did: examples newly broken by each restart."""

    breaks: list[int] = field(default_factory=list)
    stopped_by: str = CAP
    rule: dict[str, Any] = field(default_factory=dict)

    @property
    def restarts_run(self) -> int:
        return len(self.breaks)

    @property
    def last_break(self) -> int:
        """The (1-based) restart that last broke an example; 0 when none broke any."""
        return max((i + 1 for i, b in enumerate(self.breaks) if b), default=0)

    def as_settings(self) -> dict[str, Any]:
        """The fields an outcome's settings carry (and :meth:`from_settings` reads back)."""
        return {
            "restarts_run": self.restarts_run,
            "last_break_restart": self.last_break,
            "breaks_per_restart": list(self.breaks),
            "stopped_by": self.stopped_by,
            "stopping_rule": dict(self.rule),
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> RestartEvidence | None:
        if "breaks_per_restart" not in settings:
            return None
        return cls(
            [int(b) for b in settings["breaks_per_restart"]],
            str(settings.get("stopped_by", CAP)),
            dict(settings.get("stopping_rule") or {}),
        )
