"""The run loop of ``er-art train``: batches, the trainer's step, checkpoints, interruptions.

:class:`_Run` drives one run from a fresh or a saved state (:func:`er_art.training.run.train` and
:func:`er_art.training.run.resume` build it): each epoch's order (:mod:`er_art.training.batches`),
the trainer
plugin's per-batch step, the running losses, a checkpoint at the start, every ``checkpoint_every``
steps and at every epoch end, the test accuracy per epoch, SIGINT, SIGTERM and NaN handling. A
checkpoint or metrics write that fails (a full disk, a read-only file system) raises
:class:`~er_art.runs.RunWriteError` naming the file; the last checkpoint written stays whole.

Under torchrun the loop runs on every process with a :class:`~er_art.distributed.World` of several
ranks and the same code: each rank steps through its shard of the epoch's order in batches of its
share of the global batch, the optimizers average their gradients over the ranks before every
step, BatchNorm's running statistics are rank 0's after every step, the losses and counts shown and
recorded are those of the whole global batch, and an interruption on any rank stops every rank at
the same step. Every rank's RNG states go into rank 0's checkpoint; only rank 0 writes files and
calls the callbacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from er_art.checkpoint import RUN_CHECKPOINT, save_classifier
from er_art.datasets import DatasetSpec
from er_art.devices import compile_model, fits_on_device
from er_art.distributed import World
from er_art.models.er_classifier import ERClassifier
from er_art.runs import METRICS, atomic_write, writing
from er_art.training.batches import BatchSource, epoch_order, steps_per_epoch
from er_art.training.config import TrainingConfig, attack_settings, dataset_spec
from er_art.training.rng_state import rng_state, set_rng_state
from er_art.training.trainers import TrainerSpec, get_trainer

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


class TrainingTerminated(KeyboardInterrupt):
    """SIGTERM: training stopped at once (``kill``, a batch scheduler, a container stopping); the
    last checkpoint is kept. A ``KeyboardInterrupt``, so code that handles Ctrl-C handles it."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(
            f"training terminated (SIGTERM); the last checkpoint is kept: resume with --resume "
            f"--out {run_dir}"
        )
        self.run_dir = run_dir


class TrainingDiverged(RuntimeError):
    """A loss (or weight) became NaN or infinite; the last good checkpoint is kept."""


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


class _StopFlag:
    """SIGINT sets a flag (the loop saves and stops after the current step); a second one aborts.
    SIGTERM stops at once with :class:`TrainingTerminated` (a process asked to end may have
    seconds left; the last checkpoint is kept, and the run is marked interrupted)."""

    def __init__(self, run_dir: Path) -> None:
        self.requested = False
        self.run_dir = run_dir
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._terminate)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("interrupt received: saving a checkpoint after this step")

    def _terminate(self, signum: int, frame: Any) -> None:
        raise TrainingTerminated(self.run_dir)

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            if previous is not None:
                signal.signal(signum, previous)


def _reads_back_every_step(device: torch.device) -> bool:
    """Whether the loop reads losses back after every step: on the CPU it costs nothing; on a GPU
    it would make every step wait for the previous one, so there at most every SYNC_SECONDS."""
    return device.type != "cuda"


def _weights_finite(classifier: PyTorchClassifier) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in classifier.model.parameters())


def optimizers_of(classifier: PyTorchClassifier) -> list[torch.optim.Optimizer]:
    """The optimizers a trainer steps: an ER-Classifier's three (Algorithm 1), else the one."""
    if isinstance(classifier, ERClassifier):
        opts = classifier.optimizers
        return [opts.encoder, opts.discriminator, opts.classifier]
    return [] if classifier.optimizer is None else [classifier.optimizer]


def weights_digest(module: torch.nn.Module) -> str:
    """A hash of the bytes of every parameter and buffer of ``module``."""
    digest = hashlib.sha1()
    for t in [*module.parameters(), *module.buffers()]:
        flat = t.detach().reshape(-1).contiguous().cpu()
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rank_rng_state(training: dict[str, Any], rank: int) -> dict[str, Any]:
    """The RNG states that rank ``rank`` saved in a checkpoint's training state."""
    return [training["rng"], *training.get("rng_other_ranks", [])][rank]


class _Run:
    def __init__(
        self,
        cfg: TrainingConfig,
        run_dir: Path,
        classifier: PyTorchClassifier,
        training: dict[str, Any] | None,
        callbacks: TrainingCallbacks,
        world: World | None = None,
        spec: DatasetSpec | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.clf = cfg, run_dir, classifier
        self.world = world or World()
        # only rank 0 shows progress
        self.callbacks = callbacks if self.world.is_main else TrainingCallbacks()
        self.previous_threads = torch.get_num_threads()  # restored when the run ends
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        # the dataset the config was resolved against (looked up here only when not given)
        self.spec = dataset_spec(cfg) if spec is None else spec
        self.trainer: TrainerSpec = get_trainer(cfg.trainer)
        self.trainer.check_classifier(classifier)
        train_set = self.spec.load("train", cfg.data_dir)
        if cfg.limit is not None and cfg.limit < len(train_set):
            train_set = _first(train_set, cfg.limit)
        device = classifier.device
        batch_size = self.world.local_batch_size(cfg.batch_size)  # type: ignore[arg-type]
        self.source = BatchSource(train_set, batch_size, device)
        x_test, y_test = self.spec.arrays("test", cfg.data_dir, limit=cfg.limit)
        self.n_test = len(y_test)
        # this rank's share of the test set (each rank scores its own, the counts are summed)
        self.x_test, self.y_test = self.world.portion(x_test), self.world.portion(y_test)
        self.test_tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        x_test_t = torch.from_numpy(np.ascontiguousarray(self.x_test, dtype=np.float32))
        if fits_on_device(x_test_t.nbytes, device):
            y_test_t = torch.from_numpy(np.asarray(self.y_test, dtype=np.int64))
            self.test_tensors = (x_test_t.to(device), y_test_t.to(device))
        self.step_fn = self.trainer.make_step(classifier, attack_settings(cfg), amp=cfg.amp)
        self.steps = steps_per_epoch(self.world.shard_size(len(self.source)), batch_size)
        if self.steps == 0:
            raise ValueError(
                f"Dataset {cfg.dataset!r} has fewer than 2 training examples; nothing to train on."
            )
        t = training or {}
        self.epoch = int(t.get("epoch", 0))
        self.step = int(t.get("step", 0))
        self.global_step = int(t.get("global_step", 0))
        self.metrics: list[dict[str, Any]] = list(t.get("metrics", []))
        self.resumed = training is not None
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
        self.world.share_state(classifier.model)  # rank 0's weights and buffers everywhere
        if cfg.compile:
            compile_model(classifier.model)
        if training is not None:  # last: building nets and attacks above may draw from the RNGs
            set_rng_state(rank_rng_state(training, self.world.rank))

    # -- bookkeeping
    def _tick(self) -> None:
        now = time.perf_counter()
        self.elapsed += now - self._mark
        self.epoch_time += now - self._mark
        self._mark = now

    def training_state(self, finished: bool = False) -> dict[str, Any]:
        """The state a checkpoint saves; every rank's RNG states (gathered: call it on every
        rank), the rest as every rank has it."""
        self._tick()
        rngs = self.world.gather(rng_state(cuda=self.clf.device.type == "cuda"))
        return {
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "finished": finished,
            "world_size": self.world.size,
            "rng": rngs[0],
            "rng_other_ranks": rngs[1:],  # ranks 1, 2, ... under torchrun
            "data_order": {
                "seed": self.cfg.seed,
                "epoch": self.epoch,
                "step": self.step,
                "batch_size": self.cfg.batch_size,
                "world_size": self.world.size,
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
        """Save the classifier and the training state (rank 0 writes; every rank takes part)."""
        self._check_losses()
        if not _weights_finite(self.clf):
            raise TrainingDiverged(self._diverged_message("the weights"))
        state = self.training_state(finished)
        # every optimizer the trainer steps must be one the world averages (optimizers_of)
        self.world.agree(lambda: weights_digest(self.clf.model), "The weights")
        if not self.world.is_main:
            return
        path = self.run_dir / RUN_CHECKPOINT
        with writing(path, self.run_dir):
            save_classifier(self.clf, path, training=state)
        self.write_metrics()
        self.callbacks.on_checkpoint(path, self.epoch, self.step)

    def write_metrics(self) -> None:
        """Write metrics.jsonl: the records of the epochs trained so far (rank 0)."""
        lines = "".join(json.dumps(m, sort_keys=True) + "\n" for m in self.metrics)
        with writing(self.run_dir / METRICS, self.run_dir):
            atomic_write(self.run_dir / METRICS, lambda tmp: Path(tmp).write_text(lines))

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
        the model's forward. Each rank scores its share of the test set; the counts are summed."""
        batch_size = max(self.cfg.batch_size, 256)  # type: ignore[type-var]
        monitor = getattr(self.clf, "epoch_logits", None)
        if self.test_tensors is None and monitor is None:
            hits = 0
            if len(self.y_test):
                pred = self.clf.predict(self.x_test, batch_size=batch_size)
                hits = int((pred.argmax(1) == self.y_test).sum())
            return int(self.world.sum(torch.tensor(hits))) / self.n_test
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
        return int(self.world.sum(correct)) / self.n_test

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
        elif self.resumed and self.world.is_main:
            # the checkpoint's records: a run stopped between its checkpoint and metrics writes
            # (killed, a full disk) has an older metrics.jsonl, which a finished run never rewrites
            self.write_metrics()
        device = self.clf.device
        sync_every_step = _reads_back_every_step(device)
        last_sync = time.perf_counter()
        world = self.world
        optimizers = optimizers_of(self.clf)
        with _StopFlag(self.run_dir) as stop, world.averaging_gradients(optimizers):
            while self.epoch < cfg.epochs:  # type: ignore[operator]
                self.callbacks.on_epoch_start(self.epoch, cfg.epochs, self.step, self.steps)  # type: ignore[arg-type]
                if cfg.eps_warmup:  # this epoch's training eps (a pure function of the epoch)
                    settings = attack_settings(cfg, self.epoch)
                    self.step_fn = self.trainer.make_step(self.clf, settings, amp=cfg.amp)
                order = world.shard(epoch_order(cfg.seed, self.epoch, len(self.source)))
                self._shown = {}  # the first step of an epoch reads its values back
                for x_b, y_b in self.source.batches(order, self.step, self.steps):
                    res = self.step_fn(x_b.to(device), y_b.to(device))
                    world.share_buffers(self.clf.model)
                    self.sums += world.mean(torch.stack([res.ce, res.disc, res.reg]).double())
                    self.correct += world.sum(res.correct)
                    self.seen += len(y_b) * world.size
                    self.batches += 1
                    self.step += 1
                    self.global_step += 1
                    now = time.perf_counter()
                    if sync_every_step or not self._shown or now - last_sync >= SYNC_SECONDS:
                        self._check_losses()
                        self._shown = self._running()
                        last_sync = now
                    self.callbacks.on_step(self.epoch, self.step, self._shown)
                    if world.any(stop.requested):  # every rank stops after the same step
                        self.checkpoint()
                        raise TrainingInterrupted(self.run_dir, self.epoch, self.step)
                    if (
                        cfg.checkpoint_every
                        and self.global_step % cfg.checkpoint_every == 0
                        and self.step < self.steps
                    ):
                        self.checkpoint()
                self._end_epoch()
                if world.any(stop.requested):
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
