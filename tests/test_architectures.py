"""The architecture plugins' defaults: only keys that something reads; the lambdas' one home."""

from __future__ import annotations

import inspect

from er_art.datasets import get_dataset
from er_art.models.architectures import architectures_of_kind, get_architecture
from er_art.models.build import build_classifier
from er_art.models.er_classifier import ERClassifier
from er_art.registry import names
from er_art.training.algorithm import DEFAULT_LAMBDAS, algorithm1_step
from er_art.training.run import TrainingConfig, resolve_config

# what reads Architecture.defaults: build_classifier (lr, lr_ratios, clip_value, the lambdas) and
# resolve_config (lr, epochs, threads, the lambdas); the batch size is the dataset's
READ = {"lr", "lr_ratios", "clip_value", "lambda_d", "lambda_ce", "lambda_reg", "epochs", "threads"}


def test_architecture_defaults_hold_only_keys_that_are_read():
    for name in names("architectures"):
        unread = set(get_architecture(name).defaults) - READ
        assert not unread, f"{name}: {sorted(unread)} in defaults is never read"


# Algorithm 1's lambdas of the built-in ER architectures (lambda, lambda_0, lambda_1; NOTES.md)
BUILT_IN_LAMBDAS = {
    "digits": (1.0, 1.0, 5e-3),
    "mnist": (1.0, 1.0, 5e-4),
    "mnist-small": (1.0, 1.0, 5e-4),
    "cifar10": (1.0, 1.0, 0.1),
    "stl10": (1.0, 1.0, 0.1),
    "tinyimagenet": (1.0, 1.0, 0.1),
    "test_digits": (1.0, 1.0, 1e-2),
    "test_mnist": (1.0, 1.0, 1e-2),
    "test_cifar10": (1.0, 1.0, 1e-2),
}


def _dataset_for(arch) -> str:
    for name in names("datasets"):
        if tuple(get_dataset(name).input_shape) == tuple(arch.input_shape):
            return name
    raise AssertionError(f"no registered dataset has {arch.name}'s input shape")


def test_lambda_defaults_have_one_home():
    """Every registered ER architecture's lambdas, as resolve_config resolves them and as
    build_classifier builds them, are Architecture.lambdas(): its defaults over DEFAULT_LAMBDAS,
    which ERClassifier and algorithm1_step default to."""
    for fn in (ERClassifier.__init__, algorithm1_step):
        params = inspect.signature(fn).parameters
        assert {name: params[name].default for name in DEFAULT_LAMBDAS} == DEFAULT_LAMBDAS
    er_archs = architectures_of_kind("er")
    assert set(BUILT_IN_LAMBDAS) <= set(er_archs)
    for name in er_archs:
        arch = get_architecture(name)
        lambdas = arch.lambdas()
        assert lambdas == {
            **DEFAULT_LAMBDAS,
            **{k: arch.defaults[k] for k in lambdas if k in arch.defaults},
        }
        if name in BUILT_IN_LAMBDAS:  # unchanged
            assert tuple(lambdas.values()) == BUILT_IN_LAMBDAS[name], name
        cfg = resolve_config(TrainingConfig(dataset=_dataset_for(arch), arch=name))
        assert {k: getattr(cfg, k) for k in lambdas} == lambdas, name
        clf = build_classifier(name, device_type="cpu")
        assert {k: getattr(clf, k) for k in lambdas} == lambdas, name
