"""The run loop of ``er-art train``: any trainer plugin, checkpoints, exact resumption.

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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from er_art.architectures import get_architecture
from er_art.build import ER_FALLBACKS, build_classifier
from er_art.checkpoint import (
    RUN_CHECKPOINT,
    classifier_from_state,
    read_checkpoint,
    save_classifier,
)
from er_art.classifier import resolve_device_type
from er_art.datasets import DatasetSpec, get_dataset
from er_art.devices import compile_model, fits_on_device, is_nondeterminism_error, torch_settings
from er_art.registry import get_plugin
from er_art.runs import METRICS, RUN_JSON, atomic_write, mark_latest, read_run, write_json
from er_art.trainers import AttackSettings, TrainerSpec, get_trainer

logger = logging.getLogger(__name__)

SYNC_SECONDS = 0.5  # on CUDA, losses are read back (and checked for NaN) at most this often


class TrainingInterrupted(Exception):
    """Training stopped on request (SIGINT); the checkpoint holds the state after the last step."""

    def __init__(self, run_dir: Path, epoch: int, step: int) -> None:
        super().__init__(
            f"training interrupted at epoch {epoch + 1}, step {step}; "
            f"resume with --resume --out {run_dir}"
        )
        self.run_dir, self.epoch, self.step = run_dir, epoch, step


class TrainingDiverged(RuntimeError):
    """A loss (or weight) became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainingConfig:
    """Settings of one training run; ``None`` fields take the dataset's or architecture's."""

    dataset: str = "digits"  # dataset plugin
    data_dir: str | None = None  # where its files are (None: the plugin's default)
    arch: str | None = None  # architecture (None: the trainer's default for the dataset)
    # builder options of the architecture, e.g. {"sigma_init": 0.4} (None / missing: its defaults)
    arch_options: dict[str, Any] | None = None
    prior: str = "gaussian"  # prior plugin of the embedding (ER trainers)
    embedding_dim: int | str | None = (
        None  # k: an int, "auto" (Levina-Bickel estimate) or None (arch's)
    )
    trainer: str = "er-pgd"  # trainer plugin
    eps: float | None = None  # PGD budget of min-max trainers (None: the dataset's)
    eps_step: float | None = None  # PGD step (None: the dataset's)
    max_iter: int | None = None  # PGD iterations (None: the dataset's)
    num_random_init: int = 1  # PGD random starts
    use_predictions: bool = (
        False  # attack the model's clean predictions (authors' code) instead of labels
    )
    adv_ratio: float = 0.5  # ER min-max: weight of CE(adv)
    epochs: int | None = None  # None: the architecture's (defaults["epochs"]), else the dataset's
    batch_size: int | None = None  # None: the dataset's
    lr: float | None = None  # base learning rate (None: the architecture's)
    seed: int = 0  # seeds weights, data order, priors and attacks
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = False  # bfloat16 autocast in training (the critic stays in float32)
    deterministic: bool = False  # deterministic algorithms: exact resume on CUDA too (slower)
    compile: bool = False  # torch.compile the nets for this run (CUDA; first steps compile)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at the end of each epoch)
    limit: int | None = None  # use only the first N train and test examples (smoke tests)
    threads: int | None = (
        None  # torch CPU threads (None: the architecture's, else torch's: one per core)
    )
    embedding_dim_requested: int | str | None = (
        None  # what was asked for (e.g. "auto"), for the record
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainingResult:
    """What a finished (or already finished) run left behind."""

    run_dir: Path
    classifier: PyTorchClassifier
    metrics: list[dict[str, Any]]
    config: TrainingConfig
    resumed: bool = False


class TrainingCallbacks:
    """Hooks of the run loop (the CLI's progress display); every method is a no-op here."""

    def on_start(
        self, run_dir: Path, config: TrainingConfig, epoch: int, step: int, steps_per_epoch: int
    ) -> None: ...

    def on_epoch_start(self, epoch: int, epochs: int, start_step: int, steps: int) -> None: ...

    def on_step(self, epoch: int, step: int, running: dict[str, float]) -> None:
        """After every step; ``running`` (the epoch's mean losses and accuracy so far) is
        refreshed every step on the CPU and at most every ``SYNC_SECONDS`` on CUDA."""

    def on_epoch_end(self, metrics: dict[str, Any]) -> None: ...

    def on_checkpoint(self, path: Path, epoch: int, step: int) -> None: ...


# ---------------------------------------------------------------------- configuration
def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def auto_embedding_dim(spec: DatasetSpec, data_dir: str | None, n: int = 1000) -> int:
    """k: the rounded Levina-Bickel intrinsic dimension (k1=6, k2=12) of n random train images."""
    from er_art.intrinsic_dim import suggest_embedding_dim

    return suggest_embedding_dim(spec.name, data_dir, n_samples=n)


def dataset_spec(cfg: TrainingConfig) -> DatasetSpec:
    """The dataset plugin of a config, completed from its files where needed (npz)."""
    return get_dataset(cfg.dataset).resolve(cfg.data_dir)


def resolve_config(config: TrainingConfig) -> TrainingConfig:
    """Fill every default from the dataset / architecture and check every value (``ValueError``,
    ``LookupError`` with close matches for unknown plugin names)."""
    cfg = dataclasses.replace(config)
    trainer = get_trainer(cfg.trainer)
    spec = dataset_spec(cfg)
    resolve_device_type(cfg.device)
    if cfg.arch is None:
        cfg.arch = trainer.default_arch(spec)
    arch = get_architecture(cfg.arch)
    if arch.kind != trainer.kind:
        raise ValueError(trainer.wrong_architecture(cfg.arch, arch.kind))
    if not arch.takes_input_shape and tuple(arch.input_shape) != tuple(spec.input_shape):
        raise ValueError(
            f"Architecture {cfg.arch!r} takes inputs of shape {tuple(arch.input_shape)}, "
            "but dataset "
            f"{spec.name!r} has shape {tuple(spec.input_shape)}."
        )
    if cfg.arch_options is not None and not isinstance(cfg.arch_options, dict):
        raise ValueError(f"arch options must be a dict, got {cfg.arch_options!r}.")
    arch.check_options(dict(cfg.arch_options or {}))
    cfg.arch_options = arch.resolved_options(dict(cfg.arch_options or {}))  # recorded in run.json
    if arch.embedding_dim is not None:  # ER and VAE-CLA architectures
        if cfg.embedding_dim_requested is None:
            cfg.embedding_dim_requested = cfg.embedding_dim
        if cfg.embedding_dim == "auto":
            cfg.embedding_dim = auto_embedding_dim(spec, cfg.data_dir)
        elif cfg.embedding_dim is None:
            cfg.embedding_dim = arch.embedding_dim
        cfg.embedding_dim = _positive_int("embedding dim", cfg.embedding_dim)
    elif cfg.embedding_dim is not None:
        raise ValueError(
            f"Trainer {trainer.name!r} trains {cfg.arch!r}, a model without an embedding; "
            "drop --embedding-dim."
        )
    if trainer.kind == "er":
        get_plugin("priors", cfg.prior)
    else:
        cfg.prior = "none"
    if cfg.epochs is None:  # a slow-converging model (e.g. RSE's noise) may ask for more
        cfg.epochs = arch.defaults.get("epochs", spec.epochs)
    _positive_int("epochs", cfg.epochs, minimum=0)
    cfg.batch_size = _positive_int(
        "batch size", spec.batch_size if cfg.batch_size is None else cfg.batch_size
    )
    if cfg.lr is None:
        cfg.lr = {**ER_FALLBACKS, **arch.defaults}["lr"]
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):  # also rejects NaN
        raise ValueError(f"learning rate must be > 0, got {cfg.lr!r}.")
    cfg.lr = float(cfg.lr)
    _positive_int("seed", cfg.seed, minimum=0)
    _positive_int("checkpoint every", cfg.checkpoint_every, minimum=0)
    if cfg.limit is not None:
        _positive_int("limit", cfg.limit, minimum=2)
    if cfg.threads is None:
        cfg.threads = arch.defaults.get("threads")  # small nets: the architecture says 1
    if cfg.threads is not None:
        _positive_int("threads", cfg.threads)
    if trainer.adversarial:
        low, high = spec.clip_values
        cfg.eps = spec.eps if cfg.eps is None else float(cfg.eps)
        cfg.eps_step = spec.eps_step if cfg.eps_step is None else float(cfg.eps_step)
        cfg.max_iter = spec.max_iter if cfg.max_iter is None else cfg.max_iter
        if not 0.0 < cfg.eps <= high - low:
            raise ValueError(
                f"eps must be in (0, {high - low:g}] for data in [{low:g}, {high:g}], "
                f"got {cfg.eps:g}."
            )
        if not 0.0 < cfg.eps_step <= high - low:
            raise ValueError(
                f"eps step must be in (0, {high - low:g}] for data in [{low:g}, {high:g}], "
                f"got {cfg.eps_step:g}."
            )
        cfg.max_iter = _positive_int("max iter", cfg.max_iter)
        _positive_int("num random init", cfg.num_random_init, minimum=0)
        if not 0.0 < cfg.adv_ratio <= 1.0:
            raise ValueError(f"adversarial ratio must be in (0, 1], got {cfg.adv_ratio}.")
    else:
        if cfg.eps is not None or cfg.eps_step is not None or cfg.max_iter is not None:
            logger.warning(
                "trainer %r does not attack; eps / eps step / max iter are ignored", trainer.name
            )
        cfg.eps = cfg.eps_step = cfg.max_iter = None
    return cfg


def attack_settings(cfg: TrainingConfig) -> AttackSettings | None:
    if cfg.eps is None or cfg.eps_step is None or cfg.max_iter is None:
        return None
    return AttackSettings(
        eps=cfg.eps,
        eps_step=cfg.eps_step,
        max_iter=cfg.max_iter,
        num_random_init=cfg.num_random_init,
        use_predictions=cfg.use_predictions,
        adv_ratio=cfg.adv_ratio,
    )


def build_for(cfg: TrainingConfig, spec: DatasetSpec) -> PyTorchClassifier:
    """The untrained classifier of a resolved config (weights seeded by ``cfg.seed``)."""
    arch = get_architecture(cfg.arch)  # type: ignore[arg-type]
    common: dict[str, Any] = dict(
        nb_classes=spec.nb_classes,
        input_shape=tuple(spec.input_shape),
        lr=cfg.lr,
        amp=cfg.amp,
        clip_values=tuple(spec.clip_values),
        device_type=cfg.device,
        seed=cfg.seed,
    )
    if arch.kind == "er":
        common["prior"] = cfg.prior
    return build_classifier(
        cfg.arch,  # type: ignore[arg-type]
        embedding_dim=cfg.embedding_dim,  # type: ignore[arg-type]
        arch_options=cfg.arch_options,
        **common,
    )


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


# ---------------------------------------------------------------------- RNG states
def rng_state(cuda: bool | None = None) -> dict[str, Any]:
    """torch, NumPy, Python and CUDA RNG states as tensors and plain values (weights_only).

    :param cuda: include the CUDA generators (``True`` for a CUDA run); ``None``: only when this
        process has already initialised CUDA, since reading them would initialise it (a context on
        every GPU) for a run that never used it.
    """
    if cuda is None:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "cuda": torch.cuda.get_rng_state_all() if cuda and torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            int(n["pos"]),
            int(n["has_gauss"]),
            float(n["cached_gaussian"]),
        )
    )
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    saved = list(state.get("cuda") or [])
    if not saved:
        return
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if here == len(saved):
        torch.cuda.set_rng_state_all(saved)
        return
    logger.warning(
        "the checkpoint holds the CUDA RNG states of %d GPUs, this machine has %d: restored "
        "%d of them; the resumed run is not bit-identical to an uninterrupted one",
        len(saved),
        here,
        min(here, len(saved)),
    )
    for index in range(min(here, len(saved))):
        torch.cuda.set_rng_state(saved[index], device=index)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


# ---------------------------------------------------------------------- data order
def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of epoch ``epoch``: a function of ``(seed, epoch)`` only."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one example is dropped (BatchNorm cannot train on it)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


class BatchSource:
    """Batches of a ``torch`` Dataset in a given order.

    In-memory datasets (``arrays()``) are indexed directly and kept on ``device`` for the whole run
    when they fit there (no per-batch host copy); a transform with a batched form (``.batch``, e.g.
    the crop + flip of CIFAR-10) runs on the batch on the device, drawing from the device's RNG.
    Other datasets go through a single-process ``DataLoader`` (keeps transforms' randomness on the
    restored global RNG).
    """

    def __init__(self, dataset: Any, batch_size: int, device: torch.device | str = "cpu") -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        transform = getattr(dataset, "transform", None)
        self._augment = getattr(transform, "batch", None)
        if hasattr(dataset, "arrays") and (transform is None or callable(self._augment)):
            x, y = dataset.arrays()
            x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
            if fits_on_device(x_t.nbytes + y_t.nbytes, self.device):
                x_t, y_t = x_t.to(self.device), y_t.to(self.device)
            self._tensors = (x_t, y_t)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def on_device(self) -> bool:
        """Whether the whole dataset lives on the training device."""
        return self._tensors is not None and self._tensors[0].device == self.device

    def batches(
        self, order: torch.Tensor, start_step: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        if self._tensors is not None:
            x_all, y_all = self._tensors
            order = order.to(x_all.device)  # one copy per epoch, then slices of it
            for s in range(start_step, steps):
                idx = order[s * bs : (s + 1) * bs]
                x_b = x_all[idx].to(self.device)
                yield (
                    (x_b if self._augment is None else self._augment(x_b)),
                    y_all[idx].to(self.device),
                )
            return
        from torch.utils.data import DataLoader, Subset

        indices = order[start_step * bs : steps * bs].tolist()
        loader = DataLoader(
            Subset(self.dataset, indices), batch_size=bs, shuffle=False, num_workers=0
        )
        for x_b, y_b in loader:
            yield x_b.to(torch.float32), torch.as_tensor(y_b, dtype=torch.int64)


# ---------------------------------------------------------------------- the loop
class _StopFlag:
    """SIGINT sets a flag (the loop saves and stops after the current step); a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("interrupt received: saving a checkpoint after this step")

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _reads_back_every_step(device: torch.device) -> bool:
    """Whether the loop reads losses back after every step: on the CPU it costs nothing; on a GPU
    it would make every step wait for the previous one, so there at most every SYNC_SECONDS."""
    return device.type != "cuda"


def _weights_finite(classifier: PyTorchClassifier) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in classifier.model.parameters())


class _Run:
    def __init__(
        self,
        cfg: TrainingConfig,
        run_dir: Path,
        classifier: PyTorchClassifier,
        training: dict[str, Any] | None,
        callbacks: TrainingCallbacks,
    ) -> None:
        self.cfg, self.run_dir, self.clf, self.callbacks = cfg, run_dir, classifier, callbacks
        self.previous_threads = torch.get_num_threads()  # restored when the run ends
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.spec = dataset_spec(cfg)
        self.trainer: TrainerSpec = get_trainer(cfg.trainer)
        self.trainer.check_classifier(classifier)
        train_set = self.spec.load("train", cfg.data_dir)
        if cfg.limit is not None and cfg.limit < len(train_set):
            train_set = _first(train_set, cfg.limit)
        device = classifier.device
        self.source = BatchSource(train_set, cfg.batch_size, device)  # type: ignore[arg-type]
        self.x_test, self.y_test = self.spec.arrays("test", cfg.data_dir, limit=cfg.limit)
        self.test_tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        x_test_t = torch.from_numpy(np.ascontiguousarray(self.x_test, dtype=np.float32))
        if fits_on_device(x_test_t.nbytes, device):
            y_test_t = torch.from_numpy(np.asarray(self.y_test, dtype=np.int64))
            self.test_tensors = (x_test_t.to(device), y_test_t.to(device))
        self.step_fn = self.trainer.make_step(classifier, attack_settings(cfg), amp=cfg.amp)
        self.steps = steps_per_epoch(len(self.source), cfg.batch_size)  # type: ignore[arg-type]
        if self.steps == 0:
            raise ValueError(
                f"Dataset {cfg.dataset!r} has fewer than 2 training examples; nothing to train on."
            )
        t = training or {}
        self.epoch = int(t.get("epoch", 0))
        self.step = int(t.get("step", 0))
        self.global_step = int(t.get("global_step", 0))
        self.metrics: list[dict[str, Any]] = list(t.get("metrics", []))
        self.elapsed = float(t.get("elapsed", 0.0))
        self.epoch_time = float(t.get("epoch_time", 0.0))
        self.sums = (
            t["epoch_sums"].to(device)
            if "epoch_sums" in t
            else torch.zeros(3, dtype=torch.float64, device=device)
        )
        # a device tensor: read back only for the display, checkpoints and epoch ends
        self.correct = torch.tensor(int(t.get("epoch_correct", 0)), device=device)
        self.seen = int(t.get("epoch_seen", 0))
        self.batches = int(t.get("epoch_batches", 0))
        self._mark = time.perf_counter()
        self._shown: dict[str, float] = {}  # the running values last read back
        if cfg.compile:
            compile_model(classifier.model)
        if training is not None:  # last: building nets and attacks above may draw from the RNGs
            set_rng_state(training["rng"])

    # -- bookkeeping
    def _tick(self) -> None:
        now = time.perf_counter()
        self.elapsed += now - self._mark
        self.epoch_time += now - self._mark
        self._mark = now

    def training_state(self, finished: bool = False) -> dict[str, Any]:
        self._tick()
        return {
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "finished": finished,
            "rng": rng_state(cuda=self.clf.device.type == "cuda"),
            "data_order": {
                "seed": self.cfg.seed,
                "epoch": self.epoch,
                "step": self.step,
                "batch_size": self.cfg.batch_size,
            },
            "epoch_sums": self.sums.detach().cpu(),
            "epoch_correct": int(self.correct),
            "epoch_seen": self.seen,
            "epoch_batches": self.batches,
            "epoch_time": self.epoch_time,
            "elapsed": self.elapsed,
            "metrics": self.metrics,
            "config": self.cfg.to_dict(),
        }

    def checkpoint(self, finished: bool = False) -> None:
        self._check_losses()
        if not _weights_finite(self.clf):
            raise TrainingDiverged(self._diverged_message("the weights"))
        path = self.run_dir / RUN_CHECKPOINT
        save_classifier(self.clf, path, training=self.training_state(finished))
        lines = "".join(json.dumps(m, sort_keys=True) + "\n" for m in self.metrics)
        atomic_write(self.run_dir / METRICS, lambda tmp: Path(tmp).write_text(lines))
        self.callbacks.on_checkpoint(path, self.epoch, self.step)

    def _diverged_message(self, what: str) -> str:
        return (
            f"training stopped at epoch {self.epoch + 1}, step {self.step + 1}: "
            f"{what} became NaN or infinite "
            f"(lr {self.cfg.lr:g}); the last good checkpoint is kept in {self.run_dir}."
        )

    def evaluate(self) -> float:
        """Test accuracy: on the device when the test set lives there, else through ``predict``.

        The logits are the classifier's ``epoch_logits`` when it has them (Defense-GAN: its
        classifier without the projection, too slow for every epoch), else its
        ``predict_tensor`` (a prediction that is not the model's forward: RSE's ensemble), else
        the model's forward."""
        batch_size = max(self.cfg.batch_size, 256)  # type: ignore[type-var]
        monitor = getattr(self.clf, "epoch_logits", None)
        if self.test_tensors is None and monitor is None:
            pred = self.clf.predict(self.x_test, batch_size=batch_size)
            return float((pred.argmax(1) == self.y_test).mean())
        if self.test_tensors is None:
            x_all = torch.from_numpy(np.ascontiguousarray(self.x_test, dtype=np.float32))
            y_all = torch.from_numpy(np.asarray(self.y_test, dtype=np.int64))
        else:
            x_all, y_all = self.test_tensors
        model = self.clf.model
        model.eval()
        predict = monitor or getattr(self.clf, "predict_tensor", model)
        correct = torch.zeros((), dtype=torch.int64, device=y_all.device)
        with torch.no_grad():
            for start in range(0, len(y_all), batch_size):
                x_b, _ = self.clf._apply_preprocessing(
                    x_all[start : start + batch_size].to(self.clf.device), None, fit=False
                )
                logits = predict(x_b)  # (B, nb_classes)
                y_b = y_all[start : start + batch_size].to(logits.device)
                correct += (logits.argmax(1) == y_b).sum().to(correct.device)
        return int(correct) / len(y_all)

    def _check_losses(self) -> None:
        """A NaN or infinite loss since the epoch began poisons the sums: stop (one sync)."""
        if not bool(torch.isfinite(self.sums).all()):
            raise TrainingDiverged(self._diverged_message("the loss"))

    # -- the loop
    def run(self) -> None:
        cfg = self.cfg
        self.callbacks.on_start(self.run_dir, cfg, self.epoch, self.step, self.steps)
        if self.global_step == 0 and self.epoch == 0:
            self.checkpoint()  # a resume point before the first step
        device = self.clf.device
        sync_every_step = _reads_back_every_step(device)
        last_sync = time.perf_counter()
        with _StopFlag() as stop:
            while self.epoch < cfg.epochs:  # type: ignore[operator]
                self.callbacks.on_epoch_start(self.epoch, cfg.epochs, self.step, self.steps)  # type: ignore[arg-type]
                order = epoch_order(cfg.seed, self.epoch, len(self.source))
                self._shown = {}  # the first step of an epoch reads its values back
                for x_b, y_b in self.source.batches(order, self.step, self.steps):
                    res = self.step_fn(x_b.to(device), y_b.to(device))
                    self.sums += torch.stack([res.ce, res.disc, res.reg]).double()
                    self.correct += res.correct
                    self.seen += len(y_b)
                    self.batches += 1
                    self.step += 1
                    self.global_step += 1
                    now = time.perf_counter()
                    if sync_every_step or not self._shown or now - last_sync >= SYNC_SECONDS:
                        self._check_losses()
                        self._shown = self._running()
                        last_sync = now
                    self.callbacks.on_step(self.epoch, self.step, self._shown)
                    if stop.requested:
                        self.checkpoint()
                        raise TrainingInterrupted(self.run_dir, self.epoch, self.step)
                    if (
                        cfg.checkpoint_every
                        and self.global_step % cfg.checkpoint_every == 0
                        and self.step < self.steps
                    ):
                        self.checkpoint()
                self._end_epoch()
                if stop.requested:
                    raise TrainingInterrupted(self.run_dir, self.epoch, self.step)
        self.clf.model.eval()

    def _running(self) -> dict[str, float]:
        ce, disc, reg = (self.sums / max(self.batches, 1)).tolist()
        accuracy = int(self.correct) / max(self.seen, 1)
        return {"ce": ce, "disc": disc, "reg": reg, "train_acc": accuracy}

    def _end_epoch(self) -> None:
        self._check_losses()
        running = self._running()
        test_acc = self.evaluate()
        self._tick()
        record = {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "ce": running["ce"],
            "disc": running["disc"],
            "reg": running["reg"],
            "train_acc": running["train_acc"],
            "test_acc": test_acc,
            "time": round(self.epoch_time, 3),
            "elapsed": round(self.elapsed, 3),
        }
        self.metrics.append(record)
        self.epoch += 1
        self.step = 0
        self.sums.zero_()
        self.correct.zero_()
        self.seen = self.batches = 0
        self.epoch_time = 0.0
        self.checkpoint(finished=self.epoch >= self.cfg.epochs)  # type: ignore[operator]
        self.callbacks.on_epoch_end(record)


def _first(dataset: Any, n: int) -> Any:
    if hasattr(dataset, "arrays"):
        from er_art.datasets import ArrayDataset

        x, y = dataset.arrays(limit=n)
        return ArrayDataset(x, y, getattr(dataset, "transform", None))
    from torch.utils.data import Subset

    return Subset(dataset, range(n))


def _set_status(run_dir: Path, status: str, **extra: Any) -> None:
    info = read_run(run_dir)
    info["status"] = status
    info.update(extra)
    write_json(run_dir / RUN_JSON, info)


def _drive(run: _Run) -> None:
    try:
        run.run()
    except (TrainingInterrupted, KeyboardInterrupt):
        _set_status(run.run_dir, "interrupted")
        raise
    except TrainingDiverged:
        _set_status(run.run_dir, "failed")
        raise
    except RuntimeError as err:
        if not (run.cfg.deterministic and is_nondeterminism_error(err)):
            raise
        _set_status(run.run_dir, "failed")
        what = str(err).split(", but", 1)[0].strip()
        raise ValueError(
            f"--deterministic cannot be honoured on {run.clf.device}: {what}; "
            "train without --deterministic or with another architecture."
        ) from None
    finally:
        torch.set_num_threads(run.previous_threads)
    _set_status(run.run_dir, "finished")


def train(
    config: TrainingConfig,
    run_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    latest_root: str | Path | None = "runs",
) -> TrainingResult:
    """Train from scratch into ``run_dir`` (which must not hold a run yet).

    :param config: the settings; ``None`` fields take the dataset's / architecture's defaults.
    :param run_dir: the run directory to create (run.json, checkpoint.pt, metrics.jsonl).
    :param callbacks: progress hooks (default: none).
    :param latest_root: directory whose ``LATEST`` file is pointed at this run (``None``: leave it).
    :raises ValueError, LookupError, FileNotFoundError: on bad settings or missing data.
    :raises TrainingInterrupted: on SIGINT (after saving); :raises TrainingDiverged: on NaN / inf.
    """
    cfg = resolve_config(config)
    run_dir = Path(run_dir)
    if (run_dir / RUN_JSON).exists() or (run_dir / RUN_CHECKPOINT).exists():
        raise ValueError(
            f"{run_dir} already holds a training run; "
            "resume it with --resume or pick another --out."
        )
    spec = dataset_spec(cfg)
    spec.load("test", cfg.data_dir)  # missing files fail here, before anything is written
    with torch_settings(cfg.deterministic, cuda=_uses_cuda(cfg.device)):
        seed_everything(cfg.seed)
        # bad architecture option values (checked by the builder) fail here, before anything is
        # written; the run directory's files take no random numbers
        classifier = build_for(cfg, spec)
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
            },
        )
        if latest_root is not None:
            mark_latest(run_dir, latest_root)
        run = _Run(cfg, run_dir, classifier, None, callbacks or TrainingCallbacks())
        _drive(run)
    return TrainingResult(run_dir, classifier, run.metrics, cfg)


def _uses_cuda(device: str) -> bool:
    """Whether a run with ``--device device`` runs on CUDA here."""
    return device != "cpu" and torch.cuda.is_available()


def resume(
    run_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    epochs: int | None = None,
    checkpoint_every: int | None = None,
    device: str | None = None,
    latest_root: str | Path | None = "runs",
    deterministic: bool | None = None,
    compile: bool | None = None,
) -> TrainingResult:
    """Continue the run in ``run_dir`` with its saved config from its last checkpoint.

    :param epochs: train up to this many epochs in all (default: the saved number).
    :param checkpoint_every: change the step interval of checkpoints (default: the saved one).
    :param device: run on another device (``auto``, ``cpu``, ``cuda``; default: the saved one, or
        the CPU with a logged warning when that was CUDA and this machine has none).
    :param deterministic: turn deterministic algorithms on or off from here on (default: saved).
    :param compile: ``torch.compile`` the nets or not (default: as saved).
    """
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
    prepare_run_dir(run_dir)
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
            classifier = classifier_from_state(payload["classifier"], cfg.device)
        else:  # killed before the first checkpoint: start over with the saved config
            seed_everything(cfg.seed)
            classifier = build_for(cfg, spec)
        if latest_root is not None:
            mark_latest(run_dir, latest_root)
        run = _Run(cfg, run_dir, classifier, training, callbacks or TrainingCallbacks())
        _set_status(run_dir, "running", resumed=info.get("resumed", 0) + 1, config=cfg.to_dict())
        _drive(run)
    return TrainingResult(run_dir, classifier, run.metrics, cfg, resumed=True)


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run's checkpoint says its training is complete."""
    try:
        training = read_checkpoint(Path(run_dir) / RUN_CHECKPOINT).get("training") or {}
    except ValueError:
        return False
    return bool(training.get("finished"))
