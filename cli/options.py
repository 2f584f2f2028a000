"""Typer options shared by the commands that work on trained runs (attack, evaluate, embed)."""

from __future__ import annotations

import math
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


# -- any model (docs/EVALUATION.md, "Any model: --model")
ModelSpec = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Evaluate any model instead of an er-art run: PKG.MODULE:FACTORY (FACTORY() builds "
        "an nn.Module returning logits; weights from --weights), a TorchScript file, or an ART "
        "PyTorchClassifier saved with torch.save / pickle. Data from --dataset or --data.",
    ),
]
Weights = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="The state dict of a --model factory, saved with torch.save(model.state_dict(), "
        "FILE); read with weights_only=True.",
    ),
]
Logits = Annotated[
    str | None,
    typer.Option(
        "--logits", help="With --model: the key (dict) or index (tuple) of the logits it returns."
    ),
]
DataFile = Annotated[
    Path | None,
    typer.Option("--data", help="With --model: an .npz file with arrays x (N, C, H, W) and y."),
]
InputRange = Annotated[
    str | None,
    typer.Option(
        "--input-range",
        help="With --model: LO,HI, the range the data are stored in and the attacks keep to "
        "(default: the dataset's, 0,1 for --data).",
    ),
]
Mean = Annotated[
    str | None,
    typer.Option(
        "--mean",
        help="With --model: (x - mean) / std inside the model; one value or one per channel, "
        "comma-separated (e.g. 0.4914,0.4822,0.4465).",
    ),
]
Std = Annotated[
    str | None,
    typer.Option("--std", help="With --model: see --mean (e.g. 0.2471,0.2435,0.2616)."),
]


def parse_floats(text: str | None, flag: str, example: str) -> list[float] | None:
    """``"0.5,0.25"`` -> ``[0.5, 0.25]`` (None for None); anything else is one sentence."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{flag} must be comma-separated numbers (e.g. {example}), got {text!r}.")
    return values


def parse_input_range(text: str | None) -> tuple[float, float] | None:
    """``--input-range LO,HI`` as ``(LO, HI)`` with LO < HI (None for None)."""
    values = parse_floats(text, "--input-range", "0,1 or 0,255")
    if values is None:
        return None
    if len(values) != 2 or not values[0] < values[1]:
        raise ValueError(f"--input-range must be LO,HI with LO < HI (e.g. 0,1), got {text!r}.")
    return values[0], values[1]
