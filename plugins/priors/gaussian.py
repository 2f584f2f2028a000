"""Gaussian prior N(0, sigma^2 I): the paper's default (sigma = 1)."""

from __future__ import annotations

import torch

from er_art.models.priors import Prior


class GaussianPrior(Prior):
    name = "gaussian"

    def __init__(self, sigma: float = 1.0) -> None:
        if not sigma > 0:
            raise ValueError(f"The Gaussian prior's sigma must be > 0, got {sigma}.")
        self.sigma = float(sigma)

    def params(self) -> dict[str, float]:
        return {"sigma": self.sigma}

    def sample(self, n, dim, device="cpu", dtype=torch.float32, generator=None):  # noqa: D102
        return self.sigma * torch.randn(n, dim, device=device, dtype=dtype, generator=generator)
