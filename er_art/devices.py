"""Where tensors live: falling back to a device this machine has, CPU copies for pickles and
checkpoints, data kept on the device, channels_last, deterministic mode and ``torch.compile``.

    >>> from er_art.devices import usable_device
    >>> usable_device("cuda:1")      # on a 1-GPU machine: cuda:0, with a logged warning
    >>> usable_device("cuda")        # on a machine without CUDA: cpu, with a logged warning
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

# cuBLAS needs a fixed workspace for deterministic results (CUDA >= 10.2); read when its first
# handle is made, so it is set before any CUDA work of a --deterministic run.
CUBLAS_WORKSPACE = ":4096:8"
# Share of the free GPU memory a training set may take to be kept on the GPU for a whole run.
DEVICE_DATA_FRACTION = 0.5
# Options of torch.compile for --compile (tests use the "eager" backend: no C++ compiler needed).
COMPILE_OPTIONS: dict[str, Any] = {}


def usable_device(device: torch.device | str, what: str = "it") -> torch.device:
    """``device`` if this machine has it, else the nearest one it has, with a logged warning:
    a CUDA device where CUDA is not available gives the CPU, ``cuda:N`` beyond this machine's GPUs
    gives the current GPU.

    :param what: what was on ``device`` (for the warning), e.g. ``"the checkpoint"``.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        logger.warning("%s was on %s, but CUDA is not available here: using the CPU", what, device)
        return torch.device("cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        here = torch.device("cuda", torch.cuda.current_device())
        logger.warning(
            "%s was on %s, but this machine has %d GPU(s): using %s",
            what,
            device,
            torch.cuda.device_count(),
            here,
        )
        return here
    return device


# ---------------------------------------------------------------------- CPU copies
def cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A detached CPU copy (a copy also on the CPU: never the live tensor)."""
    return tensor.detach().to("cpu", copy=True)


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor in its dicts, lists and tuples replaced by a :func:`cpu_copy`."""
    if isinstance(obj, torch.Tensor):
        return cpu_copy(obj)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def cpu_module_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters and buffers are CPU copies (made one tensor at a
    time, never a second copy on the GPU) and which is not compiled: what a pickle should hold."""
    memo: dict[int, Any] = {}
    for t in itertools.chain(module.parameters(), module.buffers()):
        cpu = cpu_copy(t)
        memo[id(t)] = nn.Parameter(cpu, t.requires_grad) if isinstance(t, nn.Parameter) else cpu
    clone = copy.deepcopy(module, memo)
    for sub in clone.modules():
        if getattr(sub, "_compiled_call_impl", None) is not None:
            sub._compiled_call_impl = None
    return clone


# ---------------------------------------------------------------------- data on the device
def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of data should live on ``device`` for a run: always on the CPU (no copy
    is made), on a GPU when it takes at most :data:`DEVICE_DATA_FRACTION` of the free memory."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_DATA_FRACTION * free


def has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def use_channels_last(module: nn.Module, device: torch.device) -> bool:
    """Put a conv net's 4-D weights in channels_last on CUDA (cuDNN's fast layout, tensor cores);
    the CPU keeps the default layout. Returns whether it did."""
    if device.type != "cuda" or not has_conv(module):
        return False
    module.to(memory_format=torch.channels_last)
    return True


# Graphs torch.compile may keep per code object: the nets share nn.Sequential.forward and each
# runs in train and eval mode, with and without gradients, at two batch sizes (clean, clean + adv).
RECOMPILE_LIMIT = 64


def compile_model(model: nn.Module) -> None:
    """``torch.compile`` in place (``nn.Module.compile``: state dict keys, pickles and checkpoints
    unchanged). An ER model's encoder, head and critic are compiled one by one, since Algorithm 1
    calls them separately."""
    import torch._dynamo

    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    parts = [getattr(model, name, None) for name in ("encoder", "classifier", "discriminator")]
    targets = [p for p in parts if isinstance(p, nn.Module)] or [model]
    for part in targets:
        part.compile(**COMPILE_OPTIONS)


# ---------------------------------------------------------------------- determinism
@contextlib.contextmanager
def torch_settings(deterministic: bool = False, cuda: bool = False) -> Iterator[None]:
    """Global torch settings for a training run, restored afterwards.

    ``deterministic``: ``torch.use_deterministic_algorithms(True)``, cuDNN deterministic without
    benchmarking, and ``CUBLAS_WORKSPACE_CONFIG`` (left set: cuBLAS reads it once). Otherwise, for
    a ``cuda`` run, cuDNN benchmarks its convolution algorithms (the shapes of a run are fixed).
    """
    cudnn = torch.backends.cudnn
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
    )
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        cudnn.deterministic, cudnn.benchmark = True, False
    elif cuda:
        cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        cudnn.deterministic, cudnn.benchmark = previous[2], previous[3]


def is_nondeterminism_error(err: BaseException) -> bool:
    """Whether ``err`` is torch refusing an op without a deterministic implementation."""
    return isinstance(err, RuntimeError) and "deterministic" in str(err)
