"""Differentiable access to an ART ``PyTorchClassifier``: logits and input-only gradients.

What er-art's own gradient attacks need of a classifier (an ``ERClassifier`` or a stock one) and
ART's estimator API does not give in one call: FAB (:mod:`er_art.attacks.fab`), C&W L2
(:mod:`er_art.attacks.cw_fast`) and the attack view's losses (:mod:`er_art.attacks.view`) all go
through
here.

- **through the preprocessing**: framework-native (PyTorch) preprocessing is differentiated by
  autograd; NumPy preprocessing (defences such as ART's ``FeatureSqueezing``) runs forward without
  gradient, and the gradient at its output is mapped back by ART's
  ``_apply_preprocessing_gradient`` (BPDA, Athalye et al. 2018);
- **input only**: gradients come from ``torch.autograd.grad`` with respect to the input, so no
  parameter's ``.grad`` is ever written;
- **expectation over transformation**: ``eot_samples`` stochastic forward passes (noise layers,
  randomised defences); by default the classifier's own ``eot_samples`` attribute (er-art's
  ``AttackView`` has one), else 1. Two averages, which are not the same numbers:
  :func:`mean_over_passes` averages a per-pass quantity and its gradient (FAB's logit
  differences, the view's losses), :func:`grad_of_mean_logits` differentiates a function of the
  logits averaged over passes (C&W's hinge, not linear in the logits).

The mode of the model is the caller's: attacks run inside :func:`eval_mode`.

    >>> with eval_mode(classifier.model):
    ...     z = logits(classifier, x, eot_samples=4)  # (B, K), float32, no graph
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Every submodule in eval mode inside the block; each one's own mode restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def input_box(
    classifier: Any, sample_shape: tuple[int, ...], scalars: bool = False
) -> tuple[torch.Tensor, torch.Tensor] | tuple[float, float] | None:
    """The classifier's ``clip_values`` as float32 ``(lo, hi)`` tensors of one sample's shape on
    its device; ``None`` without clip values. ``scalars``: scalar clip values as Python floats
    (no host-to-device copy, which waits for the device: the training PGD's path)."""
    if classifier.clip_values is None:
        return None
    if scalars and all(np.ndim(v) == 0 for v in classifier.clip_values):
        return float(classifier.clip_values[0]), float(classifier.clip_values[1])
    lo = np.broadcast_to(np.asarray(classifier.clip_values[0], np.float32), sample_shape)
    hi = np.broadcast_to(np.asarray(classifier.clip_values[1], np.float32), sample_shape)
    return (
        torch.as_tensor(lo.copy(), device=classifier.device),
        torch.as_tensor(hi.copy(), device=classifier.device),
    )


def _passes(classifier: Any, eot_samples: int | None) -> int:
    """``eot_samples``; ``None``: the classifier's ``eot_samples`` if an integer > 1, else 1."""
    if eot_samples is None:
        m = getattr(classifier, "eot_samples", 1)
        is_int = isinstance(m, (int, np.integer)) and not isinstance(m, (bool, np.bool_))
        return int(m) if is_int and m > 1 else 1
    if int(eot_samples) < 1:
        raise ValueError(f"eot_samples must be a positive integer, got {eot_samples}.")
    return int(eot_samples)


def _preprocess(classifier: Any, x: torch.Tensor, differentiable: bool) -> tuple[torch.Tensor, Any]:
    """``(model input, x as NumPy or None)``. Framework preprocessing keeps the graph; NumPy
    preprocessing runs without gradient (its backward is ``_apply_preprocessing_gradient``)."""
    if classifier.all_framework_preprocessing:
        x_pre, _ = classifier._apply_preprocessing(x, y=None, fit=False, no_grad=not differentiable)
        return x_pre.to(torch.float32), None
    x_np = x.detach().cpu().numpy()
    x_pre, _ = classifier._apply_preprocessing(x_np, y=None, fit=False, no_grad=True)
    x_pre_t = torch.as_tensor(np.asarray(x_pre, dtype=np.float32), device=x.device)
    return x_pre_t, x_np


def _differentiable_input(
    classifier: Any, x_var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """For the leaf ``x_var``: ``(model input, the tensor to differentiate with respect to, x as
    NumPy or None)``; that tensor is ``x_var`` itself, or the NumPy preprocessing's output."""
    if classifier.all_framework_preprocessing:
        x_in, x_np = _preprocess(classifier, x_var, differentiable=True)
        return x_in, x_var, x_np
    x_in, x_np = _preprocess(classifier, x_var, differentiable=False)
    x_in = x_in.requires_grad_(True)
    return x_in, x_in, x_np


def _map_back(classifier: Any, grad: torch.Tensor, x_np: Any) -> torch.Tensor:
    """``grad`` at the preprocessed input, in the input's space: BPDA through NumPy
    preprocessing (``x_np`` its input), unchanged after framework preprocessing (``None``)."""
    if x_np is None:
        return grad
    g_np = classifier._apply_preprocessing_gradient(x_np, grad.cpu().numpy())
    return torch.as_tensor(np.asarray(g_np, dtype=np.float32), device=grad.device)


def mean_over_passes(
    classifier: Any,
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, Sequence[torch.Tensor]]],
    eot_samples: int | None = None,
    *,
    grad: bool = True,
    map_back: bool = True,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The mean over ``eot_samples`` passes of a per-pass quantity and of its input gradients.

    :param classifier: an ART ``PyTorchClassifier``; its preprocessing is applied to ``x``.
    :param x: float32 input (B, ...) on the classifier's device.
    :param fn: ``fn(logits) -> (value, objectives)``: from one pass's float32 logits (B, K), a
        per-pass quantity and scalar objectives to differentiate (FAB: the logits and
        ``sum_k S[b, k] f_k(x_b)`` for each selector ``S``; the view: its per-example losses and
        their sum).
    :param eot_samples: passes to average over; ``None``: the classifier's ``eot_samples``.
    :param grad: ``False``: ``value`` only (no graph; the objectives are not differentiated).
    :param map_back: map each pass's gradient back through NumPy preprocessing (BPDA) before
        averaging; ``False`` leaves the mean at the preprocessed input (the view maps it back once,
        as ART's ``loss_gradient``).
    :param forward: the logits of a model input; default ``classifier.model``.
    :return: ``(mean value (detached), [mean input gradient of each objective, x's shape]``;
        ``[]`` without ``grad``).
    """
    model = classifier.model if forward is None else forward
    m = _passes(classifier, eot_samples)
    value_sum: torch.Tensor | None = None
    grad_sums: list[torch.Tensor] = []
    with torch.set_grad_enabled(grad):
        for _ in range(m):
            if grad:
                x_in, wrt, x_np = _differentiable_input(
                    classifier, x.detach().clone().requires_grad_(True)
                )
            else:
                x_in, _ = _preprocess(classifier, x, differentiable=False)
            value, objectives = fn(model(x_in).float())
            if grad:
                for i, objective in enumerate(objectives):
                    (g,) = torch.autograd.grad(objective, wrt, retain_graph=i < len(objectives) - 1)
                    if map_back:
                        g = _map_back(classifier, g, x_np)
                    if i < len(grad_sums):
                        grad_sums[i] = grad_sums[i] + g
                    else:
                        grad_sums.append(g)
            value = value.detach()
            value_sum = value if value_sum is None else value_sum + value
    return value_sum / m, [g / m for g in grad_sums]  # type: ignore[operator]


def logits(classifier: Any, x: torch.Tensor, eot_samples: int | None = None) -> torch.Tensor:
    """Float32 logits of ``x`` (B, K), averaged over ``eot_samples`` passes; no graph."""
    mean, _ = mean_over_passes(classifier, x, lambda z: (z, ()), eot_samples, grad=False)
    return mean


def grad_of_mean_logits(
    classifier: Any,
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    eot_samples: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A function of the logits averaged over ``eot_samples`` passes, and its input gradient.

    :param fn: ``fn(logits) -> (value, objective)``: from the mean float32 logits (B, K), a
        value to return and the scalar objective to differentiate (C&W: the margin and
        ``sum_b c_b max(margin_b, 0)``).
    :return: ``(value, input gradient of the objective (x's shape))``, both detached. NumPy
        preprocessing: each pass's gradient is mapped back (BPDA) and the results summed.
    """
    model, m = classifier.model, _passes(classifier, eot_samples)
    with torch.enable_grad():
        x_var = x.detach().clone().requires_grad_(True)
        outs, wrt, x_nps = [], [], []
        for _ in range(m):
            x_in, at, x_np = _differentiable_input(classifier, x_var)
            wrt.append(at)
            x_nps.append(x_np)
            outs.append(model(x_in).float())
        mean_logits = outs[0] if m == 1 else torch.stack(outs).mean(0)  # (B, K)
        value, objective = fn(mean_logits)
        if classifier.all_framework_preprocessing:
            (grad,) = torch.autograd.grad(objective, x_var)
        else:  # BPDA through the NumPy preprocessing, pass by pass
            grad = torch.zeros_like(x)
            for g, x_np in zip(torch.autograd.grad(objective, wrt), x_nps, strict=True):
                grad += _map_back(classifier, g, x_np)
    return value.detach(), grad.detach().reshape(x.shape)
