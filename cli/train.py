"""``er-art train``: train an ER-Classifier (or a baseline) into a run directory.

    er-art train                                 # ER-Classifier + PGD min-max on digits (~1 min)
    er-art train --dataset mnist --data-dir ../shared/datasets --epochs 30
    er-art train --trainer madry --dataset mnist # Madry's adversarial training, baseline CNN
    er-art train --trainer rse                   # Random Self-Ensemble (noisy CNN) on digits
    er-art train --trainer vae-cla --arch-option beta=0.1   # the VAE-CLA ablation, beta 0.1
    er-art train --trainer defense-gan           # Defense-GAN: WGAN-GP G / D + classifier on digits
    er-art train --resume --out runs/digits-er-pgd-20260101-120000
    er-art train --dataset mnist --device cuda --amp --compile   # bf16 (critic fp32), compiled
    er-art train --dataset mnist --device cuda --deterministic   # exact resume on a GPU too
    torchrun --standalone --nproc_per_node 2 --no-python er-art train --batch-size 64

Defaults come from the dataset (architecture, PGD eps / step / iterations, epochs, batch size) and
the architecture (learning rate, lambdas). The run directory gets run.json (config, versions, git
revision, seed), checkpoint.pt (``er_art.load_classifier(run_dir)``) and metrics.jsonl.
Resume is bit-exact on the CPU; on CUDA with ``--deterministic`` and the same number and type of
GPUs. A run trained on CUDA resumes on a machine without CUDA on the CPU (with a warning).
``--resume`` checks what it reads back: run.json's config is validated as a new run's, and a
checkpoint.pt trained with other settings than run.json's (copied from another run, or run.json
edited) is refused, each in one sentence. run.json's status says how a run ended: finished,
interrupted (Ctrl-C: exit 130 after a checkpoint; SIGTERM: exit 143, the last checkpoint kept) or
failed (an error; a full disk or read-only file system is one sentence naming the file, exit 2,
and ``--resume`` continues from the last checkpoint once the disk takes writes again).

Under torchrun the processes train one model (gloo on the CPU, NCCL with one GPU per process):
``--batch-size`` is the global batch, split evenly over the processes, so the same command trains
the same model with any number of them; rank 0 writes the run directory (run.json records
``world_size`` and ``batch_size_per_process``), and ``--resume`` continues a run under torchrun
with the number of processes it was trained with.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from er_art.cli.common import fail, is_user_error, parse_key_values, setup_logging, user_errors
from er_art.cli.world import join, reported_errors


class _Progress:
    """Rich progress bar per epoch with the running losses and accuracy (on stderr)."""

    def __init__(self, processes: int = 1) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console,
            transient=True,
        )
        self.task: Any = None
        self.epochs = 0
        self.processes = processes
        self.live = self.console.is_terminal  # no live bar when stderr is a file or a pipe

    # TrainingCallbacks
    def on_start(
        self, run_dir: Path, config: Any, epoch: int, step: int, steps_per_epoch: int
    ) -> None:
        where = f"resuming at epoch {epoch + 1}, step {step}" if epoch or step else "starting"
        if epoch >= config.epochs:
            where = f"already trained {epoch} epochs; nothing to do"
        on = f", {self.processes} processes" if self.processes > 1 else ""
        typer.echo(
            f"run: {run_dir} ({where}; {config.trainer} on {config.dataset}, arch {config.arch}, "
            f"{config.epochs} epoch{'' if config.epochs == 1 else 's'} of {steps_per_epoch} steps"
            f"{on})"
        )

    def on_epoch_start(self, epoch: int, epochs: int, start_step: int, steps: int) -> None:
        self.epochs = epochs
        if not self.live:
            return
        self.progress.start()
        self.task = self.progress.add_task(
            "", total=steps, completed=start_step, epoch=f"{epoch + 1}/{epochs}", losses=""
        )

    def on_step(self, epoch: int, step: int, running: dict[str, float]) -> None:
        if self.task is None:
            return
        losses = (
            f"CE {running['ce']:.3f}  D {running['disc']:.3f}  reg {running['reg']:.3f}  "
            f"acc {running['train_acc']:.3f}"
        )
        self.progress.update(self.task, completed=step, losses=losses)

    def on_epoch_end(self, metrics: dict[str, Any]) -> None:
        self.stop()
        typer.echo(
            f"epoch {metrics['epoch']}/{self.epochs}  CE {metrics['ce']:.4f}  "
            f"D {metrics['disc']:.4f}  reg {metrics['reg']:.4f}  "
            f"train acc {metrics['train_acc']:.4f}  test acc {metrics['test_acc']:.4f}  "
            f"({metrics['time']:.1f} s)"
        )

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None: ...

    def stop(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
            self.progress.stop()


def default_run_dir(dataset: str, trainer: str) -> Path:
    """``runs/<dataset>-<trainer>-<YYYYmmdd-HHMMSS>`` in the working directory."""
    base = Path("runs") / f"{dataset}-{trainer}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def resume_device(run_dir: Path, device: str) -> str | None:
    """The device to resume on: ``--device`` when given, else the saved one (``None``), or the CPU
    with a warning when that was CUDA and this machine has none."""
    if device != "auto":
        return device
    from er_art.runs import RUN_JSON, read_run

    if not (run_dir / RUN_JSON).is_file():
        return None  # the library says what is wrong with the directory
    saved = (read_run(run_dir).get("config") or {}).get("device")
    import torch

    if saved == "cuda" and not torch.cuda.is_available():
        typer.echo(
            f"warning: {run_dir} was trained on CUDA, but CUDA is not available here: "
            "continuing on the CPU (not bit-identical to an uninterrupted CUDA run).",
            err=True,
        )
        return "cpu"
    return None


def saved_device(run_dir: Path) -> str:
    """The device a run was trained on (``auto`` when its run.json does not say)."""
    from er_art.runs import RUN_JSON, read_run

    if not (run_dir / RUN_JSON).is_file():
        return "auto"
    return str((read_run(run_dir).get("config") or {}).get("device") or "auto")


def parse_embedding_dim(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        k = int(value)
    except ValueError:
        raise ValueError(
            f"--embedding-dim must be a positive integer or 'auto', got {value!r}."
        ) from None
    if k <= 0:
        raise ValueError(f"--embedding-dim must be a positive integer or 'auto', got {k}.")
    return k


def parse_arch_options(values: list[str] | None) -> dict[str, Any] | None:
    """``["sigma_init=0.4", "ensemble=50"]`` -> ``{"sigma_init": 0.4, "ensemble": 50}``."""
    return parse_key_values(values, "--arch-option", "ensemble=50")


def _marked_failed(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run that training marked failed (it stopped on an error)."""
    from er_art.runs import read_run

    try:
        return read_run(run_dir).get("status") == "failed"
    except Exception:  # noqa: BLE001 (we are reporting another error)
        return False


def train(
    dataset: Annotated[
        str, typer.Option(help="Dataset plugin (er-art plugins datasets).")
    ] = "digits",
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory holding the dataset's files.")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(help="Architecture (default: the trainer's for the dataset)."),
    ] = None,
    arch_option: Annotated[
        list[str] | None,
        typer.Option(
            help="An architecture option KEY=VALUE, repeatable (e.g. sigma_init=0.4, ensemble=50 "
            "for rse-*, beta=0.1 for vae-*, projection_steps=200, restarts=10 for defense-gan-*; "
            "er-art plugins architectures lists architectures).",
        ),
    ] = None,
    prior: Annotated[str, typer.Option(help="Prior of the embedding (ER trainers).")] = "gaussian",
    embedding_dim: Annotated[
        str | None,
        typer.Option(help="Embedding size k: an integer or 'auto' (Levina-Bickel estimate)."),
    ] = None,
    trainer: Annotated[
        str,
        typer.Option(
            help="er-pgd, er-minus, ecla, ecla-pgd, plain, madry, rse, vae-cla, defense-gan "
            "(er-art plugins trainers)."
        ),
    ] = "er-pgd",
    eps: Annotated[
        float | None, typer.Option(help="PGD budget of min-max training (default: the dataset's).")
    ] = None,
    eps_step: Annotated[
        float | None, typer.Option(help="PGD step size (default: the dataset's).")
    ] = None,
    max_iter: Annotated[
        int | None, typer.Option(help="PGD iterations (default: the dataset's).")
    ] = None,
    eps_warmup: Annotated[
        int,
        typer.Option(
            help="Min-max trainers: grow the training PGD's eps (and step) linearly over the "
            "first N epochs, eps * (epoch + 1) / N (default 0: the full eps from the start)."
        ),
    ] = 0,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (default: the architecture's, else the dataset's).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Batch size (default: the dataset's); under torchrun the global batch, split "
            "evenly over the processes."
        ),
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Base learning rate (default: the architecture's).")
    ] = None,
    lambda_d: Annotated[
        float | None,
        typer.Option(help="ER trainers: lambda of the discriminator (default: the arch's)."),
    ] = None,
    lambda_ce: Annotated[
        float | None,
        typer.Option(help="ER trainers: lambda_0 of the cross-entropy (default: the arch's)."),
    ] = None,
    lambda_reg: Annotated[
        float | None,
        typer.Option(
            help="ER trainers: lambda_1 of the encoder regularisation (default: the arch's)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed (weights, data order, prior, attack).")
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    amp: Annotated[
        bool,
        typer.Option(
            "--amp", help="bfloat16 mixed precision (encoder, head, PGD; the critic stays fp32)."
        ),
    ] = False,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic",
            help="Deterministic algorithms (cuDNN, cuBLAS): exact resume on CUDA too; slower.",
        ),
    ] = False,
    compile_: Annotated[
        bool,
        typer.Option("--compile", help="torch.compile the nets (CUDA; the first steps compile)."),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/<dataset>-<trainer>-<time>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out with its saved config.")
    ] = False,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(help="Also checkpoint every N steps (default: only at epoch ends)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="torch CPU threads (default: the architecture's, else one per core)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(hidden=True, help="Use only the first N train/test examples.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")
    ] = False,
) -> None:
    """Train the ER-Classifier (PGD min-max by default) or a baseline; resumes exactly."""
    setup_logging(verbose)
    with user_errors():
        # under torchrun every process joins the job (on the device the run trains on)
        world = join(
            saved_device(out) if resume and out is not None and device == "auto" else device
        )
    with reported_errors(world):
        from er_art.training import run as training

        progress = _Progress(world.size)
        run_dir: Path | None = None  # the run being trained, once known
        try:
            if resume:
                if out is None:
                    raise fail("--resume needs --out RUN_DIR, the run to continue.")
                run_dir = Path(out)
                given = {
                    "--dataset": dataset != "digits",
                    "--data-dir": data_dir is not None,
                    "--arch": arch is not None,
                    "--arch-option": bool(arch_option),
                    "--prior": prior != "gaussian",
                    "--embedding-dim": embedding_dim is not None,
                    "--trainer": trainer != "er-pgd",
                    "--eps": eps is not None,
                    "--eps-step": eps_step is not None,
                    "--max-iter": max_iter is not None,
                    "--eps-warmup": eps_warmup != 0,
                    "--batch-size": batch_size is not None,
                    "--lr": lr is not None,
                    "--lambda-d": lambda_d is not None,
                    "--lambda-ce": lambda_ce is not None,
                    "--lambda-reg": lambda_reg is not None,
                    "--seed": seed != 0,
                    "--amp": amp,
                    "--limit": limit is not None,
                    "--threads": threads is not None,
                }
                clash = [name for name, on in given.items() if on]
                if clash:
                    raise fail(
                        f"{', '.join(clash)} cannot be changed when resuming (the run keeps its "
                        "saved config); "
                        "only --epochs, --checkpoint-every, --device, --deterministic and "
                        "--compile can."
                    )
                result = training.resume(
                    out,
                    progress,
                    epochs=epochs,
                    checkpoint_every=checkpoint_every,
                    device=resume_device(out, device),
                    deterministic=deterministic or None,
                    compile=compile_ or None,
                    world=world,
                )
            else:
                config = training.TrainingConfig(
                    dataset=dataset,
                    data_dir=None if data_dir is None else str(data_dir),
                    arch=arch,
                    arch_options=parse_arch_options(arch_option),
                    prior=prior,
                    embedding_dim=parse_embedding_dim(embedding_dim),
                    trainer=trainer,
                    eps=eps,
                    eps_step=eps_step,
                    max_iter=max_iter,
                    eps_warmup=eps_warmup,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    lambda_d=lambda_d,
                    lambda_ce=lambda_ce,
                    lambda_reg=lambda_reg,
                    seed=seed,
                    device=device,
                    amp=amp,
                    deterministic=deterministic,
                    compile=compile_,
                    checkpoint_every=checkpoint_every or 0,
                    limit=limit,
                    threads=threads,
                )
                # bad values fail here, before a run directory is made; train() takes the
                # resolved config (and the dataset it was resolved against) as it is
                config = training.resolve_config(config)
                run_dir = world.broadcast(out or default_run_dir(dataset, trainer))  # rank 0's
                result = training.train(config, run_dir, progress, world=world)
        except training.TrainingInterrupted as stop:
            progress.stop()
            if world.is_main:
                typer.echo(f"interrupted: checkpoint saved; {stop}", err=True)
            world.leave()  # every process stopped after the same step
            raise typer.Exit(130) from None
        except training.TrainingTerminated as stop:  # SIGTERM: at once, without a collective
            progress.stop()
            if world.is_main:
                typer.echo(f"terminated: {stop}", err=True)
            raise typer.Exit(143) from None
        except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
            progress.stop()
            if world.is_main:
                typer.echo("interrupted; the last checkpoint (if any) is kept.", err=True)
            raise typer.Exit(130) from None
        except training.TrainingDiverged as err:
            progress.stop()
            if world.is_main:
                raise fail(str(err), code=1) from None
            raise typer.Exit(1) from None
        except training.RunWriteError as err:  # a full disk, a read-only file system, ...
            progress.stop()
            if world.is_main:  # exit 2, as cli/common.py's refused writes
                raise fail(str(err)) from None
            raise typer.Exit(2) from None
        except Exception as err:  # a bug, not the user's: one sentence, the traceback logged
            if is_user_error(err) or run_dir is None or not _marked_failed(Path(run_dir)):
                raise
            progress.stop()
            logging.getLogger("er_art").info("the error's traceback:", exc_info=True)
            if world.is_main:
                raise fail(
                    f"training stopped on an unexpected error ({type(err).__name__}: {err}); "
                    f"{run_dir} is marked failed with its last checkpoint kept, and `er-art train "
                    f"--resume --out {run_dir}` continues from it (--verbose shows the traceback).",
                    code=1,
                ) from None
            raise typer.Exit(1) from None
        finally:
            progress.stop()
    world.leave()
    final = result.metrics[-1] if result.metrics else None
    summary = f"test acc {final['test_acc']:.4f}" if final else "no epoch trained"
    typer.echo(
        f"done: {result.run_dir} ({summary}); "
        f"load it with er_art.load_classifier('{result.run_dir}')"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
