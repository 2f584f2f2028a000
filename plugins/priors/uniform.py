"""Uniform prior U(low, high)^k; the paper's prior study uses U(-3, 3) (Section 4.3)."""

from __future__ import annotations

import torch

from er_art.models.priors import Prior


class UniformPrior(Prior):
    name = "uniform"

    def __init__(self, low: float = -3.0, high: float = 3.0) -> None:
        if not high > low:
            raise ValueError(f"The uniform prior needs low < high, got low={low}, high={high}.")
        self.low, self.high = float(low), float(high)

    def params(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}

    def sample(self, n, dim, device="cpu", dtype=torch.float32, generator=None):  # noqa: D102
        u = torch.rand(n, dim, device=device, dtype=dtype, generator=generator)
        return self.low + (self.high - self.low) * u
