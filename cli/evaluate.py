"""``er-art evaluate``: honest robustness evaluation of trained runs.

    er-art evaluate                                   # the latest run, at its training eps
    er-art evaluate --checkpoint runs/a --checkpoint runs/b --eps 0:0.3:0.1 --out eval/ --plot

Several attacks per eps (default: PGD with restarts, APGD-CE, APGD-DLR, FGSM, Square), robust
accuracy
per example as the worst case over them, and the four sanity checks of docs/EVALUATION.md, each
printed PASS/FAIL with its numbers. ``--strict`` exits with code 1 when a check fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from er_art.cli.attack import (
    check_rows,
    default_eps,
    evaluate_and_print,
    load_targets,
    parse_attack_names,
    parse_params,
    write_outputs,
)
from er_art.cli.common import fail, setup_logging, user_errors
from er_art.cli.options import (
    DEFAULT_ATTACKS,
    Attacks,
    BatchSize,
    Checkpoints,
    Checks,
    Defences,
    Device,
    Plot,
    RunDataDir,
    RunDataset,
    Verbose,
)


def evaluate(
    checkpoint: Checkpoints = None,
    eps: Annotated[
        str | None,
        typer.Option(
            "--eps",
            help="A value, 'a,b', start:stop:step or 'paper'. Default: the run's training eps.",
        ),
    ] = None,
    attacks: Attacks = DEFAULT_ATTACKS,
    max_iter: Annotated[
        int, typer.Option("--max-iter", help="Iterations of the white-box iterative attacks.")
    ] = 40,
    restarts: Annotated[
        int, typer.Option("--restarts", help="Random restarts of PGD / APGD / Square.")
    ] = 2,
    square_iter: Annotated[
        int, typer.Option("--square-iter", help="Square Attack queries per restart.")
    ] = 1000,
    n_samples: Annotated[
        int | None, typer.Option("--n-samples", "-n", help="First N test examples.")
    ] = 1000,
    batch_size: BatchSize = 128,
    defence: Defences = None,
    device: Device = "auto",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write results.json, results.csv and checks.json here."),
    ] = None,
    plot: Plot = False,
    dataset: RunDataset = None,
    data_dir: RunDataDir = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random starts.")] = 0,
    checks: Checks = True,
    check_eps: Annotated[
        float | None,
        typer.Option("--check-eps", help="eps of the checks (default: the run's training eps)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Extra ART parameter ATTACK.NAME=VALUE (or NAME=VALUE for all); repeatable.",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with code 1 when a sanity check fails.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Worst case over several attacks per eps, plus the sanity checks (PASS/FAIL)."""
    setup_logging(verbose)
    if plot and out is None:
        raise fail("--plot needs --out DIR to write the figure into.")
    failed = False
    with user_errors():
        from er_art.evaluation import parse_eps

        names = parse_attack_names(attacks)
        targets = load_targets(checkpoint, dataset, data_dir, n_samples, device, defence)
        params = parse_params(param)
        all_records: list[dict[str, Any]] = []
        all_checks: list[dict[str, Any]] = []
        for target in targets:
            eps_values = (
                parse_eps(eps, target.dataset.eps_grid)
                if eps is not None
                else [default_eps(target)]
            )
            records, results = evaluate_and_print(
                target,
                eps_values,
                names,
                max_iter=max_iter,
                restarts=restarts,
                batch_size=batch_size,
                seed=seed,
                params=params,
                checks=checks,
                check_eps=check_eps,
                square_max_iter=square_iter,
            )
            failed = failed or not all(c.passed for c in results)
            all_checks.extend(check_rows(target, results))
            all_records.extend(records)
        if out is not None:
            for path in write_outputs(
                out, all_records, all_checks, plot, f"worst case on {targets[0].dataset.name}"
            ):
                typer.echo(f"wrote {path}")
    if strict and failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
