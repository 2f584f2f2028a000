"""What ``er-art attack`` and ``er-art evaluate`` share: the store, suites over runs, records.

Both commands describe their options in the store's manifest (so ``--resume`` with other options
is refused in one sentence), run through the library's units, print a table per run and write the
summary files derived from the units. Under torchrun every process runs every unit on its share of
the examples (the numbers are those of one process; the manifest does not depend on the number of
processes, so an evaluation resumes with any number); rank 0 prints and writes, and every record
carries the ``world_size`` it was computed with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from er_art.cli.common import fail
from er_art.cli.report import print_checks, print_records, split_params
from er_art.cli.targets import Target, defence_names
from er_art.cli.write_faults import resume_store

Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="With --out: delete the evaluation er-art wrote there first (never other files).",
    ),
]


def open_store(
    out: Path | None,
    options: dict[str, Any],
    resume: bool,
    overwrite: bool = False,
    world: Any = None,
) -> Any:
    """The evaluation store in ``out`` (None without ``--out``), opened by rank 0 (which clears it
    with ``overwrite``) and handed to the other processes; a refusal is raised on every one."""
    from er_art.distributed import World
    from er_art.evaluation import EvaluationStore

    if out is None:
        if resume:
            raise ValueError("--resume needs --out DIR, the directory of the evaluation to resume.")
        if overwrite:
            raise ValueError(
                "--overwrite needs --out DIR, the directory of the evaluation to redo."
            )
        return None
    world = world or World()
    return world.on_main(lambda: EvaluationStore.open(out, options, resume, overwrite))


def run_options(targets: list[Target], **options: Any) -> dict[str, Any]:
    """The manifest's options: what was evaluated (each checkpoint's path and SHA-256, the
    SHA-256 of its test examples) and every setting that changes a number. A ``--model`` target
    is its weights file (or model file) and that file's SHA-256, or the factory's name without
    weights; ``models`` then records each one's kind, factory or file, and preprocessing."""
    from er_art.checkpoint import RUN_CHECKPOINT
    from er_art.evaluation.store import (
        CHECKPOINT_HASHES,
        DATA_HASHES,
        MODELS,
        arrays_sha256,
        file_sha256,
    )

    names: list[str] = []
    hashes: list[str | None] = []
    for t in targets:
        if t.identity is not None:
            names.append(t.identity.get("weights") or t.identity["model"])
            hashes.append(t.identity.get("sha256"))
            continue
        path = Path(t.path)
        names.append(str(path.resolve()))
        hashes.append(file_sha256(path / RUN_CHECKPOINT if path.is_dir() else path))
    manifest = {
        "checkpoints": names,
        CHECKPOINT_HASHES: hashes,
        "n_samples": [int(len(t.y)) for t in targets],
        DATA_HASHES: [arrays_sha256(t.x, t.y) for t in targets],
        **options,
    }
    if any(t.identity is not None for t in targets):  # absent for runs: older stores resume
        manifest[MODELS] = [
            None if t.identity is None else {k: v for k, v in t.identity.items() if k != "sha256"}
            for t in targets
        ]
    return manifest


@contextlib.contextmanager
def interrupted(
    out: Path | None, resume: bool, overwrite: bool, world: Any = None
) -> Iterator[None]:
    """Ctrl-C in the block: one line on how to continue (rank 0), exit code 130, no traceback.
    The units finished before it are on disk (each written atomically)."""
    try:
        yield
    except KeyboardInterrupt:
        if world is None or world.is_main:
            if out is None:
                message = "interrupted; nothing was kept (give --out DIR to keep finished attacks)."
            else:
                how = resume_store(resume, overwrite)
                message = f"interrupted; the finished attacks are kept in {out}: {how} to continue."
            raise fail(message, 130) from None
        raise typer.Exit(130) from None


def records_of(
    target: Target, outcomes: list[Any], world_size: int = 1, **extra: Any
) -> list[dict[str, Any]]:
    """The JSON records of ``outcomes`` on ``target``, computed by ``world_size`` processes, each
    with the versions of er-art, torch, ART, NumPy and Python that computed it."""
    from er_art.evaluation.outcome import summarise
    from er_art.training.run import package_versions

    versions = package_versions()
    return [
        summarise(
            o,
            checkpoint=str(target.path),
            label=target.label,
            defences=defence_names(target),
            world_size=world_size,
            versions=versions,
            **extra,
        )
        for o in outcomes
    ]


def check_rows(target: Target, results: list[Any]) -> list[dict[str, Any]]:
    """The check results of one target as JSON rows for checks.json."""
    return [{**c.as_dict(), "checkpoint": str(target.path)} for c in results]


def build_suite(
    name: str,
    target: Target,
    attacks: list[str] | None,
    max_iter: int | None,
    restarts: int | None,
    square_iter: int | None,
    params: dict[str, Any],
    patience: int | None = None,
) -> Any:
    """The suite ``name`` for ``target`` (:func:`er_art.robustness.build_suite`); the standard
    one refuses settings of its own, naming the option."""
    from er_art.robustness import build_suite as suite_of

    names = list(attacks) if attacks else None
    return suite_of(
        name,
        int(target.classifier.nb_classes),
        attacks=names,
        max_iter=max_iter,
        restarts=restarts,
        patience=patience,
        square_queries=square_iter,
        params=split_params(params, names or _fast_attacks()) if name == "fast" else params,
        flags={
            "attacks": "--attacks",
            "max_iter": "--max-iter",
            "restarts": "--restarts",
            "patience": "--patience",
            "square_queries": "--square-iter",
            "params": "--param",
            "standard": "--suite standard",
            "suite": "--suite fast",
        },
    )


def _fast_attacks() -> list[str]:
    from er_art.evaluation import FAST_ATTACKS

    return list(FAST_ATTACKS)


def evaluate_targets(
    targets: list[Target],
    eps_for: Any,
    suite: str,
    *,
    attacks: list[str] | None,
    max_iter: int | None,
    restarts: int | None,
    square_iter: int | None,
    params: dict[str, Any],
    checks: bool,
    seed: int,
    batch_size: int,
    eot: int,
    store: Any,
    progress: Any,
    world: Any = None,
    patience: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """The suite and its checks on every target, each table and its checks printed (by rank 0).

    :param eps_for: ``eps_for(target) -> list of eps``.
    :param world: the torchrun job's :class:`er_art.distributed.World` (default: one process).
    :return: the records, the check rows and whether a check failed.
    """
    from er_art.distributed import World
    from er_art.robustness import run_suite
    from er_art.training.run import package_versions

    world = world or World()
    versions = package_versions()

    records: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    failed = False
    for target in targets:
        plan = build_suite(
            suite, target, attacks, max_iter, restarts, square_iter, params, patience
        )
        report = run_suite(
            target.classifier,
            target.x,
            target.y,
            eps_for(target),
            plan,
            checks=checks,
            label=target.label,
            seed=seed,
            batch_size=batch_size,
            eot=eot,
            store=store,
            progress=progress,
            world=world,
        )
        mine = report.records(
            checkpoint=str(target.path),
            label=target.label,
            defences=defence_names(target),
            world_size=world.size,
            versions=versions,
            suite=suite,
        )
        members = (
            " > ".join(r.key for r in plan.runs)
            if plan.cascade
            else ", ".join(r.key for r in plan.runs)
        )
        members += "".join(f", {r.key}" for r in plan.independent)
        if world.is_main:
            print_records(mine, f"{target.label}: worst case over {members} ({suite} suite)")
            if report.checks:
                print_checks(report.checks, f"Sanity checks ({target.label})")
        failed = failed or any(c.failed for c in report.checks)
        records.extend(mine)
        rows.extend(check_rows(target, report.checks))
    return records, rows, failed
