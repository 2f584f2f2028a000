"""Cauchy prior C(loc, scale)^k; the paper's prior study uses C(0, 1) (Section 4.3)."""

from __future__ import annotations

import math

import torch

from er_art.models.priors import Prior


class CauchyPrior(Prior):
    name = "cauchy"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"The Cauchy prior's scale must be > 0, got {scale}.")
        self.loc, self.scale = float(loc), float(scale)

    def params(self) -> dict[str, float]:
        return {"loc": self.loc, "scale": self.scale}

    def sample(self, n, dim, device="cpu", dtype=torch.float32, generator=None):  # noqa: D102
        # Inverse CDF: loc + scale * tan(pi * (u - 1/2)), with u kept off the poles.
        u = torch.rand(n, dim, device=device, dtype=dtype, generator=generator)
        u = u.clamp(1e-6, 1 - 1e-6)
        return self.loc + self.scale * torch.tan(math.pi * (u - 0.5))
