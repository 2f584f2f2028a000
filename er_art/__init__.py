"""er-art: the Embedding Regularized Classifier (ER-Classifier) as an ART estimator.

    >>> import er_art
    >>> clf = er_art.build_classifier("digits")          # an art PyTorchClassifier subclass
    >>> clf.fit(x_train, y_train, nb_epochs=5)            # Algorithm 1 of the paper
    >>> er_art.save_classifier(clf, "digits.pt"); clf = er_art.load_classifier("digits.pt")
    >>> report = er_art.evaluate(any_torch_module, x_test, y_test, eps=0.1)  # any model
    >>> report.accuracy(0.1), report.to_json()

Heavy names (torch, ART) are imported lazily, so ``import er_art`` and ``er-art plugins`` stay fast.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("er-art")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_LAZY = {
    "ERClassifier": "er_art.models.er_classifier",
    "ERModel": "er_art.models.er_model",
    "Discriminator": "er_art.models.er_model",
    "Prior": "er_art.models.priors",
    "build_prior": "er_art.models.priors",
    "Architecture": "er_art.models.architectures",
    "get_architecture": "er_art.models.architectures",
    "build_classifier": "er_art.models.build",
    "save_classifier": "er_art.checkpoint",
    "load_classifier": "er_art.checkpoint",
    "CheckpointError": "er_art.checkpoint",
    "ERAdversarialTrainer": "er_art.training.adversarial",
    "list_plugins": "er_art.registry",
    "get_plugin": "er_art.registry",
    "evaluate": "er_art.robustness",
    "RobustnessReport": "er_art.robustness",
    "wrap_model": "er_art.models.wrapped",
    "load_model": "er_art.models.wrapped",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'er_art' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
