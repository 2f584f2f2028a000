"""The random state of a training run: torch, NumPy, Python and CUDA generators, saved with every
checkpoint and restored on resume (as tensors and plain values, so a checkpoint loads with
``weights_only``).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


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
