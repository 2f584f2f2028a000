"""FAB: the Fast Adaptive Boundary attack (Linf, L2) for any ART ``PyTorchClassifier``.

[Croce & Hein, 2020] "Minimally distorted adversarial examples with a fast adaptive boundary
attack", ICML 2020 (https://arxiv.org/abs/1907.02044). FAB looks for the adversarial example of
minimal norm: at the current iterate it linearises the decision boundary, projects both the
iterate and the original point onto that hyperplane (inside the input box), steps to a convex
combination of the two projections (overshooting by ``eta``), and after every success steps back
towards the original point (``beta``). Run with a budget ``eps``, an example counts as broken only
when the smallest adversarial point FAB found is within ``eps``, exactly as AutoAttack uses it.

FAB-T (``targeted=True``, the default here) is the member of the *standard* AutoAttack: one run
per target class, the targets being the classes with the 2nd, 3rd, ... highest clean logit (9 of
them, or ``nb_classes - 1`` when fewer exist); an example stops being attacked once a run breaks
it. The labels given to :meth:`FABAttack.generate` are always the TRUE labels.

    >>> from er_art.attacks.fab import FABAttack
    >>> attack = FABAttack(classifier, eps=8 / 255)            # FAB-T, AutoAttack's settings
    >>> x_adv = attack.generate(x_test, y_test)                # y_test: true labels

Settings taken from fra31/auto-attack (``fab_base.py``, ``fab_pt.py``, ``autoattack.py``,
version ``"standard"``): 100 iterations, 1 restart, 9 target classes, ``alpha_max = 0.1``,
``eta = 1.05``, ``beta = 0.9``; restart 0 starts at the clean point and later restarts at a random
point at distance ``eps / 2`` (uniform direction rescaled to Linf norm ``eps / 2``, or a Gaussian
direction for L2). Deliberate differences from that implementation:

- the box is the estimator's ``clip_values`` (any bounds, per feature too; none without them),
  not a hard-coded ``[0, 1]``;
- randomness comes from torch's global generator (callers seed it), not a ``seed`` argument;
- the hyperplane projections are written as one breakpoint search shared by Linf and L2
  (:func:`project_to_hyperplane`); L1 is not offered;
- randomised models: with an estimator attribute ``eot_samples = M > 1``, logits and their
  input gradients are averaged over ``M`` forward passes.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from er_art import arg_checks, model_access
from er_art.attacks.engine import AttackEngine, Batch, Box, Found, Start, into_box


def lp_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    """Per-row ``p``-norm (``p`` = inf or 2) of ``v`` (B, ...): shape (B,)."""
    flat = v.reshape(len(v), -1)
    if math.isinf(p):
        return flat.abs().amax(dim=1)
    return flat.norm(dim=1)


def _dual_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    """Norm dual to the ``p``-norm over the last dimension (L1 for Linf, L2 for L2)."""
    return v.abs().sum(-1) if math.isinf(p) else v.norm(dim=-1)


def project_to_hyperplane(
    t: torch.Tensor,
    w: torch.Tensor,
    c: torch.Tensor,
    p: float,
    lo: torch.Tensor | None = None,
    hi: torch.Tensor | None = None,
) -> torch.Tensor:
    """The smallest step ``d`` in the ``p``-norm with ``w . d = c`` and ``lo <= t + d <= hi``.

    :param t: points (n, D); :param w: hyperplane normals (n, D); :param c: required change of
        ``w . x`` (n,); :param p: ``inf`` or ``2``; :param lo, hi: box bounds (D,) or ``None``.
    :return: ``d`` (n, D). Where the box cannot reach the hyperplane, the box corner that moves
        ``w . x`` furthest towards it.

    Going towards the hyperplane, coordinate ``i`` moves by ``min(lam * k_i, room_i)`` in the
    direction of ``sign(c w_i)``, with ``k_i = 1`` (Linf) or ``|w_i|`` (L2) and ``room_i`` the
    distance to the box face in that direction. The progress ``sum_i |w_i| min(lam k_i, room_i)``
    is piecewise linear and non-decreasing in ``lam``; its breakpoints are ``room_i / k_i``. Sorting
    them locates the linear piece that reaches ``|c|``, which gives ``lam`` in closed form.
    """
    sign_c = torch.where(c < 0, -1.0, 1.0).to(w.dtype)  # (n,)
    v = w * sign_c[:, None]  # oriented normal: need v . d = |c|
    target = c.abs()  # (n,)
    a = v.abs()  # (n, D)
    k = torch.ones_like(a) if math.isinf(p) else a  # growth rate of |d_i| per unit of lam
    slope_total = (a * k).sum(1)  # (n,)
    if lo is None or hi is None:
        lam = target / slope_total.clamp_min(1e-30)
        return torch.sign(v) * lam[:, None] * k
    room = torch.where(v > 0, hi - t, t - lo).clamp_min(0.0)  # (n, D)
    room = torch.where(a > 0, room, torch.zeros_like(room))
    brk = torch.where(k > 0, room / k.clamp_min(1e-30), torch.zeros_like(room))  # breakpoints
    brk_sorted, order = brk.sort(dim=1)
    a_s, k_s, room_s = a.gather(1, order), k.gather(1, order), room.gather(1, order)
    saturated = torch.cumsum(a_s * room_s, dim=1)  # progress of coordinates 0..j, all at the face
    growing = slope_total[:, None] - torch.cumsum(a_s * k_s, dim=1)  # slope of coordinates > j
    progress = saturated + brk_sorted * growing  # progress at breakpoint j (n, D)
    progress = torch.cummax(progress, dim=1).values  # monotone despite rounding
    j = torch.searchsorted(progress, target[:, None].contiguous()).squeeze(1)  # first >= |c|
    feasible = j < a.shape[1]
    jm1 = (j - 1).clamp_min(0)[:, None]
    before = torch.where(j > 0, saturated.gather(1, jm1).squeeze(1), torch.zeros_like(target))
    slope = torch.where(j > 0, growing.gather(1, jm1).squeeze(1), slope_total)
    lam = ((target - before) / slope.clamp_min(1e-30)).clamp_min(0.0)
    lam = torch.where(feasible, lam, torch.full_like(lam, math.inf))
    step = torch.minimum(lam[:, None] * k, room)
    step = torch.where(a > 0, step, torch.zeros_like(step))  # 0 * inf would be nan
    return torch.sign(v) * step


class FABAttack(AttackEngine):
    """Fast Adaptive Boundary attack; ``targeted=True`` is AutoAttack's FAB-T.

    :param estimator: an ART ``PyTorchClassifier`` (``ERClassifier`` or stock); its ``model``
        must return logits.
    :param norm: ``"inf"`` (or ``np.inf``) or ``2``: the norm minimised and bounded by ``eps``.
    :param eps: budget: an adversarial point counts only within ``eps``; also the random-restart
        radius (``eps / 2``).
    :param max_iter: FAB iterations per run (default 100).
    :param nb_random_init: runs per target; the first starts at ``x``, later ones at a random
        point (default 1).
    :param n_target_classes: targets of FAB-T, by clean logit rank (default 9; at most
        ``nb_classes - 1`` are used).
    :param targeted: ``True``: FAB-T over the top ``n_target_classes`` classes; ``False``:
        untargeted FAB (the closest linearised boundary at each step). The labels given to
        ``generate`` are the TRUE labels either way.
    :param alpha_max: largest weight of the original point's projection in a step (default 0.1).
    :param eta: overshoot of the projection step, >= 1 (default 1.05).
    :param beta: backward step towards the original point after a success, in (0, 1] (0.9).
    :param batch_size: examples attacked together (default 128).
    :param verbose: log progress at INFO (otherwise DEBUG).
    """

    attack_params = AttackEngine.attack_params + [
        "norm",
        "eps",
        "max_iter",
        "nb_random_init",
        "n_target_classes",
        "targeted",
        "alpha_max",
        "eta",
        "beta",
        "batch_size",
        "verbose",
    ]
    param_checks = {
        "norm": arg_checks.norm(),
        "eps": arg_checks.real(0.0),
        "max_iter": arg_checks.integer(1),
        "nb_random_init": arg_checks.integer(1),
        "n_target_classes": arg_checks.integer(1),
        "targeted": arg_checks.flag,
        "alpha_max": arg_checks.real(0.0, 1.0),
        "eta": arg_checks.real(1.0),
        "beta": arg_checks.real(0.0, 1.0, low_open=True),
        "batch_size": arg_checks.integer(1),
        "verbose": arg_checks.flag,
    }

    def __init__(
        self,
        estimator: Any,
        norm: int | float | str = "inf",
        eps: float = 0.3,
        max_iter: int = 100,
        nb_random_init: int = 1,
        n_target_classes: int = 9,
        targeted: bool = True,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator=estimator)
        self.norm = norm
        self.eps = eps
        self.max_iter = max_iter
        self.nb_random_init = nb_random_init
        self.n_target_classes = n_target_classes
        self.targeted = targeted
        self.alpha_max = alpha_max
        self.eta = eta
        self.beta = beta
        self.batch_size = batch_size
        self.verbose = verbose
        self._check_params()

    # ------------------------------------------------------------------ model access
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (B, K), averaged over ``eot_samples`` passes."""
        return model_access.logits(self.estimator, x)

    def _logits_and_grads(
        self, x: torch.Tensor, selectors: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, K) and, for each selector ``S`` (B, K), the input gradient of
        ``sum_k S[b, k] f_k(x_b)``: (B, len(selectors), D). Averaged over ``eot_samples``;
        gradients w.r.t. the input only (weights' ``.grad`` untouched)."""
        logits, grads = model_access.mean_over_passes(
            self.estimator, x, lambda out: (out, [(out * sel).sum() for sel in selectors])
        )
        return logits, torch.stack([g.reshape(len(x), -1) for g in grads], dim=1)  # (B, S, D)

    def _boundary(
        self, x1: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The linearised boundary at ``x1``: ``df`` (B,) and ``dg`` (B, D) such that the boundary
        is ``df + dg . (z - x1) = 0`` (``df < 0`` while ``x1`` is still on ``y``'s side)."""
        n, nb_classes = len(x1), self.estimator.nb_classes
        rows = torch.arange(n, device=x1.device)
        eye = torch.eye(nb_classes, device=x1.device)
        if target is not None:  # FAB-T: the boundary between the true class and the target
            logits, grads = self._logits_and_grads(x1, [eye[target] - eye[y]])
            return logits[rows, target] - logits[rows, y], grads[:, 0]
        # untargeted: the closest linearised boundary among all other classes
        logits, grads = self._logits_and_grads(
            x1, [eye[k].expand(n, -1) for k in range(nb_classes)]
        )
        df = logits - logits[rows, y][:, None]  # (B, K)
        dg = grads - grads[rows, y][:, None]  # (B, K, D)
        dist = df.abs() / (_dual_norm(dg, self._p) + 1e-12)
        dist[rows, y] = math.inf
        closest = dist.argmin(dim=1)
        return df[rows, closest], dg[rows, closest]

    # ------------------------------------------------------------------ the attack
    def _random_start(self, x0: torch.Tensor, box: Box | None) -> torch.Tensor:
        """A random point at distance ``eps / 2`` from ``x0`` (the reference's restart scale)."""
        if math.isinf(self._p):
            t = 2 * torch.rand(x0.shape, device=x0.device) - 1
        else:
            t = torch.randn(x0.shape, device=x0.device)
        scale = lp_norm(t, self._p).clamp_min(1e-12).reshape(-1, *[1] * (x0.dim() - 1))
        return into_box(x0 + 0.5 * float(self.eps) * t / scale, box)

    def _run(
        self,
        x0: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        random_start: bool,
        box: Box | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One FAB run: ``(smallest adversarial point found, its norm)``; ``(x0, inf)`` where
        none was found."""
        n, p = len(x0), self._p
        shape = (-1, *[1] * (x0.dim() - 1))
        flat0 = x0.reshape(n, -1)
        lo, hi = (box[0].reshape(-1), box[1].reshape(-1)) if box is not None else (None, None)
        best_norm = torch.full((n,), math.inf, device=x0.device)
        best = x0.clone()
        x1 = self._random_start(x0, box) if random_start else x0.clone()
        for _ in range(self.max_iter):
            df, w = self._boundary(x1, y, target)  # (B,), (B, D)
            flat1 = x1.reshape(n, -1)
            need_from_x1 = -df  # w . d1 must make df + w . d1 = 0
            need_from_x0 = -df + (w * (flat1 - flat0)).sum(1)
            d = project_to_hyperplane(
                torch.cat([flat1, flat0]),
                torch.cat([w, w]),
                torch.cat([need_from_x1, need_from_x0]),
                p,
                lo,
                hi,
            )
            d1, d2 = d[:n].reshape(x0.shape), d[n:].reshape(x0.shape)
            size = lp_norm(d, p).clamp_min(1e-8)
            a1, a2 = size[:n], size[n:]
            alpha = (a1 / (a1 + a2)).clamp(0.0, float(self.alpha_max)).reshape(shape)
            x1 = (1 - alpha) * (x1 + self.eta * d1) + alpha * (x0 + self.eta * d2)
            x1 = into_box(x1, box)
            is_adv = self._logits(x1).argmax(1) != y
            if is_adv.any():
                dist = lp_norm(x1 - x0, p)
                better = is_adv & (dist < best_norm)
                best_norm = torch.where(better, dist, best_norm)
                best = torch.where(better.reshape(shape), x1, best)
                x1 = torch.where(is_adv.reshape(shape), x0 + self.beta * (x1 - x0), x1)
        return best, best_norm

    def _labels_are_targets(self) -> bool:
        return False  # FAB-T's labels are the true classes; its targets come from the logits

    def _n_targets(self) -> int:
        return min(int(self.n_target_classes), self.estimator.nb_classes - 1)

    def _runs(self) -> int:
        """One run per target class (FAB-T; untargeted: one) and restart, targets outside."""
        return (self._n_targets() if self.targeted else 1) * int(self.nb_random_init)

    def _start(self, x0: torch.Tensor, rows: torch.Tensor) -> Start:
        """Only correctly classified examples are attacked; FAB-T's targets are the classes by
        clean logit, highest first (``aux``)."""
        y = rows.argmax(1)
        logits0 = self._logits(x0)
        robust = logits0.argmax(1) == y
        ranked = logits0.scatter(1, y[:, None], -math.inf).argsort(dim=1, descending=True)
        return Start(x0.clone(), robust, aux=ranked[:, : self._n_targets()])

    def attack_batch(self, batch: Batch) -> Found:
        """Run ``run`` (target ``run // nb_random_init``, restart ``run % nb_random_init``, the
        first from ``x0``): ``(the smallest adversarial point found, broken, None)``; broken is
        AutoAttack's acceptance: misclassified, within ``eps`` (and, here, inside the box)."""
        x0, box, run, aux = batch.x0, batch.box, batch.run, batch.aux
        y = batch.rows.argmax(1)
        target = None
        if self.targeted:
            assert aux is not None
            target = aux[:, run // int(self.nb_random_init)]
        restart = run % int(self.nb_random_init)
        cand, _ = self._run(x0, y, target, restart > 0, box)
        ok = self._logits(cand).argmax(1) != y
        ok &= lp_norm(cand - x0, self._p) <= float(self.eps)
        if box is not None:
            ok &= ((cand >= box[0]) & (cand <= box[1])).reshape(len(x0), -1).all(1)
        return cand, ok, None
