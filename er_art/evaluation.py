"""Robustness evaluation: attacks scored against the true labels, sweeps over epsilon, the worst
case over an ensemble of attacks, and the sanity checks a reviewer expects (docs/EVALUATION.md).

    >>> from er_art.evaluation import evaluate_attack, evaluate_ensemble, run_sanity_checks
    >>> record = evaluate_attack(classifier, x, y, "pgd", eps=0.1, max_iter=40, restarts=2)
    >>> record["robust_accuracy"], record["success_rate"]

Definitions (per example i, true label y_i):
- clean correct: ``argmax f(x_i) == y_i``;
- robust at eps: clean correct AND ``argmax f(x_adv_i) == y_i``; for minimal-perturbation attacks
  (C&W, DeepFool, HopSkipJump) also robust when the perturbation exceeds the threshold eps;
- robust accuracy = mean of "robust"; success rate = 1 - robust / clean-correct (on originally
  correct examples only);
- perturbation norms are in the attack's norm, over the examples the attack counted as successes.
The attacks get the true labels (targeted attacks: random other classes).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from er_art.attacks import AttackSpec, get_attack

logger = logging.getLogger(__name__)

DEFAULT_ENSEMBLE: tuple[str, ...] = ("pgd", "apgd-ce", "apgd-dlr", "fgsm", "square")
CW_L2_THRESHOLD = 0.005  # the paper's Table 2: l2 / (number of input dimensions) <= 0.005
EPS_TOLERANCE = 1e-9


# ---------------------------------------------------------------------------- epsilon parsing
def parse_eps(text: str, eps_grid: Sequence[float] = ()) -> list[float]:
    """Epsilon values from ``"0.1"``, ``"0.1,0.2"``, a sweep ``"start:stop:step"`` (stop included
    within float tolerance) or ``"paper"`` (the dataset's ``eps_grid``)."""
    text = text.strip()
    if text == "paper":
        if not eps_grid:
            raise ValueError(
                "--eps paper needs a dataset with an eps_grid; give values or start:stop:step."
            )
        return [float(e) for e in eps_grid]
    values: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        if ":" in part:
            pieces = part.split(":")
            if len(pieces) != 3:
                raise ValueError(
                    f"Bad eps sweep {part!r}; accepted: start:stop:step, e.g. 0:0.3:0.05."
                )
            try:
                start, stop, step = (float(p) for p in pieces)
            except ValueError:
                raise ValueError(
                    f"Bad eps sweep {part!r}; start, stop and step must be numbers."
                ) from None
            if not step > 0 or stop < start:
                raise ValueError(f"Bad eps sweep {part!r}; accepted: step > 0 and stop >= start.")
            n = int(math.floor((stop - start) / step + 1e-6)) + 1
            values.extend(round(start + i * step, 10) for i in range(n))
        else:
            try:
                values.append(float(part))
            except ValueError:
                raise ValueError(
                    f"Bad eps {part!r}; accepted: a number, start:stop:step, or 'paper'."
                ) from None
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise ValueError(f"eps values must be finite and >= 0, got {text!r}.")
    if not values:
        raise ValueError("No eps value given.")
    return values


# ---------------------------------------------------------------------------- per-attack outcome
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


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def generate_adversarial(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    spec: AttackSpec,
    eps: float | None,
    *,
    eps_step: float | None = None,
    max_iter: int | None = None,
    restarts: int | None = None,
    batch_size: int = 128,
    targeted: bool = False,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Run ``spec`` on ``(x, y)``: ``(x_adv, seconds, the ART arguments used)``.

    ``params`` may also hold the common options (``max_iter``, ``eps_step``, ``restarts``);
    they win.
    """
    params = dict(params or {})
    max_iter = params.pop("max_iter", max_iter)
    eps_step = params.pop("eps_step", eps_step)
    restarts = params.pop("restarts", restarts)
    kwargs = spec.art_kwargs(eps, eps_step, max_iter, restarts, batch_size, targeted, **params)
    attack = spec.factory(classifier, **kwargs)
    labels = target_labels(y, classifier.nb_classes, seed) if targeted else y
    one_hot = np.eye(classifier.nb_classes, dtype=np.float32)[labels]
    _seed_everything(seed)
    start = time.perf_counter()
    if spec.name == "deepfool":  # ART's DeepFool attacks the model's own predictions
        x_adv = attack.generate(x.astype(np.float32))
    elif spec.budgeted and eps == 0:  # nothing may change; ART's attacks reject eps_step > eps = 0
        x_adv = x.copy()
    else:
        x_adv = attack.generate(x.astype(np.float32), one_hot)
    elapsed = time.perf_counter() - start
    return np.asarray(x_adv, dtype=np.float32), elapsed, kwargs


def score(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_adv: np.ndarray,
    spec: AttackSpec,
    eps: float,
    *,
    clean_pred: np.ndarray | None = None,
    threshold: float | None = None,
    time_s: float = 0.0,
    settings: dict[str, Any] | None = None,
) -> AttackOutcome:
    """Score ``x_adv`` against the TRUE labels ``y``.

    :param threshold: minimal-perturbation attacks: an adversarial example whose perturbation (in
        the attack's norm, absolute units) exceeds it counts as robust. Default ``eps``.
    """
    clean_pred = predict_labels(classifier, x) if clean_pred is None else clean_pred
    clean_correct = clean_pred == y
    adv_correct = predict_labels(classifier, x_adv) == y
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


def run_attack(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    attack_spec: AttackSpec | str,
    eps_values: Sequence[float],
    *,
    eps_step: float | None = None,
    max_iter: int | None = None,
    restarts: int | None = None,
    batch_size: int = 128,
    targeted: bool = False,
    seed: int = 0,
    l2_threshold: float | None = None,
    params: dict[str, Any] | None = None,
    clean_pred: np.ndarray | None = None,
) -> list[AttackOutcome]:
    """One attack at each epsilon (a minimal-perturbation attack runs once and is scored at each).

    For ``cw`` the epsilon values are L2 thresholds normalised per input dimension (the paper's
    units, ``||delta||_2 / d``); ``l2_threshold`` (default 0.005) is used when ``eps_values`` is
    empty.
    """
    spec = get_attack(attack_spec) if isinstance(attack_spec, str) else attack_spec
    clean_pred = predict_labels(classifier, x) if clean_pred is None else clean_pred
    dims = int(np.prod(x.shape[1:]))
    if spec.name == "cw" and not eps_values:
        eps_values = [CW_L2_THRESHOLD if l2_threshold is None else l2_threshold]
    common = dict(
        eps_step=eps_step,
        max_iter=max_iter,
        restarts=restarts,
        batch_size=batch_size,
        targeted=targeted,
        seed=seed,
        params=params,
    )
    outcomes: list[AttackOutcome] = []
    cached: tuple[np.ndarray, float, dict[str, Any]] | None = None
    for eps in eps_values:
        if spec.budgeted:
            x_adv, elapsed, kwargs = generate_adversarial(classifier, x, y, spec, eps, **common)
        else:
            if cached is None:
                cached = generate_adversarial(classifier, x, y, spec, None, **common)
            x_adv, elapsed, kwargs = cached
        threshold = None
        settings = _settings(spec, kwargs, targeted, seed)
        if spec.name == "cw":
            threshold = eps * dims
            settings.update(
                l2_threshold=eps, l2_normalisation=f"||delta||_2 / {dims}", threshold_abs=threshold
            )
        elif not spec.budgeted:
            settings.update(threshold_abs=eps)
        outcome = score(
            classifier,
            x,
            y,
            x_adv,
            spec,
            eps,
            clean_pred=clean_pred,
            threshold=threshold,
            time_s=elapsed,
            settings=settings,
        )
        logger.info(
            "%s eps=%g: robust accuracy %.4f (%.1fs)",
            spec.name,
            eps,
            outcome.robust.mean(),
            elapsed,
        )
        outcomes.append(outcome)
    return outcomes


def _settings(
    spec: AttackSpec, kwargs: dict[str, Any], targeted: bool, seed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "threat": spec.threat,
        "iterative": spec.iterative,
        "budgeted": spec.budgeted,
        "targeted": bool(targeted),
        "seed": seed,
    }
    if "eps_step" in kwargs:
        out["eps_step"] = kwargs["eps_step"]
    if spec.max_iter_param and spec.max_iter_param in kwargs:
        out["max_iter"] = kwargs[spec.max_iter_param]
    if spec.restarts_param and spec.restarts_param in kwargs:
        out["restarts"] = kwargs[spec.restarts_param]
    out["art_params"] = {k: v for k, v in kwargs.items() if k not in ("eps", "eps_step")}
    return out


def evaluate_attack(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    attack_spec: AttackSpec | str,
    eps: float,
    **options: Any,
) -> dict[str, Any]:
    """One attack at one epsilon: its record (:func:`summarise`); options see :func:`run_attack`."""
    (outcome,) = run_attack(classifier, x, y, attack_spec, [eps], **options)
    return summarise(outcome)


def sweep_attack(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    attack_spec: AttackSpec | str,
    eps_values: Sequence[float],
    **options: Any,
) -> list[dict[str, Any]]:
    """Records of one attack over ``eps_values``."""
    return [summarise(o) for o in run_attack(classifier, x, y, attack_spec, eps_values, **options)]


# ---------------------------------------------------------------------------- ensembles
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


def evaluate_ensemble(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps_values: Sequence[float],
    attacks: Sequence[str] = DEFAULT_ENSEMBLE,
    *,
    max_iter: int | None = None,
    restarts: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict[float, list[AttackOutcome]]:
    """Every attack in ``attacks`` at every epsilon, plus a ``worst-case`` outcome per eps (last).

    :param max_iter: iterations of the iterative white-box attacks (default: each attack's own);
        Square keeps its own query budget unless set in ``params["square"]``.
    :param restarts: random restarts of the attacks that have them (PGD default 1).
    :param params: per-attack ART parameters, e.g. ``{"square": {"max_iter": 1000}}``.
    """
    specs = [get_attack(a) for a in attacks]
    norms = {s.norm for s in specs}
    if len(norms) > 1:
        raise ValueError(f"The attacks of an ensemble must share one norm, got {sorted(norms)}.")
    clean_pred = predict_labels(classifier, x)
    by_eps: dict[float, list[AttackOutcome]] = {float(e): [] for e in eps_values}
    for spec in specs:
        if progress:
            progress(spec.name, float("nan"))
        iters = max_iter if (spec.threat == "white-box" and spec.iterative) else None
        outs = run_attack(
            classifier,
            x,
            y,
            spec,
            list(eps_values),
            max_iter=iters,
            restarts=restarts,
            batch_size=batch_size,
            seed=seed,
            params=(params or {}).get(spec.name),
            clean_pred=clean_pred,
        )
        for o in outs:
            by_eps[o.eps].append(o)
    for eps, outs in by_eps.items():
        outs.append(worst_case_outcome(outs, eps))
    return by_eps


# ---------------------------------------------------------------------------- sanity checks
@dataclass(frozen=True)
class CheckResult:
    """One sanity check: PASS/FAIL, a one-line explanation with its numbers, and the numbers."""

    name: str
    passed: bool
    message: str
    values: dict[str, float] = field(default_factory=dict)
    warning: str | None = None

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

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
    acc_base: float, acc_stronger: float, n: int, label: str = "2x steps + restarts"
) -> CheckResult:
    """(ii) More PGD steps / restarts must not raise accuracy beyond noise."""
    margin = noise_margin(acc_base, acc_stronger, n)
    passed = acc_stronger <= acc_base + margin
    msg = (
        f"PGD accuracy {acc_base:.3f} -> {acc_stronger:.3f} with {label} "
        f"(allowed rise {margin:.3f}, n={n})"
    )
    warning = (
        None
        if passed
        else "A stronger PGD gives HIGHER accuracy: the attack is not converging (noisy or "
        "masked gradients)."
    )
    return CheckResult(
        "more iterations do not help the model",
        passed,
        msg,
        {"accuracy": acc_base, "accuracy_stronger": acc_stronger, "margin": margin},
        warning,
    )


def check_iterative_beats_single_step(
    acc_iterative: float, acc_single: float, n: int
) -> CheckResult:
    """(iii) Iterative PGD must be at least as strong as single-step FGSM (within noise)."""
    margin = noise_margin(acc_iterative, acc_single, n)
    passed = acc_iterative <= acc_single + margin
    msg = (
        f"PGD accuracy {acc_iterative:.3f} vs FGSM {acc_single:.3f} "
        f"(allowed excess {margin:.3f}, n={n})"
    )
    warning = (
        None if passed else "Single-step FGSM beats iterative PGD: a sign of gradient masking."
    )
    return CheckResult(
        "iterative at least as strong as single-step",
        passed,
        msg,
        {"pgd": acc_iterative, "fgsm": acc_single, "margin": margin},
        warning,
    )


def check_whitebox_beats_blackbox(acc_whitebox: float, acc_blackbox: float, n: int) -> CheckResult:
    """(iv) Black-box Square must be no stronger than white-box PGD (within noise); if it is, the
    gradients are masked and the white-box numbers overstate robustness."""
    margin = noise_margin(acc_whitebox, acc_blackbox, n)
    passed = acc_blackbox >= acc_whitebox - margin
    msg = (
        f"Square (black-box) accuracy {acc_blackbox:.3f} vs PGD (white-box) {acc_whitebox:.3f} "
        f"(allowed gap {margin:.3f}, n={n})"
    )
    warning = (
        None
        if passed
        else (
            "GRADIENT MASKING: the black-box Square attack is stronger than white-box PGD; "
            "white-box figures "
            "overstate robustness."
        )
    )
    return CheckResult(
        "white-box at least as strong as black-box",
        passed,
        msg,
        {"pgd": acc_whitebox, "square": acc_blackbox, "margin": margin},
        warning,
    )


def run_sanity_checks(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    *,
    max_iter: int = 20,
    restarts: int = 1,
    square_max_iter: int = 1000,
    batch_size: int = 128,
    seed: int = 0,
    chance_margin: float = 0.05,
    reuse: Sequence[AttackOutcome] = (),
) -> list[CheckResult]:
    """The four checks of docs/EVALUATION.md at ``eps`` (Linf), running the attacks they need.

    :param max_iter: PGD steps of the base attack; check (ii) doubles them and adds a restart.
    :param square_max_iter: Square Attack queries for check (iv).
    :param reuse: outcomes already computed at ``eps`` with the same settings (matched by method,
        eps, max_iter and restarts), to avoid running them again.
    """
    n = len(y)
    clean_pred = predict_labels(classifier, x)

    def acc(
        method: str,
        e: float,
        iters: int | None,
        rst: int | None,
        params: dict[str, Any] | None = None,
    ) -> float:
        for o in reuse:
            if (
                o.method == method
                and abs(o.eps - e) < EPS_TOLERANCE
                and (iters is None or o.settings.get("max_iter") == iters)
                and (rst is None or o.settings.get("restarts") == rst)
            ):
                return float(o.robust.mean())
        (o,) = run_attack(
            classifier,
            x,
            y,
            method,
            [e],
            max_iter=iters,
            restarts=rst,
            batch_size=batch_size,
            seed=seed,
            params=params,
            clean_pred=clean_pred,
        )
        return float(o.robust.mean())

    lo, hi = classifier.clip_values if classifier.clip_values is not None else (0.0, 1.0)
    full = float(np.max(hi) - np.min(lo))
    pgd = acc("pgd", eps, max_iter, restarts)
    results = [
        check_chance_at_full_range(
            acc("pgd", full, max_iter, restarts), classifier.nb_classes, n, full, chance_margin
        ),
        check_more_iterations(
            pgd,
            acc("pgd", eps, 2 * max_iter, restarts + 1),
            n,
            label=f"{2 * max_iter} steps, {restarts + 1} restarts",
        ),
        check_iterative_beats_single_step(pgd, acc("fgsm", eps, None, None), n),
        check_whitebox_beats_blackbox(pgd, acc("square", eps, square_max_iter, 1, None), n),
    ]
    for r in results:
        (logger.info if r.passed else logger.warning)("%s %s: %s", r.status, r.name, r.message)
    return results
