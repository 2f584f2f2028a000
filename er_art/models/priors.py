"""Priors on the embedding: what the discriminator compares the encoder's output against.

A prior plugin's entry point names a :class:`Prior` subclass; ``build_prior("gaussian", sigma=2)``
makes one. Samples are drawn on the device and in the dtype asked for.
"""

from __future__ import annotations

from typing import Any

import torch

from er_art.registry import get_plugin


class Prior:
    """Base class: a distribution over R^k that can be sampled on any device and dtype."""

    name: str = "prior"

    def params(self) -> dict[str, float]:
        """The constructor arguments, for checkpoints (JSON-serialisable)."""
        raise NotImplementedError

    def sample(
        self,
        n: int,
        dim: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` samples of dimension ``dim``: a tensor of shape ``(n, dim)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params() == other.params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.params().items()))))


def build_prior(prior: str | Prior, **params: Any) -> Prior:
    """A prior from its registered name and parameters (a :class:`Prior` is returned as is)."""
    if isinstance(prior, Prior):
        if params:
            raise ValueError(
                f"Prior parameters {params} were given with a ready-made {prior!r}; "
                "pass a prior name with parameters, or the prior alone."
            )
        return prior
    cls = get_plugin("priors", prior)
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"Bad parameters {params} for prior {prior!r}: {err}.") from err
