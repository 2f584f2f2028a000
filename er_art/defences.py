"""What a defence plugin is: an ART preprocessing defence under a short name.

A defence plugin's entry point (group ``er_art.defences``) names a :class:`DefenceSpec`;
``spec.build(classifier, **params)`` makes the ART ``Preprocessor`` with the classifier's
``clip_values`` and ``channels_first``. :func:`apply_defences` sets a list of them on a loaded
classifier (ER-Classifier or baseline) through ART's ``set_params(preprocessing_defences=...)``:

    >>> from er_art.defences import apply_defences
    >>> apply_defences(classifier, ["feature-squeezing", "jpeg"])

Attacks then see the defended model; ART's non-differentiable defences (feature squeezing, median
smoothing, JPEG) pass the gradient straight through (BPDA with the identity), so white-box attacks
stay meaningful.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from er_art.registry import get_plugin, names

logger = logging.getLogger(__name__)


class DefenceUnavailableError(LookupError):
    """A defence whose optional dependency is not installed."""


@dataclass(frozen=True)
class DefenceSpec:
    """A defence plugin: ``factory(clip_values=, channels_first=, **params)`` -> a preprocessor."""

    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)  # ART parameter names -> defaults
    description: str = ""

    def build(self, classifier: Any, **params: Any) -> Any:
        """The ART preprocessor for ``classifier`` (its clip_values and channels_first)."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            accepted = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"Defence {self.name!r} has no parameter {unknown[0]!r}; accepted: {accepted}."
            )
        kwargs = {**self.defaults, **params}
        clip_values = getattr(classifier, "clip_values", None)
        if clip_values is not None:
            clip_values = (float(clip_values[0]), float(clip_values[1]))
        return self.factory(
            clip_values=clip_values, channels_first=bool(classifier.channels_first), **kwargs
        )


def get_defence(name: str) -> DefenceSpec:
    """The registered defence ``name`` (unknown names raise with close matches)."""
    spec = get_plugin("defences", name)
    if not isinstance(spec, DefenceSpec):
        raise TypeError(
            f"The defence plugin {name!r} is a {type(spec).__name__}, "
            "not an er_art.defences.DefenceSpec."
        )
    return spec


def defence_names() -> list[str]:
    """Sorted names of the registered defences."""
    return names("defences")


def defence_chain(defences: Sequence[Any], cast_float32: bool = True) -> Any:
    """One ART preprocessor applying ``defences`` in order, then a float32 cast; gradients chain.

    ART's PyTorch estimators accept at most one NumPy preprocessing defence; a chain is one. The
    cast matters for a stock ``PyTorchClassifier``: ART's NumPy defences return float64.
    The chain runs at fit time if any member has ``apply_fit``, at prediction if any has
    ``apply_predict``.
    """
    import numpy as np
    from art.defences.preprocessor import Preprocessor

    class DefenceChain(Preprocessor):
        """Preprocessing defences applied one after another, as one NumPy preprocessor."""

        def __init__(self, members: Sequence[Any]) -> None:
            super().__init__(
                is_fitted=True,
                apply_fit=any(m.apply_fit for m in members),
                apply_predict=any(m.apply_predict for m in members),
            )
            self.members = list(members)

        def __call__(self, x: Any, y: Any = None) -> tuple[Any, Any]:
            for member in self.members:
                x, y = member(x, y)
            if cast_float32:
                x = np.asarray(x, dtype=np.float32)
            return x, y

        def estimate_gradient(self, x: Any, grad: Any) -> Any:
            inputs = []
            for member in self.members:  # the input each member saw
                inputs.append(x)
                x, _ = member(x)
            for member, x_in in zip(reversed(self.members), reversed(inputs), strict=True):
                grad = member.estimate_gradient(x_in, grad)
            return grad

        def __repr__(self) -> str:
            return f"DefenceChain({', '.join(type(m).__name__ for m in self.members)})"

    return DefenceChain(defences)


def apply_defences(classifier: Any, defences: Sequence[str | Any]) -> list[Any]:
    """Set ``defences`` (names or ready ART preprocessors) on ``classifier`` as its defences.

    Replaces any defences already set; an empty list removes them. Returns the defences built. Only
    framework (PyTorch) defences are handed to ART as they are; otherwise they go in one
    :func:`defence_chain` (ART's PyTorch estimators chain at most one NumPy defence).
    """
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

    built = [get_defence(d).build(classifier) if isinstance(d, str) else d for d in defences]
    if all(isinstance(d, PreprocessorPyTorch) for d in built):
        chain = built
    else:
        chain = [defence_chain(built)]
    classifier.set_params(preprocessing_defences=chain or None)
    logger.info("preprocessing defences set: %s", [type(d).__name__ for d in built])
    return built
