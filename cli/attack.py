"""``er-art attack``: attack one or more trained runs and report accuracy under attack per epsilon.

    er-art attack --method pgd --eps 0:0.3:0.05 --out results/ --plot   # converged defaults
    er-art attack --method pgd --eps paper --protocol paper             # the authors' PGD (Table 1)
    er-art attack --method cw-fast --l2-threshold 0.005 --checkpoint runs/mnist-er   # Table 2
    er-art attack --method all --eps paper   # the fast suite: apgd-ce > apgd-t > fab-t > square
    er-art attack --method pgd --eps 0.1,0.2 --out results/ --resume  # continue an interrupted one
    torchrun --standalone --nproc_per_node 2 --no-python er-art attack --method pgd --eps 0.1

A thin layer over :mod:`er_art.evaluation`; every number is defined in docs/EVALUATION.md. Under
torchrun the processes share out the examples (the same numbers as one process; rank 0 prints and
writes, results.json records ``world_size``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    records_of,
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
from er_art.cli.report import (
    check_params,
    parse_params,
    print_records,
    split_params,
    write_outputs,
)
from er_art.cli.targets import Target, checked_eps, default_eps, set_threads, targets_of
from er_art.cli.world import join, reported_errors

ALL = "all"


def upper_bound_line(target: Target, spec: Any, eps_values: list[float]) -> str:
    """The line that ends every single-attack table."""
    command = f"er-art evaluate -c {target.path}"
    if target.identity is not None:  # --model: the same model and data options
        command = f"er-art evaluate --model {target.identity['model']} ..."
    if spec.norm == "inf" and spec.budgeted:
        command += " --eps " + ",".join(f"{e:g}" for e in eps_values)
    return (
        f"One attack gives an upper bound on robust accuracy; `{command}` gives the worst case "
        "over several attacks, with sanity checks."
    )


def attack(
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="Attack name (er-art plugins attacks) or 'all' (worst case over --attacks, "
            "with sanity checks).",
        ),
    ] = "pgd",
    checkpoint: Checkpoints = None,
    eps: Annotated[
        str | None,
        typer.Option(
            "--eps",
            help="A value, 'a,b,c', a sweep start:stop:step (stop included) or 'paper' (the "
            "dataset's grid). Default: the run's training eps. cw, cw-fast: normalised L2 "
            "thresholds. At most 1000 values, none above the data's range (L-inf).",
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="converged: the attack's converged defaults (docs/EVALUATION.md); paper: the "
            "authors' PGD (the dataset's step and steps, one random start; Table 1).",
        ),
    ] = "converged",
    eps_step: Annotated[
        float | None,
        typer.Option("--eps-step", help="Step size (default: the attack's rule, e.g. eps/4)."),
    ] = None,
    max_iter: Annotated[
        int | None,
        typer.Option("--max-iter", help="Attack iterations (default: the attack's own)."),
    ] = None,
    restarts: Annotated[
        int | None,
        typer.Option(
            "--restarts",
            help="Random restarts, each on the examples no earlier one broke (PGD, APGD, Square): "
            "the cap of the stopping rule.",
        ),
    ] = None,
    patience: Patience = None,
    batch_size: BatchSize = ATTACK_BATCH_SIZE,
    n_samples: Annotated[
        int | None, typer.Option("--n-samples", "-n", help="First N test examples (default 1000).")
    ] = 1000,
    targeted: Annotated[
        bool, typer.Option("--targeted", help="Targeted attack (random other class per example).")
    ] = False,
    defence: Defences = None,
    device: Device = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write each finished attack, results.json and results.csv here."
        ),
    ] = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    plot: Plot = False,
    dataset: RunDataset = None,
    data_dir: RunDataDir = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random starts and targets.")] = 0,
    l2_threshold: Annotated[
        float,
        typer.Option(
            "--l2-threshold",
            help="cw, cw-fast: robust if ||delta||_2 / (number of input dims) exceeds this "
            "(paper Table 2).",
        ),
    ] = 0.005,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Extra ART parameter NAME=VALUE (with 'all': ATTACK.NAME=VALUE), one no option "
            "sets (not batch_size, eps, eps_step, max_iter, the restarts, targeted); repeatable.",
        ),
    ] = None,
    attacks: Attacks = None,
    checks: Checks = True,
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
    verbose: Verbose = False,
) -> None:
    """Attack trained runs (ER-Classifier or baseline); report clean and robust accuracy per eps."""
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
        from er_art.evaluation import FAST_ATTACKS, AttackRun, attack_sweep, paper_protocol
        from er_art.evaluation.eps import parse_eps
        from er_art.evaluation.suites import PROTOCOLS

        spec = None if method == ALL else get_attack(method)
        if protocol not in PROTOCOLS:
            raise ValueError(f"Unknown --protocol {protocol!r}; accepted: {', '.join(PROTOCOLS)}.")
        if spec is None and (targeted or eps_step is not None):
            raise ValueError(
                "--method all runs untargeted attacks with their own step sizes; "
                "drop --targeted / --eps-step or name one --method."
            )
        if protocol == "paper":
            if spec is None or spec.name != "pgd":
                raise ValueError(
                    "--protocol paper is the paper's PGD; use --method pgd, or --protocol "
                    "converged."
                )
            given = next(
                (
                    flag
                    for flag, value in (
                        ("--max-iter", max_iter),
                        ("--restarts", restarts),
                        ("--patience", patience),
                        ("--eps-step", eps_step),
                        ("--targeted", targeted or None),
                        ("--param", param or None),
                    )
                    if value is not None
                ),
                None,
            )
            if given:
                raise ValueError(
                    f"--protocol paper fixes the authors' steps, step size and start; drop "
                    f"{given} or use --protocol converged."
                )
        params = parse_params(param)
        names = [spec.name] if spec is not None else list(attack_names_of(attacks) or FAST_ATTACKS)
        check_params(params, "attack", names, suite=spec is None)  # before loading anything
        if spec is not None:
            params = split_params(params, names)[spec.name]  # pgd.decay=0.9 is decay=0.9
        run_specs = [get_attack(n) for n in names]
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
            if eps is not None:
                return checked_eps(target, parse_eps(eps, target.dataset.eps_grid), run_specs)
            if spec is not None and spec.normalised_l2:
                return checked_eps(target, [l2_threshold], run_specs, "--l2-threshold")
            return checked_eps(target, [default_eps(target)], run_specs)

        if protocol == "paper" and any(t.dataset.max_iter is None for t in targets):
            raise ValueError(
                "--protocol paper takes the dataset's PGD steps, which --data has none of; use "
                "--protocol converged, or --dataset."
            )
        eps_values = {t.label: eps_for(t) for t in targets}  # bad --eps fails before any work
        if eps_step is not None:  # a step beyond the data's range, as train refuses it
            for target in targets:
                budgeted = [s for s in run_specs if s.budgeted]  # the others take no step
                checked_eps(target, [eps_step], budgeted, "--eps-step", positive=True)
        options = run_options(
            targets,
            command="attack",
            method=method,
            protocol=protocol,
            eps=eps_values,
            eps_step=eps_step,
            max_iter=max_iter,
            restarts=restarts,
            patience=patience,
            targeted=targeted,
            seed=seed,
            l2_threshold=l2_threshold,
            params=params,
            attacks=attack_names_of(attacks),
            checks=checks,
            eot=eot,
            batch_size=batch_size,
            defences=defence or [],
            model_options=model_options or {},
        )
        store = open_store(out, options, resume, overwrite, world)
        progress = terminal_progress() if world.is_main else None
        all_records: list[dict[str, Any]] = []
        all_checks: list[dict[str, Any]] | None = None
        try:
            if spec is None:
                all_records, all_checks, _ = evaluate_targets(
                    targets,
                    lambda t: eps_values[t.label],
                    "fast",
                    attacks=attack_names_of(attacks),
                    max_iter=max_iter,
                    restarts=restarts,
                    patience=patience,
                    square_iter=None,
                    params=params,
                    checks=checks,
                    seed=seed,
                    batch_size=batch_size,
                    eot=eot,
                    store=store,
                    progress=progress,
                    world=world,
                )
            else:
                for target in targets:
                    run = (
                        paper_protocol(target.dataset)
                        if protocol == "paper"
                        else AttackRun(
                            spec.name,
                            spec.name,
                            max_iter,
                            restarts,
                            eps_step,
                            targeted,
                            params,
                            patience=patience,
                        )
                    )
                    outcomes = attack_sweep(
                        target.classifier,
                        target.x,
                        target.y,
                        run,
                        eps_values[target.label],
                        label=target.label,
                        seed=seed,
                        batch_size=batch_size,
                        eot=eot,
                        store=store,
                        progress=progress,
                        l2_threshold=l2_threshold,
                        world=world,
                    )
                    records = records_of(target, outcomes, world.size, protocol=protocol)
                    if world.is_main:
                        print_records(
                            records,
                            f"{target.label}: {spec.name} ({spec.description})",
                            footer=upper_bound_line(target, spec, eps_values[target.label]),
                        )
                    all_records.extend(records)
        finally:
            if progress is not None:
                progress.close()
        if out is not None and world.is_main:
            title = f"{method} on {targets[0].dataset.name}"
            for path in write_outputs(out, all_records, all_checks, plot, title):
                typer.echo(f"wrote {path}")
        world.leave()


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
