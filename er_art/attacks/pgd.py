"""PGD in PyTorch (Linf or L2) on the estimator's device, for evaluation: the ``pgd`` plugin's
default.

[Madry et al., 2018] "Towards Deep Learning Models Resistant to Adversarial Attacks"
(https://arxiv.org/abs/1706.06083). From a uniformly random point of the eps-ball (or from ``x``
with ``num_random_init=0``), ``max_iter`` steps ``x <- P(x + eps_step * s(grad))`` of the
attack's loss, ``s`` the sign (Linf) or the L2-normalised gradient, ``P`` the projection onto the
ball and the ``clip_values`` box.

    >>> from er_art.attacks.pgd import PGD
    >>> x_adv = PGD(attack_view(classifier), eps=0.1, eps_step=0.025, max_iter=20).generate(x, y)

The same arithmetic as ART's ``ProjectedGradientDescentPyTorch`` (the step, then the box, then the
ball), with what :class:`er_art.attacks.apgd.AutoPGD` gives every er-art gradient attack: the
batch is moved
to the device once and every iteration is one forward and one backward pass with no host transfer
and no host synchronisation (ART's iteration reads the GPU back for a NaN test, and converts each
batch and its random start from NumPy), input-only gradients averaged over ``eot_samples`` passes,
the random start drawn by torch on the device (callers seed it), restarts only on the examples the
earlier ones left robust. One deliberate difference: **every adversarial iterate counts**, as in
APGD: an example is broken if any iterate is misclassified, and that iterate is returned (ART's PGD
returns the last iterate; examples no iterate broke come back at it here too). A point within the
budget that the model misclassifies is an adversarial example wherever the search found it.

``keep="last"`` is the training PGD (``er-pgd``, ``madry``, ``ecla-pgd`` through
:func:`er_art.training.adversarial.generate_on_device`) and ART's semantics: the LAST iterate, the
gradient of the estimator's own ``loss_gradient`` (its loss, eval mode, preprocessing included),
ART's random start (uniform in the ball, drawn by torch on the device) and ART's projection
``sign(d) * min(|d|, eps)``, optionally under bfloat16 autocast (``amp``); Linf and the
cross-entropy only. :meth:`PGD.generate_on_device` takes and returns device tensors, with no host
round trip and no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from er_art import arg_checks, model_access
from er_art.arg_checks import is_number, norm_key
from er_art.attacks.apgd import AutoPGD
from er_art.attacks.engine import Batch, Box, Found, into_box
from er_art.training.algorithm import autocast

KEEP = ("every", "last")  # every adversarial iterate counts (evaluation) / the last iterate (ART)


class PGD(AutoPGD):
    """PGD with a fixed step (see the module docstring); ART's ``ProjectedGradientDescent``
    parameter names.

    :param estimator: an ART ``PyTorchClassifier`` (``ERClassifier``, stock, or an ``AttackView``).
    :param norm: ``"inf"`` (or ``np.inf``) or ``2``.
    :param eps: the budget; :param eps_step: the step (default ``eps / 4``).
    :param max_iter: steps per run (default 100, ART's).
    :param targeted: the labels are targets: descend the loss at the target.
    :param num_random_init: runs from random starts, each on the examples the earlier ones left
        robust; 0: one run from ``x`` (default 0, ART's).
    :param batch_size: examples attacked together (default 32, ART's).
    :param loss: ``"ce"`` (Madry et al.'s), ``"dlr"`` or ``"dlr-targeted"``.
    :param keep: ``"every"`` (default): every adversarial iterate counts; ``"last"``: the last
        iterate, ART's arithmetic (training; Linf, ``"ce"``).
    :param amp: ``keep="last"``: the forward and backward passes under bfloat16 autocast.
    """

    attack_params = [p for p in AutoPGD.attack_params if p != "nb_random_init"] + [
        "num_random_init",
        "keep",
        "amp",
    ]
    param_checks = {
        **{k: v for k, v in AutoPGD.param_checks.items() if k != "nb_random_init"},
        "num_random_init": arg_checks.integer(0),
        "amp": arg_checks.flag,
    }

    def __init__(
        self,
        estimator: Any,
        norm: int | float | str = np.inf,
        eps: float = 0.3,
        eps_step: float | None = None,
        max_iter: int = 100,
        targeted: bool = False,
        num_random_init: int = 0,
        batch_size: int = 32,
        loss: str = "ce",
        verbose: bool = False,
        keep: str = "every",
        amp: bool = False,
    ) -> None:
        self.num_random_init = num_random_init
        self.keep = keep
        self.amp = amp
        super().__init__(
            estimator,
            norm=norm,
            eps=eps,
            eps_step=eps / 4.0 if eps_step is None and is_number(eps) else eps_step,
            max_iter=max_iter,
            targeted=targeted,
            nb_random_init=1,
            batch_size=batch_size,
            loss=loss,
            verbose=verbose,
        )

    def _check_params(self) -> None:
        super()._check_params()
        if self.keep not in KEEP:
            raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {self.keep!r}.")
        if self.keep == "last" and (norm_key(self.norm) != "inf" or self.loss != "ce"):
            raise ValueError(
                f"keep='last' (ART's PGD) runs the Linf norm on the ce loss, got "
                f"norm={self.norm!r}, loss={self.loss!r}."
            )

    def _runs(self) -> int:
        return max(1, int(self.num_random_init))

    def _random_start_on(self, run: int) -> bool:
        return int(self.num_random_init) > 0

    def attack_batch(self, batch: Batch) -> Found:
        """One PGD run on a batch of device tensors: ``(x_adv, broken, None)``; ``keep="every"``:
        the last adversarial iterate where one was found, else the last iterate."""
        x0, rows, box, run = batch.x0, batch.rows, batch.box, batch.run
        labels, target = self._decode(rows)
        if self.keep == "last":
            x_k = self._last_iterate(x0, labels, box, self._random_start_on(run))
            _, _, ok = self._evaluate(x_k, labels, target, grad=False)
            return x_k, ok, None
        shape = (-1, *[1] * (x0.dim() - 1))
        x_k = self._random_start(x0, box) if self._random_start_on(run) else x0.clone()
        steps = int(self.max_iter)
        _, g_k, ok = self._evaluate(x_k, labels, target, grad=steps > 0)
        x_adv, broken = x_k.clone(), ok.clone()
        for k in range(steps):
            # ART's order: the step, into the box, onto the ball
            x_k = into_box(x_k + float(self.eps_step) * self._step_direction(g_k), box)
            x_k = self._project(x_k, x0, None)
            _, g_k, ok = self._evaluate(x_k, labels, target, grad=k < steps - 1)
            x_adv = torch.where(ok.reshape(shape), x_k, x_adv)
            broken |= ok
        return torch.where(broken.reshape(shape), x_adv, x_k), broken, None

    # ------------------------------------------------------------------ keep="last": ART's PGD
    def _last_iterate(
        self,
        x0: torch.Tensor,
        labels: torch.Tensor,
        box: Box | tuple[float, float] | None,
        random_start: bool,
    ) -> torch.Tensor:
        """ART's ``ProjectedGradientDescentPyTorch`` iteration (1.20.1) without its host round
        trips: the loss gradient, NaN entries set to 0, a step of ``eps_step * sign``, into the
        box, onto the ball ``sign(d) * min(|d|, eps)``; the last iterate."""
        gradient = self._loss_gradient(labels.long())
        eps, step = float(self.eps), float(self.eps_step) * (-1.0 if self.targeted else 1.0)
        x_init = x0.detach()
        x_adv = x_init
        if random_start:
            x_adv = into_box(x_init + torch.empty_like(x_init).uniform_(-eps, eps), box)
        for _ in range(int(self.max_iter)):
            with autocast(x_init.device, bool(self.amp)):
                grad = gradient(x_adv)
            direction = torch.nan_to_num(grad.sign(), nan=0.0)  # ART sets NaN gradients to 0
            x_adv = into_box(x_adv + step * direction, box)
            delta = x_adv - x_init
            x_adv = delta.sign() * delta.abs().clamp(max=eps) + x_init
        return x_adv.detach().to(x0.dtype)

    def _loss_gradient(self, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> grad_x loss(f(x), labels)`` as the estimator's ``loss_gradient`` computes it
        (eval mode, preprocessing included), without reading the device back.

        An ERClassifier takes the integer labels (one-hot targets would cost its probability-label
        test, ``torch.equal``, a read-back, at every step). For a stock ``PyTorchClassifier`` with
        PyTorch preprocessing the gradient is taken here with respect to the input only (ART's
        also fills every weight gradient and runs the same test); with NumPy defences, ART's."""
        from er_art.models.er_classifier import ERClassifier

        est = self.estimator
        if isinstance(est, ERClassifier):
            return lambda x: est.loss_gradient(x, labels)
        if not est.all_framework_preprocessing or not hasattr(est, "_loss"):
            one_hot = F.one_hot(labels, est.nb_classes).to(torch.float32)
            return lambda x: est.loss_gradient(x, one_hot)

        def gradient(x: torch.Tensor) -> torch.Tensor:
            est.model.eval()  # ART's loss_gradient(training_mode=False)
            x_grad = x.detach().clone().requires_grad_(True)
            x_pre, _ = est._apply_preprocessing(x_grad, None, fit=False, no_grad=False)
            (grad,) = torch.autograd.grad(est._loss(est.model(x_pre), labels), x_grad)
            return grad

        return gradient

    def generate_on_device(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial examples for the batch ``x`` (on the estimator's device) with integer
        labels ``y`` (B,), as a tensor on the same device; the model in eval mode. With one run
        (``num_random_init <= 1``) nothing is read back to the host."""
        self._check_params()
        shape = tuple(x.shape[1:])
        with model_access.eval_mode(self.estimator.model):
            if self._runs() == 1 and self.keep == "last":
                box = model_access.input_box(self.estimator, shape, scalars=True)
                return self._last_iterate(x, y.long(), box, self._random_start_on(0))
            rows = F.one_hot(y.long(), self.estimator.nb_classes).to(torch.float32)
            box = model_access.input_box(self.estimator, shape)
            adv, _ = self.attack_rows(x.detach().to(torch.float32), rows, box)
        return adv.to(x.dtype)
