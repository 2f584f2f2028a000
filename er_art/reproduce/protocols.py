"""The three protocols on one trained run, each through a resumable evaluation store, and Table 3's
intrinsic dimensions.

``OUT/eval/<method>/<protocol>/`` is an :class:`~er_art.evaluation.EvaluationStore`: every finished
(attack, eps) unit is on disk and is loaded instead of run again. A store records the digest of
the checkpoint it attacked: when a run is trained anew its old units are discarded.

The protocols (every number scored against the true labels, docs/EVALUATION.md):

- ``paper``: the authors' PGD (:func:`~er_art.evaluation.paper_protocol`: the dataset's step and
  number of steps, one random start) on the paper's epsilon grid; plus Table 2's C&W (``cw-fast``)
  at the normalised L2 threshold 0.005 for the ER-Classifier and Defense-GAN on MNIST (and at
  smoke scale);
- ``worst-case``: er-art's fast suite (the cascade APGD-CE > APGD-T > FAB-T > Square, FGSM on every
  example) with its sanity checks, the worst case per example over every attack run at that eps;
- ``adaptive``: what a randomised or purifying defence needs on top: RSE is attacked with PGD
  averaged over ``eot`` noisy passes (expectation over transformation); Defense-GAN with PGD (and
  C&W) through BPDA and through the unrolled projection ("naive"). An example counts as robust
  only if it survives those attacks *and* every attack of the other protocols at the same budget
  (on a subset of the worst case's test images), so the adaptive number is the lowest we have.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from er_art.evaluation import (
    AttackOutcome,
    AttackRun,
    EvaluationStore,
    attack_sweep,
    evaluate_suite,
    fast_suite,
    paper_protocol,
)
from er_art.evaluation.outcome import worst_case_outcome
from er_art.evaluation.store import MANIFEST, read_manifest, versioned
from er_art.reproduce.plan import MethodPlan, Plan
from er_art.reproduce.presets import CW_THRESHOLD, cw_eps_label, paper_value
from er_art.stats import wilson_interval

logger = logging.getLogger(__name__)

EVAL = "eval"


@dataclass
class Row:
    """One line of table.csv: robust accuracy (a fraction) of a method at a budget, on ``n`` test
    images, with its 95 % Wilson interval; ``robust`` keeps the per-example outcomes (the first
    ``n`` test images, in order) for the paired tests, and is not written to table.csv."""

    method: str
    eps: float | str  # an L-inf eps, or "l2:0.005" for Table 2's C&W threshold
    protocol: str  # paper | worst-case | adaptive
    robust_accuracy: float
    n: int
    paper: float | None  # the published value as a fraction, where Table 1 / 2 gives one
    robust: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def interval(self) -> tuple[float, float]:
        """The 95 % Wilson interval of the robust accuracy."""
        return wilson_interval(round(self.robust_accuracy * self.n), self.n)

    def as_csv(self) -> dict[str, Any]:
        eps = self.eps if isinstance(self.eps, str) else f"{self.eps:g}"
        low, high = self.interval
        return {
            "method": self.method,
            "eps": eps,
            "protocol": self.protocol,
            "robust_accuracy": f"{self.robust_accuracy:.4f}",
            "n": self.n,
            "ci_low": f"{low:.4f}",
            "ci_high": f"{high:.4f}",
            "paper": "" if self.paper is None else f"{self.paper:.3f}",
        }


# ---------------------------------------------------------------------------- evaluation helpers
def file_digest(path: Path) -> str:
    """SHA-256 of a file (the checkpoint a store's units were computed on)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_store(root: Path, options: dict[str, Any]) -> EvaluationStore:
    """The store at ``root`` for ``options``, resumed when it was started with the same ones.

    Units computed on another checkpoint (the run was trained anew) or by another version of the
    attacks' code (``attacks_version``) are discarded; other differences are refused in one
    sentence."""
    manifest = root / MANIFEST
    if manifest.is_file():
        saved = read_manifest(manifest)["options"]
        mine = versioned(options)
        if saved != mine:
            if saved.get("checkpoint_sha256") != mine.get("checkpoint_sha256"):
                logger.warning("%s was computed on another checkpoint; evaluating again", root)
                shutil.rmtree(root)
            elif saved.get("attacks_version") != mine["attacks_version"]:
                logger.warning("%s was computed by other attack code; evaluating again", root)
                shutil.rmtree(root)
            else:
                key = next(k for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k))
                raise ValueError(
                    f"{root} holds results computed with {key}={saved.get(key)!r}, not "
                    f"{mine.get(key)!r}; delete that folder to compute them again, or use another "
                    "--out."
                )
    return EvaluationStore.open(root, options, resume=True)


def defense_gan_model(classifier: Any) -> Any:
    """The :class:`~er_art.baselines.defense_gan.DefenseGANModel` inside ``classifier``, or None."""
    from er_art.baselines.defense_gan import DefenseGANModel

    return next((m for m in classifier.model.modules() if isinstance(m, DefenseGANModel)), None)


@contextlib.contextmanager
def gradient_mode(model: Any, mode: str) -> Iterator[None]:
    """Defense-GAN's gradient mode (``bpda`` / ``naive``) inside the block."""
    before = model.gradient
    model.gradient = mode
    try:
        yield
    finally:
        model.gradient = before


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` (None: unchanged) inside the block."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prefix(outcomes: list[AttackOutcome], n: int) -> list[AttackOutcome]:
    """The outcomes that cover at least the first ``n`` test images, cut to those ``n`` (every
    protocol attacks a prefix of the same test images, so example i is the same everywhere)."""
    return [
        AttackOutcome(
            method=o.method,
            eps=o.eps,
            norm=o.norm,
            clean_correct=o.clean_correct[:n],
            robust=o.robust[:n],
            perturbation=o.perturbation[:n],
            time_s=o.time_s,
            settings=o.settings,
        )
        for o in outcomes
        if o.n >= n
    ]


def _at(outcomes: list[AttackOutcome], eps: float) -> list[AttackOutcome]:
    return [o for o in outcomes if abs(o.eps - eps) < 1e-12]


# ---------------------------------------------------------------------------- one method
@dataclass
class _Evaluated:
    rows: list[Row]
    checks: list[dict[str, Any]]
    settings: dict[str, Any]


def evaluate_method(
    plan: Plan,
    mp: MethodPlan,
    x: np.ndarray,
    y: np.ndarray,
    callbacks: Any,
) -> _Evaluated:
    """The three protocols on ``mp``'s finished run; rows for table.csv and the checks."""
    import er_art

    scale, spec, name = plan.scale, plan.spec, mp.name
    classifier = er_art.load_classifier(mp.run_dir, device_type=plan.device)
    digest = file_digest(mp.run_dir / "checkpoint.pt")
    dgan = defense_gan_model(classifier)
    settings: dict[str, Any] = {}
    if dgan is not None:  # the test-time projection of this scale
        for key, value in scale.defense_gan.items():
            setattr(dgan, key, value)
        settings["defense_gan"] = dgan.settings()
    n_test = len(y)
    common = dict(label=name, seed=plan.seed, batch_size=scale.batch_size)
    rows: list[Row] = []

    def row(eps: float | str, protocol: str, outcome: AttackOutcome) -> Row:
        published = paper_value(plan.dataset, name, eps)
        return Row(
            name,
            eps,
            protocol,
            outcome.accuracy,
            outcome.n,
            None if published is None else published / 100.0,
            outcome.robust.copy(),
        )

    def store(protocol: str, **options: Any) -> EvaluationStore:
        base = {"checkpoint_sha256": digest, "protocol": protocol, "seed": plan.seed}
        return open_store(plan.out / EVAL / name / protocol, {**base, **settings, **options})

    # -- paper protocol: the authors' PGD on the grid, and Table 2's C&W
    n_paper = plan.n_for("paper", mp, n_test)
    pgd = paper_protocol(spec)
    if scale.paper_max_iter is not None:
        pgd = AttackRun(pgd.key, pgd.attack, scale.paper_max_iter, 1, pgd.eps_step)
    cw_run = AttackRun("cw-fast", "cw-fast", params=dict(scale.cw_params))
    n_cw = plan.n_for("cw", mp, n_test) if plan.cw and mp.method.table2 else 0
    paper_store = store(
        "paper",
        n=n_paper,
        eps=plan.paper_eps,
        attack=pgd.describe(),
        cw={"n": n_cw, "attack": cw_run.describe(), "threshold": CW_THRESHOLD} if n_cw else None,
    )
    callbacks.on_evaluate(name, "paper", n_paper)
    paper_outs = attack_sweep(
        classifier,
        x[:n_paper],
        y[:n_paper],
        pgd,
        plan.paper_eps,
        store=paper_store,
        progress=callbacks.progress,
        **common,
    )
    rows += [row(o.eps, "paper", o) for o in paper_outs]
    cw_outs: list[AttackOutcome] = []
    if n_cw:
        callbacks.on_evaluate(name, "paper (C&W)", n_cw)
        cw_outs = attack_sweep(
            classifier,
            x[:n_cw],
            y[:n_cw],
            cw_run,
            [CW_THRESHOLD],
            store=paper_store,
            progress=callbacks.progress,
            **common,
        )
        rows.append(row(cw_eps_label(CW_THRESHOLD), "paper", cw_outs[0]))

    # -- worst case: er-art's fast suite with its checks
    n_worst = plan.n_for("worst-case", mp, n_test)
    worst_eps = plan.worst_eps_for(mp)
    square = {} if scale.square_restarts is None else {"nb_restarts": scale.square_restarts}
    suite = fast_suite(
        max_iter=scale.suite_max_iter,
        restarts=scale.suite_restarts,
        square_queries=scale.square_queries,
        params={"square": square},
    )
    worst_store = store(
        "worst-case", n=n_worst, eps=worst_eps, suite=suite.describe(), checks=scale.checks
    )
    callbacks.on_evaluate(name, "worst-case", n_worst)
    result = evaluate_suite(
        classifier,
        x[:n_worst],
        y[:n_worst],
        worst_eps,
        suite,
        checks=scale.checks,
        store=worst_store,
        progress=callbacks.progress,
        **common,
    )
    rows += [row(e, "worst-case", result.worst_case(e)) for e in worst_eps]
    checks = [{"method": name, **c.as_dict()} for c in result.checks]

    # -- adaptive attacks, combined per example with everything else at the same budget
    kind = mp.method.adaptive
    if kind is not None:
        n_ad = plan.n_for("adaptive", mp, n_test)
        runs = _adaptive_runs(kind, scale, dgan, include_cw=bool(n_cw))
        ad_store = store(
            "adaptive",
            n=n_ad,
            eps=worst_eps,
            eot=scale.eot if kind == "eot" else 1,
            attacks=[dict(r.describe(), gradient=mode) for r, mode, _ in runs],
        )
        callbacks.on_evaluate(name, "adaptive", n_ad)
        found: list[AttackOutcome] = []
        for run, mode, batch in runs:
            budgets = [CW_THRESHOLD] if run.attack == "cw-fast" else worst_eps
            with contextlib.ExitStack() as stack:
                if mode is not None:
                    stack.enter_context(gradient_mode(dgan, mode))
                found += attack_sweep(
                    classifier,
                    x[:n_ad],
                    y[:n_ad],
                    run,
                    budgets,
                    store=ad_store,
                    progress=callbacks.progress,
                    eot=scale.eot if kind == "eot" else 1,
                    **{**common, "batch_size": batch or scale.batch_size},
                )
        for eps in worst_eps:
            others = _prefix(result.by_eps[eps][:-1] + _at(paper_outs, eps), n_ad)
            rows.append(row(eps, "adaptive", worst_case_outcome(_at(found, eps) + others, eps)))
        cw_found = [o for o in found if o.norm == "2"]
        if cw_found:
            combined = cw_found + _prefix(cw_outs, n_ad)
            rows.append(
                row(
                    cw_eps_label(CW_THRESHOLD),
                    "adaptive",
                    worst_case_outcome(combined, CW_THRESHOLD),
                )
            )
        settings["adaptive"] = [dict(r.describe(), gradient=m) for r, m, _ in runs]
        settings["eot"] = scale.eot if kind == "eot" else None
    return _Evaluated(rows, checks, settings)


def _adaptive_runs(
    kind: str, scale: Any, dgan: Any, include_cw: bool
) -> list[tuple[AttackRun, str | None, int | None]]:
    """``(attack, Defense-GAN gradient mode or None, batch size or None)`` of an adaptive kind."""
    restarts = scale.adaptive_restarts
    if kind == "eot":
        return [(AttackRun(f"pgd-eot{scale.eot}", "pgd", restarts=restarts), None, None)]
    if kind == "defense-gan":
        if dgan is None:
            raise ValueError(
                "The defense-gan method's model holds no "
                "er_art.baselines.defense_gan.DefenseGANModel; "
                "its adaptive attacks (BPDA, naive gradients) cannot run."
            )
        runs: list[tuple[AttackRun, str | None, int | None]] = []
        for mode in ("bpda", "naive"):
            batch = scale.naive_batch_size if mode == "naive" else None
            runs.append((AttackRun(f"pgd-{mode}", "pgd", restarts=restarts), mode, batch))
            if include_cw:
                cw = AttackRun(f"cw-fast-{mode}", "cw-fast", params=dict(scale.cw_params))
                runs.append((cw, mode, batch))
        return runs
    raise ValueError(f"Unknown adaptive attack kind {kind!r}; accepted: eot, defense-gan.")


# ---------------------------------------------------------------------------- intrinsic dimension
def data_intrinsic_dim(plan: Plan) -> dict[str, Any]:
    """Table 3 for the data: the Levina-Bickel estimate on ``intrinsic_n`` training images."""
    from er_art.intrinsic_dim import dataset_intrinsic_dim

    by_k = dataset_intrinsic_dim(plan.dataset, plan.data_dir, n_samples=plan.scale.intrinsic_n)
    return {
        "dataset": plan.dataset,
        "data_dim": "x".join(str(d) for d in plan.spec.input_shape),
        "intrinsic_dim": float(np.mean(list(by_k.values()))),
        "n": int(plan.scale.intrinsic_n),
        "k": [min(by_k), max(by_k)],
        "method": "levina-bickel",
    }


def embedding_intrinsic_dim(mp: MethodPlan, x: np.ndarray, n: int, device: str) -> dict[str, Any]:
    """The Levina-Bickel estimate of the er-pgd embedding of ``n`` test images."""
    import er_art
    from er_art.intrinsic_dim import estimate_intrinsic_dim

    classifier = er_art.load_classifier(mp.run_dir, device_type=device)
    z = np.asarray(classifier.get_activations(x[:n], "embedding"))  # (n, k)
    return {
        "embedding_method": mp.name,
        "embedding_dim": int(z.shape[1]),
        "embedding_intrinsic_dim": estimate_intrinsic_dim(z),
        "embedding_n": int(len(z)),
    }
