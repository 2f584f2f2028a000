"""The paper's experiments for one dataset in one call: ``er-art reproduce``.

    er-art reproduce --dataset digits --scale smoke --out repro-smoke     # minutes on a CPU
    er-art reproduce --dataset mnist --scale cpu --data-dir ../shared/datasets --out repro-cpu
    er-art reproduce --dataset mnist --scale paper --data-dir DATA --device cuda --out repro-mnist

    >>> from er_art.reproduce import reproduce
    >>> result = reproduce("digits", "smoke", "repro-smoke")
    >>> [(r.method, r.eps, r.protocol, r.robust_accuracy) for r in result.rows][:3]

It trains every method of the paper's Figures 2 and 3 (``plain``, ``madry``, ``rse``, ``ecla``,
``vae-cla``, ``er-minus``, ``er-pgd``; ``defense-gan`` on MNIST and at smoke scale) and every
trainer a third-party package registers, each through the run loop of ``er-art train``; evaluates
each under the paper's protocol, er-art's worst case and, for RSE and Defense-GAN, adaptive
attacks; and writes ``table.csv``, ``table.md`` (the paper's numbers side by side, every deviation
from the paper's settings in its header), Figure-2 / Figure-3 style PNGs and Table 3's intrinsic
dimensions. Calling it again with the same ``out`` reuses every finished run and evaluation unit
and resumes interrupted ones.

Modules: :mod:`~er_art.reproduce.presets` (the methods and scales, the paper's numbers),
:mod:`~er_art.reproduce.plan` (resolved configs), :mod:`~er_art.reproduce.deviations` (what
differs from the paper scale), :mod:`~er_art.reproduce.runs` (the output folder, training, reuse,
resumption), :mod:`~er_art.reproduce.protocols` (the three protocols, Table 3),
:mod:`~er_art.reproduce.running` (the loop over methods), :mod:`~er_art.reproduce.tables` (the
files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from er_art.reproduce.plan import MethodPlan, Plan, build_plan, get_scale, third_party_trainers
from er_art.reproduce.presets import (
    CW_THRESHOLD,
    METHODS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
    PROTOCOLS,
    SCALES,
    Method,
    Scale,
    paper_value,
)
from er_art.reproduce.running import (
    MethodRecord,
    ReproduceCallbacks,
    ReproduceResult,
    Row,
    run_plan,
)
from er_art.reproduce.tables import COLUMNS

__all__ = [
    "COLUMNS",
    "CW_THRESHOLD",
    "METHODS",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PROTOCOLS",
    "SCALES",
    "Method",
    "MethodPlan",
    "MethodRecord",
    "Plan",
    "ReproduceCallbacks",
    "ReproduceResult",
    "Row",
    "Scale",
    "build_plan",
    "get_scale",
    "paper_value",
    "reproduce",
    "run_plan",
    "third_party_trainers",
]


def reproduce(
    dataset: str,
    scale: str | Scale,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    methods: list[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    seed: int = 0,
    callbacks: ReproduceCallbacks | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> ReproduceResult:
    """Run the paper's experiments for ``dataset`` at ``scale`` into ``out``.

    :param dataset: a dataset the scale runs on (``smoke``: digits; ``cpu``: mnist; ``paper``:
        mnist, cifar10, stl10, tinyimagenet).
    :param scale: ``smoke``, ``cpu``, ``paper``, or a :class:`Scale` of one's own.
    :param out: the output directory: new, empty, or one this function wrote before (its
        finished runs and evaluation units are reused, interrupted ones resumed).
    :param data_dir: where the dataset's files are (``--data-dir``).
    :param methods: only these methods (default: all of the dataset's, third parties' included).
    :param device: ``auto``, ``cpu`` or ``cuda``, for training and attacks.
    :param threads: torch CPU threads (default: each architecture's, else torch's).
    :param seed: seeds training and attacks.
    :param callbacks: progress hooks (the CLI's display).
    :param train_overrides: training options forced on every method (listed as deviations).
    :raises ValueError, LookupError, FileNotFoundError: bad settings or missing data, one
        sentence each, before anything is trained.
    :raises er_art.training.run.TrainingInterrupted: on SIGINT during training (call again to
    resume).
    """
    plan = build_plan(
        dataset,
        scale,
        out,
        data_dir=data_dir,
        methods=methods,
        seed=seed,
        device=device,
        threads=threads,
        train_overrides=train_overrides,
    )
    return run_plan(plan, callbacks)
