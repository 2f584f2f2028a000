"""What an architecture plugin is: a builder plus the defaults that belong to it.

An architecture plugin's entry point names an :class:`Architecture`. Its ``kind`` is the family of
models it builds, and a trainer trains one family (``TrainerSpec.kind``):

- ``"er"``: an :class:`~er_art.models.er_model.ERModel`, wrapped in an
  :class:`~er_art.ERClassifier`;
- ``"baseline"``: a plain ``nn.Module`` classifier (the paper's "No Defense" / "Madry's Adv");
- any other family (``"rse"``, ``"vae"``, ...): an ``nn.Module`` wrapped in the architecture's
  ``classifier_class`` (default ART's ``PyTorchClassifier``), e.g. RSE's noisy-ensemble predict.

Every family but ``"er"`` goes through the same path of :func:`er_art.build_classifier`: one Adam
optimizer over ``model.param_groups(lr)`` when the model defines it (several nets, each its own lr
or betas, in ONE optimizer whose state checkpoints and resumes exactly), else over
``model.parameters()``.

The builder's keyword arguments other than ``embedding_dim``, ``nb_classes`` and ``input_shape``
are the architecture's *options* (``arch_options``): their defaults are the builder's, a run
records them all in its config, and an unknown one is refused in one sentence.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from er_art.registry import get_plugin, names
from er_art.training.algorithm import DEFAULT_LAMBDAS

logger = logging.getLogger(__name__)

BUILT_IN_ARGS = ("embedding_dim", "nb_classes", "input_shape")  # not options: build_classifier's


@dataclass(frozen=True)
class Architecture:
    """An architecture plugin: its builder and the defaults of the models it builds."""

    name: str
    builder: Callable[
        ..., nn.Module
    ]  # builder(embedding_dim=, nb_classes=, **options) -> nn.Module
    input_shape: tuple[int, ...]  # (C, H, W) of one input in [0, 1]
    nb_classes: int
    embedding_dim: int | None = None  # None for models without an embedding (baselines, RSE)
    kind: str = "er"  # the model family: "er", "baseline", "rse", "vae", ... (trainers match it)
    # Training defaults from the reference code (NOTES.md), each overridable: "lr"; "epochs" and
    # "threads" (resolve_config); for ER models "lr_ratios", "clip_value" (build_classifier) and
    # Algorithm 1's lambdas (lambdas()). The batch size is the dataset's (DatasetSpec.batch_size).
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # The ART classifier class of a non-ER model (None: PyTorchClassifier); it is built as
    # cls(model=, loss=, optimizer=, input_shape=, nb_classes=, clip_values=, ...).
    classifier_class: type | None = None

    def build(self, **options: Any) -> nn.Module:
        """Build the network; ``None`` options fall back to this architecture's defaults."""
        options = {k: v for k, v in options.items() if v is not None}
        if self.embedding_dim is not None:
            options.setdefault("embedding_dim", self.embedding_dim)
        options.setdefault("nb_classes", self.nb_classes)
        if not self.takes_input_shape:
            options.pop("input_shape", None)
        return self.builder(**options)

    def lambdas(self) -> dict[str, float]:
        """Algorithm 1's lambdas of this architecture's ER models when none is given:
        ``lambda_d``, ``lambda_ce`` and ``lambda_reg`` from its ``defaults`` where it sets them,
        else :data:`er_art.training.algorithm.DEFAULT_LAMBDAS` (resolve_config checks the
        values)."""
        return {name: self.defaults.get(name, v) for name, v in DEFAULT_LAMBDAS.items()}

    # ------------------------------------------------------------------ the builder's options
    def _parameters(self) -> dict[str, inspect.Parameter]:
        try:
            return dict(inspect.signature(self.builder).parameters)
        except (TypeError, ValueError):  # a builtin or C callable: no signature to read
            return {}

    @property
    def takes_input_shape(self) -> bool:
        """Whether the builder adapts the network to any input shape (baselines do)."""
        return "input_shape" in self._parameters()

    def option_defaults(self) -> dict[str, Any]:
        """The builder's options and their defaults (``None`` where it has none)."""
        return {
            name: (None if p.default is inspect.Parameter.empty else p.default)
            for name, p in self._parameters().items()
            if name not in BUILT_IN_ARGS
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }

    def check_options(self, options: dict[str, Any]) -> None:
        """Raise ``ValueError`` (one sentence) for an option the builder does not take."""
        params = self._parameters()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return  # the builder takes anything; it checks for itself
        accepted = self.option_defaults()
        for key in options:
            if key in BUILT_IN_ARGS or key not in accepted:
                what = f"accepted: {', '.join(sorted(accepted))}" if accepted else "it takes none"
                raise ValueError(f"Architecture {self.name!r} has no option {key!r}; {what}.")

    def resolved_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` completed with the builder's defaults (what a run records)."""
        return {**self.option_defaults(), **options}


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name`` (unknown names raise with close matches)."""
    return get_plugin("architectures", name)


def architectures_of_kind(kind: str) -> list[str]:
    """Names of the registered architectures of the family ``kind`` (those that load)."""
    found = []
    for name in names("architectures"):
        try:
            if get_architecture(name).kind == kind:
                found.append(name)
        except LookupError as err:  # a broken third-party plugin: not this family's problem
            logger.debug("skipping architecture %r: %s", name, err)
    return found
