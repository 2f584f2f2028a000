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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from er_art.arg_checks import is_int, is_number
from er_art.attacks.apgd import AutoPGD, into_box


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
    """

    attack_params = [p for p in AutoPGD.attack_params if p != "nb_random_init"] + [
        "num_random_init"
    ]

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
    ) -> None:
        if not (is_int(num_random_init) and num_random_init >= 0):
            raise ValueError(f"num_random_init must be an integer >= 0, got {num_random_init!r}.")
        self.num_random_init = num_random_init
        super().__init__(
            estimator,
            norm=norm,
            eps=eps,
            eps_step=eps / 4.0 if eps_step is None and is_number(eps) else eps_step,
            max_iter=max_iter,
            targeted=targeted,
            nb_random_init=max(1, int(num_random_init)),
            batch_size=batch_size,
            loss=loss,
            verbose=verbose,
        )

    def _runs(self) -> tuple[int, bool]:
        return max(1, int(self.num_random_init)), int(self.num_random_init) > 0

    def attack_batch(
        self,
        x0: torch.Tensor,
        rows: torch.Tensor,
        box: tuple[torch.Tensor, torch.Tensor] | None = None,
        random_start: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One PGD run on a batch of device tensors: ``(x_adv, broken)``, the last adversarial
        iterate where one was found, else the last iterate."""
        shape = (-1, *[1] * (x0.dim() - 1))
        labels, target = self._decode(rows)
        x_k = self._random_start(x0, box) if random_start else x0.clone()
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
        return torch.where(broken.reshape(shape), x_adv, x_k), broken
