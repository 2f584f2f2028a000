"""The data of a training run: each epoch's order and the batches it is read in.

The order of epoch ``e`` is a function of ``(seed, e)`` only, so a resumed run reads the batches an
uninterrupted one would. Under torchrun each process reads its shard of that order
(:meth:`er_art.distributed.World.shard`, ``DistributedSampler``'s split) in batches of its share of
the global batch size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from er_art.devices import fits_on_device


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
