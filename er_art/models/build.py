"""``build_classifier(arch, **overrides)``: an ART classifier from a registered architecture.

timm-style: options left at ``None`` fall back to the architecture's defaults (NOTES.md values for
the paper's datasets), so ``build_classifier("mnist")`` is the paper's MNIST ER-Classifier and
``build_classifier("mnist", embedding_dim=8, prior="cauchy")`` changes just those.
"""

from __future__ import annotations

from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier

from er_art.models.architectures import Architecture, get_architecture
from er_art.models.er_classifier import DeviceStandardisation, ERClassifier, resolve_device_type

# Hyperparameters and their fallbacks when an architecture does not set them (Algorithm 1's
# lambdas: Architecture.lambdas(), from er_art.training.algorithm.DEFAULT_LAMBDAS).
ER_FALLBACKS: dict[str, Any] = {
    "lr": 1e-4,
    "lr_ratios": (1.0, 0.5, 0.05),
    "clip_value": 0.01,
}


def build_classifier(
    arch: str,
    *,
    embedding_dim: int | None = None,
    nb_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    prior: str = "gaussian",
    prior_params: dict[str, float] | None = None,
    lambda_d: float | None = None,
    lambda_ce: float | None = None,
    lambda_reg: float | None = None,
    lr: float | None = None,
    lr_ratios: tuple[float, float, float] | None = None,
    clip_value: float | None = None,
    amp: bool = False,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    device_type: str = "auto",
    preprocessing_defences: Any = None,
    postprocessing_defences: Any = None,
    arch_options: dict[str, Any] | None = None,
    seed: int | None = None,
) -> ERClassifier | PyTorchClassifier:
    """Build the classifier of architecture ``arch``: an :class:`ERClassifier` for an ER
    architecture; for any other family (baselines such as ``cnn`` or ``vgg19``, ``rse-*``,
    ``vae-*``) the architecture's ``classifier_class`` (default a plain ``PyTorchClassifier``) with
    one Adam optimizer over ``model.param_groups(lr)`` (when the model defines it) or
    ``model.parameters()``.

    :param arch: a registered architecture (``er-art plugins architectures`` lists them).
    :param embedding_dim: embedding size k (architectures with an embedding: ER, VAE-CLA).
    :param nb_classes: number of classes (default: the architecture's).
    :param input_shape: input shape (default: the architecture's; baselines adapt to any).
    :param prior: prior plugin name; ``prior_params`` its parameters.
    :param lambda_d: lambda of the discriminator objective; ``lambda_ce`` lambda_0 of the
        cross-entropy;
        ``lambda_reg`` lambda_1 of the encoder regularisation.
    :param lr: base (encoder) learning rate; ``lr_ratios`` encoder : discriminator : head.
    :param clip_value: discriminator weight clipping.
    :param amp: bfloat16 mixed precision in training (``torch.amp``; the critic stays float32).
    :param clip_values: the data's value range.
    :param device_type: ``auto``, ``cpu``, ``cuda`` or ``gpu``.
    :param arch_options: extra builder options (e.g. ``{"init_weights": "vgg19_features.pt"}``,
        ``{"sigma_init": 0.2, "ensemble": 10}``); an option the builder does not take is refused.
    :param seed: seeds torch before the weights are initialised.
    """
    spec = get_architecture(arch)
    resolve_device_type(device_type)  # fail early on a bad device
    if embedding_dim is not None and embedding_dim <= 0:
        raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim}.")
    nb_classes = nb_classes or spec.nb_classes
    shape = tuple(input_shape or spec.input_shape)
    options = dict(arch_options or {})
    spec.check_options(options)
    if not spec.takes_input_shape and shape != tuple(spec.input_shape):
        raise ValueError(
            f"Architecture {arch!r} takes inputs of shape {tuple(spec.input_shape)}, not {shape}."
        )
    if seed is not None:
        torch.manual_seed(seed)
    defaults = {**ER_FALLBACKS, **spec.defaults}

    def pick(name: str, value: Any) -> Any:
        return defaults[name] if value is None else value

    if spec.kind != "er":
        return _build_other(
            spec,
            embedding_dim=embedding_dim,
            nb_classes=nb_classes,
            shape=shape,
            lr=pick("lr", lr),
            options=options,
            clip_values=clip_values,
            device_type=device_type,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
        )

    model = spec.build(embedding_dim=embedding_dim, nb_classes=nb_classes, **options)
    lambdas = spec.lambdas()
    return ERClassifier(
        model,  # type: ignore[arg-type]
        input_shape=shape,
        nb_classes=nb_classes,
        prior=prior,
        prior_params=prior_params,
        lambda_d=lambdas["lambda_d"] if lambda_d is None else lambda_d,
        lambda_ce=lambdas["lambda_ce"] if lambda_ce is None else lambda_ce,
        lambda_reg=lambdas["lambda_reg"] if lambda_reg is None else lambda_reg,
        lr=pick("lr", lr),
        lr_ratios=tuple(pick("lr_ratios", lr_ratios)),
        clip_value=pick("clip_value", clip_value),
        amp=amp,
        clip_values=clip_values,
        preprocessing_defences=preprocessing_defences,
        postprocessing_defences=postprocessing_defences,
        device_type=device_type,
        arch=arch,
        arch_options=options,
    )


def optimizer_params(model: torch.nn.Module, lr: float) -> Any:
    """What one Adam optimizer of ``model`` trains: ``model.param_groups(lr)`` when the model
    defines it (several nets, each its own lr / betas: one optimizer, one state dict to checkpoint
    and resume), else ``model.parameters()`` at ``lr``."""
    groups = getattr(model, "param_groups", None)
    return groups(lr) if callable(groups) else model.parameters()


def _build_other(
    spec: Architecture,
    *,
    embedding_dim: int | None,
    nb_classes: int,
    shape: tuple[int, ...],
    lr: float,
    options: dict[str, Any],
    clip_values: tuple[float, float] | None,
    device_type: str,
    preprocessing_defences: Any,
    postprocessing_defences: Any,
) -> PyTorchClassifier:
    """A non-ER architecture's classifier (see :func:`build_classifier`)."""
    built: dict[str, Any] = {"nb_classes": nb_classes}
    if spec.takes_input_shape:
        built["input_shape"] = shape
    if spec.embedding_dim is not None:
        built["embedding_dim"] = embedding_dim or spec.embedding_dim
    elif embedding_dim is not None:
        raise ValueError(
            f"Architecture {spec.name!r} has no embedding; embedding_dim cannot be set."
        )
    model = spec.build(**built, **options)
    cls = spec.classifier_class or PyTorchClassifier
    classifier = cls(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(optimizer_params(model, lr), lr=lr),
        input_shape=shape,
        nb_classes=nb_classes,
        clip_values=clip_values,
        preprocessing_defences=preprocessing_defences,
        postprocessing_defences=postprocessing_defences,
        # ART's own identity standardisation copies NumPy to the GPU at every call
        preprocessing=DeviceStandardisation(0.0, 1.0),
        device_type=resolve_device_type(device_type),
    )
    config: dict[str, Any] = {
        "kind": spec.kind,
        "arch": spec.name,
        # every option with the value it was built with, defaults included (a later change of a
        # builder's default does not change a saved model)
        "arch_options": spec.resolved_options(options),
        "input_shape": list(shape),
        "nb_classes": int(nb_classes),
        "lr": lr,
        "clip_values": None
        if clip_values is None
        else [float(clip_values[0]), float(clip_values[1])],
        "device_type": device_type,
    }
    if "embedding_dim" in built:
        config["embedding_dim"] = int(built["embedding_dim"])
    classifier.er_art_config = config  # type: ignore[attr-defined]
    return classifier
