"""The run loop of ``er-art train``: any trainer plugin, checkpoints, exact resumption, torchrun.

    >>> from er_art.training.run import TrainingConfig, train, resume
    >>> result = train(TrainingConfig(dataset="digits", trainer="er-pgd"), "runs/digits-demo")
    >>> result = resume("runs/digits-demo")        # after a crash or Ctrl-C: continues where it was
    >>> clf = er_art.load_classifier("runs/digits-demo")

The loop drives the batches itself and calls the trainer's per-batch step
(:class:`er_art.training.trainers.TrainerSpec`), so every trainer gets the same guarantees:

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
  SIGTERM stops at once with :class:`TrainingTerminated` and keeps the last checkpoint;
- a NaN or infinite loss (or weights) stops training with :class:`TrainingDiverged` and keeps the
  last good checkpoint;
- run.json's ``status`` says how the run ended: ``finished``, ``interrupted`` (SIGINT, SIGTERM) or
  ``failed`` (any other exception, a full disk included: :class:`~er_art.runs.RunWriteError`
  names the file that could not be written);
- :func:`resume` trusts nothing it reads back: run.json's config goes through
  :func:`resolve_config` like a new run's, the checkpoint must be this run's (its saved config
  must agree with run.json's on every field that defines the model and its training), and the
  temporaries of writes that were cut short are removed.

Under torchrun, pass the job's world (``train(cfg, run_dir, world=join_world(cfg.device))``, then
``world.leave()``, as ``er-art train`` does): the N processes train ONE model, each on its shard
of every global batch of ``batch_size`` examples (``batch_size / N`` per process), with the
optimizers' gradients averaged over the processes (:mod:`er_art.distributed`). Rank 0 writes
the run directory; its checkpoint loads in one process, and resumes bit-exactly on the CPU under
torchrun with the same number of processes (another number is refused in one sentence).

The pieces, by what changes together: :mod:`er_art.training.config` (the settings and their
defaults), :mod:`er_art.training.rng_state` (the random state), :mod:`er_art.training.batches`
(data order and
batches), :mod:`er_art.training.loop` (the loop), :mod:`er_art.distributed` (the processes); this
module starts and resumes runs, and every public name of those is importable from here.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from er_art.checkpoint import (
    RUN_CHECKPOINT,
    CheckpointError,
    classifier_from_state,
    read_checkpoint,
    remove_temporaries,
)
from er_art.datasets import DatasetSpec
from er_art.devices import is_nondeterminism_error, torch_settings
from er_art.distributed import World, join_world
from er_art.json_files import check_shape
from er_art.models.er_classifier import resolve_device_type
from er_art.runs import (
    METRICS,
    RUN_JSON,
    RunWriteError,
    mark_latest,
    read_metrics,
    read_run,
    write_json,
    writing,
)
from er_art.training.batches import BatchSource, epoch_order, steps_per_epoch
from er_art.training.config import (
    TrainingConfig,
    _positive_int,
    attack_settings,
    auto_embedding_dim,
    build_for,
    dataset_spec,
    resolve_config,
    resolved,
)
from er_art.training.loop import (
    SYNC_SECONDS,
    TrainingCallbacks,
    TrainingDiverged,
    TrainingInterrupted,
    TrainingTerminated,
    _Run,
    optimizers_of,
)
from er_art.training.rng_state import rng_state, seed_everything, set_rng_state

logger = logging.getLogger(__name__)

__all__ = [
    "SYNC_SECONDS",
    "BatchSource",
    "RunWriteError",
    "TrainingCallbacks",
    "TrainingConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainingResult",
    "TrainingTerminated",
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
    "resolved",
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
    """Record ``status`` (and ``extra``) in run.json; a failed write is a
    :class:`~er_art.runs.RunWriteError`."""
    info = read_run(run_dir)
    info["status"] = status
    info.update(extra)
    with writing(run_dir / RUN_JSON, run_dir):
        write_json(run_dir / RUN_JSON, info)


def _mark_latest(run_dir: Path, latest_root: str | Path | None) -> None:
    """Point ``latest_root``/LATEST at ``run_dir``; a convenience, so a failure is only logged."""
    if latest_root is None:
        return
    try:
        mark_latest(run_dir, latest_root)
    except OSError as err:
        logger.warning("could not mark %s as the latest run in %s: %s", run_dir, latest_root, err)


def _record_end(run_dir: Path, world: World, status: str, cause: BaseException) -> None:
    """Record ``status`` in run.json while ``cause`` propagates: a failure to write it is logged,
    never raised over ``cause`` (only at INFO when ``cause`` is a failed write already: the
    disk that refused the checkpoint refuses run.json too, and its sentence says what to do)."""
    if not world.is_main:
        return
    try:
        _set_status(run_dir, status)
    except Exception as err:  # noqa: BLE001
        log = logger.info if isinstance(cause, RunWriteError) else logger.warning
        log("could not record status %r in %s: %s", status, run_dir, err)


def _drive(run: _Run) -> None:
    """Run ``run`` and record how it ended in run.json: ``finished``, ``interrupted`` (SIGINT,
    SIGTERM, KeyboardInterrupt) or ``failed`` (any other exception, which propagates)."""
    try:
        run.run()
    except (TrainingInterrupted, KeyboardInterrupt) as err:  # TrainingTerminated (SIGTERM) too
        _record_end(run.run_dir, run.world, "interrupted", err)
        raise
    except BaseException as err:
        _record_end(run.run_dir, run.world, "failed", err)
        nondeterministic = (
            isinstance(err, RuntimeError)
            and not isinstance(err, TrainingDiverged)
            and run.cfg.deterministic
            and is_nondeterminism_error(err)
        )
        if not nondeterministic:
            if not isinstance(err, (TrainingDiverged, RunWriteError)):
                logger.error(
                    "training failed at epoch %d, step %d (%s); the last checkpoint is kept in %s",
                    run.epoch + 1,
                    run.step,
                    type(err).__name__,
                    run.run_dir,
                )
            raise
        what = str(err).split(", but", 1)[0].strip()
        raise ValueError(
            f"--deterministic cannot be honoured on {run.clf.device}: {what}; "
            "train without --deterministic or with another architecture."
        ) from None
    finally:
        torch.set_num_threads(run.previous_threads)
    if run.world.is_main:
        _set_status(run.run_dir, "finished")


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
    with writing(run_dir / RUN_JSON, run_dir):
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
    _mark_latest(run_dir, latest_root)


def train(
    config: TrainingConfig,
    run_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    latest_root: str | Path | None = "runs",
    world: World | None = None,
) -> TrainingResult:
    """Train from scratch into ``run_dir`` (which must not hold a run yet).

    :param config: the settings; ``None`` fields take the dataset's / architecture's defaults.
        A config that comes from :func:`resolve_config` unchanged is taken as it is (resolved
        once per run: ``er-art train`` resolves it first to fail before making a directory).
    :param run_dir: the run directory to create (run.json, checkpoint.pt, metrics.jsonl).
    :param callbacks: progress hooks (default: none; under torchrun only rank 0's are called).
    :param latest_root: directory whose ``LATEST`` file is pointed at this run (``None``: leave it).
    :param world: the processes that train this one model together (default: this process
        alone); under torchrun, :func:`er_art.distributed.join_world` on every process.
    :raises ValueError, LookupError, FileNotFoundError: on bad settings or missing data.
    :raises TrainingInterrupted: on SIGINT (after saving); :raises TrainingDiverged: on NaN / inf.
    """
    cfg, spec = resolved(config)
    world = world or World()
    world.local_batch_size(cfg.batch_size)  # type: ignore[arg-type]  # uneven: fails here
    run_dir = Path(run_dir)
    world.on_main(lambda: _refuse_existing(run_dir))
    spec.load("test", cfg.data_dir)  # missing files fail here, before anything is written
    with torch_settings(cfg.deterministic, cuda=_uses_cuda(cfg.device)):
        seed_everything(cfg.seed)
        # bad architecture option values (checked by the builder) fail here, before anything is
        # written; the run directory's files take no random numbers
        classifier = build_for(cfg, spec)
        world.seed_ranks(cfg.seed)  # other ranks: their own prior samples and PGD starts
        world.on_main(lambda: _start_run_dir(run_dir, cfg, world, latest_root))
        try:
            run = _Run(
                cfg, run_dir, classifier, None, callbacks or TrainingCallbacks(), world, spec
            )
        except BaseException as err:
            _record_end(run_dir, world, "failed", err)  # run.json says "running" until here
            raise
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
    :raises ValueError: among others when ``world`` has another number of processes, when
        run.json is unreadable or its config invalid (as a new run's would be), or when the
        checkpoint is not this run's (trained with other settings than run.json's); each one
        sentence naming the run.
    """
    world = world or World()
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file():
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: it is not an er-art run directory (no {RUN_JSON})."
        )
    info = read_run(run_dir)
    saved = info["config"]
    cfg = TrainingConfig.from_dict(saved)
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
    cfg, spec = _checked_config(run_dir, cfg)
    world.on_main(lambda: prepare_run_dir(run_dir))
    world.on_main(lambda: _remove_temporaries(run_dir))
    with torch_settings(cfg.deterministic, cuda=_uses_cuda(cfg.device)):
        training = None
        path = run_dir / RUN_CHECKPOINT
        if path.is_file():
            payload = read_checkpoint(path)
            training = payload.get("training")
            if not isinstance(training, dict):
                raise ValueError(f"{path} holds no training state; it cannot be resumed.")
            check_shape(training, TRAINING_STATE, f"the training state in {path}", TRAINING_MORE)
            _check_checkpoint(run_dir, payload, saved, cfg, spec)
            _check_epochs(run_dir, cfg.epochs, training["epoch"], given=epochs is not None)  # type: ignore[arg-type]
            _check_world_size(run_dir, int(training.get("world_size", 1)), world)
            try:
                classifier = classifier_from_state(payload["classifier"], cfg.device)
            except (KeyError, RuntimeError, TypeError) as err:
                raise CheckpointError(
                    f"{path} holds an inconsistent er-art checkpoint: {err}"
                ) from err
        else:  # killed before the first checkpoint: start over with the saved config
            trained = read_metrics(run_dir)
            if trained:  # metrics.jsonl is written after a checkpoint: this one was removed
                raise ValueError(
                    f"{run_dir} has trained {len(trained)} epoch(s) (its {METRICS}) but has no "
                    f"{RUN_CHECKPOINT}; put the checkpoint back, or remove {METRICS} to train "
                    "the run again from the start."
                )
            _check_world_size(run_dir, int(info.get("world_size", 1)), world)
            seed_everything(cfg.seed)
            classifier = build_for(cfg, spec)
            world.seed_ranks(cfg.seed)
        if world.is_main:
            _mark_latest(run_dir, latest_root)
        run = _Run(
            cfg, run_dir, classifier, training, callbacks or TrainingCallbacks(), world, spec
        )
        if world.is_main:
            _set_status(
                run_dir, "running", resumed=info.get("resumed", 0) + 1, config=cfg.to_dict()
            )
        _drive(run)
    return TrainingResult(run_dir, classifier, run.metrics, cfg, resumed=True)


# the config fields that make a checkpoint what it is: the model, its data and its training (not
# what a resume may change, --epochs, --checkpoint-every, --device, --deterministic, --compile, nor
# data_dir and threads, which change where the data are read and how fast, not the model)
DEFINING = (
    "dataset",
    "trainer",
    "arch",
    "arch_options",
    "prior",
    "embedding_dim",
    "eps",
    "eps_step",
    "max_iter",
    "num_random_init",
    "use_predictions",
    "adv_ratio",
    "eps_warmup",
    "batch_size",
    "lr",
    "lambda_d",
    "lambda_ce",
    "lambda_reg",
    "seed",
    "limit",
    "amp",
)


# a checkpoint's training state as the run loop reads it back (the rest is read where used)
TRAINING_STATE = {"epoch": int, "step": int, "global_step": int, "rng": dict}
TRAINING_MORE = {
    "finished": bool,
    "world_size": int,
    "metrics": list,
    "config": dict,
    "rng_other_ranks": list,
    "epoch_correct": int,
    "epoch_seen": int,
    "epoch_batches": int,
    "epoch_time": float,
    "elapsed": float,
}


def _check_epochs(run_dir: Path, epochs: int, trained: int, given: bool) -> None:
    """One sentence when the run would end before the epochs it has trained (a record of fewer
    epochs than its model had)."""
    if epochs >= trained:
        return
    if given:
        raise ValueError(
            f"--epochs {epochs} is fewer than the {trained} epochs {run_dir} has trained; give "
            f"--epochs {trained} or more, or leave it out."
        )
    raise ValueError(
        f"{run_dir / RUN_JSON} says epochs={epochs}, fewer than the {trained} its "
        f"{RUN_CHECKPOINT} has trained; put back the run's own {RUN_JSON}, or resume with "
        f"--epochs {trained} or more."
    )


def _checked_config(run_dir: Path, cfg: TrainingConfig) -> tuple[TrainingConfig, DatasetSpec]:
    """A resumed run's config through :func:`resolve_config`, as a new run's, and its dataset: an
    invalid value in run.json (hand-edited, or written by a faulty tool) is one sentence naming
    the file."""
    try:
        checked = resolve_config(cfg)
    except (ValueError, LookupError) as err:
        raise ValueError(
            f"{run_dir / RUN_JSON} holds an invalid config: {str(err).strip()}"
        ) from None
    spec = resolved(checked)[1]
    checked.embedding_dim_requested = cfg.embedding_dim_requested  # the record, as it was
    return checked, spec


def _as_json(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists), for comparing a checkpoint's values with
    run.json's."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _check_checkpoint(
    run_dir: Path, payload: dict[str, Any], saved: dict[str, Any], cfg: TrainingConfig, spec: Any
) -> None:
    """One sentence naming the run and the first differing field unless the checkpoint is this
    run's: the config it was trained with (its training state's) agrees with run.json's on every
    ``DEFINING`` field, and its model is the architecture, classes and input shape that config
    and the dataset describe. ``saved`` is run.json's config as read, ``cfg`` as resolved."""
    checkpoint = run_dir / RUN_CHECKPOINT

    def refuse(key: str, theirs: Any, ours: Any, what: str = "was trained with") -> ValueError:
        return ValueError(
            f"{run_dir} does not hold one run: its {RUN_CHECKPOINT} {what} {key}={theirs!r} but "
            f"its {RUN_JSON} says {key}={ours!r}; put back the run's own {RUN_CHECKPOINT} or "
            f"{RUN_JSON}, or train a new run."
        )

    trained = payload["training"].get("config")
    if trained is not None and not isinstance(trained, dict):
        raise CheckpointError(f"{checkpoint} holds an invalid training config.")
    resolved = cfg.to_dict()
    for key in DEFINING:
        if key not in (trained or {}) or key not in saved:
            continue  # written by an er-art that did not record it
        if trained[key] is None and saved[key] is None:  # type: ignore[index]
            continue
        if _as_json(trained[key]) != _as_json(resolved[key]):  # type: ignore[index]
            raise refuse(key, trained[key], resolved[key])  # type: ignore[index]
    model = payload["classifier"].get("config")
    if not isinstance(model, dict):
        raise CheckpointError(f"{checkpoint} holds no classifier config.")
    expected: dict[str, Any] = {
        "arch": cfg.arch,
        "nb_classes": spec.nb_classes,
        "input_shape": list(spec.input_shape),
    }
    if cfg.embedding_dim is not None:
        expected["embedding_dim"] = cfg.embedding_dim
    for key, value in expected.items():
        if key in model and _as_json(model[key]) != _as_json(value):
            if key in ("nb_classes", "input_shape"):
                raise ValueError(
                    f"{run_dir} does not hold one run: its {RUN_CHECKPOINT} holds a model with "
                    f"{key}={model[key]!r} but its {RUN_JSON}'s dataset {cfg.dataset!r} has "
                    f"{key}={value!r}; put back the run's own {RUN_CHECKPOINT} or {RUN_JSON}, or "
                    "train a new run."
                )
            raise refuse(key, model[key], value, "holds a model with")


def _remove_temporaries(run_dir: Path) -> None:
    """Remove what writes cut short (a kill, a full disk) left in ``run_dir``."""
    try:
        removed = remove_temporaries(run_dir)
    except OSError as err:
        logger.warning("could not remove the temporaries in %s: %s", run_dir, err)
        return
    for path in removed:
        logger.info("removed %s, left by an interrupted write", path)


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run's checkpoint says its training is complete."""
    try:
        training = read_checkpoint(Path(run_dir) / RUN_CHECKPOINT).get("training") or {}
    except ValueError:
        return False
    return bool(training.get("finished"))
