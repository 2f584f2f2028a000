"""``er-art reproduce``: the paper's experiments for one dataset, the paper's numbers side by side.

    er-art reproduce --dataset digits --scale smoke --out repro-smoke          # every code path
    er-art reproduce --dataset mnist --scale cpu --data-dir ../shared/datasets --out repro-cpu
    er-art reproduce --dataset mnist --scale paper --data-dir DATA --device cuda --out repro
    er-art reproduce --dataset digits --scale smoke --out repro-smoke --methods plain,er-pgd

Trains every method of the paper's Figures 2 and 3 (and Defense-GAN on MNIST and at smoke scale,
the control ecla-pgd, the ablations of Figures 4 - 6, and every trainer a third-party package
registers), evaluates each under the paper's PGD, er-art's worst case and (RSE, Defense-GAN)
adaptive attacks, and writes table.csv, table.md, figure2.png ... figure6.png, intrinsic_dim.json,
checks.json and claims.md / claims.json into --out. Running it again with the same --out reuses the
finished runs and attacks and resumes an interrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from er_art.cli.common import fail, setup_logging, user_errors
from er_art.cli.options import Device, Threads, Verbose
from er_art.cli.output_paths import check_output_dir


class _Display:
    """Prints what the reproduction does; training and attack progress bars on a terminal."""

    def __init__(self) -> None:
        from er_art.cli.progress import terminal_progress
        from er_art.cli.train import _Progress

        self.training = _Progress()
        self.progress = terminal_progress()

    def on_plan(self, plan: Any, n_test: int) -> None:
        names = ", ".join(m.name for m in plan.methods)
        typer.echo(
            f"reproduce {plan.dataset} at scale {plan.scale.name} into {plan.out}: "
            f"{len(plan.methods)} methods ({names}); {n_test} test images"
        )
        deviations = plan.deviations(n_test)
        if deviations:
            typer.echo(
                f"{len(deviations)} deviations from the paper's settings (table.md lists them)"
            )
        for skipped in plan.skipped:
            typer.echo(f"left out: {skipped}", err=True)

    def on_train(self, method: str, run_dir: Path, action: str) -> None:
        what = {
            "train": "training",
            "resume": "resuming the interrupted run",
            "reuse": "reusing the finished run",
        }[action]
        typer.echo(f"[{method}] {what} ({run_dir})")

    def on_evaluate(self, method: str, protocol: str, n: int) -> None:
        typer.echo(f"[{method}] {protocol}: {n} test images")

    def on_method_done(self, method: str) -> None: ...

    def close(self) -> None:
        self.training.stop()
        if self.progress is not None:
            self.progress.close()


def _summary(result: Any) -> None:
    """Per method: clean accuracy, then paper / worst case / adaptive at each eps > 0 of the worst
    case (table.md has everything)."""
    from rich.console import Console
    from rich.table import Table

    def value(method: str, protocol: str, eps: float) -> str:
        for r in result.rows:
            if r.method == method and r.protocol == protocol and not isinstance(r.eps, str):
                if abs(r.eps - eps) < 1e-9:
                    return f"{100 * r.robust_accuracy:.1f}"
        return "–"

    plan = result.plan
    eps_values = [e for e in plan.worst_eps if e > 0]
    table = Table(
        title=f"{plan.dataset}, scale {plan.scale.name}: robust accuracy % "
        "(paper protocol / worst case / adaptive)"
    )
    table.add_column("method")
    table.add_column("clean", justify="right")
    for eps in eps_values:
        table.add_column(f"ε={eps:g}", justify="right")
    for m in result.methods:
        if m.error:
            table.add_row(m.name, m.error)
            continue
        cells = [value(m.name, "paper", 0.0)]
        cells += [
            " / ".join(value(m.name, p, eps) for p in ("paper", "worst-case", "adaptive"))
            for eps in eps_values
        ]
        table.add_row(m.name, *cells)
    Console().print(table)
    _claims(result)


def _claims(result: Any) -> None:
    """The verdict on each of the paper's claims per protocol (claims.md has the numbers)."""
    from rich.console import Console
    from rich.table import Table

    from er_art.reproduce.claims import PROTOCOL_TITLES, judge_all

    verdicts = judge_all(result)
    protocols = list(dict.fromkeys(p for c in verdicts["claims"] for p in c["protocols"]))
    table = Table(title="the paper's claims at this scale (claims.md has the tests)")
    table.add_column("claim")
    for p in protocols:
        table.add_column(PROTOCOL_TITLES[p])
    for c in verdicts["claims"]:
        cells = [c["protocols"][p]["verdict"] if p in c["protocols"] else "–" for p in protocols]
        table.add_row(f"{c['claim']} ({c['source']})", *cells)
    Console().print(table)


def reproduce(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset: digits (smoke), mnist (cpu, paper), cifar10, stl10, "
            "tinyimagenet (paper).",
        ),
    ],
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            help="smoke: digits, minutes on a CPU; cpu: MNIST scaled down, hours on 2 cores; "
            "paper: the authors' settings, for a GPU.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output directory (new, empty, or one to reuse and resume)."
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Directory holding the dataset's files (e.g. MNIST/raw)."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            help="Comma-separated methods to run (default: all of the dataset's, third-party "
            "trainers included).",
        ),
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of training and attacks.")] = 0,
    verbose: Verbose = False,
) -> None:
    """Run the paper's experiments for one dataset: train, attack, tables and figures."""
    setup_logging(verbose)
    with user_errors():
        check_output_dir(out)  # before any training: refuse an --out that cannot be written
        from er_art.reproduce import reproduce as run
        from er_art.training.run import TrainingInterrupted

        names = None
        if methods is not None:
            names = [m.strip() for m in methods.split(",") if m.strip()]
            if not names:
                raise ValueError("--methods is empty; give e.g. plain,er-pgd.")
        if threads is not None and threads < 1:
            raise ValueError(f"--threads must be a positive integer, got {threads}.")
        display = _Display()
        try:
            result = run(
                dataset,
                scale,
                out,
                data_dir=data_dir,
                methods=names,
                device=device,
                threads=threads,
                seed=seed,
                callbacks=display,  # type: ignore[arg-type]
            )
        except (TrainingInterrupted, KeyboardInterrupt):
            display.close()
            typer.echo(
                "interrupted; what has finished is kept: run the same command again to resume.",
                err=True,
            )
            raise typer.Exit(130) from None
        finally:
            display.close()
    _summary(result)
    for path in result.files:
        typer.echo(f"wrote {path}")
    if result.failed:
        raise fail(f"no numbers for {', '.join(result.failed)}: training diverged (table.md)", 1)


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
