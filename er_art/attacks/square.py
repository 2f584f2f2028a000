"""Square Attack (Linf) in PyTorch: a random search on the device of any ART ``PyTorchClassifier``.

[Andriushchenko et al., 2020] "Square Attack: a query-efficient black-box adversarial attack via
random search", ECCV 2020 (https://arxiv.org/abs/1912.00049). A score-based black-box attack: it
reads the model's logits only, never a gradient. Per example it minimises the margin
``z_y - max_{j != y} z_j`` over the Linf ball of radius ``eps`` (inside ``clip_values``) by random
search: start from vertical stripes of ``+-eps``; at each iteration move a random square window of
the current perturbation to ``+-eps`` (one random sign per channel) and keep the move when the
margin falls. An example is broken (and stops being queried) once its margin is below 0.

    >>> from er_art.attacks.square import SquareAttackTorch
    >>> torch.manual_seed(0)
    >>> attack = SquareAttackTorch(classifier, eps=0.1, max_iter=1000)
    >>> x_adv = attack.generate(x_test, y_test)              # y_test: true labels

Every iteration runs as tensors on the estimator's device: ``x`` becomes a tensor once per
:meth:`SquareAttackTorch.generate` call, and each iteration is one forward pass (in chunks of
``batch_size``) of the examples not yet broken, where ART's ``SquareAttack`` runs its loop in NumPy
and goes through ``estimator.predict`` (NumPy -> torch -> NumPy) three times per iteration.

Follows the reference implementation (fra31/auto-attack, ``autoattack/square.py``, Linf,
untargeted, margin loss): the stripe initialisation (clipped to the box), the schedule of the
fraction ``p`` of pixels changed (``p_init`` halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and
8000 of 10000 iterations, rescaled to ``max_iter``), windows of side
``max(round(sqrt(p * H * W)), 1)``, ``+-2 eps`` per channel added to the window and the result
projected onto the eps ball and the box, a move accepted when the margin decreases (or the example
becomes misclassified), only the unbroken examples queried, each restart run afresh on the examples
still robust. Deliberate differences:

- one window and one sign vector **per example** per iteration (the paper's original code,
  max-andr/square-attack, does this; the auto-attack port and ART's ``SquareAttack`` draw one
  window for the whole batch);
- a proposal that would leave its window unchanged (the window already sits at the drawn signs)
  has one channel's sign flipped, so no query is spent on a point already tried; the original code
  redraws the signs until the window changes, the auto-attack port and ART spend the query;
- the window side is capped at ``min(H, W) - 1`` (ART's cap) and its corner is drawn uniformly
  over all ``H - s + 1`` positions (the reference's ``randint(0, H - s)`` never reaches the last
  one, so the bottom row and right column are never in a large window);
- the box is the estimator's ``clip_values`` (any bounds, per feature too; none without them), not
  a hard-coded ``[0, 1]``;
- broken means a margin below 0 (the reference stops at ``<= 0``; a tie is not a misclassification
  for ``argmax``);
- examples the search does not break come back as the lowest-margin point found over all restarts
  (as ART's ``SquareAttack`` returns its last iterate; the reference returns the clean ``x``), so a
  randomised model is scored at the point closest to its decision boundary; examples already
  misclassified are not attacked and come back unchanged;
- randomness comes from torch's global generator (callers seed it with ``torch.manual_seed``),
  drawn on the device, not a ``seed`` argument;
- the scores are the logits of ``estimator.model`` (through the estimator's preprocessing), or
  the estimator's ``predict_tensor`` where it has one (RSE's ensemble, what its ``predict``
  returns); ART's NumPy postprocessing defences, if any, are applied to them (a round trip to the
  host per query in that case only);
- randomised models: with an estimator attribute ``eot_samples = M > 1`` (er-art's
  ``AttackView``), the margin is taken on scores averaged over ``M`` forward passes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from er_art import arg_checks
from er_art.attacks.engine import AttackEngine, Batch, Found, Start

# The reference's p schedule: on a 10000-iteration scale, p_init is divided by 2 ** k after the
# k-th of these iterations.
_P_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init: float, i_iter: int, max_iter: int) -> float:
    """The fraction of pixels changed at iteration ``i_iter`` (0-based) of ``max_iter``: the
    reference's schedule, rescaled from 10000 iterations (``it = int(i_iter / max_iter * 10000)``).
    """
    it = int(i_iter / max_iter * 10000)
    halvings = sum(it > step for step in _P_SCHEDULE)
    return p_init / 2**halvings


def window_side(p: float, height: int, width: int) -> int:
    """The side of the square window for the fraction ``p``: ``max(round(sqrt(p H W)), 1)``,
    capped at ``min(H, W) - 1`` (at least 1)."""
    side = max(int(round(math.sqrt(p * height * width))), 1)
    return max(min(side, min(height, width) - 1), 1)


class SquareAttackTorch(AttackEngine):
    """Square Attack, Linf, untargeted, batched in PyTorch on the estimator's device.

    :param estimator: an ART ``PyTorchClassifier`` (``ERClassifier`` or stock); its ``model``
        must return logits.
    :param norm: the norm; only Linf (``np.inf``, the default, or ``"inf"``) is implemented.
    :param eps: Linf budget (default 0.3, ART's).
    :param max_iter: iterations (queries) per restart (default 100).
    :param p_init: initial fraction of pixels in a window (default 0.8).
    :param nb_restarts: runs of the search, each on the examples still robust (default 1).
    :param batch_size: examples per forward pass (default 128).
    :param verbose: log progress at INFO (otherwise DEBUG).
    """

    attack_params = AttackEngine.attack_params + [
        "norm",
        "eps",
        "max_iter",
        "p_init",
        "nb_restarts",
        "batch_size",
        "verbose",
    ]
    param_checks = {
        "norm": arg_checks.norm(("inf",), "SquareAttackTorch"),
        "eps": arg_checks.real(0.0),
        "p_init": arg_checks.real(0.0, 1.0, low_open=True),
        "max_iter": arg_checks.integer(1),
        "nb_restarts": arg_checks.integer(1),
        "batch_size": arg_checks.integer(1),
        "verbose": arg_checks.flag,
    }
    sample_ndim = 3  # (C, H, W): square windows
    whole_set = True  # one random search over every example; batch_size chunks the forwards

    def __init__(
        self,
        estimator: Any,
        norm: int | float | str = np.inf,
        eps: float = 0.3,
        max_iter: int = 100,
        p_init: float = 0.8,
        nb_restarts: int = 1,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator=estimator)
        self.norm = norm
        self.eps = eps
        self.max_iter = max_iter
        self.p_init = p_init
        self.nb_restarts = nb_restarts
        self.batch_size = batch_size
        self.verbose = verbose
        self._check_params()

    def _margin(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``z_y - max_{j != y} z_j`` (B,) of the scores of ``x``, ``batch_size`` at a time."""
        parts = []
        for b in range(0, len(x), self.batch_size):
            z = self._scores(x[b : b + self.batch_size])
            lab = label[b : b + self.batch_size]
            own = z.gather(1, lab[:, None]).squeeze(1)
            other = z.scatter(1, lab[:, None], -math.inf).amax(dim=1)
            parts.append(own - other)
        if not parts:
            return torch.empty(0, device=x.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # ------------------------------------------------------------------ the attack
    def _random_signs(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Uniform +-1 (float32) of ``shape``, drawn on ``device``."""
        return torch.randint(0, 2, shape, device=device).float().mul_(2).sub_(1)

    def _single_run(
        self, x: torch.Tensor, label: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run of the search on ``x`` (n, C, H, W) inside ``[lo, hi]`` (the eps ball
        intersected with the box): ``(best point, its margin)`` per example."""
        n, c, h, w = x.shape
        device, eps = x.device, float(self.eps)
        # vertical stripes: one sign per channel and column
        x_best = torch.clamp(x + eps * self._random_signs((n, c, 1, w), device), lo, hi)
        margin_best = self._margin(x_best, label)
        rows = torch.arange(h, device=device)
        cols = torch.arange(w, device=device)
        for i_iter in range(self.max_iter):
            idx = (margin_best >= 0).nonzero().squeeze(1)  # the one host sync per iteration
            k = idx.numel()
            if k == 0:
                break
            x_cur, lo_cur, hi_cur = x_best[idx], lo[idx], hi[idx]
            side = window_side(p_selection(self.p_init, i_iter, self.max_iter), h, w)
            top = torch.randint(0, h - side + 1, (k, 1), device=device)
            left = torch.randint(0, w - side + 1, (k, 1), device=device)
            in_rows = (rows >= top) & (rows < top + side)  # (k, H)
            in_cols = (cols >= left) & (cols < left + side)  # (k, W)
            window = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (k, 1, H, W)
            signs = self._random_signs((k, c, 1, 1), device)
            x_new = torch.where(window, torch.clamp(x_cur + 2 * eps * signs, lo_cur, hi_cur), x_cur)
            # a window already at the drawn signs changes nothing: flip one channel's sign there
            moved = (x_new != x_cur) & window  # (k, C, H, W)
            unchanged = ~moved.flatten(1).any(1)  # (k,)
            if c == 1:
                flip = unchanged[:, None, None, None]
            else:
                channel = torch.randint(0, c, (k,), device=device)
                flip = unchanged[:, None, None, None] & (
                    torch.arange(c, device=device)[None, :, None, None]
                    == channel[:, None, None, None]
                )
            signs = torch.where(flip, -signs, signs)
            x_new = torch.where(window, torch.clamp(x_cur + 2 * eps * signs, lo_cur, hi_cur), x_cur)
            margin_new = self._margin(x_new, label[idx])
            margin_cur = margin_best[idx]
            improved = (margin_new < margin_cur) | (margin_new < 0)
            margin_best[idx] = torch.where(improved, margin_new, margin_cur)
            x_best[idx] = torch.where(improved[:, None, None, None], x_new, x_cur)
        return x_best, margin_best

    def _runs(self) -> int:
        return int(self.nb_restarts)

    def _start(self, x0: torch.Tensor, rows: torch.Tensor) -> Start:
        """Examples already misclassified (margin below 0) are not attacked."""
        margin = self._margin(x0, rows.argmax(1))
        return Start(x0.clone(), margin >= 0, score=margin)

    def _replaces(self, run: int, broken: Any, score: Any, old: Any) -> torch.Tensor:
        """A run's point replaces the batch's where its margin is lower."""
        return score < old

    def attack_batch(self, batch: Batch) -> Found:
        """One run of the search on ``x0`` (n, C, H, W): ``(best point, broken, its margin)``."""
        x0, box = batch.x0, batch.box
        eps = float(self.eps)
        lo, hi = x0 - eps, x0 + eps
        if box is not None:
            lo, hi = torch.maximum(lo, box[0]), torch.minimum(hi, box[1])
        x_run, margin = self._single_run(x0, batch.rows.argmax(1), lo, hi)
        return x_run, margin < 0, margin
