"""Typer options shared by the commands that work on trained runs (attack, evaluate, embed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Checkpoints = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="Run directory or checkpoint file; repeatable (default: the latest run).",
    ),
]
RunDataset = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Dataset (default: the run's).")
]
RunDataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Dataset files (default: the run's).")
]
BatchSize = Annotated[
    int,
    typer.Option(
        "--batch-size",
        help="Examples attacked together (512: the fastest on a 2-core CPU, docs/BENCHMARKS.md).",
    ),
]
ATTACK_BATCH_SIZE = 512
Defences = Annotated[
    list[str] | None,
    typer.Option(
        "--defence", help="Preprocessing defence to add (er-art plugins defences); repeatable."
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
Plot = Annotated[bool, typer.Option("--plot", help="With --out: also accuracy_vs_eps.png.")]
Attacks = Annotated[
    str | None,
    typer.Option(
        "--attacks",
        help="Comma-separated Linf attacks of the fast suite, a cascade in this order (FGSM on "
        "every example) (default: apgd-ce,apgd-t,fab-t,square,fgsm).",
    ),
]
Patience = Annotated[
    int | None,
    typer.Option(
        "--patience",
        help="Stop restarting after this many restarts in a row broke no example (PGD, APGD; "
        "--restarts is the cap; 0: run every restart; default: each attack's own).",
    ),
]
Checks = Annotated[bool, typer.Option("--checks/--no-checks", help="Run the sanity checks.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")]
Eot = Annotated[
    int,
    typer.Option(
        "--eot",
        help="Expectation over transformation: average the gradient attacks' gradients over N "
        "stochastic forward passes (randomised models).",
    ),
]
ModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model-option",
        help="Override a saved architecture option that leaves the weights unchanged, KEY=VALUE "
        "(e.g. gradient=naive for Defense-GAN, ensemble=50 for RSE); repeatable.",
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="torch CPU threads (default: torch's, one per core; 2 were 1.7-1.9x faster than 1 "
        "on a 2-core CPU).",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume", help="With --out: skip the attacks already finished there (same options)."
    ),
]


def attack_names_of(attacks: str | None) -> list[str] | None:
    """The names of a comma-separated ``--attacks`` value (None: the default ensemble)."""
    if attacks is None:
        return None
    names = [a.strip() for a in attacks.split(",") if a.strip()]
    if not names:
        raise ValueError("--attacks is empty; give e.g. pgd,apgd-ce,square.")
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:  # its records and stored results would collide
        raise ValueError(f"--attacks names {twice!r} twice; give each attack once.")
    return names
