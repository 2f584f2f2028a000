"""``er-art embed``: a t-SNE map of a trained run's embedding of test images and adversarial ones.

er-art embed                                   # the latest run, its dataset, 500 test images + PGD
er-art embed --checkpoint runs/mnist-... --eps 0.2 --out mnist_tsne.png
er-art embed --no-adversarial --n-samples 1000
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from er_art.cli.common import setup_logging, user_errors
from er_art.cli.output_paths import check_output_file

DEFAULT_PNG = "embedding.png"


def _run_config(checkpoint: Path) -> tuple[Path | None, dict[str, Any]]:
    """The run directory of ``checkpoint`` (a run dir or a file in one) and its training config."""
    from er_art.runs import RUN_JSON, read_run

    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    if not (run_dir / RUN_JSON).is_file():
        return (run_dir if checkpoint.is_dir() else None), {}
    return run_dir, dict(read_run(run_dir).get("config") or {})


def embed(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint", "-c", help="Run directory or checkpoint file (default: the latest run)."
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset plugin (default: the run's).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The dataset's folder (default: the run's).")
    ] = None,
    n_samples: Annotated[
        int, typer.Option("--n-samples", "-n", help="Test images to embed (the first N).")
    ] = 500,
    adversarial: Annotated[
        bool,
        typer.Option("--adversarial/--no-adversarial", help="Also embed PGD adversarial versions."),
    ] = True,
    eps: Annotated[
        float | None,
        typer.Option(
            "--eps", help="PGD L-inf budget (default: the dataset's, e.g. 0.3 for MNIST)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="PNG to write (default: <run dir>/embedding.png)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of PGD's random start and of t-SNE.")
    ] = 0,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (default: the checkpoint's).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Draw a t-SNE map of a trained classifier's embedding of test images (paper Figure 7)."""
    setup_logging(verbose)
    from er_art.embedding_plot import MIN_POINTS

    with user_errors():
        if n_samples < MIN_POINTS:
            raise ValueError(f"--n-samples must be at least {MIN_POINTS}, got {n_samples}.")
        if eps is not None and eps < 0:
            raise ValueError(f"--eps must be non-negative, got {eps}.")
        from er_art.checkpoint import load_classifier
        from er_art.datasets import check_labels, get_dataset
        from er_art.embedding_plot import embedding_figure, pgd_examples
        from er_art.evaluation.eps import check_eps_range
        from er_art.runs import latest_run

        checkpoint = latest_run() if checkpoint is None else checkpoint
        if not checkpoint.exists():
            raise FileNotFoundError(f"No run directory or checkpoint at {checkpoint}.")
        run_dir, config = _run_config(checkpoint)
        path = out or (run_dir / DEFAULT_PNG if run_dir is not None else Path(DEFAULT_PNG))
        check_output_file(path, "--out" if out else "the figure", DEFAULT_PNG)  # before the work
        dataset = dataset or config.get("dataset")
        if not dataset:
            raise ValueError(f"{checkpoint} has no run.json naming its dataset; pass --dataset.")
        if data_dir is None and config.get("data_dir"):
            data_dir = Path(config["data_dir"])
        spec = get_dataset(dataset)
        if (
            "resolve" in spec.extra and data_dir is not None
        ):  # e.g. npz: shape and defaults from the files
            spec = spec.extra["resolve"](data_dir)
        if eps is not None:  # PGD's L-inf budget: above the data's range it is the whole space
            check_eps_range([eps], "inf", spec.clip_values, what="--eps")
        classifier = load_classifier(checkpoint, device_type=device)
        x, y = spec.arrays("test", data_dir, limit=n_samples)
        if tuple(x.shape[1:]) != tuple(classifier.input_shape):
            raise ValueError(
                f"{checkpoint} takes inputs of shape {tuple(classifier.input_shape)}, "
                f"but {dataset} images are "
                f"{tuple(x.shape[1:])}; pass the --dataset it was trained on."
            )
        check_labels(  # a label the model has no class for: one sentence, not an IndexError
            y,
            f"dataset {dataset!r}"
            + ("" if data_dir is None else f" at {data_dir}")
            + " (test split)",
            classifier.nb_classes,
            classes_of=f"the model at {checkpoint}",
        )
        x_adv = None
        if adversarial:
            budget = spec.eps if eps is None else eps
            step = spec.eps_step if eps is None or spec.eps == 0 else spec.eps_step * eps / spec.eps
            x_adv = pgd_examples(classifier, x, budget, step, spec.max_iter, seed=seed)
        plot = embedding_figure(classifier, x, y, x_adv, path=path, seed=seed)
    typer.echo(
        f"wrote {plot.path}: {len(x)} {dataset} test images, "
        f"clean accuracy {plot.clean_accuracy:.1%}"
    )
    if x_adv is not None:
        typer.echo(
            f"PGD eps={budget:g} step={step:g} steps={spec.max_iter}: "
            f"{int(plot.adv_success.sum())} successful "
            f"adversarial examples (down-triangles), accuracy {plot.adv_accuracy:.1%}"
        )


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
