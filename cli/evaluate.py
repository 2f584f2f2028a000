"""``er-art evaluate``: honest robustness evaluation of trained runs.

    er-art evaluate                                   # the latest run, at its training eps
    er-art evaluate --eps 0.1,0.2,0.3 --out eval/     # every attack and check written as it ends
    er-art evaluate --eps 0.1,0.2,0.3 --out eval/ --resume        # continue an interrupted one
    er-art evaluate --suite standard --eps 0.3 --out aa/          # the standard AutoAttack
    er-art evaluate --checkpoint runs/a --checkpoint runs/b --eps 0:0.3:0.1 --out eval/ --plot
    torchrun --standalone --nproc_per_node 2 --no-python er-art evaluate --eps 0.1 --out eval/

Several attacks per eps (the fast suite, default: a cascade of APGD-CE, restarted until its
restarts stop breaking examples, APGD-T and Square, each on what the earlier ones left robust, with
FGSM on every example; or ``--suite standard``: APGD-CE, APGD-T, FAB-T, Square as a cascade with
AutoAttack's parameters), robust accuracy per example as the worst case over every attack run,
and the sanity checks of docs/EVALUATION.md at every eps, each printed PASS / FAIL /
UNINFORMATIVE with its numbers. ``--strict`` exits with code 1 when a check fails. Under torchrun
the processes share out the examples of every attack (the same numbers as one process; rank 0
prints and writes, results.json records ``world_size``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from er_art.cli.common import (
    fail,
    parse_key_values,
    setup_logging,
    user_errors,
)
from er_art.cli.evaluating import (
    Overwrite,
    evaluate_targets,
    interrupted,
    open_store,
    run_options,
)
from er_art.cli.options import (
    ATTACK_BATCH_SIZE,
    Attacks,
    BatchSize,
    Checkpoints,
    Checks,
    DataFile,
    Defences,
    Device,
    Eot,
    InputRange,
    Logits,
    Mean,
    ModelOption,
    ModelSpec,
    Patience,
    Plot,
    Resume,
    RunDataDir,
    RunDataset,
    Std,
    Threads,
    Verbose,
    Weights,
    attack_names_of,
    parse_floats,
    parse_input_range,
)
from er_art.cli.output_paths import check_output_dir
from er_art.cli.progress import terminal_progress
from er_art.cli.report import check_params, parse_params, write_outputs
from er_art.cli.targets import Target, checked_eps, default_eps, set_threads, targets_of
from er_art.cli.world import join, reported_errors


def evaluate(
    checkpoint: Checkpoints = None,
    eps: Annotated[
        str | None,
        typer.Option(
            "--eps",
            help="A value, 'a,b', start:stop:step or 'paper'. Default: the run's training eps. "
            "At most 1000 values, none above the data's range.",
        ),
    ] = None,
    suite: Annotated[
        str,
        typer.Option(
            "--suite",
            help="fast: a cascade of APGD-CE (restarts until they stop breaking examples), "
            "APGD-T, FAB-T, Square, with FGSM on every example; standard: the standard AutoAttack "
            "(APGD-CE, APGD-T, FAB-T, Square; comparable to RobustBench).",
        ),
    ] = "fast",
    attacks: Attacks = None,
    max_iter: Annotated[
        int | None,
        typer.Option(
            "--max-iter",
            help="Iterations of the white-box iterative attacks (default: each one's own).",
        ),
    ] = None,
    restarts: Annotated[
        int | None,
        typer.Option(
            "--restarts",
            help="Random restarts of PGD / APGD / Square: the cap of the stopping rule (default: "
            "each one's own).",
        ),
    ] = None,
    patience: Patience = None,
    square_iter: Annotated[
        int | None,
        typer.Option("--square-iter", help="Square Attack queries per restart (default 5000)."),
    ] = None,
    n_samples: Annotated[
        int | None, typer.Option("--n-samples", "-n", help="First N test examples.")
    ] = 1000,
    batch_size: BatchSize = ATTACK_BATCH_SIZE,
    defence: Defences = None,
    device: Device = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write each finished attack, results.json, results.csv and checks.json here.",
        ),
    ] = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    plot: Plot = False,
    dataset: RunDataset = None,
    data_dir: RunDataDir = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random starts.")] = 0,
    checks: Checks = True,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Extra ART parameter ATTACK.NAME=VALUE (or NAME=VALUE for all), one no option "
            "sets (not batch_size, eps, max_iter of the white-box attacks or Square, the "
            "restarts, targeted); repeatable.",
        ),
    ] = None,
    eot: Eot = 1,
    model_option: ModelOption = None,
    model: ModelSpec = None,
    weights: Weights = None,
    logits: Logits = None,
    data: DataFile = None,
    input_range: InputRange = None,
    mean: Mean = None,
    std: Std = None,
    threads: Threads = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with code 1 when a sanity check fails.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Worst case over several attacks per eps, plus the sanity checks at every eps."""
    setup_logging(verbose)
    if plot and out is None:
        raise fail("--plot needs --out DIR to write the figure into.")
    if patience is not None and patience < 0:
        raise fail(f"--patience must be an integer >= 0 (0: every restart runs), got {patience}.")
    with user_errors():
        world = join(device)  # under torchrun: this process's share of the work
    with reported_errors(world), interrupted(out, resume, overwrite, world):
        check_output_dir(out)  # before any attack: refuse an --out that cannot be written
        from er_art.attacks import get_attack
        from er_art.evaluation import FAST_ATTACKS
        from er_art.evaluation.eps import parse_eps

        names = attack_names_of(attacks)
        params = parse_params(param)
        run_names = list(names or FAST_ATTACKS)  # the standard suite's are L-inf attacks too
        if suite == "fast":  # the standard suite refuses every --param in one sentence of its own
            check_params(params, "evaluate", run_names, suite=True)  # before loading anything
        run_specs = [get_attack(n) for n in run_names]
        model_options = parse_key_values(model_option, "--model-option", "gradient=naive")
        targets = targets_of(
            checkpoint,
            dataset,
            data_dir,
            n_samples,
            device,
            defence,
            model_options,
            model=model,
            weights=weights,
            logits=logits,
            data=data,
            input_range=parse_input_range(input_range),
            mean=parse_floats(mean, "--mean", "0.4914,0.4822,0.4465"),
            std=parse_floats(std, "--std", "0.2471,0.2435,0.2616"),
        )
        set_threads(threads)

        def eps_for(target: Target) -> list[float]:
            if eps is None:
                return checked_eps(target, [default_eps(target)], run_specs)
            return checked_eps(target, parse_eps(eps, target.dataset.eps_grid), run_specs)

        eps_values = {t.label: eps_for(t) for t in targets}  # bad --eps fails before any work
        options = run_options(
            targets,
            command="evaluate",
            suite=suite,
            eps=eps_values,
            attacks=names,
            max_iter=max_iter,
            restarts=restarts,
            patience=patience,
            square_iter=square_iter,
            params=params,
            checks=checks,
            seed=seed,
            eot=eot,
            batch_size=batch_size,
            defences=defence or [],
            model_options=model_options or {},
        )
        store = open_store(out, options, resume, overwrite, world)
        progress = terminal_progress() if world.is_main else None
        try:
            records, rows, failed = evaluate_targets(
                targets,
                lambda t: eps_values[t.label],
                suite,
                attacks=names,
                max_iter=max_iter,
                restarts=restarts,
                patience=patience,
                square_iter=square_iter,
                params=params,
                checks=checks,
                seed=seed,
                batch_size=batch_size,
                eot=eot,
                store=store,
                progress=progress,
                world=world,
            )
        finally:
            if progress is not None:
                progress.close()
        if out is not None and world.is_main:
            title = f"worst case on {targets[0].dataset.name}"
            for path in write_outputs(out, records, rows, plot, title):
                typer.echo(f"wrote {path}")
        world.leave()
    if strict and failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
