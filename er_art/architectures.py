"""What an architecture plugin is: a builder plus the defaults that belong to it.

An architecture plugin's entry point names an :class:`Architecture`. ER architectures build an
:class:`~er_art.model.ERModel`; baselines (``kind="baseline"``) build a plain ``nn.Module``
classifier for the paper's "No Defense" and "Madry's Adv" comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from er_art.registry import get_plugin


@dataclass(frozen=True)
class Architecture:
    """An architecture plugin: its builder and the defaults of the models it builds."""

    name: str
    builder: Callable[
        ..., nn.Module
    ]  # builder(embedding_dim=, nb_classes=, **options) -> nn.Module
    input_shape: tuple[int, ...]  # (C, H, W) of one input in [0, 1]
    nb_classes: int
    embedding_dim: int | None = None  # None for baselines, which have no embedding
    kind: str = "er"  # "er" or "baseline"
    # Training defaults from the reference code (NOTES.md); overridable in build_classifier.
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def build(self, **options: Any) -> nn.Module:
        """Build the network; ``None`` options fall back to this architecture's defaults."""
        options = {k: v for k, v in options.items() if v is not None}
        if self.kind == "er":
            options.setdefault("embedding_dim", self.embedding_dim)
        options.setdefault("nb_classes", self.nb_classes)
        return self.builder(**options)


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name`` (unknown names raise with close matches)."""
    return get_plugin("architectures", name)
