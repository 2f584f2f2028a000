"""Auto-PGD in PyTorch: APGD-CE, APGD-DLR and APGD-T's inner attack, on the estimator's device.

[Croce & Hein, 2020] "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (https://arxiv.org/abs/2003.01690). APGD is PGD with momentum
and a step size that adapts itself: starting at ``eps_step = 2 * eps``, at each checkpoint
``w_j = ceil(p_j * max_iter)`` (``p_0 = 0``, ``p_1 = 0.22``,
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``) an example's step is halved, and it restarts
from the best point it has seen, when

1. the loss went up in fewer than ``rho = 0.75`` of the steps since the last checkpoint, or
2. neither its step size nor its best loss changed since the last checkpoint.

A step is ``z = P(x_k + eta * s(grad))`` then ``x_{k+1} = P(x_k + alpha (z - x_k) +
(1 - alpha)(x_k - x_{k-1}))`` with momentum ``alpha = 0.75`` (none on the first step), ``s`` the
sign (Linf) or the L2-normalised gradient (L2), ``P`` the projection onto the eps-ball around ``x``
and the ``clip_values`` box.

    >>> from er_art.attacks.apgd import AutoPGD
    >>> attack = AutoPGD(classifier, eps=0.1, max_iter=100, loss="dlr")
    >>> x_adv = attack.generate(x_test, y_test)        # untargeted: y_test = true labels

The whole run is batched tensors on the estimator's device: ``generate`` moves each batch there
once, and each iteration is one forward and one backward pass of the model for the whole batch
with no transfer to the host and no host synchronisation. ART's ``AutoProjectedGradientDescent``
loops in NumPy and calls ``loss_gradient`` and ``compute_loss`` once each per iteration (each a
NumPy -> torch -> NumPy round trip). Follows Algorithm 1 of the paper and the authors' reference
implementation (fra31/auto-attack ``autopgd_base.py``) where the paper is silent: condition 1
counts the steps whose loss rose above the previous step's; after a halving the example goes on
from its best point with the momentum of the iterate it was at before (the reference's
bookkeeping); each restart starts at a uniformly random point
of the Linf ball (L2: a random point on the sphere of radius eps). Deliberate differences:

- **every adversarial iterate counts** (as in the reference, not in ART): an example is broken if
  *any* iterate is misclassified, and that iterate is returned, where ART returns the last iterate
  only (an example that crosses the boundary and comes back counts as robust there). Examples no
  iterate broke come back at their highest-loss point;
- losses are er-art's (:mod:`er_art.attacks.view`): ``"ce"``, ``"dlr"`` (untargeted; with
  ``targeted=True`` the labels are targets and the loss at the target is minimised, ART's
  convention) and ``"dlr-targeted"`` (AutoAttack's APGD-T loss: label rows from
  :func:`~er_art.attacks.view.encode_targets` carry the true class and the target; success is
  misclassification, as in AutoAttack);
- the box is the estimator's ``clip_values`` (none without them); randomness comes from torch's
  global generator on the device (callers seed it);
- randomised models: with an estimator attribute ``eot_samples = M > 1`` (er-art's
  ``AttackView``), loss, gradient and logits are averaged over ``M`` forward passes; NumPy
  preprocessing defences are differentiated by BPDA (those, and only those, leave the device at
  every pass).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from er_art import arg_checks, model_access
from er_art.arg_checks import is_number
from er_art.attacks import check_implementation
from er_art.attacks.engine import AttackEngine, Batch, Box, Found, into_box
from er_art.attacks.view import (
    LOSSES,
    attack_view,
    per_example_loss,
    targeted_dlr_loss,
    true_and_target,
)

MOMENTUM = 0.75  # alpha of the paper
RHO = 0.75  # condition 1: the loss must have risen in at least rho of the steps


def checkpoints(max_iter: int) -> list[int]:
    """The iterations ``w_1 < w_2 < ...`` (after ``w_0 = 0``) at which APGD checks its step size."""
    p = [0.0, 0.22]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if nxt > 1:
            break
        p.append(nxt)
    return sorted({math.ceil(q * max_iter) for q in p[1:]} - {0})


def build_apgd(classifier: Any, loss: str, implementation: str = "torch", **kwargs: Any) -> Any:
    """Linf APGD on ``loss`` through er-art's attack view of ``classifier`` (input-only gradients,
    EOT): :class:`AutoPGD` (``"torch"``) or ART's ``AutoProjectedGradientDescent`` (``"art"``).

    ``kwargs`` are ART's APGD arguments (``eps``, ``eps_step``, ``max_iter``, ``nb_random_init``,
    ``targeted``, ``batch_size``)."""
    check_implementation("apgd-t" if loss == "dlr-targeted" else f"apgd-{loss}", implementation)
    view = attack_view(classifier, loss)
    if implementation == "art":
        from art.attacks.evasion import AutoProjectedGradientDescent

        return AutoProjectedGradientDescent(
            view, norm=np.inf, loss_type=None, verbose=False, **kwargs
        )
    return AutoPGD(view, norm=np.inf, loss=loss, verbose=False, **kwargs)


class AutoPGD(AttackEngine):
    """Auto-PGD (Linf or L2) on er-art's attack losses, batched on the estimator's device.

    :param estimator: an ART ``PyTorchClassifier`` (``ERClassifier``, stock, or an ``AttackView``);
        its ``model`` must return logits.
    :param norm: ``"inf"`` (or ``np.inf``) or ``2``.
    :param eps: the budget in ``norm``.
    :param eps_step: the initial step size (default ``2 * eps``, the paper's).
    :param max_iter: iterations per restart (default 100, the paper's).
    :param targeted: the labels are targets (``"ce"`` / ``"dlr"`` only): minimise the loss at the
        target; success is reaching it.
    :param nb_random_init: restarts, each from a random point and only on the examples the earlier
        ones left robust (default 1).
    :param batch_size: examples attacked together (default 128).
    :param loss: ``"ce"``, ``"dlr"`` or ``"dlr-targeted"`` (see the module docstring).
    :param verbose: log progress at INFO (otherwise DEBUG).
    """

    attack_params = AttackEngine.attack_params + [
        "norm",
        "eps",
        "eps_step",
        "max_iter",
        "targeted",
        "nb_random_init",
        "batch_size",
        "loss",
        "verbose",
    ]
    param_checks = {
        "norm": arg_checks.norm(),
        "eps": arg_checks.real(0.0),
        "eps_step": arg_checks.real(0.0),
        "max_iter": arg_checks.integer(1),
        "nb_random_init": arg_checks.integer(1),
        "batch_size": arg_checks.integer(1),
        "targeted": arg_checks.flag,
        "verbose": arg_checks.flag,
    }

    def __init__(
        self,
        estimator: Any,
        norm: int | float | str = np.inf,
        eps: float = 0.3,
        eps_step: float | None = None,
        max_iter: int = 100,
        targeted: bool = False,
        nb_random_init: int = 1,
        batch_size: int = 128,
        loss: str = "ce",
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator=estimator)
        self.norm = norm
        self.eps = eps
        self.eps_step = 2.0 * eps if eps_step is None and is_number(eps) else eps_step
        self.max_iter = max_iter
        self._targeted = targeted
        self.nb_random_init = nb_random_init
        self.batch_size = batch_size
        self.loss = loss
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        if self.loss not in LOSSES:
            raise ValueError(f"Unknown APGD loss {self.loss!r}; accepted: {', '.join(LOSSES)}.")
        if self.loss == "dlr-targeted" and self.targeted:
            raise ValueError(
                "The dlr-targeted loss carries its targets in the label rows; use targeted=False."
            )
        needed = {"ce": 2, "dlr": 3, "dlr-targeted": 4}[self.loss]  # DLR divides by z_pi3 etc.
        if self.estimator.nb_classes < needed:
            raise ValueError(
                f"The {self.loss} loss needs at least {needed} classes, "
                f"got {self.estimator.nb_classes}."
            )

    # ------------------------------------------------------------------ labels and losses
    def _labels_are_targets(self) -> bool:
        return bool(self.targeted) or self.loss == "dlr-targeted"

    def _decode(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(labels (B,), targets (B,) or None)`` of label rows, once per batch (no host sync in
        the iterations): labels are the targets when ``targeted``, else the true classes."""
        if self.loss == "dlr-targeted":
            true, target = true_and_target(rows)
            if target is None:
                raise ValueError("The dlr-targeted loss needs encoded label rows (encode_targets).")
            return true, target
        return rows.argmax(1), None

    def _objective(
        self, logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """The per-example quantity APGD maximises."""
        if target is not None:
            return targeted_dlr_loss(logits.float(), labels, target)
        loss = per_example_loss(self.loss, logits, labels)
        return -loss if self.targeted else loss  # targeted: minimise the loss at the target

    def _evaluate(
        self, x: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None, grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(objective (B,), input gradient of its sum (None without grad), success (B,))``,
        EOT-averaged. Success: the prediction is the target (``targeted``), else not the true
        class."""
        nb_classes = self.estimator.nb_classes

        def fn(logits: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            obj = self._objective(logits, labels, target)
            return torch.cat([obj.detach()[:, None], logits.detach()], 1), [obj.sum()]

        value, grads = model_access.mean_over_passes(self.estimator, x, fn, grad=grad)
        obj, pred = value[:, 0], value[:, 1 : 1 + nb_classes].argmax(1)
        ok = (pred == labels) if self.targeted else (pred != labels)
        return obj, (grads[0] if grad else None), ok

    # ------------------------------------------------------------------ geometry
    def _step_direction(self, grad: torch.Tensor) -> torch.Tensor:
        grad = torch.nan_to_num(grad, nan=0.0)  # as ART: a NaN gradient entry moves nothing
        if math.isinf(self._p):
            return grad.sign()
        norm = grad.reshape(len(grad), -1).norm(dim=1).clamp_min(1e-12)
        return grad / norm.reshape(-1, *[1] * (grad.dim() - 1))

    def _project(self, x_new: torch.Tensor, x0: torch.Tensor, box: Box | None) -> torch.Tensor:
        """``x_new`` projected onto the eps-ball around ``x0``, then into the box."""
        delta = x_new - x0
        eps = float(self.eps)
        if math.isinf(self._p):
            delta = delta.clamp(-eps, eps)
        else:
            norm = delta.reshape(len(delta), -1).norm(dim=1).clamp_min(1e-12)
            scale = (eps / norm).clamp(max=1.0).reshape(-1, *[1] * (delta.dim() - 1))
            delta = delta * scale
        return into_box(x0 + delta, box)

    def _random_start(self, x0: torch.Tensor, box: Box | None) -> torch.Tensor:
        eps = float(self.eps)
        if math.isinf(self._p):
            t = (2 * torch.rand(x0.shape, device=x0.device) - 1) * eps
        else:
            t = torch.randn(x0.shape, device=x0.device)
            norm = t.reshape(len(t), -1).norm(dim=1).clamp_min(1e-12)
            t = t * (eps / norm).reshape(-1, *[1] * (t.dim() - 1))
        return self._project(x0 + t, x0, box)

    # ------------------------------------------------------------------ the attack
    def attack_batch(self, batch: Batch) -> Found:
        """One APGD run from a random start on a batch of device tensors (see
        :meth:`AttackEngine.attack_batch`): ``(x_adv, broken, None)``, the last adversarial
        iterate where one was found, else the highest-objective point."""
        x0, rows, box, run = batch.x0, batch.rows, batch.box, batch.run
        n = len(x0)
        shape = (-1, *[1] * (x0.dim() - 1))
        labels, target = self._decode(rows)
        eta = torch.full((n,), float(self.eps_step), device=x0.device)
        x_k = self._random_start(x0, box) if self._random_start_on(run) else x0.clone()
        f_k, g_k, ok = self._evaluate(x_k, labels, target)
        x_adv, broken = x_k.clone(), ok.clone()
        x_max, f_max, g_max = x_k.clone(), f_k.clone(), g_k.clone()
        x_prev = x_k.clone()
        # checkpoint bookkeeping (condition 1 counts rises; condition 2 compares to the last one)
        rises = torch.zeros(n, device=x0.device)
        eta_last, f_max_last = eta.clone(), f_max.clone()
        marks, last_mark = checkpoints(int(self.max_iter)), 0
        for k in range(int(self.max_iter)):
            z = self._project(x_k + eta.reshape(shape) * self._step_direction(g_k), x0, box)
            if k == 0:
                x_next = z
            else:
                x_next = self._project(
                    x_k + MOMENTUM * (z - x_k) + (1 - MOMENTUM) * (x_k - x_prev), x0, box
                )
            f_next, g_next, ok = self._evaluate(x_next, labels, target)
            x_adv = torch.where(ok.reshape(shape), x_next, x_adv)
            broken |= ok
            rises += (f_next > f_k).float()
            better = f_next > f_max
            x_max = torch.where(better.reshape(shape), x_next, x_max)
            g_max = torch.where(better.reshape(shape), g_next, g_max)
            f_max = torch.where(better, f_next, f_max)
            x_prev, x_k, f_k, g_k = x_k, x_next, f_next, g_next
            if k + 1 in marks:
                mark = k + 1
                cond1 = rises < RHO * (mark - last_mark)
                cond2 = (eta == eta_last) & (f_max == f_max_last)
                halve = cond1 | cond2
                eta = torch.where(halve, eta / 2, eta)
                x_k = torch.where(halve.reshape(shape), x_max, x_k)
                g_k = torch.where(halve.reshape(shape), g_max, g_k)
                f_k = torch.where(halve, f_max, f_k)
                rises.zero_()
                eta_last, f_max_last, last_mark = eta.clone(), f_max.clone(), mark
        return torch.where(broken.reshape(shape), x_adv, x_max), broken, None

    def _runs(self) -> int:
        return int(self.nb_random_init)

    def _random_start_on(self, run: int) -> bool:
        """Each run starts at a random point of the ball."""
        return True

    def _replaces(self, run: int, broken: Any, score: Any, old: Any) -> torch.Tensor:
        """The first run's points all (the highest-objective point where none broke), later
        runs' successes only."""
        return torch.ones_like(broken) if run == 0 else broken
