"""Per-example outcomes of an attack, scored against the true labels, and their summaries.

Definitions (per example i, true label y_i):
- clean correct: ``argmax f(x_i) == y_i``;
- robust at eps: clean correct AND ``argmax f(x_adv_i) == y_i``; for minimal-perturbation attacks
  (C&W, DeepFool, HopSkipJump) also robust when the perturbation exceeds the threshold eps;
- robust accuracy = mean of "robust"; success rate = 1 - robust / clean-correct (on originally
  correct examples only);
- perturbation norms are in the attack's norm, over the examples the attack counted as successes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from er_art.json_files import FileFormatError, check_shape


@dataclass
class AttackOutcome:
    """Per-example results of one attack at one epsilon."""

    method: str
    eps: float
    norm: str
    clean_correct: np.ndarray  # (N,) bool
    robust: np.ndarray  # (N,) bool: clean correct and still correct (or over the threshold)
    perturbation: np.ndarray  # (N,) norm of x_adv - x in the attack's norm
    time_s: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(len(self.robust))

    @property
    def accuracy(self) -> float:
        """Robust accuracy, a fraction in [0, 1]."""
        return float(self.robust.mean()) if self.n else float("nan")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_json` turns back into an equal outcome."""
        return {
            "method": self.method,
            "eps": self.eps,
            "norm": self.norm,
            "time_s": self.time_s,
            "settings": self.settings,
            "clean_correct": self.clean_correct.astype(int).tolist(),
            "robust": self.robust.astype(int).tolist(),
            "perturbation": [float(p) for p in self.perturbation],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "an attack outcome") -> AttackOutcome:
        """The outcome :meth:`to_json` gave ``data``.

        :param where: what ``data`` is, for the error (e.g. the file it was read from).
        :raises FileFormatError: ``data`` is not of :meth:`to_json`'s shape: a key missing or of
            another type, a flag other than 0 / 1, a perturbation that is not a number, or
            per-example lists of different lengths (one sentence starting with ``where``).
        """
        check_shape(data, _SHAPE, where, optional={"settings": dict})
        for key, fits, kind in (
            ("clean_correct", _is_flag, "0 and 1"),
            ("robust", _is_flag, "0 and 1"),
            ("perturbation", _is_number, "numbers"),
        ):
            bad = next((i for i, v in enumerate(data[key]) if not fits(v)), None)
            if bad is not None:
                raise FileFormatError(
                    f"{where}: {key!r} must hold {kind} only, got {data[key][bad]!r:.40} at "
                    f"index {bad}."
                )
        lengths = [len(data[k]) for k in ("clean_correct", "robust", "perturbation")]
        if len(set(lengths)) > 1:
            raise FileFormatError(
                f"{where}: 'clean_correct', 'robust' and 'perturbation' must be of one length, "
                f"got {lengths[0]}, {lengths[1]} and {lengths[2]}."
            )
        return cls(
            method=data["method"],
            eps=float(data["eps"]),
            norm=data["norm"],
            clean_correct=np.asarray(data["clean_correct"], dtype=bool),
            robust=np.asarray(data["robust"], dtype=bool),
            perturbation=np.asarray(data["perturbation"], dtype=np.float64),
            time_s=float(data["time_s"]),
            settings=dict(data.get("settings", {})),
        )


def _is_flag(value: Any) -> bool:
    return type(value) in (int, bool) and value in (0, 1)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


# What :meth:`AttackOutcome.to_json` writes (``settings`` may be missing).
_SHAPE = {
    "method": str,
    "eps": float,
    "norm": str,
    "time_s": float,
    "clean_correct": list,
    "robust": list,
    "perturbation": list,
}


def predict_labels(classifier: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted classes of ``x`` (N,)."""
    return np.asarray(classifier.predict(x, batch_size=batch_size)).argmax(axis=1)


def perturbation_norms(x: np.ndarray, x_adv: np.ndarray, norm: str) -> np.ndarray:
    """``||x_adv - x||`` per example, in ``norm`` ("inf" or "2"), over all input dimensions."""
    delta = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(
        len(x), -1
    )
    return np.abs(delta).max(axis=1) if norm == "inf" else np.linalg.norm(delta, axis=1)


def target_labels(y: np.ndarray, nb_classes: int, seed: int = 0) -> np.ndarray:
    """A random class other than ``y`` for each example (targeted attacks)."""
    rng = np.random.default_rng(seed)
    return (y + rng.integers(1, nb_classes, size=len(y))) % nb_classes


def score(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_adv: np.ndarray,
    spec: Any,
    eps: float,
    *,
    clean_pred: np.ndarray | None = None,
    adv_pred: np.ndarray | None = None,
    threshold: float | None = None,
    time_s: float = 0.0,
    settings: dict[str, Any] | None = None,
) -> AttackOutcome:
    """Score ``x_adv`` against the TRUE labels ``y``.

    :param spec: the :class:`~er_art.attacks.AttackSpec` (its name, norm and whether it is
        budgeted).
    :param adv_pred: predicted classes of ``x_adv`` when already known.
    :param threshold: minimal-perturbation attacks: an adversarial example whose perturbation (in
        the attack's norm, absolute units) exceeds it counts as robust. Default ``eps``.
    """
    clean_pred = predict_labels(classifier, x) if clean_pred is None else clean_pred
    adv_pred = predict_labels(classifier, x_adv) if adv_pred is None else adv_pred
    clean_correct = clean_pred == y
    adv_correct = adv_pred == y
    pert = perturbation_norms(x, x_adv, spec.norm)
    if not spec.budgeted:
        limit = eps if threshold is None else threshold
        adv_correct = adv_correct | (pert > limit * (1 + 1e-6))
    return AttackOutcome(
        method=spec.name,
        eps=float(eps),
        norm=spec.norm,
        clean_correct=clean_correct,
        robust=clean_correct & adv_correct,
        perturbation=pert,
        time_s=float(time_s),
        settings=dict(settings or {}),
    )


def summarise(outcome: AttackOutcome, **extra: Any) -> dict[str, Any]:
    """The JSON record of one outcome (fractions in [0, 1]); ``extra`` fields are added as given."""
    n = outcome.n
    n_correct = int(outcome.clean_correct.sum())
    n_robust = int(outcome.robust.sum())
    successes = outcome.clean_correct & ~outcome.robust
    pert = outcome.perturbation[successes]
    record = {
        "method": outcome.method,
        "eps": outcome.eps,
        "norm": outcome.norm,
        "n_samples": n,
        "clean_accuracy": n_correct / n if n else float("nan"),
        "robust_accuracy": n_robust / n if n else float("nan"),
        "success_rate": (n_correct - n_robust) / n_correct if n_correct else None,
        "mean_perturbation": float(pert.mean()) if len(pert) else None,
        "max_perturbation": float(pert.max()) if len(pert) else None,
        "time_s": round(outcome.time_s, 4),
    }
    record.update({k: v for k, v in outcome.settings.items() if k not in record})
    record.update(extra)
    return record


def worst_case(outcomes: Iterable[AttackOutcome]) -> np.ndarray:
    """Per-example robustness under the strongest attack: robust only if robust to every attack."""
    outcomes = list(outcomes)
    if not outcomes:
        raise ValueError("worst_case needs at least one attack outcome.")
    robust = np.ones_like(outcomes[0].robust, dtype=bool)
    for o in outcomes:
        robust &= o.robust
    return robust


def worst_case_outcome(outcomes: Sequence[AttackOutcome], eps: float) -> AttackOutcome:
    """The ``worst-case`` pseudo-attack: per-example minimum over ``outcomes`` at one epsilon."""
    robust = worst_case(outcomes)
    pert = np.max(np.stack([o.perturbation for o in outcomes]), axis=0)
    return AttackOutcome(
        method="worst-case",
        eps=float(eps),
        norm=outcomes[0].norm,
        clean_correct=outcomes[0].clean_correct,
        robust=robust,
        perturbation=pert,
        time_s=sum(o.time_s for o in outcomes),
        settings={"attacks": [o.method for o in outcomes]},
    )
