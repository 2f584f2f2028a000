"""``er-art attack``: attack one or more trained runs and report accuracy under attack per epsilon.

    er-art attack --method pgd --eps 0:0.3:0.05 --max-iter 40 --restarts 2 --out results/ --plot
    er-art attack --method cw --l2-threshold 0.005 --checkpoint runs/mnist-er
    er-art attack --method all --eps paper   # worst case over pgd, apgd-ce, apgd-dlr, fgsm, square

A thin layer over :mod:`er_art.evaluation`; every number is defined in docs/EVALUATION.md.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
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

logger = logging.getLogger(__name__)

ALL = "all"


@dataclass
class Target:
    """One classifier to attack, with its test data."""

    label: str
    path: Path
    classifier: Any
    x: Any
    y: Any
    dataset: Any  # DatasetSpec
    train_eps: float | None


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["max_eval=10", "square.max_iter=5"]`` -> ``{"max_eval": 10, "square.max_iter": 5}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"Bad --param {item!r}; accepted: NAME=VALUE, e.g. max_eval=1000 or "
                "square.max_iter=500."
            )
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def split_params(params: dict[str, Any], methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per-method parameters: ``method.name=value`` goes to that method, a bare ``name`` to all."""
    per: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for key, value in params.items():
        method, dot, name = key.rpartition(".")
        if not dot:
            for m in methods:
                per[m][name] = value
        elif method in per:
            per[method][name] = value
        else:
            raise ValueError(
                f"--param {key}: {method!r} is not one of the attacks run ({', '.join(methods)})."
            )
    return per


def load_targets(
    checkpoints: list[Path] | None,
    dataset: str | None,
    data_dir: Path | None,
    n_samples: int | None,
    device: str,
    defences: list[str] | None,
) -> list[Target]:
    """Load each checkpoint (default: the latest run), its dataset's test split and the defences."""
    import er_art
    from er_art.datasets import get_dataset
    from er_art.defences import apply_defences
    from er_art.runs import latest_run, read_run

    paths = list(checkpoints or [latest_run()])
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"--n-samples must be a positive integer, got {n_samples}.")
    targets = []
    data_cache: dict[tuple[str, str | None], tuple[Any, Any]] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"No checkpoint or run directory at {path}.")
        run_dir = path if path.is_dir() else path.parent
        config: dict[str, Any] = {}
        if (run_dir / "run.json").is_file():
            config = read_run(run_dir).get("config", {})
        name = dataset or config.get("dataset")
        if name is None:
            raise ValueError(f"{path} has no run.json naming its dataset; pass --dataset.")
        spec = get_dataset(name)
        folder = data_dir if data_dir is not None else config.get("data_dir")
        key = (spec.name, None if folder is None else str(folder))
        if key not in data_cache:
            data_cache[key] = spec.arrays("test", folder, n_samples)
        x, y = data_cache[key]
        classifier = er_art.load_classifier(path, device_type=device)
        if tuple(classifier.input_shape) != tuple(x.shape[1:]):
            raise ValueError(
                f"{path} takes inputs of shape {tuple(classifier.input_shape)} but dataset "
                f"{spec.name!r} has "
                f"{tuple(x.shape[1:])}; pass the right --dataset."
            )
        if defences:
            apply_defences(classifier, defences)
        eps = config.get("eps")
        label = run_dir.name if path.is_dir() else path.stem
        targets.append(
            Target(label, path, classifier, x, y, spec, None if eps is None else float(eps))
        )
    labels = [t.label for t in targets]
    if len(set(labels)) < len(labels):  # same directory names: fall back to the full paths
        for t in targets:
            t.label = str(t.path)
    return targets


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if pct else f"{value:.4g}"


def print_records(records: list[dict[str, Any]], title: str) -> None:
    """A rich table: one row per (eps, method)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "eps",
        "method",
        "clean %",
        "robust %",
        "success %",
        "mean pert",
        "max pert",
        "norm",
        "time s",
    ):
        table.add_column(col, justify="left" if col in ("method", "norm") else "right")
    for r in records:
        style = "bold" if r["method"] == "worst-case" else None
        table.add_row(
            f"{r['eps']:g}",
            r["method"],
            _fmt(r["clean_accuracy"], True),
            _fmt(r["robust_accuracy"], True),
            _fmt(r["success_rate"], True),
            _fmt(r["mean_perturbation"]),
            _fmt(r["max_perturbation"]),
            r["norm"],
            f"{r['time_s']:.1f}",
            style=style,
        )
    console = Console()
    if not console.is_terminal:  # files and pipes: do not squeeze the table into 80 columns
        console = Console(width=140)
    console.print(table)


def print_checks(checks: list[Any], title: str) -> None:
    """PASS/FAIL lines of the sanity checks, with their numbers."""
    typer.echo(title)
    for c in checks:
        colour = typer.colors.GREEN if c.passed else typer.colors.RED
        typer.echo("  " + typer.style(c.status, fg=colour, bold=True) + f"  {c.name}: {c.message}")
        if c.warning:
            typer.echo(
                "        " + typer.style(f"warning: {c.warning}", fg=typer.colors.YELLOW), err=True
            )


def write_outputs(
    out: Path,
    records: list[dict[str, Any]],
    checks: list[dict[str, Any]] | None = None,
    plot: bool = False,
    title: str | None = None,
) -> list[Path]:
    """``results.json`` (a list of records), ``results.csv``, optionally ``checks.json`` and
    ``accuracy_vs_eps.png``."""
    from er_art.runs import write_json

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.csv"]
    write_json(out / "results.json", records)
    columns: list[str] = []
    for r in records:
        columns.extend(k for k in r if k not in columns)
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for r in records:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()}
            )
    if checks is not None:
        write_json(out / "checks.json", checks)
        written.append(out / "checks.json")
    if plot:
        from er_art.plotting import plot_accuracy_vs_eps

        written.append(plot_accuracy_vs_eps(records, out / "accuracy_vs_eps.png", title=title))
    return written


def honest_evaluation(
    target: Target,
    eps_values: list[float],
    attacks: list[str],
    *,
    max_iter: int | None,
    restarts: int | None,
    batch_size: int,
    seed: int,
    params: dict[str, Any],
    checks: bool,
    check_eps: float | None,
    square_max_iter: int,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Ensemble + worst case per eps, then the sanity checks; the records and the check results."""
    from er_art.evaluation import evaluate_ensemble, run_sanity_checks, summarise

    per = split_params(params, attacks)
    if "square" in per:
        square_max_iter = per["square"].setdefault("max_iter", square_max_iter)
    by_eps = evaluate_ensemble(
        target.classifier,
        target.x,
        target.y,
        eps_values,
        attacks,
        max_iter=max_iter,
        restarts=restarts,
        batch_size=batch_size,
        seed=seed,
        params=per,
    )
    records = [
        summarise(o, checkpoint=str(target.path), label=target.label, defences=_defences(target))
        for outs in by_eps.values()
        for o in outs
    ]
    results = []
    if checks:
        eps = check_eps if check_eps is not None else (target.train_eps or target.dataset.eps)
        reuse = by_eps.get(float(eps), [])
        results = run_sanity_checks(
            target.classifier,
            target.x,
            target.y,
            eps,
            max_iter=max_iter or 20,
            restarts=1 if restarts is None else restarts,
            square_max_iter=square_max_iter,
            batch_size=batch_size,
            seed=seed,
            reuse=reuse,
        )
    return records, results


def parse_attack_names(attacks: str) -> list[str]:
    """The names of a comma-separated ``--attacks`` value (at least one)."""
    names = [a.strip() for a in attacks.split(",") if a.strip()]
    if not names:
        raise ValueError("--attacks is empty; give e.g. pgd,apgd-ce,square.")
    return names


def default_eps(target: Target) -> float:
    """The eps a run is attacked at when none is given: its training eps, else the dataset's."""
    return target.train_eps if target.train_eps is not None else target.dataset.eps


def evaluate_and_print(
    target: Target, eps_values: list[float], names: list[str], **options: Any
) -> tuple[list[dict[str, Any]], list[Any]]:
    """:func:`honest_evaluation` of one target, its table and its checks printed."""
    records, results = honest_evaluation(target, eps_values, names, **options)
    print_records(records, f"{target.label}: worst case over {', '.join(names)}")
    if results:
        print_checks(results, f"Sanity checks ({target.label})")
    return records, results


def check_rows(target: Target, results: list[Any]) -> list[dict[str, Any]]:
    """The check results of one target as JSON rows for checks.json."""
    return [{**c.as_dict(), "checkpoint": str(target.path)} for c in results]


def _defences(target: Target) -> list[str]:
    found = target.classifier.preprocessing_defences or []
    return [type(d).__name__ for d in (found if isinstance(found, list) else [found])]


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
            "dataset's grid). Default: the run's training eps. For cw: normalised L2 thresholds.",
        ),
    ] = None,
    eps_step: Annotated[
        float | None,
        typer.Option(
            "--eps-step",
            help="Step size (default: scales with eps, e.g. 2.5*eps/max_iter for PGD).",
        ),
    ] = None,
    max_iter: Annotated[
        int | None,
        typer.Option("--max-iter", help="Attack iterations (default: the attack's own)."),
    ] = None,
    restarts: Annotated[
        int | None,
        typer.Option(
            "--restarts",
            help="Random restarts (PGD num_random_init, APGD nb_random_init, Square nb_restarts).",
        ),
    ] = None,
    batch_size: BatchSize = 128,
    n_samples: Annotated[
        int | None, typer.Option("--n-samples", "-n", help="First N test examples (default 1000).")
    ] = 1000,
    targeted: Annotated[
        bool, typer.Option("--targeted", help="Targeted attack (random other class per example).")
    ] = False,
    defence: Defences = None,
    device: Device = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write results.json and results.csv here.")
    ] = None,
    plot: Plot = False,
    dataset: RunDataset = None,
    data_dir: RunDataDir = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random starts and targets.")] = 0,
    l2_threshold: Annotated[
        float,
        typer.Option(
            "--l2-threshold",
            help="cw: robust if ||delta||_2 / (number of input dims) exceeds this (paper Table 2).",
        ),
    ] = 0.005,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Extra ART parameter NAME=VALUE (with 'all': ATTACK.NAME=VALUE); repeatable.",
        ),
    ] = None,
    attacks: Attacks = DEFAULT_ATTACKS,
    checks: Checks = True,
    verbose: Verbose = False,
) -> None:
    """Attack trained runs (ER-Classifier or baseline); report clean and robust accuracy per eps."""
    setup_logging(verbose)
    if plot and out is None:
        raise fail("--plot needs --out DIR to write the figure into.")
    with user_errors():
        from er_art.attacks import get_attack
        from er_art.evaluation import parse_eps, sweep_attack

        spec = None if method == ALL else get_attack(method)
        if spec is None and (targeted or eps_step is not None):
            raise ValueError(
                "--method all runs untargeted attacks with their own step sizes; "
                "drop --targeted / --eps-step or name one --method."
            )
        targets = load_targets(checkpoint, dataset, data_dir, n_samples, device, defence)
        params = parse_params(param)
        all_records: list[dict[str, Any]] = []
        all_checks: list[dict[str, Any]] = []
        for target in targets:
            if eps is not None:
                eps_values = parse_eps(eps, target.dataset.eps_grid)
            elif spec is not None and spec.name == "cw":
                eps_values = [l2_threshold]
            else:
                eps_values = [default_eps(target)]
            if spec is None:
                records, results = evaluate_and_print(
                    target,
                    eps_values,
                    parse_attack_names(attacks),
                    max_iter=max_iter,
                    restarts=restarts,
                    batch_size=batch_size,
                    seed=seed,
                    params=params,
                    checks=checks,
                    check_eps=None,
                    square_max_iter=1000,
                )
                all_checks.extend(check_rows(target, results))
            else:
                records = sweep_attack(
                    target.classifier,
                    target.x,
                    target.y,
                    spec,
                    eps_values,
                    eps_step=eps_step,
                    max_iter=max_iter,
                    restarts=restarts,
                    batch_size=batch_size,
                    targeted=targeted,
                    seed=seed,
                    l2_threshold=l2_threshold,
                    params=params,
                )
                records = [
                    {
                        **r,
                        "checkpoint": str(target.path),
                        "label": target.label,
                        "defences": _defences(target),
                    }
                    for r in records
                ]
                print_records(records, f"{target.label}: {spec.name} ({spec.description})")
            all_records.extend(records)
        if out is not None:
            title = f"{method} on {targets[0].dataset.name}"
            for path in write_outputs(
                out, all_records, all_checks if spec is None else None, plot, title
            ):
                typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
