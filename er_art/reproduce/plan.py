"""The plan of a reproduction: which methods train with which resolved config, where their runs
live, which epsilons and how many test images each protocol uses, and every deviation from the
paper scale's settings, worded for the table's header.

    >>> from er_art.reproduce.plan import build_plan
    >>> plan = build_plan("digits", "smoke", "repro/")
    >>> [(m.name, m.config.arch, m.config.epochs) for m in plan.methods]
    >>> plan.deviations(n_test=397)

A method whose trainer or architecture is not registered stops the plan with one sentence (leave
it out with ``methods=``); a third party's trainer that cannot train on the dataset is left out
and listed in ``plan.skipped``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from er_art.datasets import DatasetSpec, get_dataset
from er_art.registry import get_plugin, list_plugins, names
from er_art.reproduce.deviations import evaluation_deviations, training_deviations
from er_art.reproduce.presets import (
    EXTRA_METHOD,
    METHODS,
    PAPER,
    PAPER_TABLE2,
    PAPER_TABLE3,
    SCALES,
    TABLE1_EPS,
    Ablation,
    Method,
    Scale,
)
from er_art.training.run import TrainingConfig, resolve_config
from er_art.training.trainers import get_trainer

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "er_art.plugins."  # entry points of er-art's own plugins point here
RUNS = "runs"  # <out>/runs/<method>/: one er-art train run directory per method
ATTACK_FIELDS = (
    "eps",
    "eps_step",
    "max_iter",
    "use_predictions",
    "num_random_init",
    "adv_ratio",
    "eps_warmup",
)


@dataclass
class MethodPlan:
    """One method of the plan: its resolved training config and its run directory."""

    method: Method
    config: TrainingConfig  # resolved (er_art.training.run.resolve_config)
    run_dir: Path
    reference: TrainingConfig | None = None  # the paper scale's config for the same dataset

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def min_max(self) -> bool:
        """Whether the method trains with PGD min-max (its trainer needs a training attack)."""
        return get_trainer(self.config.trainer).adversarial


@dataclass
class Plan:
    """Everything a reproduction will do (see the module docstring)."""

    dataset: str
    scale: Scale
    spec: DatasetSpec
    data_dir: str | None
    out: Path
    methods: list[MethodPlan]
    seed: int = 0
    device: str = "auto"
    skipped: list[str] = field(default_factory=list)  # third-party methods left out, and why
    train_overrides: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # the attacks' torch CPU threads (None: torch's, one per core)

    def method(self, name: str) -> MethodPlan | None:
        return next((m for m in self.methods if m.name == name), None)

    # -- what is evaluated
    @property
    def paper_eps(self) -> list[float]:
        """The paper protocol's epsilon grid (Figure 2's x-axis)."""
        grid = self.scale.eps_grid.get(self.dataset)
        return [float(e) for e in (grid if grid is not None else self.spec.eps_grid)]

    @property
    def worst_eps(self) -> list[float]:
        """The epsilons of the worst case and the adaptive attacks (every method's but a min-max
        method's where the scale narrows those: `worst_eps_for`)."""
        found = self.scale.worst_eps.get(self.dataset) or TABLE1_EPS.get(self.dataset)
        if found is None:  # not a paper dataset: 0, the training eps and twice it
            found = (0.0, self.spec.eps, 2 * self.spec.eps)
        return [float(e) for e in found]

    def worst_eps_for(self, plan: MethodPlan) -> list[float]:
        """The worst case's epsilons for one method: a min-max method's own where the scale sets
        them (``Scale.worst_eps_min_max``), else `worst_eps`."""
        own = self.scale.worst_eps_min_max.get(self.dataset) if plan.min_max else None
        return self.worst_eps if own is None else [float(e) for e in own]

    @property
    def cw(self) -> bool:
        """Whether Table 2's C&W threshold is evaluated (MNIST; every scale with all_methods)."""
        return self.dataset in PAPER_TABLE2 or self.scale.all_methods

    def n_for(self, protocol: str, plan: MethodPlan, n_test: int) -> int:
        """Test images of ``protocol`` (``paper``, ``cw``, ``worst-case``, ``adaptive``)."""
        s = self.scale
        worst = s.n_worst_key if plan.method.key and s.n_worst_key is not None else s.n_worst
        wanted = {
            "paper": s.n_paper,
            "cw": s.n_cw,
            "worst-case": worst,
            "adaptive": s.n_adaptive,
        }[protocol]
        n = n_test if wanted is None else min(int(wanted), n_test)
        if protocol == "adaptive":  # a subset of the worst case's images (combined per example)
            n = min(n, self.n_for("worst-case", plan, n_test))
        if plan.method.adaptive == "defense-gan" and s.n_defense_gan is not None:
            n = min(n, int(s.n_defense_gan))
        return n

    def max_n(self, n_test: int) -> int:
        return max(
            self.n_for(p, m, n_test)
            for m in self.methods
            for p in ("paper", "cw", "worst-case", "adaptive")
        )

    @property
    def paper_dataset(self) -> bool:
        """Whether the paper reports numbers on this dataset."""
        return self.dataset in TABLE1_EPS

    # -- the header of table.md
    def deviations(self, n_test: int) -> list[str]:
        """Every difference from the paper scale's settings, one line each."""
        lines = []
        if not self.paper_dataset:
            lines.append(
                f"dataset: {self.dataset} ({self.spec.description.rstrip('.')}) is not a dataset "
                "of the paper: no published numbers to compare with; its settings are compared "
                "with er-art's defaults for it and the paper scale's evaluation"
            )
        ref = "paper" if self.paper_dataset else "er-art default"
        lines += training_deviations(self.methods, self.train_overrides, ref)
        lines += evaluation_deviations(self, n_test, ref if self.paper_dataset else "full scale")
        lines += [f"left out: {s}" for s in self.skipped]
        return lines


# ---------------------------------------------------------------------------- building the plan
def get_scale(scale: str | Scale) -> Scale:
    """A scale by name (one-sentence ``ValueError`` for an unknown one), or the given Scale."""
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; accepted: {', '.join(SCALES)}.")
    return SCALES[scale]


def third_party_trainers() -> list[str]:
    """Trainers registered by other packages than er-art (entry point group er_art.trainers)."""
    return [p.name for p in list_plugins("trainers") if not p.value.startswith(BUILTIN_PREFIX)]


def candidate_methods(dataset: str, scale: Scale) -> list[Method]:
    """The table's methods that run on ``dataset`` at ``scale``, then third-party trainers."""
    found = [m for m in METHODS.values() if scale.all_methods or m.runs_on(dataset)]
    for name in third_party_trainers():
        if name not in METHODS:
            found.append(dataclasses.replace(EXTRA_METHOD, name=name, trainer=name, label=name))
    return found


def _select(candidates: list[Method], wanted: list[str] | None) -> list[Method]:
    if wanted is None:
        return candidates
    by_name = {m.name: m for m in candidates}
    chosen = []
    for name in wanted:
        if name not in by_name:
            raise ValueError(
                f"Unknown method {name!r} for this dataset and scale; accepted: "
                f"{', '.join(by_name)}."
            )
        if by_name[name] not in chosen:
            chosen.append(by_name[name])
    if not chosen:
        raise ValueError(f"No method given; accepted: {', '.join(by_name)}.")
    return chosen


def _check_plugins(method: Method, arch: str | None) -> None:
    """One sentence when the method's trainer or architecture is not registered."""
    if method.trainer not in names("trainers"):
        raise ValueError(
            f"Method {method.name!r} needs the trainer {method.trainer!r}, which is not "
            f"registered (registered: {', '.join(names('trainers'))}); install it, or leave the "
            "method out with --methods."
        )
    if arch is not None and arch not in names("architectures"):
        raise ValueError(
            f"Method {method.name!r} needs the architecture {arch!r}, which is not registered "
            "(er-art plugins architectures lists those that are); install it, or leave the method "
            "out with --methods."
        )


def method_config(
    method: Method,
    dataset: str,
    scale: Scale,
    *,
    data_dir: str | None,
    seed: int,
    device: str,
    threads: int | None,
    overrides: dict[str, Any] | None = None,
) -> TrainingConfig:
    """The resolved training config of ``method`` at ``scale`` (see presets' precedence)."""
    arch = method.arch_for(scale.name, dataset)
    _check_plugins(method, arch)
    options: dict[str, Any] = {**scale.train, **method.train_for(scale.name, dataset)}
    options.update(overrides or {})
    trainer = get_plugin("trainers", method.trainer)
    if not trainer.adversarial:  # the PGD of min-max training means nothing to it
        options = {k: v for k, v in options.items() if k not in ATTACK_FIELDS}
    known = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"Method {method.name!r}: {unknown[0]!r} is not a training option; accepted: "
            f"{', '.join(sorted(known))}."
        )
    config = TrainingConfig(
        dataset=dataset,
        data_dir=data_dir,
        trainer=method.trainer,
        arch=arch,
        seed=seed,
        device=device,
        threads=threads,
        **options,
    )
    return ablated(resolve_config(config), method.ablation)


def ablated(config: TrainingConfig, ablation: Ablation | None) -> TrainingConfig:
    """``config`` (resolved) with the setting ``ablation`` changes, resolved again: the prior,
    the embedding dimension (a factor of the resolved one, or the intrinsic dimension: the
    paper's Table 3 on its datasets, else er-art's Levina-Bickel estimate, ``--embedding-dim
    auto``), or the training PGD's eps and step (both times the factor)."""
    if ablation is None:
        return config
    changes: dict[str, Any] = {}
    if ablation.prior is not None:
        changes["prior"] = ablation.prior
    if ablation.embedding == "intrinsic":  # the paper's Table 3 where it has the dataset
        published = PAPER_TABLE3.get(config.dataset, {}).get("intrinsic_dim")
        changes.update(embedding_dim=published or "auto", embedding_dim_requested=None)
    elif ablation.embedding is not None:
        k = max(1, round(float(ablation.embedding) * int(config.embedding_dim)))
        changes.update(embedding_dim=k, embedding_dim_requested=None)
    if ablation.eps_factor is not None and config.eps is not None:
        changes["eps"] = round(ablation.eps_factor * config.eps, 6)
        changes["eps_step"] = round(ablation.eps_factor * config.eps_step, 6)
    return resolve_config(dataclasses.replace(config, **changes))


def build_plan(
    dataset: str,
    scale: str | Scale,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    methods: list[str] | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> Plan:
    """The plan of ``er-art reproduce --dataset DATASET --scale SCALE --out OUT``.

    :param methods: run only these (default: every method of the paper on ``dataset``, plus
        third parties' trainers).
    :param train_overrides: TrainingConfig fields forced on every method (after the presets).
    :raises ValueError: an unknown scale, dataset or method, a dataset the scale does not run,
        a missing trainer or architecture (one sentence each).
    """
    sc = get_scale(scale)
    spec = get_dataset(dataset)
    if spec.name not in sc.datasets:
        others = [s.name for s in SCALES.values() if spec.name in s.datasets]
        hint = f"; {spec.name} runs at scale {', '.join(others)}" if others else ""
        raise ValueError(
            f"Scale {sc.name!r} runs on {', '.join(sc.datasets)}, not {spec.name!r}{hint}."
        )
    folder = None if data_dir is None else str(data_dir)
    spec = spec.resolve(folder)
    out = Path(out)
    plans: list[MethodPlan] = []
    skipped: list[str] = []
    common = dict(data_dir=folder, seed=seed, device=device, threads=threads)
    for method in _select(candidate_methods(spec.name, sc), methods):
        try:
            config = method_config(method, spec.name, sc, overrides=train_overrides, **common)
        except (ValueError, LookupError) as err:
            if method.builtin:
                raise
            reason = str(err).splitlines()[0]
            logger.warning("third-party method %r left out: %s", method.name, reason)
            skipped.append(f"{method.name} (third-party trainer): {reason}")
            continue
        reference = None
        if sc.name != PAPER.name:
            try:
                reference = method_config(method, spec.name, PAPER, **common)
            except (ValueError, LookupError) as err:  # e.g. not a dataset of the paper scale
                logger.debug("no paper-scale reference for %s: %s", method.name, err)
        plans.append(MethodPlan(method, config, out / RUNS / method.name, reference))
    return Plan(
        dataset=spec.name,
        scale=sc,
        spec=spec,
        data_dir=folder,
        out=out,
        methods=plans,
        seed=seed,
        device=device,
        skipped=skipped,
        train_overrides=dict(train_overrides or {}),
        threads=threads,
    )
