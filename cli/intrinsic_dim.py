"""``er-art intrinsic-dim --dataset NAME``: the data's intrinsic dimension (a guide to k).

er-art intrinsic-dim --dataset mnist --data-dir ../shared/datasets            # paper: 13
er-art intrinsic-dim --dataset cifar10 --data-dir ../shared/datasets --method mackay --verbose
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from er_art.cli.common import setup_logging, user_errors


class Method(str, Enum):
    levina_bickel = "levina-bickel"
    mackay = "mackay"


def intrinsic_dim(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset plugin (er-art plugins datasets).")
    ] = "digits",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Folder holding the dataset's files (default ./data)."),
    ] = None,
    n_samples: Annotated[
        int, typer.Option("--n-samples", help="Random images to use (the paper used 1,000).")
    ] = 1000,
    k1: Annotated[int, typer.Option("--k1", help="Smallest neighbourhood size (at least 3).")] = 6,
    k2: Annotated[int, typer.Option("--k2", help="Largest neighbourhood size.")] = 12,
    method: Annotated[
        Method,
        typer.Option(
            "--method", help="levina-bickel (mean of m_k) or mackay (inverse of mean 1/m_k)."
        ),
    ] = Method.levina_bickel,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "train",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random subset.")] = 0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print the estimate for each k; log progress.")
    ] = False,
) -> None:
    """Estimate the intrinsic dimension of a dataset by maximum likelihood (Levina & Bickel)."""
    setup_logging(verbose)
    from er_art.intrinsic_dim import dataset_intrinsic_dim

    with user_errors():
        if n_samples <= 0:
            raise ValueError(f"--n-samples must be a positive integer, got {n_samples}.")
        by_k = dataset_intrinsic_dim(
            dataset, data_dir, n_samples, k1, k2, method.value, split, seed
        )
    if verbose:
        for k, value in by_k.items():
            typer.echo(f"k={k:<3d} {value:.2f}")
    estimate = float(np.mean(list(by_k.values())))
    typer.echo(
        f"intrinsic dimension of {dataset} ({split}, {n_samples} samples, k={k1}..{k2}, "
        f"{method.value}): {estimate:.2f}"
    )


def register(app: typer.Typer) -> None:
    app.command("intrinsic-dim")(intrinsic_dim)
