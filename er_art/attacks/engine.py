"""The attack engine: one ``generate()`` for every er-art attack; each attack writes its search.

:class:`AttackEngine` is an ART ``EvasionAttack`` on any ART ``PyTorchClassifier`` (an
``ERClassifier``, a stock one, or an :class:`~er_art.attacks.view.AttackView`). Its
:meth:`~AttackEngine.generate` owns what every attack did in a loop of its own before:

- **parameter checks**: the attack's ``param_checks`` (:mod:`er_art.arg_checks`), run at
  construction and again by ``generate``;
- **inputs**: a float array of the estimator's input shape, used as float32;
- **labels**: ``y`` as ``(N,)`` integers or ``(N, K)`` rows (one-hot, or APGD-T's encoded target
  rows, :func:`~er_art.attacks.view.encode_targets`); ``None``: the model's own predictions (an
  attack whose labels are targets needs them);
- **device batching**: ``batch_size`` examples at a time moved to the estimator's device once
  (Square's random search takes all of them at once: ``whole_set``), back to the host once;
- **eval mode** (:func:`er_art.model_access.eval_mode`), every module's own mode restored after;
- **restarts**: ``_runs()`` runs, each on the examples still robust; ``_start`` says which are
  attacked at all and what comes back where no run replaces it, ``_replaces`` what a later run may
  replace (APGD / PGD: the first run everything, later ones successes; FAB and C&W: successes;
  Square: a lower margin);
- **logging** (INFO with ``verbose``, else DEBUG; never prints).

EOT stays where the gradients are taken: :func:`er_art.model_access.mean_over_passes` and the
attack view average over the estimator's ``eot_samples`` passes. An attack implements
:meth:`~AttackEngine.attack_batch` on device tensors, and optionally ``_runs``, ``_start``,
``_replaces``, ``_decode``.

    >>> class Noise(AttackEngine):
    ...     param_checks = {"eps": arg_checks.real(0.0)}
    ...     def attack_batch(self, b: Batch) -> Found:
    ...         x = into_box(b.x0 + self.eps * torch.randn_like(b.x0).sign(), b.box)
    ...         return x, self._scores(x).argmax(1) != b.rows.argmax(1), None
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator
from art.estimators.pytorch import PyTorchEstimator

from er_art import arg_checks, model_access

logger = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]  # (lo, hi) of one sample's shape


def into_box(x: torch.Tensor, box: Box | tuple[float, float] | None) -> torch.Tensor:
    """``x`` clamped into ``box = (lo, hi)`` (one sample's shape, or two floats); unchanged
    without a box."""
    if box is None:
        return x
    lo, hi = box
    if isinstance(lo, float):
        return x.clamp(min=lo, max=hi)
    return torch.maximum(torch.minimum(x, hi), lo)


@dataclass(frozen=True)
class Batch:
    """What one run of a search gets: device tensors of the examples it attacks."""

    x0: torch.Tensor  # (B, ...) clean inputs, float32 on the estimator's device
    rows: torch.Tensor  # (B, K) float32 label rows (the attack's _decode reads them)
    box: Box | None = None  # the clip_values as (lo, hi) of one sample's shape, or None
    run: int = 0  # which run of _runs() this is (0: the first)
    aux: torch.Tensor | None = None  # these examples' rows of Start.aux


# what a run finds: (x_adv (B, ...), broken (B,) bool, score (B,) or None)
Found = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


@dataclass
class Start:
    """Where a batch starts, before any run of the search."""

    x: torch.Tensor  # (B, ...) what comes back where no run replaces it
    robust: torch.Tensor  # (B,) bool: the examples the runs attack
    score: torch.Tensor | None = None  # (B,) what a later run must beat (Square: the margin)
    aux: torch.Tensor | None = None  # (B, ...) what the search needs of the clean batch


class AttackEngine(EvasionAttack):
    """The base of er-art's attacks: owns ``generate`` (see the module docstring).

    Subclasses set ``attack_params`` (ART's), ``param_checks`` and implement
    :meth:`attack_batch`."""

    _estimator_requirements = (BaseEstimator, ClassifierMixin, PyTorchEstimator)
    param_checks: ClassVar[dict[str, arg_checks.Check]] = {}
    sample_ndim: ClassVar[int | None] = None  # dimensions of one example the search needs
    whole_set: ClassVar[bool] = False  # one batch of every example (the search chunks itself)

    def _check_params(self) -> None:
        super()._check_params()
        arg_checks.check_params(self, self.param_checks)

    # ------------------------------------------------------------------ what an attack implements
    def attack_batch(self, batch: Batch) -> Found:
        """One run of the search on ``batch``: ``(x_adv, broken (B,), score (B,) or None)``."""
        raise NotImplementedError

    def _runs(self) -> int:
        """Runs of the search per batch, each on the examples the earlier ones left robust."""
        return 1

    def _start(self, x0: torch.Tensor, rows: torch.Tensor) -> Start:
        """Every example attacked, ``x0`` where no run replaces it."""
        return Start(x0.clone(), torch.ones(len(x0), dtype=torch.bool, device=x0.device))

    def _replaces(
        self, run: int, broken: torch.Tensor, score: torch.Tensor | None, old: torch.Tensor | None
    ) -> torch.Tensor:
        """Which results of run ``run`` replace what the batch holds: the successes."""
        return broken

    def _decode(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(labels (B,), targets (B,) or None)`` of label rows."""
        return rows.argmax(1), None

    def _labels_are_targets(self) -> bool:
        """``y`` holds targets (then ``generate`` needs it)."""
        return bool(getattr(self, "targeted", False))

    def _nothing_to_do(self) -> bool:
        """A budget of 0: ``x`` is its own answer."""
        eps = getattr(self, "eps", None)
        return eps is not None and float(eps) == 0

    @property
    def _p(self) -> float:
        """The attack's norm as a number (``math.inf`` or 2.0)."""
        return math.inf if arg_checks.norm_key(getattr(self, "norm", "inf")) == "inf" else 2.0

    def _level(self) -> int:
        return logging.INFO if getattr(self, "verbose", False) else logging.DEBUG

    # ------------------------------------------------------------------ model access
    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """What ``predict`` would return for ``x`` (B, K), as a tensor on ``x``'s device: the
        logits (through the preprocessing, averaged over ``eot_samples`` passes), or the
        classifier's ``predict_tensor`` when it has one (RSE's ensemble), then the
        postprocessing defences (NumPy; only when there are any)."""
        est = self.estimator
        forward = getattr(est, "predict_tensor", None)
        if forward is None:
            scores = model_access.logits(est, x)
        else:
            scores, _ = model_access.mean_over_passes(
                est, x, lambda z: (z.float(), ()), grad=False, forward=forward
            )
        if est.postprocessing_defences:
            post = est._apply_postprocessing(preds=scores.cpu().numpy(), fit=False)
            scores = torch.as_tensor(np.asarray(post, dtype=np.float32), device=x.device)
        return scores

    # ------------------------------------------------------------------ inputs and labels
    def _inputs(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"x must be a float array, got dtype {x.dtype}.")
        if self.sample_ndim is not None and x.ndim != self.sample_ndim + 1:
            raise ValueError(f"x must have shape (N, C, H, W), got {x.shape}.")
        if x.ndim < 2:
            raise ValueError(f"x must have shape (N, ...) with one example per row, got {x.shape}.")
        return x.astype(np.float32, copy=False)

    def _label_rows(self, x: np.ndarray, y: Any) -> np.ndarray:
        """Label rows ``(N, K)`` float32: one-hot of integer labels, or ``y``'s own rows."""
        nb_classes = self.estimator.nb_classes
        if y is None:
            if self._labels_are_targets():
                raise ValueError("A targeted attack needs its target labels y, got None.")
            logger.info(
                "%s: no labels given; attacking the model's own predictions", type(self).__name__
            )
            y = self._predictions(x)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == nb_classes:
            rows = y.astype(np.float32)
        elif y.ndim == 1:
            if len(y) and not (0 <= y.min() and y.max() < nb_classes):
                raise ValueError(
                    f"labels must lie in [0, {nb_classes - 1}], got {int(y.min())} to "
                    f"{int(y.max())}."
                )
            rows = np.eye(nb_classes, dtype=np.float32)[y.astype(np.int64)]
        else:
            raise ValueError(f"Labels must be (N,) or (N, {nb_classes}), got {y.shape}.")
        if len(rows) != len(x):
            raise ValueError(f"x has {len(x)} examples but y has {len(rows)} labels.")
        return rows

    def _predictions(self, x: np.ndarray) -> np.ndarray:
        """The model's labels for ``x`` (N,), ``batch_size`` at a time on the device."""
        size = int(getattr(self, "batch_size", 128))
        with model_access.eval_mode(self.estimator.model):
            preds = [
                self._scores(self._to_device(x[i : i + size])).argmax(1).cpu().numpy()
                for i in range(0, len(x), size)
            ]
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)

    def _to_device(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.estimator.device)

    # ------------------------------------------------------------------ the loop
    def attack_rows(
        self, x0: torch.Tensor, rows: torch.Tensor, box: Box | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every run of the search on one batch of device tensors (the caller holds eval mode):
        ``(x_adv, broken)``; ``broken`` is False where an example was never attacked."""
        start = self._start(x0, rows)
        best, robust, score = start.x, start.robust, start.score
        attacked = robust.clone()
        for run in range(self._runs()):
            todo = torch.nonzero(robust).squeeze(1)
            if not len(todo):
                break
            aux = None if start.aux is None else start.aux[todo]
            adv, ok, new = self.attack_batch(Batch(x0[todo], rows[todo], box, run, aux))
            take = self._replaces(run, ok, new, None if score is None else score[todo])
            best[todo[take]] = adv[take]
            if score is not None and new is not None:
                score[todo[take]] = new[take]
            robust[todo[ok]] = False
        return best, attacked & ~robust

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for ``x`` (N, ...): float32, of ``x``'s shape, inside the
        ``clip_values`` (and, for a budgeted attack, within ``eps`` of ``x``).

        :param y: labels (N,) or rows (N, K) (see the module docstring); ``None``: the model's
            predictions.
        """
        self._check_params()
        x = self._inputs(x)
        rows_all = self._label_rows(x, y)
        out = x.copy()
        if not len(x) or self._nothing_to_do():
            return out
        box = model_access.input_box(self.estimator, x.shape[1:])
        size = len(x) if self.whole_set else int(getattr(self, "batch_size", 128))
        start, broken = time.perf_counter(), 0
        with model_access.eval_mode(self.estimator.model):
            for lo in range(0, len(x), size):
                x0 = self._to_device(x[lo : lo + size])
                rows = torch.as_tensor(rows_all[lo : lo + size], device=x0.device)
                adv, ok = self.attack_rows(x0, rows, box)
                out[lo : lo + len(x0)] = adv.cpu().numpy()
                broken += int(ok.sum())
                logger.log(
                    self._level(),
                    "%s: %d of %d examples broken (%.1f s)",
                    type(self).__name__,
                    broken,
                    lo + len(x0),
                    time.perf_counter() - start,
                )
        return out
