"""VAE-CLA, the paper's ablation of Figure 3: the ER-Classifier's structure with the latent critic
replaced by a variational auto-encoder's Kullback-Leibler regulariser.

A VAE encoder on an ER architecture's encoder backbone gives ``mu`` and ``log sigma^2`` of
``q(z | x) = N(mu, sigma^2)`` (the backbone built with a ``2k``-wide output, split in halves);
the reparameterised ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, feeds the classifier head; per
batch (:func:`vae_cla_step`):

    loss = CE(head(z), y) + beta * KL(N(mu, sigma^2) || N(0, I)),
    KL = mean over the batch of  1/2 * sum_k (mu_k^2 + sigma_k^2 - log sigma_k^2 - 1).

Prediction and attacks go through the mean: ``forward(x) = head(mu(x))`` (deterministic).

beta (architecture option ``beta``, default :data:`BETA` = 0.01): the paper gives none. With the
KL summed over the k embedding dimensions and the cross-entropy averaged over the batch, beta = 1
is the VAE's evidence lower bound weighting; on the 8x8 digits (k = 8) it drowned the
classification task (the KL pulled every mu to 0 and clean accuracy fell far below E-CLA's), the
imbalance the paper reports; beta = 0.01 keeps clean accuracy at E-CLA's level while the KL
still falls several-fold during training, so the regulariser is active (``--arch-option
beta=0.1`` and others to study it).

Optimizer: one Adam over two parameter groups (:meth:`VAEModel.param_groups`): the encoder at the
base lr and the head at 0.05 x lr, the ER-Classifier's ratios (``lr_ratios``), so that Figure 3
compares the regularisers, not the optimizers.

    >>> import er_art
    >>> clf = er_art.build_classifier("vae-digits", device_type="cpu")   # a VAEClassifier
    >>> clf.fit(x_train, y_train, batch_size=64, nb_epochs=10)           # CE + beta * KL
    >>> clf.predict(x_test)                                              # logits of head(mu)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier
from torch import nn

from er_art.models.architectures import Architecture
from er_art.training.algorithm import autocast
from er_art.training.step_fit import StepFitted

BETA = 0.01  # weight of the KL term (the paper gives none; see the module docstring)
HEAD_LR_RATIO = 0.05  # head lr / encoder lr: the ER-Classifier's (er_art.models.build.ER_FALLBACKS)


def _beta(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"beta must be a number >= 0, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"beta must be a finite number >= 0, got {value!r}.")
    return float(value)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=1).mean()


class VAEModel(nn.Module):
    """VAE encoder + classifier head.

    :param encoder: ``(B, *input_shape) -> (B, 2k)``: ``mu`` then ``log sigma^2``.
    :param classifier: the head ``(B, k) -> (B, nb_classes)`` logits.
    :param embedding_dim: k.
    :param beta: weight of the KL term in training.
    """

    def __init__(
        self, encoder: nn.Module, classifier: nn.Module, embedding_dim: int, beta: float = BETA
    ) -> None:
        super().__init__()
        if isinstance(embedding_dim, bool) or int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim!r}.")
        self.embedding_dim = int(embedding_dim)
        self.encoder = encoder
        self.classifier = classifier
        self.beta = beta

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _beta(value)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log sigma^2)``, each ``(B, k)``."""
        h = self.encoder(x)  # (B, 2k)
        return h[:, : self.embedding_dim], h[:, self.embedding_dim :]

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``z = mu + sigma * eps``, ``eps ~ N(0, I)`` from torch's global RNG: ``(B, k)``."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.classifier(mu)  # (B, nb_classes): prediction through the mean

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """One Adam, two groups: the encoder at ``lr``, the head at ``HEAD_LR_RATIO * lr``."""
        return [
            {"name": "encoder", "params": list(self.encoder.parameters()), "lr": lr},
            {
                "name": "classifier",
                "params": list(self.classifier.parameters()),
                "lr": lr * HEAD_LR_RATIO,
            },
        ]


@dataclass
class VAEStepResult:
    """Losses of one VAE-CLA step (detached tensors)."""

    loss: torch.Tensor  # ce + beta * kl, what the step descended
    ce: torch.Tensor  # cross-entropy of head(z) on the batch
    kl: torch.Tensor  # KL(N(mu, sigma^2) || N(0, I)), unweighted
    correct: torch.Tensor  # examples classified correctly from z (train mode)


def vae_cla_step(
    model: VAEModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: bool = False,
) -> VAEStepResult:
    """One optimizer step of ``CE(head(z), y) + beta * KL`` on a preprocessed device batch; the
    model is left in train mode."""
    model.train()
    with autocast(x.device, amp):
        mu, logvar = model.encode(x)  # (B, k) each
    mu, logvar = mu.float(), logvar.float()
    z = model.reparameterise(mu, logvar)  # (B, k)
    with autocast(x.device, amp):
        logits = model.classifier(z)  # (B, nb_classes)
    ce = F.cross_entropy(logits.float(), y)
    kl = kl_divergence(mu, logvar)
    loss = ce + model.beta * kl
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    correct = (logits.detach().argmax(1) == y).sum()
    return VAEStepResult(loss.detach(), ce.detach(), kl.detach(), correct)


class VAEClassifier(StepFitted, PyTorchClassifier):
    """The ART classifier of a :class:`VAEModel`: ``predict`` and every gradient go through
    ``mu`` (``forward``); ``fit`` and ``fit_generator`` train CE + beta * KL (ART's own would
    train cross-entropy on ``head(mu)`` without the regulariser)."""

    step_log = (("ce", "ce"), ("kl", "kl"))

    @property
    def vae(self) -> VAEModel:
        model = self.model
        if not isinstance(model, VAEModel):
            raise TypeError(f"VAEClassifier needs a VAEModel, got {type(model).__name__}.")
        return model

    def train_step(self, x: Any, y: Any) -> VAEStepResult:
        """One step on a raw batch (through ART's fit-time preprocessing)."""
        from er_art.training.trainers import prepare_baseline_batch

        if self.optimizer is None:
            raise ValueError("The classifier has no optimizer to train with.")
        x_t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
        y_t = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))
        x_t, y_t = prepare_baseline_batch(self, x_t, y_t)
        return vae_cla_step(self.vae, self.optimizer, x_t, y_t)

    def embed(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """The means ``mu(x)``: ``(N, k)``."""
        self._model.eval()
        x_pre, _ = self._apply_preprocessing(x, y=None, fit=False)
        x_t = torch.from_numpy(np.ascontiguousarray(x_pre, dtype=np.float32))
        out = []
        with torch.no_grad():
            for start in range(0, len(x_t), batch_size):
                mu, _ = self.vae.encode(x_t[start : start + batch_size].to(self._device))
                out.append(mu.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.vae.embedding_dim), np.float32)


def vae_architecture(backbone: Architecture, beta: float = BETA) -> Architecture:
    """The VAE-CLA version ``vae-<name>`` of an ER architecture: its encoder built ``2k`` wide
    (``mu``, ``log sigma^2``), its head on ``k``, the backbone's options and training defaults."""
    if backbone.kind != "er" or backbone.embedding_dim is None:
        raise ValueError(f"VAE-CLA needs an ER architecture backbone, got {backbone.name!r}.")
    extra = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in inspect.signature(backbone.builder).parameters.items()
        if name not in ("embedding_dim", "nb_classes", "input_shape", "beta")
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]

    def build(
        embedding_dim: int = backbone.embedding_dim,  # type: ignore[assignment]
        nb_classes: int = backbone.nb_classes,
        beta: float = beta,
        **options: Any,
    ) -> VAEModel:
        k = int(embedding_dim)
        encoder = backbone.builder(embedding_dim=2 * k, nb_classes=nb_classes, **options).encoder
        head = backbone.builder(embedding_dim=k, nb_classes=nb_classes, **options).classifier
        return VAEModel(encoder, head, k, beta)

    positional = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for name, default in (
            ("embedding_dim", backbone.embedding_dim),
            ("nb_classes", backbone.nb_classes),
            ("beta", beta),
        )
    ]
    build.__signature__ = inspect.Signature(positional + extra)  # type: ignore[attr-defined]
    builder: Callable[..., nn.Module] = build
    keep = ("lr", "batch_size", "threads")
    return Architecture(
        name=f"vae-{backbone.name}",
        builder=builder,
        input_shape=tuple(backbone.input_shape),
        nb_classes=backbone.nb_classes,
        embedding_dim=backbone.embedding_dim,
        kind="vae",
        defaults={k: v for k, v in backbone.defaults.items() if k in keep},
        description=f"VAE-CLA on the {backbone.name} encoder: mu, log sigma^2 -> k, same head.",
        classifier_class=VAEClassifier,
    )
