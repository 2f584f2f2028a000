"""What a gradient attack sees of a classifier: :class:`AttackView`.

An ``AttackView`` is an ART ``PyTorchClassifier`` over the *same* ``nn.Module``, preprocessing,
preprocessing defences and clip values as the classifier it views, with three changes that
attacks need and a stock classifier does not give:

- **input-only gradients**: ``loss_gradient`` differentiates with respect to the input alone, so
  an attack never fills the model's weight gradients (ART's APGD otherwise re-wraps the model in a
  stock classifier whose ``loss.backward()`` does) and does half the work;
- **the attack's loss**: ``"ce"`` (cross-entropy), ``"dlr"`` (the difference of logits ratio of
  Croce & Hein 2020, invariant to shifts and scalings of the logits) or ``"dlr-targeted"`` (their
  targeted DLR, ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, for APGD-T);
- **expectation over transformation** (Athalye et al. 2018): with ``eot_samples = N > 1`` the
  loss and its gradient are averaged over N stochastic forward passes (noise layers, randomised
  defences), which is how a randomised model must be attacked.

Labels for ``"dlr-targeted"`` carry the true class and the target in one row: the true class with
weight 1, the target with weight 0.5 (:func:`encode_targets`); ART's attacks take such rows as
one-hot-like labels, and the true class stays the row's argmax, so their success test is the
untargeted one that APGD-T uses.

    >>> view = attack_view(classifier, loss="dlr", eot_samples=10)
    >>> x_adv = AutoProjectedGradientDescent(view, eps=0.1, loss_type=None).generate(x, y)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from er_art import model_access

LOSSES = ("ce", "dlr", "dlr-targeted")
TARGET_WEIGHT = 0.5  # weight of the target class in an encoded label row


def encode_targets(y: np.ndarray, targets: np.ndarray, nb_classes: int) -> np.ndarray:
    """Label rows ``(N, nb_classes)`` holding the true class (1.0) and the target (0.5)."""
    rows = np.zeros((len(y), nb_classes), dtype=np.float32)
    rows[np.arange(len(y)), np.asarray(targets)] = TARGET_WEIGHT
    rows[np.arange(len(y)), np.asarray(y)] = 1.0
    return rows


def true_and_target(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Integer true labels ``(N,)`` and, for encoded rows, the targets ``(N,)`` (else None)."""
    if labels.ndim == 1:
        return labels.long(), None
    true = labels.argmax(1)
    rest = labels.clone().float()
    rest[torch.arange(len(rest), device=rest.device), true] = 0.0
    has_target = rest.max(1).values > 0
    return true, (rest.argmax(1) if bool(has_target.all()) else None)


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR per example: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``."""
    ordered, _ = logits.sort(dim=1)  # ascending
    rows = torch.arange(len(y), device=logits.device)
    z_y = logits[rows, y]
    top_is_y = logits.argmax(1) == y
    z_other = torch.where(top_is_y, ordered[:, -2], ordered[:, -1])
    return -(z_y - z_other) / (ordered[:, -1] - ordered[:, -3] + 1e-12)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR per example: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (needs 4+
    classes)."""
    ordered, _ = logits.sort(dim=1)
    rows = torch.arange(len(y), device=logits.device)
    scale = ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12
    return -(logits[rows, y] - logits[rows, target]) / scale


def per_example_loss(name: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` per example ``(N,)`` for integer or (encoded) row labels."""
    y, target = true_and_target(labels)
    if name == "ce":
        return F.cross_entropy(logits.float(), y, reduction="none")
    if name == "dlr":
        return dlr_loss(logits.float(), y)
    if target is None:
        raise ValueError("The dlr-targeted loss needs encoded label rows (see encode_targets).")
    return targeted_dlr_loss(logits.float(), y, target)


class AttackView(PyTorchClassifier):
    """An attack's view of ``classifier`` (shares its module; see the module docstring).

    :param classifier: an ART ``PyTorchClassifier`` (an ``ERClassifier`` or a stock one).
    :param loss: ``"ce"``, ``"dlr"`` or ``"dlr-targeted"``.
    :param eot_samples: forward passes the loss and its gradient are averaged over (1: none).
    """

    def __init__(self, classifier: PyTorchClassifier, loss: str = "ce", eot_samples: int = 1):
        if loss not in LOSSES:
            raise ValueError(f"Unknown attack loss {loss!r}; accepted: {', '.join(LOSSES)}.")
        if int(eot_samples) < 1:
            raise ValueError(f"eot_samples must be a positive integer, got {eot_samples}.")
        device = classifier.device
        super().__init__(
            model=classifier.model,
            loss=torch.nn.CrossEntropyLoss(),  # ART's bookkeeping only; the loss is `loss_name`
            input_shape=classifier.input_shape,
            nb_classes=classifier.nb_classes,
            optimizer=None,
            channels_first=classifier.channels_first,
            clip_values=classifier.clip_values,
            preprocessing_defences=classifier.preprocessing_defences,
            postprocessing_defences=classifier.postprocessing_defences,
            preprocessing=classifier.preprocessing,
            device_type="cpu" if device.type == "cpu" else "gpu",
        )
        self._device = device  # the viewed classifier's exact device (e.g. cuda:1)
        self.base = classifier
        self.loss_name = loss
        self.eot_samples = int(eot_samples)

    def _logits_of(self, x_in: torch.Tensor) -> torch.Tensor:
        return self._model(x_in)[-1]

    def _losses(
        self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-example loss averaged over ``eot_samples`` passes, and (``grad``) its input
        gradient in the input's space (before ``_apply_preprocessing_gradient`` for NumPy
        defences)."""
        is_tensor = isinstance(x, torch.Tensor)
        if is_tensor and not self.all_framework_preprocessing:
            raise NotImplementedError(
                "Tensor inputs need framework-native (PyTorch) preprocessing defences only."
            )
        labels = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))
        labels = labels.to(self._device)
        if is_tensor:
            x_base = x.detach().to(self._device, torch.float32)
        else:
            x_base = torch.from_numpy(np.asarray(x, dtype=np.float32)).to(self._device)

        def loss(logits: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            losses = per_example_loss(self.loss_name, logits, labels)
            return losses, [losses.sum()]

        # NumPy defences: the gradient stays at the preprocessed point, mapped back (BPDA) later
        mean_loss, grads = model_access.mean_over_passes(
            self, x_base, loss, self.eot_samples, grad=grad, map_back=False, forward=self._logits_of
        )
        return mean_loss, (grads[0] if grad else None)

    def loss_gradient(  # type: ignore[override]
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        training_mode: bool = False,
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """Gradient of the mean loss over the batch with respect to ``x`` only (EOT-averaged)."""
        self._model.train(mode=training_mode)
        _, grad = self._losses(x, y, grad=True)
        assert grad is not None
        grad = grad / len(grad)  # the gradient of the batch mean, as ART's own loss_gradient
        if isinstance(x, torch.Tensor):
            return grad
        grads = grad.cpu().numpy()
        if not self.all_framework_preprocessing:
            grads = self._apply_preprocessing_gradient(x, grads)
        return grads

    def compute_loss(  # type: ignore[override]
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        reduction: str = "none",
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """The attack loss per example (``reduction="none"``), or its ``"mean"`` / ``"sum"``."""
        self._model.eval()
        losses, _ = self._losses(x, y, grad=False)
        if reduction == "mean":
            losses = losses.mean()
        elif reduction == "sum":
            losses = losses.sum()
        elif reduction != "none":
            raise ValueError(f"Unknown reduction {reduction!r}; accepted: none, mean, sum.")
        return losses if isinstance(x, torch.Tensor) else losses.cpu().numpy()

    def __repr__(self) -> str:
        return (
            f"AttackView(loss={self.loss_name!r}, eot_samples={self.eot_samples}, "
            f"of={type(self.base).__name__})"
        )


def attack_view(
    classifier: PyTorchClassifier, loss: str = "ce", eot_samples: int | None = None
) -> AttackView:
    """A view of ``classifier`` with ``loss``; a view of a view views the same classifier and keeps
    its ``eot_samples`` unless given."""
    if isinstance(classifier, AttackView):
        eot = classifier.eot_samples if eot_samples is None else eot_samples
        if loss == classifier.loss_name and eot == classifier.eot_samples:
            return classifier
        return AttackView(classifier.base, loss, eot)
    return AttackView(classifier, loss, 1 if eot_samples is None else eot_samples)
