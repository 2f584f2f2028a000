"""``er_art.evaluate``: the robustness of any model in one call, as a report.

    >>> import er_art, torchvision
    >>> net = torchvision.models.resnet18(num_classes=10)           # any nn.Module returning logits
    >>> report = er_art.evaluate(net, x, y, eps=8 / 255, suite="standard",
    ...                          mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    >>> report.accuracy(8 / 255), report.interval(8 / 255)         # worst case, 95 % Wilson
    >>> report.to_json()["robustbench"]                 # clean_acc, autoattack_acc, ...

The model is a ``torch.nn.Module`` that returns logits (wrapped by
:func:`er_art.models.wrapped.wrap_model`: the input range and the normalisation inside the model),
an ART ``PyTorchClassifier`` (used as it is), an er-art run directory or checkpoint
(:func:`er_art.load_classifier`), or what ``er-art evaluate --model`` reads (``PKG.MODULE:FACTORY``,
a TorchScript file, a pickled ``PyTorchClassifier``). The evaluation is
:func:`er_art.evaluation.evaluate_suite` with the fast or the standard suite
(docs/EVALUATION.md): the worst case per example over every attack, and the sanity checks at every
eps; the CLI's ``evaluate`` runs the same :func:`run_suite` per model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SUITE_NAMES = ("fast", "standard")
# The standard AutoAttack's attacks, under the names fra31/auto-attack gives them
# (AutoAttack.attacks_to_run for version='standard').
AUTOATTACK_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
NORM_NAMES = {"inf": "Linf", "2": "L2"}  # RobustBench's threat-model names


def build_suite(
    name: str,
    nb_classes: int,
    *,
    attacks: Sequence[str] | None = None,
    max_iter: int | None = None,
    restarts: int | None = None,
    patience: int | None = None,
    square_queries: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    flags: dict[str, str] | None = None,
) -> Any:
    """The suite ``name`` (``fast`` or ``standard``) for a model of ``nb_classes`` classes.

    The standard suite is AutoAttack's published parameters: any setting given is refused in one
    sentence naming it (``flags`` maps a setting to the name the caller gave it, e.g.
    ``{"max_iter": "--max-iter"}``).
    """
    from er_art.evaluation import FAST_ATTACKS, fast_suite, standard_suite
    from er_art.evaluation.suites import SQUARE_QUERIES_FAST

    if name not in SUITE_NAMES:
        raise ValueError(f"Unknown suite {name!r}; accepted: {', '.join(SUITE_NAMES)}.")
    if name == "standard":
        given = [
            (flags or {}).get(key, key)
            for key, value in (
                ("attacks", attacks),
                ("max_iter", max_iter),
                ("restarts", restarts),
                ("patience", patience),
                ("square_queries", square_queries),
                ("params", params or None),
            )
            if value is not None
        ]
        if given:
            suite_flag = (flags or {}).get("suite", "suite='fast'")
            raise ValueError(
                f"{(flags or {}).get('standard', 'the standard suite')} runs AutoAttack's "
                f"published parameters; drop {given[0]} or use {suite_flag}."
            )
        return standard_suite(nb_classes)
    return fast_suite(
        list(attacks or FAST_ATTACKS),
        max_iter=max_iter,
        restarts=restarts,
        square_queries=SQUARE_QUERIES_FAST if square_queries is None else square_queries,
        params=params,
        patience=patience,
    )


def _interval(k: int, n: int) -> list[float] | None:
    from er_art.stats import wilson_interval

    return list(wilson_interval(k, n)) if n else None


@dataclass
class RobustnessReport:
    """What :func:`evaluate` measured on one model: per eps each attack's accuracy and the worst
    case (95 % Wilson intervals), the per-example outcomes, and the sanity checks.

    ``result`` is the :class:`er_art.evaluation.EvaluationResult` it was made from (its
    ``by_eps`` holds every :class:`~er_art.evaluation.AttackOutcome`, worst case last)."""

    label: str
    suite: str
    result: Any  # er_art.evaluation.EvaluationResult
    nb_classes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def eps(self) -> list[float]:
        return list(self.result.by_eps)

    @property
    def checks(self) -> list[Any]:
        return list(self.result.checks)

    @property
    def n(self) -> int:
        return self.worst_case(self.eps[0]).n if self.eps else 0

    @property
    def norm(self) -> str:
        return self.worst_case(self.eps[0]).norm if self.eps else "inf"

    def worst_case(self, eps: float) -> Any:
        """The ``worst-case`` :class:`~er_art.evaluation.AttackOutcome` at ``eps``."""
        return self.result.worst_case(eps)

    def outcome(self, eps: float, method: str = "worst-case") -> Any:
        """The outcome of ``method`` (an attack's key, or ``"worst-case"``) at ``eps``."""
        found = {o.method: o for o in self.result.by_eps[float(eps)]}
        if method not in found:
            raise KeyError(f"No {method!r} at eps {eps:g}; run: {', '.join(found)}.")
        return found[method]

    def accuracy(self, eps: float, method: str = "worst-case") -> float:
        """Robust accuracy (a fraction) of ``method`` at ``eps``; default the worst case."""
        return self.outcome(eps, method).accuracy

    def interval(self, eps: float, method: str = "worst-case") -> tuple[float, float]:
        """The 95 % Wilson interval of :meth:`accuracy`."""
        o = self.outcome(eps, method)
        low, high = _interval(int(o.robust.sum()), o.n) or (math.nan, math.nan)
        return low, high

    @property
    def clean_accuracy(self) -> float:
        o = self.worst_case(self.eps[0])
        return float(o.clean_correct.mean()) if o.n else math.nan

    def robustbench(self) -> list[dict[str, Any]]:
        """Per eps, the standard AutoAttack's numbers under RobustBench's field names (its
        ``ModelInfo`` and ``benchmark()``: ``clean_acc`` and ``autoattack_acc`` in percent, as
        strings rounded to 2 decimals, ``eps``, ``n_examples``, ``threat_model``; AutoAttack's
        ``version`` and ``attacks_to_run``); empty for another suite."""
        if self.suite != "standard":
            return []
        return [robustbench_fields(self.worst_case(eps)) for eps in self.eps]

    def records(self, **extra: Any) -> list[dict[str, Any]]:
        """The JSON records of every outcome (:func:`er_art.evaluation.outcome.summarise`), with
        ``extra`` fields; a standard suite's worst-case records carry :meth:`robustbench`'s."""
        from er_art.evaluation.outcome import summarise

        out = []
        for o in self.result.outcomes():
            record = summarise(o, **extra)
            if self.suite == "standard" and o.method == "worst-case":
                record.update(robustbench_fields(o))
            out.append(record)
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: settings, clean accuracy, per eps every attack and the worst case
        with intervals, the per-example outcomes, the checks and (standard suite) RobustBench's
        fields."""
        clean = self.worst_case(self.eps[0]).clean_correct if self.eps else np.zeros(0, bool)
        k = int(clean.sum())
        per_eps = []
        per_example: dict[str, dict[str, list[int]]] = {}
        for eps, outcomes in self.result.by_eps.items():
            rows = []
            for o in outcomes:
                robust = int(o.robust.sum())
                rows.append(
                    {
                        "method": o.method,
                        "accuracy": o.accuracy,
                        "robust": robust,
                        "ci95": _interval(robust, o.n),
                        "time_s": round(o.time_s, 4),
                    }
                )
                per_example.setdefault(f"{eps:.10g}", {})[o.method] = o.robust.astype(int).tolist()
            per_eps.append(
                {
                    "eps": eps,
                    "attacks": rows[:-1],
                    "worst_case": rows[-1],
                    "norm": outcomes[-1].norm,
                }
            )
        return {
            "format": "er-art-robustness-report",
            "label": self.label,
            "suite": self.suite,
            "norm": self.norm,
            "n": self.n,
            "nb_classes": self.nb_classes,
            "clean": {"accuracy": self.clean_accuracy, "correct": k, "ci95": _interval(k, self.n)},
            "eps": per_eps,
            "per_example": {"clean_correct": clean.astype(int).tolist(), "robust": per_example},
            "checks": [c.as_dict() for c in self.checks],
            "robustbench": self.robustbench(),
            "settings": self.settings,
        }


def robustbench_fields(worst: Any) -> dict[str, Any]:
    """The standard AutoAttack's worst case ``worst`` under RobustBench's names (see
    :meth:`RobustnessReport.robustbench`)."""
    n = worst.n
    clean = float(worst.clean_correct.mean()) if n else math.nan
    robust = float(worst.robust.mean()) if n else math.nan
    return {
        "clean_acc": str(round(clean * 100, 2)),
        "autoattack_acc": str(round(robust * 100, 2)),
        "eps": worst.eps,
        "n_examples": n,
        "threat_model": NORM_NAMES.get(worst.norm, worst.norm),
        "version": "standard",
        "attacks_to_run": list(AUTOATTACK_ATTACKS),
    }


def run_suite(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: Sequence[float],
    suite: Any,
    *,
    checks: bool = True,
    label: str = "model",
    seed: int = 0,
    batch_size: int = 128,
    eot: int = 1,
    store: Any = None,
    progress: Any = None,
    world: Any = None,
) -> RobustnessReport:
    """:func:`er_art.evaluation.evaluate_suite` of the built ``suite`` (a
    :class:`~er_art.evaluation.Suite`) on an ART classifier, as a report."""
    from er_art import evaluation  # looked up at call time (tests stop it there)

    result = evaluation.evaluate_suite(
        classifier,
        x,
        y,
        [float(e) for e in eps],
        suite,
        checks=checks,
        label=label,
        seed=seed,
        batch_size=batch_size,
        eot=eot,
        store=store,
        progress=progress,
        world=world,
    )
    settings = {
        "suite": suite.describe(),
        "seed": seed,
        "batch_size": batch_size,
        "eot": eot,
        "clip_values": None
        if classifier.clip_values is None
        else [float(np.min(v)) for v in classifier.clip_values],
    }
    return RobustnessReport(label, suite.name, result, int(classifier.nb_classes), settings)


def as_classifier(
    model: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    logits: str | int | None = None,
    weights: str | os.PathLike | None = None,
    nb_classes: int | None = None,
    device_type: str = "auto",
) -> Any:
    """``model`` as an ART ``PyTorchClassifier`` checked on ``x`` / ``y`` (see :func:`evaluate`)."""
    from art.estimators.classification import PyTorchClassifier
    from torch import nn

    from er_art.models.wrapped import ModelError, check_forward, load_model, wrap_model

    given = [k for k, v in (("mean", mean), ("std", std), ("logits", logits)) if v is not None]
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir() or _is_checkpoint(path):
            import er_art

            if given or weights is not None:
                raise ModelError(
                    f"{path} is an er-art run, which carries its own preprocessing; drop "
                    f"{(given or ['weights'])[0]}."
                )
            model = er_art.load_classifier(path, device_type=device_type)
        else:
            model = load_model(model, weights).model
    elif weights is not None:
        raise ModelError("weights go with a model given as 'PKG.MODULE:FACTORY'.")
    if isinstance(model, PyTorchClassifier):
        if given:
            raise ModelError(
                f"an ART classifier carries its own preprocessing and logits; drop {given[0]}."
            )
        check_forward(model, x, y, nb_classes)
        return model
    if isinstance(model, nn.Module):
        return wrap_model(
            model,
            x=x,
            y=y,
            nb_classes=nb_classes,
            clip_values=clip_values,
            mean=mean,
            std=std,
            logits=logits,
            device_type=device_type,
        )
    raise ModelError(
        f"er_art.evaluate takes a torch.nn.Module, an ART PyTorchClassifier, an er-art run or "
        f"checkpoint, or a model file; got a {type(model).__name__}."
    )


def _is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is an er-art checkpoint file (read without running code)."""
    from er_art.checkpoint import CheckpointError, read_checkpoint

    if not path.is_file():
        return False
    try:
        read_checkpoint(path)
    except CheckpointError:
        return False
    return True


def evaluate(
    model: Any,
    x: Any,
    y: Any,
    eps: float | Sequence[float],
    suite: str = "fast",
    *,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    logits: str | int | None = None,
    weights: str | os.PathLike | None = None,
    nb_classes: int | None = None,
    checks: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    eot: int = 1,
    attacks: Sequence[str] | None = None,
    max_iter: int | None = None,
    restarts: int | None = None,
    patience: int | None = None,
    square_queries: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    device_type: str = "auto",
    label: str = "model",
    store: Any = None,
    progress: Any = None,
    world: Any = None,
) -> RobustnessReport:
    """Evaluate the robustness of ``model`` on ``x``, ``y`` at each ``eps`` (L-inf).

    :param model: a ``torch.nn.Module`` returning logits, an ART ``PyTorchClassifier``, an er-art
        run directory or checkpoint, ``"PKG.MODULE:FACTORY"`` (with ``weights``), a TorchScript
        file or a pickled ``PyTorchClassifier``.
    :param x: inputs ``(N, C, H, W)`` (NumPy or a tensor) in ``clip_values``, as stored (e.g.
        [0, 1] images): not normalised.
    :param y: integer labels ``(N,)``.
    :param eps: one budget or several, in the units of ``x``.
    :param suite: ``"fast"`` (a cascade APGD-CE > APGD-T > FAB-T > Square with FGSM) or
        ``"standard"`` (the standard AutoAttack, RobustBench's).
    :param clip_values: the input range the attacks keep to (a module only).
    :param mean: ``(x - mean) / std`` inside the model (a module only), one value or one per
        channel.
    :param logits: the key or index of the logits in a module's tuple / dict output.
    :param nb_classes: the data's classes (checked against the model's output width).
    :param store: an :class:`er_art.evaluation.EvaluationStore`: each finished unit saved and
        found again on a second call (resumable).
    :param world: an :class:`er_art.distributed.World` sharing the examples over torchrun's
        processes (every process gets the same report).
    :return: a :class:`RobustnessReport`; ``to_json()`` gives it as JSON.
    :raises ValueError: a model that does not fit the data, bad settings (one sentence).
    """
    import torch

    x = np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    from er_art.datasets import check_labels

    x = x.astype(np.float32, copy=False)
    y = check_labels(y, "y")
    if len(x) != len(y) or not len(x):
        raise ValueError(
            f"x and y must hold the same number (> 0) of examples, got {len(x)} and {len(y)}."
        )
    eps_values = [float(e) for e in np.atleast_1d(np.asarray(eps, dtype=np.float64)).ravel()]
    classifier = as_classifier(
        model,
        x,
        y,
        clip_values=clip_values,
        mean=mean,
        std=std,
        logits=logits,
        weights=weights,
        nb_classes=nb_classes,
        device_type=device_type,
    )
    from er_art.evaluation.eps import check_eps_range

    if classifier.clip_values is not None:
        lo, hi = classifier.clip_values
        check_eps_range(
            eps_values, "inf", (float(np.min(lo)), float(np.max(hi))), tuple(x.shape[1:]), False
        )
    plan = build_suite(
        suite,
        int(classifier.nb_classes),
        attacks=attacks,
        max_iter=max_iter,
        restarts=restarts,
        patience=patience,
        square_queries=square_queries,
        params=params,
    )
    return run_suite(
        classifier,
        x,
        y,
        eps_values,
        plan,
        checks=checks,
        label=label,
        seed=seed,
        batch_size=batch_size,
        eot=eot,
        store=store,
        progress=progress,
        world=world,
    )
