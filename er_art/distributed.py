"""Data-parallel runs under torchrun: every distributed piece behind one small object, a World.

    torchrun --standalone --nproc_per_node 2 --no-python er-art train --batch-size 64
    torchrun --standalone --nproc_per_node 2 --no-python er-art evaluate --eps 0.1 --out eval/

    >>> from er_art.distributed import join_world
    >>> world = join_world("auto")     # torchrun: joins its job; a plain process: World()
    >>> train(config, "runs/demo", world=world)
    >>> world.leave()                  # every process, at the end

:func:`join_world` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` / ``MASTER_PORT``). Under torchrun with more than one process it initialises
``torch.distributed`` (gloo on the CPU; NCCL on CUDA, one GPU per local rank) and returns a
:class:`ProcessGroupWorld`; otherwise it returns :class:`World`, one process whose collectives are
the identity. The training loop and the evaluation call the same methods either way, so a run
without torchrun takes the path it always took, with no branch on the number of processes.

What a world does:

- data: :meth:`World.shard` is ``DistributedSampler``'s split of an epoch's permutation (padded
  with its first indices to a multiple of the world size, every ``size``-th index from ``rank``);
  :meth:`World.local_batch_size` splits the global batch evenly, so the processes' batches of one
  step are exactly the batch one process would take; :meth:`World.portion` is this rank's share
  of a sequence of work (test examples, attack chunks);
- collectives: :meth:`World.sum`, :meth:`World.mean`, :meth:`World.any`, :meth:`World.gather`,
  :meth:`World.broadcast`, :meth:`World.on_main` (run on rank 0, share the result or the user
  error);
- training: :meth:`World.averaging_gradients` averages each optimizer's gradients over the
  processes right before its ``step`` (so Algorithm 1's three optimizers, and any trainer's own,
  take identical steps on every rank), :meth:`World.share_state` / :meth:`World.share_buffers`
  copy rank 0's weights / buffers to every rank, :meth:`World.seed_ranks` gives each rank its own
  random stream, :meth:`World.agree` checks a value is the same everywhere (the weights, at
  every checkpoint);
- the end: :meth:`World.leave` (every process, when the job went well).

Why gradients are averaged at each optimizer step rather than by wrapping the nets in
``DistributedDataParallel``: one step of Algorithm 1 makes three backward passes over different
nets (the critic, encoder + head, the encoder again) and its step (c) reads the critic without
training it; the baselines' steps are plugins that call their own optimizer. Averaging in an
optimizer pre-step hook gives every one of them DDP's synchronous data parallelism (the average
of the per-process gradients of each batch) without changing any step function, and nothing runs
through DDP's forward hooks: the training PGD attacks the very module it trains, in eval mode.
BatchNorm keeps per-process batch statistics in training (as DDP without SyncBatchNorm, which
torch runs on GPUs only and so could not give the CPU run its bit-exact resume); its running
statistics are rank 0's, copied to every rank after every step (DDP's ``broadcast_buffers``, once
per step instead of at every forward, so DDP's BatchNorm in-place error cannot arise), so the
models that PGD and the test accuracy use are the same on every rank, and resuming from rank 0's
checkpoint continues every rank exactly.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Exceptions a user can cause (bad settings, missing or unwritable files): what :meth:`on_main`
# carries from rank 0 to the other ranks, so every process stops with the same sentence.
SHARED_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    LookupError,
    FileNotFoundError,
    PermissionError,
)


def shard_order(order: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Rank ``rank``'s share of ``order`` as ``torch.utils.data.DistributedSampler`` splits it:
    ``order`` padded with its own first entries to a multiple of ``size``, then every
    ``size``-th entry from ``rank`` (``size`` 1: ``order`` itself)."""
    n = len(order)
    total = math.ceil(n / size) * size
    if total > n:
        repeats = math.ceil((total - n) / n)
        order = torch.cat([order, order.repeat(repeats)[: total - n]])
    return order[rank:total:size]


class World:
    """One process (no ``torch.distributed``): rank 0 of 1, every collective is the identity.

    :class:`ProcessGroupWorld` overrides the collectives; the data methods are the same code for
    both, evaluated at ``rank`` 0 and ``size`` 1 here.
    """

    rank: int = 0  # this process's rank in the job
    size: int = 1  # the number of processes
    local_rank: int = 0  # the rank on this machine (the GPU index on CUDA)
    backend: str | None = None  # "gloo" or "nccl"; None: no process group

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """What a run records about its processes."""
        return {"world_size": self.size, "backend": self.backend}

    # -- data
    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch's permutation (``DistributedSampler``'s split)."""
        return shard_order(order, self.rank, self.size)

    def shard_size(self, n: int) -> int:
        """How many examples of ``n`` each rank gets from :meth:`shard` (padding included)."""
        return math.ceil(n / self.size)

    def local_batch_size(self, batch_size: int) -> int:
        """The per-process share of the global ``batch_size`` (``ValueError`` if it is uneven)."""
        if batch_size % self.size:
            raise ValueError(
                f"batch size {batch_size} does not split evenly over {self.size} processes; "
                f"pass a --batch-size divisible by {self.size}."
            )
        return batch_size // self.size

    def portion(self, items: Sequence[T]) -> Sequence[T]:
        """This rank's share of ``items`` (every ``size``-th from ``rank``): arrays, tensors,
        ranges and lists, sliced without a copy."""
        return items[self.rank :: self.size]  # type: ignore[return-value]

    # -- collectives
    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over the processes (a new tensor on ``tensor``'s device)."""
        return tensor

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of a floating-point ``tensor`` over the processes."""
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any process."""
        return flag

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj`` (picklable), in rank order, on every process."""
        return [obj]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable), on every process."""
        return obj

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only; its result (or the user error it raised, re-raised on
        every rank: see :data:`SHARED_ERRORS`) on every process."""
        return fn()

    def agree(self, compute: Callable[[], Any], what: str) -> None:
        """Raise ``RuntimeError`` naming ``what`` unless ``compute()`` gives the same value on
        every process (one process: ``compute`` is not called)."""

    # -- training
    def seed_ranks(self, seed: int) -> None:
        """Give every rank but rank 0 its own random stream derived from ``seed`` (one process:
        nothing changes)."""

    def share_state(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers of ``module`` to every process."""

    def share_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers of ``module`` (BatchNorm's running statistics) to every process."""

    @contextlib.contextmanager
    def averaging_gradients(self, optimizers: Iterable[torch.optim.Optimizer]) -> Iterator[None]:
        """Within the block, each optimizer averages its gradients over the processes right
        before every ``step`` (one process: the optimizers are left as they are)."""
        yield

    # -- the end
    def leave(self) -> None:
        """The end of a job that went well, on every process: wait for all of them, then tear the
        process group down (a process that tears down its connections while another still works,
        e.g. rank 0 writing the last files, could abort at exit)."""


class ProcessGroupWorld(World):
    """The processes of one ``torch.distributed`` job (see the module docstring).

    :param device: where collective tensors live: the CPU for gloo, this rank's GPU for NCCL.
    """

    def __init__(
        self, rank: int, size: int, local_rank: int, backend: str, device: torch.device
    ) -> None:
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.backend = backend
        self.device = device

    def _reduced(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(out)
        return out.to(tensor.device)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._reduced(tensor)

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._reduced(tensor) / self.size

    def any(self, flag: bool) -> bool:
        return bool(self._reduced(torch.tensor([int(flag)], device=self.device)).item())

    def gather(self, obj: T) -> list[T]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: T) -> T:
        import torch.distributed as dist

        box: list[Any] = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T:
        result: Any = None
        error: tuple[type[Exception], str] | None = None
        if self.is_main:
            try:
                result = fn()
            except SHARED_ERRORS as err:
                error = (type(err), str(err))
        result, error = self.broadcast((result, error))
        if error is not None:
            kind, message = error
            raise kind(message)
        return result

    def agree(self, compute: Callable[[], Any], what: str) -> None:
        values = self.gather(compute())
        if any(v != values[0] for v in values):
            raise RuntimeError(f"{what} differ across the {self.size} processes.")

    def seed_ranks(self, seed: int) -> None:
        if self.rank:
            from er_art.training.rng_state import seed_everything

            entropy = [int(seed) & 0xFFFFFFFF, self.rank]
            seed_everything(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    def _broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's values of ``tensors`` into every process's, one collective per dtype."""
        import torch.distributed as dist

        by_kind: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for t in tensors:
            by_kind.setdefault((t.dtype, t.device), []).append(t)
        for group in by_kind.values():
            flat = torch.cat([t.detach().reshape(-1) for t in group]).to(self.device)
            dist.broadcast(flat, src=0)
            self._scatter_back(flat, group)

    @staticmethod
    def _scatter_back(flat: torch.Tensor, group: list[torch.Tensor]) -> None:
        offset = 0
        with torch.no_grad():
            for t in group:
                n = t.numel()
                t.copy_(flat[offset : offset + n].view(t.shape))
                offset += n

    def share_state(self, module: nn.Module) -> None:
        self._broadcast_tensors([*module.parameters(), *module.buffers()])

    def share_buffers(self, module: nn.Module) -> None:
        buffers = list(module.buffers())
        if buffers:
            self._broadcast_tensors(buffers)

    def _average(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        """An optimizer pre-step hook: its parameters' gradients become their mean over the
        processes. Every rank runs the same step code on the same nets, so the same parameters
        have gradients everywhere (a parameter without one, e.g. a net another step trains, is
        left out on every rank)."""
        import torch.distributed as dist

        grads = [
            p.grad
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        by_kind: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for g in grads:
            by_kind.setdefault((g.dtype, g.device), []).append(g)
        for group in by_kind.values():
            flat = torch.cat([g.reshape(-1) for g in group]).to(self.device)
            dist.all_reduce(flat)
            flat /= self.size
            self._scatter_back(flat, group)

    @contextlib.contextmanager
    def averaging_gradients(self, optimizers: Iterable[torch.optim.Optimizer]) -> Iterator[None]:
        handles = [opt.register_step_pre_hook(self._average) for opt in optimizers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def leave(self) -> None:
        global _joined
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
        _leave()
        _joined = None


_joined: World | None = None


def join_world(device: str = "auto") -> World:
    """The world of this process: under torchrun with several processes, its job (the process
    group is initialised on the first call: NCCL when ``device`` runs on CUDA here, with this
    process on GPU ``LOCAL_RANK``; gloo otherwise); else one process.

    :param device: ``auto``, ``cpu`` or ``cuda``, as the command's ``--device``.
    :raises ValueError: more processes on this machine than it has GPUs, for a CUDA run.
    """
    global _joined
    if _joined is not None:
        return _joined
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or "RANK" not in os.environ:
        return World()
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device != "cpu" and torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            local = os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1))
            raise ValueError(
                f"torchrun started {local} processes on this machine, which has {gpus} GPU"
                f"{'' if gpus == 1 else 's'}; pass --nproc_per_node {gpus} or fewer, or "
                "--device cpu."
            )
        torch.cuda.set_device(local_rank)
        backend, where = "nccl", torch.device("cuda", local_rank)
    else:
        backend, where = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        atexit.register(_leave)  # after an error, without waiting for the other processes
    backend = str(dist.get_backend())
    _joined = ProcessGroupWorld(rank, dist.get_world_size(), local_rank, backend, where)
    logger.info("joined a %s job: rank %d of %d", backend, rank, _joined.size)
    return _joined


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
