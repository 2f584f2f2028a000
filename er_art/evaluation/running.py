"""Running one attack: adversarial examples in batches, restarts, EOT, seeds, progress.

    >>> from er_art.evaluation import run_attack
    >>> (outcome,) = run_attack(classifier, x, y, "pgd", [0.1])   # the plugin's converged defaults
    >>> outcome.accuracy

Restarts run only on the examples no earlier restart has broken (as AutoAttack does): the result
is the same as ART's ``num_random_init`` (an example counts as broken as soon as one restart breaks
it) at a fraction of the cost once most examples are broken. Every (attack, eps) draws its random
numbers from its own seed (:func:`unit_seed`), so a result does not depend on what ran before it:
that is what makes an interrupted evaluation resumable to the same numbers.

An attack runs in chunks of ``batch_size`` examples, and each chunk of each restart draws from its
own seed (:func:`chunk_seed`, derived from the unit's): what happens to an example depends on its
chunk only, not on the chunks before it, so the chunks can be shared out over the processes of a
torchrun job (:class:`er_art.distributed.World`) and the per-example outcomes gathered, with
exactly the numbers of one process.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from er_art.attacks import AttackSpec, get_attack
from er_art.attacks.view import attack_view
from er_art.distributed import World
from er_art.evaluation.outcome import (
    AttackOutcome,
    predict_labels,
    score,
    summarise,
    target_labels,
)
from er_art.evaluation.stopping import ALL_BROKEN, CAP, RestartEvidence, StoppingRule

logger = logging.getLogger(__name__)

CW_L2_THRESHOLD = 0.005  # the paper's Table 2: l2 / (number of input dimensions) <= 0.005


class ProgressHook(Protocol):
    """Progress of one attack, reported in examples attacked (the CLI draws a bar from it)."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self) -> None: ...


class _NoProgress:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self) -> None:
        pass


def unit_seed(seed: int, eps: float | None, key: str) -> int:
    """The seed of one (attack, eps) unit, derived from the evaluation's ``seed`` alone."""
    eps_tag = "none" if eps is None else f"{float(eps):.10g}"
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode()), zlib.crc32(eps_tag.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def chunk_seed(seed: int, run: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` (the ``chunk``-th batch of the examples attacked) in restart
    ``run`` of the unit seeded ``seed``. The first chunk of the first restart takes ``seed`` itself,
    as the whole unit did before chunks had seeds of their own: a unit of one chunk and one run
    gives the numbers it always gave."""
    if run == 0 and chunk == 0:
        return int(seed)
    entropy = [int(seed) & 0xFFFFFFFF, int(run), int(chunk)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def predict_chunks(
    classifier: Any,
    x: np.ndarray,
    *,
    seed: int,
    batch_size: int = 256,
    world: World | None = None,
) -> np.ndarray:
    """Predicted classes of ``x`` ``(N,)``, chunk by chunk of ``batch_size``, each chunk seeded
    by ``chunk_seed(seed, 0, chunk)`` (a randomised model's predictions do not depend on which
    process makes them) and the chunks shared out over ``world``'s processes."""
    world = world or World()
    starts = range(0, len(x), batch_size)
    mine: dict[int, np.ndarray] = {}
    for c in world.portion(range(len(starts))):
        _seed_everything(chunk_seed(seed, 0, c))
        lo = starts[c]
        mine[c] = predict_labels(classifier, x[lo : lo + batch_size], batch_size=batch_size)
    out = np.zeros(len(x), dtype=np.int64)
    for part in world.gather(mine):
        for c, pred in part.items():
            out[starts[c] : starts[c] + batch_size] = pred
    return out


def restart_plan(spec: AttackSpec, restarts: int | None) -> tuple[int, int | None]:
    """``(runs, restarts per run)``: ``restarts`` random restarts become that many runs of one
    restart each (0 keeps a single run without a random start, e.g. FGSM from x)."""
    if spec.restarts_param is None:
        return 1, None
    if restarts is None:
        restarts = spec.defaults.get(spec.restarts_param)
    if restarts is None or int(restarts) <= 1:
        return 1, None if restarts is None else int(restarts)
    return int(restarts), 1


def check_eot(spec: AttackSpec, eot: int) -> int:
    """``eot`` for ``spec``: a white-box attack without EOT support refuses ``eot > 1``; a black-box
    attack (no gradients) ignores it."""
    eot = int(eot)
    if eot < 1:
        raise ValueError(f"--eot must be a positive integer, got {eot}.")
    if eot > 1 and not spec.eot:
        if spec.threat == "black-box":
            logger.info("attack %s uses no gradients; --eot %d ignored", spec.name, eot)
            return 1
        from er_art.attacks import attack_names

        accepted = [n for n in attack_names() if get_attack(n).eot]
        raise ValueError(
            f"Attack {spec.name!r} does not support --eot; accepted with: {', '.join(accepted)}."
        )
    return eot


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
    eot: int = 1,
    active: np.ndarray | None = None,
    progress: ProgressHook | None = None,
    world: World | None = None,
    patience: int | None = None,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Run ``spec`` on ``(x, y)``: ``(x_adv, seconds, the ART arguments used)``.

    :param seed: the unit's seed; chunk ``c`` of restart ``r`` draws from ``chunk_seed(seed, r,
        c)``.
    :param params: other ART parameters; may also hold the common options (``max_iter``,
        ``eps_step``, ``restarts`` or the attack's own restart parameter), which then win.
    :param eot: expectation over transformation: gradients averaged over ``eot`` forward passes.
    :param active: ``(N,)`` bool, the examples to attack (default all); the others keep ``x``.
    :param progress: told how many examples have been attacked, batch by batch.
    :param world: the processes that share the chunks out (default: this one alone); every one
        gets the whole ``x_adv``.
    :param patience: the stopping rule's patience (:mod:`er_art.evaluation.stopping`; default
        the attack's own ``spec.patience``; 0: run every restart).
    """
    x_adv, _, seconds, used, _ = _generate(
        classifier,
        x,
        y,
        spec,
        eps,
        eps_step=eps_step,
        max_iter=max_iter,
        restarts=restarts,
        batch_size=batch_size,
        targeted=targeted,
        seed=seed,
        params=params,
        eot=eot,
        active=active,
        progress=progress,
        world=world,
        patience=patience,
    )
    return x_adv, seconds, used


def _generate(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    spec: AttackSpec,
    eps: float | None,
    *,
    eps_step: float | None,
    max_iter: int | None,
    restarts: int | None,
    batch_size: int,
    targeted: bool,
    seed: int,
    params: dict[str, Any] | None,
    eot: int,
    active: np.ndarray | None,
    progress: ProgressHook | None,
    world: World | None,
    base_pred: np.ndarray | None = None,
    patience: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any], RestartEvidence]:
    """:func:`generate_adversarial`, also returning the predicted classes of ``x_adv`` (of each
    attacked example as predicted right after its chunk was attacked, ``base_pred`` (default -1)
    for the examples not attacked) and what the restarts did.

    Restarts follow :meth:`StoppingRule.of`: each runs on the examples no earlier one broke, until
    the rule says stop (on every process alike: it reads the gathered outcomes)."""
    world = world or World()
    params = dict(params or {})
    max_iter = params.pop("max_iter", max_iter)
    eps_step = params.pop("eps_step", eps_step)
    restarts = params.pop("restarts", restarts)
    if spec.restarts_param and spec.restarts_param in params:
        restarts = params.pop(spec.restarts_param)
    eot = check_eot(spec, eot)
    runs, per_run = restart_plan(spec, restarts)
    rule = StoppingRule.of(spec, runs, patience)
    kwargs = spec.art_kwargs(eps, eps_step, max_iter, per_run, batch_size, targeted, **params)
    labels = target_labels(y, classifier.nb_classes, seed) if targeted else np.asarray(y)
    one_hot = np.eye(classifier.nb_classes, dtype=np.float32)[labels]
    x = np.asarray(x, dtype=np.float32)
    x_adv = x.copy()
    adv_pred = np.full(len(x), -1, dtype=np.int64) if base_pred is None else base_pred.copy()
    todo = np.ones(len(x), dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
    used = dict(kwargs)
    if runs > 1:
        used[spec.restarts_param] = runs
    if eot > 1:
        used["eot"] = eot
    evidence = RestartEvidence(rule=rule.describe())
    if spec.budgeted and eps == 0:  # nothing may change (and ART's attacks reject eps = 0)
        evidence.stopped_by = ALL_BROKEN if not todo.any() else CAP
        return x_adv, adv_pred, 0.0, used, evidence
    target = attack_view(classifier, eot_samples=eot) if spec.eot else classifier
    attack = spec.factory(target, **kwargs)
    progress = progress or _NoProgress()
    progress.start(spec.name, int(todo.sum()) * runs)
    start = time.perf_counter()
    try:
        for run in range(runs):
            idx = np.flatnonzero(todo)
            why = rule.stop(evidence.breaks, len(idx)) if run else None
            if why is not None:
                evidence.stopped_by = why
                progress.advance(len(idx) * (runs - run))
                break
            chunks = [idx[lo : lo + batch_size] for lo in range(0, len(idx), batch_size)]
            done: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for c in world.portion(range(len(chunks))):
                chunk = chunks[c]
                _seed_everything(chunk_seed(seed, run, c))
                if spec.attacks_predictions:  # e.g. ART's DeepFool: no labels
                    adv = attack.generate(x[chunk])
                else:
                    adv = attack.generate(x[chunk], one_hot[chunk])
                pred = predict_labels(classifier, adv, batch_size=max(batch_size, 256))
                done[c] = (adv, pred)
                progress.advance(len(chunk))
            others = 0  # examples the other processes attacked
            for part in world.gather(done):
                for c, (adv, pred) in part.items():
                    x_adv[chunks[c]], adv_pred[chunks[c]] = adv, pred
                    others += 0 if c in done else len(chunks[c])
            progress.advance(others)
            pred = adv_pred[idx]
            broken = (pred == labels[idx]) if targeted else (pred != labels[idx])
            todo[idx[broken]] = False
            evidence.breaks.append(int(broken.sum()))
            progress.advance(int(broken.sum()) * (runs - run - 1))
        else:
            evidence.stopped_by = rule.stop(evidence.breaks, int(todo.sum())) or CAP
    finally:
        progress.end()
    return x_adv, adv_pred, time.perf_counter() - start, used, evidence


def _settings(spec: AttackSpec, kwargs: dict[str, Any], targeted: bool, seed: int) -> dict:
    out: dict[str, Any] = {
        "attack": spec.name,
        "threat": spec.threat,
        "iterative": spec.iterative,
        "budgeted": spec.budgeted,
        "targeted": bool(targeted),
        "seed": seed,
        "eot": int(kwargs.get("eot", 1)),
    }
    if "eps_step" in kwargs:
        out["eps_step"] = kwargs["eps_step"]
    if spec.max_iter_param and spec.max_iter_param in kwargs:
        out["max_iter"] = kwargs[spec.max_iter_param]
    if spec.restarts_param and spec.restarts_param in kwargs:
        out["restarts"] = kwargs[spec.restarts_param]
    out["art_params"] = {k: v for k, v in kwargs.items() if k not in ("eps", "eps_step", "eot")}
    return out


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
    eot: int = 1,
    active: np.ndarray | None = None,
    key: str | None = None,
    progress: ProgressHook | None = None,
    world: World | None = None,
    patience: int | None = None,
) -> list[AttackOutcome]:
    """One attack at each epsilon (a minimal-perturbation attack runs once and is scored at each).

    Only the examples classified correctly without attack (and in ``active``, if given) are
    attacked; the others cannot be robust. Each eps uses the seed ``unit_seed(seed, eps, key)``.
    With ``world`` (a torchrun job) the chunks of examples are shared out over its processes and
    every process gets the same outcomes as one process alone would.

    :param key: the name the outcomes carry (default the attack's name), e.g. ``"pgd-x2"``.
    :param patience: the restarts' stopping rule (:mod:`er_art.evaluation.stopping`; default the
        attack's own, 0: every restart runs); each outcome's settings record what the restarts
        did (``restarts_run``, ``last_break_restart``, ``breaks_per_restart``, ``stopped_by``).
    For ``cw`` and ``cw-fast`` (``spec.normalised_l2``) the epsilon values are L2 thresholds
    normalised per input dimension (the paper's units, ``||delta||_2 / d``); ``l2_threshold``
    (default 0.005) is used when ``eps_values`` is empty.
    """
    spec = get_attack(attack_spec) if isinstance(attack_spec, str) else attack_spec
    key = key or spec.name
    if clean_pred is None:
        clean_pred = predict_chunks(classifier, x, seed=unit_seed(seed, None, "clean"), world=world)
    attackable = clean_pred == np.asarray(y)
    if active is not None:
        attackable &= np.asarray(active, dtype=bool)
    dims = int(np.prod(x.shape[1:]))
    if spec.normalised_l2 and not eps_values:
        eps_values = [CW_L2_THRESHOLD if l2_threshold is None else l2_threshold]
    common = dict(
        eps_step=eps_step,
        max_iter=max_iter,
        restarts=restarts,
        batch_size=batch_size,
        targeted=targeted,
        params=params,
        eot=eot,
        active=attackable,
        progress=progress,
        world=world,
        base_pred=clean_pred,
        patience=patience,
    )
    outcomes: list[AttackOutcome] = []
    cached: tuple[np.ndarray, float, dict[str, Any], np.ndarray, RestartEvidence, int] | None
    cached = None
    for eps in eps_values:
        if spec.budgeted:
            s = unit_seed(seed, eps, key)
            x_adv, adv_pred, elapsed, kwargs, evidence = _generate(
                classifier, x, y, spec, eps, seed=s, **common
            )
        else:
            if cached is None:
                s = unit_seed(seed, None, key)
                x_adv, adv_pred, elapsed, kwargs, evidence = _generate(
                    classifier, x, y, spec, None, seed=s, **common
                )
                cached = (x_adv, elapsed, kwargs, adv_pred, evidence, s)
            x_adv, elapsed, kwargs, adv_pred, evidence, s = cached
        threshold = None
        settings = _settings(spec, kwargs, targeted, s)
        if spec.restarts_param is not None:
            settings.update(evidence.as_settings())
        if spec.normalised_l2:
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
            adv_pred=adv_pred,
            threshold=threshold,
            time_s=elapsed,
            settings=settings,
        )
        if active is not None:  # examples outside `active` were broken before: not robust
            outcome.robust &= np.asarray(active, dtype=bool)
        outcome.method = key
        logger.info("%s eps=%g: robust accuracy %.4f (%.1fs)", key, eps, outcome.accuracy, elapsed)
        outcomes.append(outcome)
    return outcomes


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
