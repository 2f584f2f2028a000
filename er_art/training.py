"""The run loop of ``er-art train``: any trainer plugin, checkpoints, exact resumption, torchrun.

    >>> from er_art.training import TrainingConfig, train, resume
    >>> result = train(TrainingConfig(dataset="digits", trainer="er-pgd"), "runs/digits-demo")
    >>> result = resume("runs/digits-demo")        # after a crash or Ctrl-C: continues where it was
    >>> clf = er_art.load_classifier("runs/digits-demo")

The loop drives the batches itself and calls the trainer's per-batch step
(:class:`er_art.trainers.TrainerSpec`), so every trainer gets the same guarantees:

- the data order of epoch ``e`` comes from a generator seeded by ``(seed, e)``; the torch, NumPy,
  Python and CUDA RNG states are saved with every checkpoint and restored on resume, which restarts
  mid-epoch at the saved step: on the CPU a run killed at any moment and resumed ends with exactly
  the weights of an uninterrupted run; on CUDA too with ``deterministic=True`` (deterministic
  algorithms, cuDNN and cuBLAS) on the same number and type of GPUs;
- data that fit in device memory (digits, MNIST, Fashion-MNIST, CIFAR-10 on a GPU) stay on the
  device for the whole run, and the loop reads losses back from the GPU only for the progress
  display (at most every ``SYNC_SECONDS``), checkpoints and epoch ends;
- a checkpoint (``er_art.save_classifier`` + the training state, written atomically) at the start,
  at the end of every epoch and every ``checkpoint_every`` steps;
- Ctrl-C (SIGINT) finishes the current step, saves and raises :class:`TrainingInterrupted`;
- a NaN or infinite loss (or weights) stops training with :class:`TrainingDiverged` and keeps the
  last good checkpoint.

Under torchrun, pass the job's world (``train(cfg, run_dir, world=join_world(cfg.device))``, then
``world.leave()``, as ``er-art train`` does): the N processes train ONE model, each on its shard
of every global batch of ``batch_size`` examples (``batch_size / N`` per process), with the
optimizers' gradients averaged over the processes (:mod:`er_art.distributed`). Rank 0 writes
the run directory; its checkpoint loads in one process, and resumes bit-exactly on the CPU under
torchrun with the same number of processes (another number is refused in one sentence).

The pieces, by what changes together: :mod:`er_art.training_config` (the settings and their
defaults), :mod:`er_art.rng_state` (the random state), :mod:`er_art.batches` (data order and
batches), :mod:`er_art.run_loop` (the loop), :mod:`er_art.distributed` (the processes); this
module starts and resumes runs, and every public name of those is importable from here.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from er_art.batches import BatchSource, epoch_order, steps_per_epoch
from er_art.checkpoint import RUN_CHECKPOINT, classifier_from_state, read_checkpoint
from er_art.classifier import resolve_device_type
from er_art.devices import is_nondeterminism_error, torch_settings
from er_art.distributed import World, join_world
from er_art.rng_state import rng_state, seed_everything, set_rng_state
from er_art.run_loop import (
    SYNC_SECONDS,
    TrainingCallbacks,
    TrainingDiverged,
    TrainingInterrupted,
    _Run,
    optimizers_of,
)
from er_art.runs import RUN_JSON, mark_latest, read_run, write_json
from er_art.training_config import (
    TrainingConfig,
    _positive_int,
    attack_settings,
    auto_embedding_dim,
    build_for,
    dataset_spec,
    resolve_config,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SYNC_SECONDS",
    "BatchSource",
    "TrainingCallbacks",
    "TrainingConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainingResult",
    "World",
    "attack_settings",
    "auto_embedding_dim",
    "build_for",
    "dataset_spec",
    "epoch_order",
    "git_revision",
    "is_finished",
    "join_world",
    "optimizers_of",
    "package_versions",
    "prepare_run_dir",
    "resolve_config",
    "resume",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "steps_per_epoch",
    "train",
]


@dataclass
class TrainingResult:
    """What a finished (or already finished) run left behind."""

    run_dir: Path
    classifier: PyTorchClassifier
    metrics: list[dict[str, Any]]
    config: TrainingConfig
    resumed: bool = False


# ---------------------------------------------------------------------- run metadata
def git_revision() -> str | None:
    """The git commit of the er-art source tree, or ``None`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    import platform

    import art

    import er_art

    return {
        "er-art": er_art.__version__,
        "torch": torch.__version__,
        "adversarial-robustness-toolbox": art.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def prepare_run_dir(run_dir: Path) -> Path:
    """Create ``run_dir`` and check it can be written (one-sentence ``ValueError`` otherwise)."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"Cannot write to output directory {run_dir} ({err.strerror or err})."
        ) from None
    return run_dir


# ---------------------------------------------------------------------- starting and resuming
def _set_status(run_dir: Path, status: str, **extra: Any) -> None:
    info = read_run(run_dir)
    info["status"] = status
    info.update(extra)
    write_json(run_dir / RUN_JSON, info)


def _drive(run: _Run) -> None:
    def status(value: str) -> None:
        if run.world.is_main:
            _set_status(run.run_dir, value)

    try:
        run.run()
    except (TrainingInterrupted, KeyboardInterrupt):
        status("interrupted")
        raise
    except TrainingDiverged:
        status("failed")
        raise
    except RuntimeError as err:
        if not (run.cfg.deterministic and is_nondeterminism_error(err)):
            raise
        status("failed")
        what = str(err).split(", but", 1)[0].strip()
        raise ValueError(
            f"--deterministic cannot be honoured on {run.clf.device}: {what}; "
            "train without --deterministic or with another architecture."
        ) from None
    finally:
        torch.set_num_threads(run.previous_threads)
    status("finished")


def _refuse_existing(run_dir: Path) -> None:
    if (run_dir / RUN_JSON).exists() or (run_dir / RUN_CHECKPOINT).exists():
        raise ValueError(
            f"{run_dir} already holds a training run; "
            "resume it with --resume or pick another --out."
        )


def _start_run_dir(
    run_dir: Path, cfg: TrainingConfig, world: World, latest_root: str | Path | None
) -> None:
    """Create the run directory with its run.json (and mark it latest)."""
    prepare_run_dir(run_dir)
    write_json(
        run_dir / RUN_JSON,
        {
            "config": cfg.to_dict(),
            "versions": package_versions(),
            "git_revision": git_revision(),
            "seed": cfg.seed,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "running",
            # config.batch_size is the global batch; each process takes its share of it
            **world.describe(),
            "batch_size_per_process": world.local_batch_size(cfg.batch_size),  # type: ignore[arg-type]
        },
    )
    if latest_root is not None:
        mark_latest(run_dir, latest_root)


def train(
    config: TrainingConfig,
    run_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    latest_root: str | Path | None = "runs",
    world: World | None = None,
) -> TrainingResult:
    """Train from scratch into ``run_dir`` (which must not hold a run yet).

    :param config: the settings; ``None`` fields take the dataset's / architecture's defaults.
    :param run_dir: the run directory to create (run.json, checkpoint.pt, metrics.jsonl).
    :param callbacks: progress hooks (default: none; under torchrun only rank 0's are called).
    :param latest_root: directory whose ``LATEST`` file is pointed at this run (``None``: leave it).
    :param world: the processes that train this one model together (default: this process
        alone); under torchrun, :func:`er_art.distributed.join_world` on every process.
    :raises ValueError, LookupError, FileNotFoundError: on bad settings or missing data.
    :raises TrainingInterrupted: on SIGINT (after saving); :raises TrainingDiverged: on NaN / inf.
    """
    cfg = resolve_config(config)
    world = world or World()
    world.local_batch_size(cfg.batch_size)  # type: ignore[arg-type]  # uneven: fails here
    run_dir = Path(run_dir)
    world.on_main(lambda: _refuse_existing(run_dir))
    spec = dataset_spec(cfg)
    spec.load("test", cfg.data_dir)  # missing files fail here, before anything is written
    with torch_settings(cfg.deterministic, cuda=_uses_cuda(cfg.device)):
        seed_everything(cfg.seed)
        # bad architecture option values (checked by the builder) fail here, before anything is
        # written; the run directory's files take no random numbers
        classifier = build_for(cfg, spec)
        world.seed_ranks(cfg.seed)  # other ranks: their own prior samples and PGD starts
        world.on_main(lambda: _start_run_dir(run_dir, cfg, world, latest_root))
        run = _Run(cfg, run_dir, classifier, None, callbacks or TrainingCallbacks(), world)
        _drive(run)
    return TrainingResult(run_dir, classifier, run.metrics, cfg)


def _uses_cuda(device: str) -> bool:
    """Whether a run with ``--device device`` runs on CUDA here."""
    return device != "cpu" and torch.cuda.is_available()


def _check_world_size(run_dir: Path, saved: int, world: World) -> None:
    """One sentence unless ``world`` has as many processes as the run was trained with."""
    if saved == world.size:
        return
    if saved == 1:
        raise ValueError(
            f"{run_dir} was trained by one process, not {world.size}; resume it without torchrun."
        )
    raise ValueError(
        f"{run_dir} was trained by {saved} processes, not {world.size}; resume it with "
        f"torchrun --nproc_per_node {saved}."
    )


def resume(
    run_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    epochs: int | None = None,
    checkpoint_every: int | None = None,
    device: str | None = None,
    latest_root: str | Path | None = "runs",
    deterministic: bool | None = None,
    compile: bool | None = None,
    world: World | None = None,
) -> TrainingResult:
    """Continue the run in ``run_dir`` with its saved config from its last checkpoint.

    :param epochs: train up to this many epochs in all (default: the saved number).
    :param checkpoint_every: change the step interval of checkpoints (default: the saved one).
    :param device: run on another device (``auto``, ``cpu``, ``cuda``; default: the saved one, or
        the CPU with a logged warning when that was CUDA and this machine has none).
    :param deterministic: turn deterministic algorithms on or off from here on (default: saved).
    :param compile: ``torch.compile`` the nets or not (default: as saved).
    :param world: the processes to continue on: as many as the run was trained with (default:
        this process alone).
    :raises ValueError: among others when ``world`` has another number of processes.
    """
    world = world or World()
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file():
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: it is not an er-art run directory (no {RUN_JSON})."
        )
    info = read_run(run_dir)
    cfg = TrainingConfig.from_dict(info["config"])
    if epochs is not None:
        cfg.epochs = _positive_int("epochs", epochs, minimum=0)
    if checkpoint_every is not None:
        cfg.checkpoint_every = _positive_int("checkpoint every", checkpoint_every, minimum=0)
    if device is not None:
        resolve_device_type(device)
        cfg.device = device
    elif cfg.device == "cuda" and not torch.cuda.is_available():
        logger.warning(
            "%s was trained on CUDA, but CUDA is not available here: continuing on the CPU "
            "(not bit-identical to an uninterrupted CUDA run)",
            run_dir,
        )
        cfg.device = "cpu"
    if deterministic is not None:
        cfg.deterministic = bool(deterministic)
    if compile is not None:
        cfg.compile = bool(compile)
    world.on_main(lambda: prepare_run_dir(run_dir))
    spec = dataset_spec(cfg)
    with torch_settings(cfg.deterministic, cuda=_uses_cuda(cfg.device)):
        training = None
        if (run_dir / RUN_CHECKPOINT).is_file():
            payload = read_checkpoint(run_dir / RUN_CHECKPOINT)
            training = payload.get("training")
            if training is None:
                raise ValueError(
                    f"{run_dir / RUN_CHECKPOINT} holds no training state; it cannot be resumed."
                )
            _check_world_size(run_dir, int(training.get("world_size", 1)), world)
            classifier = classifier_from_state(payload["classifier"], cfg.device)
        else:  # killed before the first checkpoint: start over with the saved config
            _check_world_size(run_dir, int(info.get("world_size", 1)), world)
            seed_everything(cfg.seed)
            classifier = build_for(cfg, spec)
            world.seed_ranks(cfg.seed)
        if latest_root is not None and world.is_main:
            mark_latest(run_dir, latest_root)
        run = _Run(cfg, run_dir, classifier, training, callbacks or TrainingCallbacks(), world)
        if world.is_main:
            _set_status(
                run_dir, "running", resumed=info.get("resumed", 0) + 1, config=cfg.to_dict()
            )
        _drive(run)
    return TrainingResult(run_dir, classifier, run.metrics, cfg, resumed=True)


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run's checkpoint says its training is complete."""
    try:
        training = read_checkpoint(Path(run_dir) / RUN_CHECKPOINT).get("training") or {}
    except ValueError:
        return False
    return bool(training.get("finished"))
