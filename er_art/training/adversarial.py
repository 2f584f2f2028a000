"""``ERAdversarialTrainer``: PGD min-max training of the ER-Classifier as an ART ``Trainer``.

Each batch: adversarial examples from PGD (L-inf, one uniform random start, sign steps,
projection to the eps-ball and the data range) against the current model in eval mode, then one
step of Algorithm 1 on the clean and the adversarial batch (cross-entropy
``(1 - ratio) CE(clean) + ratio CE(adv)``, the discriminator and encoder-regularisation steps on
both), as in the authors' code (NOTES.md).

    >>> import er_art
    >>> clf = er_art.build_classifier("digits", device_type="cpu")
    >>> trainer = er_art.ERAdversarialTrainer(clf, dataset="digits")  # eps 0.1, PGD-10 for digits
    >>> trainer.fit(x_train, y_train, nb_epochs=10, batch_size=64)
    >>> robust = trainer.get_classifier()

The attack is built once: er-art's one PGD (:class:`er_art.attacks.pgd.PGD`, the one evaluation
and ``er-art embed`` use) with ``keep="last"``, the arithmetic of ART's
``ProjectedGradientDescentPyTorch`` iteration (the last iterate) without its host round trips, so
no batch goes through NumPy and no step waits for the GPU. Under ``amp`` the attack's forward and
backward passes run in bfloat16 autocast like the training step.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)
from art.defences.trainer import Trainer
from art.estimators.classification import PyTorchClassifier

from er_art.attacks.pgd import PGD
from er_art.datasets import DatasetSpec, get_dataset
from er_art.devices import fits_on_device
from er_art.models.er_classifier import ERClassifier, generator_batches
from er_art.training.algorithm import StepResult

logger = logging.getLogger(__name__)


def build_pgd(
    classifier: PyTorchClassifier,
    eps: float,
    eps_step: float,
    max_iter: int,
    num_random_init: int = 1,
    batch_size: int = 128,
) -> PGD:
    """The training PGD against ``classifier``: er-art's L-inf :class:`~er_art.attacks.pgd.PGD`
    (untargeted, silent) with ``keep="last"``, ART's ``ProjectedGradientDescent`` arithmetic."""
    return PGD(
        classifier,
        norm=np.inf,
        eps=eps,
        eps_step=eps_step,
        max_iter=max_iter,
        targeted=False,
        num_random_init=num_random_init,
        batch_size=batch_size,
        keep="last",
    )


def clean_predictions(classifier: PyTorchClassifier, x: torch.Tensor) -> torch.Tensor:
    """The model's own labels for ``x`` (eval mode, no gradients): ``(B,)`` int64 tensor."""
    model = classifier.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x_pre, _ = classifier._apply_preprocessing(x, None, fit=False)
            return model(x_pre).argmax(1)
    finally:
        model.train(was_training)


def generate_on_device(
    attack: Any, x: torch.Tensor, y: torch.Tensor, amp: bool = False
) -> torch.Tensor:
    """Adversarial examples for the batch ``x`` (raw inputs on the classifier's device) and the
    labels ``y`` (``(B,)`` integers the attack moves away from), as a tensor on the same device.

    er-art's :class:`~er_art.attacks.pgd.PGD` (:func:`build_pgd`) runs on the device
    (:meth:`~er_art.attacks.pgd.PGD.generate_on_device`; ``amp``: bfloat16 autocast), and so does
    ART's untargeted L-inf ``ProjectedGradientDescent`` with at most one random start (the
    ``madry`` trainer's, from ART's ``AdversarialTrainerMadryPGD``), as the PGD of
    :func:`build_pgd` with its settings; any other ART attack through its ``generate`` (NumPy).
    The model is attacked in eval mode.
    """
    pgd = attack if isinstance(attack, PGD) else _as_pgd(attack)
    if pgd is not None:
        pgd.amp = bool(amp)
        return pgd.generate_on_device(x, y)
    targets = F.one_hot(y.long(), attack.estimator.nb_classes).to(torch.float32)  # (B, K)
    adv = attack.generate(x.detach().cpu().numpy(), y=targets.cpu().numpy())
    return torch.from_numpy(adv).to(x.device, x.dtype)


def _as_pgd(attack: Any) -> PGD | None:
    """The PGD of :func:`build_pgd` with the settings of ART's plain L-inf PyTorch PGD ``attack``
    (untargeted, at most one random start, no momentum, scalar eps), else ``None``."""
    impl = getattr(attack, "_attack", attack)
    plain_linf = (
        isinstance(impl, ProjectedGradientDescentPyTorch)
        and impl.norm in (np.inf, "inf")
        and impl.num_random_init <= 1
        and not impl.random_eps
        and not impl.targeted
        and impl.decay is None
        and np.ndim(impl.eps) == 0
        and np.ndim(impl.eps_step) == 0
    )
    if not plain_linf:
        return None
    return build_pgd(
        impl.estimator,
        float(impl.eps),
        float(impl.eps_step),
        int(impl.max_iter),
        int(impl.num_random_init),
        int(impl.batch_size),
    )


def attack_defaults(
    classifier: PyTorchClassifier, dataset: str | DatasetSpec | None
) -> tuple[float | None, float | None, int | None]:
    """``(eps, eps_step, max_iter)`` of ``dataset`` (default: the dataset named like the arch)."""
    if dataset is None:
        arch = getattr(classifier, "arch", None)
        try:
            spec = get_dataset(arch) if arch else None
        except ValueError:
            spec = None
    else:
        spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    if spec is None:
        return None, None, None
    return spec.eps, spec.eps_step, spec.max_iter


class ERAdversarialTrainer(Trainer):
    """PGD min-max adversarial training of an :class:`~er_art.models.er_classifier.ERClassifier`
    (Algorithm 1
    on clean + adversarial batches).

    :param classifier: the ER-Classifier to train (trained in place).
    :param eps: L-inf budget of the training attack (default: the dataset's, e.g. 0.3 for MNIST).
    :param eps_step: PGD step size (default: the dataset's).
    :param max_iter: PGD iterations (default: the dataset's, e.g. 40 for MNIST).
    :param num_random_init: random starts in the eps-ball (default 1, as in the authors' code).
    :param ratio: weight r of the adversarial cross-entropy, ``(1 - r) CE(clean) + r CE(adv)``
        (default 0.5, the authors' ``(CE_clean + CE_adv) / 2``).
    :param use_predictions: attack the model's own clean predictions instead of the true labels
        (default ``False``; the authors' code does ``True``). Accuracy always uses the true labels.
    :param regularize: train the discriminator and regularise the encoder (Algorithm 1, default);
        ``False`` trains the encoder and head on the same min-max cross-entropy alone (E-CLA +
        min-max, the control that isolates what the regulariser adds to adversarial training).
    :param dataset: dataset name or :class:`~er_art.datasets.DatasetSpec` whose PGD defaults fill
        ``eps``/``eps_step``/``max_iter`` (default: the dataset named like the architecture).
    :param batch_size: default batch size of :meth:`fit` (default 128).
    :param nb_epochs: default epochs of :meth:`fit` / :meth:`fit_generator` (default 20).
    :raises ValueError: on a non-ER classifier, missing or out-of-range attack settings.
    """

    def __init__(
        self,
        classifier: ERClassifier,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int | None = None,
        num_random_init: int = 1,
        ratio: float = 0.5,
        use_predictions: bool = False,
        dataset: str | DatasetSpec | None = None,
        batch_size: int = 128,
        nb_epochs: int = 20,
        regularize: bool = True,
    ) -> None:
        if not isinstance(classifier, ERClassifier):
            raise ValueError(
                "ERAdversarialTrainer trains an er_art.ERClassifier, not "
                f"{type(classifier).__name__}; "
                "use art.defences.trainer.AdversarialTrainerMadryPGD for plain classifiers."
            )
        super().__init__(classifier=classifier)
        d_eps, d_step, d_iter = attack_defaults(classifier, dataset)
        eps = d_eps if eps is None else eps
        eps_step = d_step if eps_step is None else eps_step
        max_iter = d_iter if max_iter is None else max_iter
        if eps is None or eps_step is None or max_iter is None:
            raise ValueError(
                "eps, eps_step and max_iter are needed: pass them or a dataset to take them from."
            )
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}.")
        self.eps, self.eps_step, self.max_iter = float(eps), float(eps_step), int(max_iter)
        self.num_random_init = int(num_random_init)
        self.ratio = float(ratio)
        self.use_predictions = bool(use_predictions)
        self.regularize = bool(regularize)
        self.batch_size = int(batch_size)
        self.nb_epochs = int(nb_epochs)
        self.attack = build_pgd(
            classifier,
            self.eps,
            self.eps_step,
            self.max_iter,
            self.num_random_init,
            self.batch_size,
        )

    @property
    def er_classifier(self) -> ERClassifier:
        return self._classifier  # type: ignore[return-value]

    def adversarial_examples(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD examples of the raw batch ``x`` (device tensor) with true labels ``y`` ``(B,)``."""
        labels = clean_predictions(self._classifier, x) if self.use_predictions else y
        return generate_on_device(self.attack, x, labels, amp=self.er_classifier.amp)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """One min-max step on a raw batch: ``x`` ``(B, *input_shape)`` in the data range, integer
        labels ``y`` ``(B,)``, both on the classifier's device. Nets are left in train mode."""
        clf = self.er_classifier
        x_adv = self.adversarial_examples(x, y)
        x_t, y_t = clf._prepare_batch(x, y)
        x_adv_t, _ = clf._prepare_batch(x_adv, y)
        return clf.train_step(x_t, y_t, x_adv_t, adv_ratio=self.ratio, regularize=self.regularize)

    def _labels(self, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        y_t = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))
        if y_t.ndim == 2:  # one-hot or probabilities
            y_t = y_t.argmax(1)
        return y_t.long().to(self.er_classifier.device)

    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        nb_epochs: int | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Min-max training for ``nb_epochs`` over ``(x, y)`` (integer or one-hot labels), batches
        reshuffled each epoch with torch's global RNG."""
        nb_epochs = self.nb_epochs if nb_epochs is None else int(nb_epochs)
        batch_size = self.batch_size if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        device = self.er_classifier.device
        x_all = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        y_all = self._labels(y).cpu()
        if fits_on_device(x_all.nbytes + y_all.nbytes, device):  # once, not per batch
            x_all, y_all = x_all.to(device), y_all.to(device)
        n = len(x_all)
        for epoch in range(nb_epochs):
            perm = torch.randperm(n).to(x_all.device)
            totals = torch.zeros(3, device=device)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a single example
                    continue
                res = self.step(x_all[idx].to(device), y_all[idx].to(device))
                totals += torch.stack([res.ce, res.disc, res.reg])
            logger.info(
                "epoch %d/%d: ce %.4f disc %.4f reg %.4f", epoch + 1, nb_epochs, *totals.tolist()
            )
        self.er_classifier.er_model.eval()

    def fit_generator(self, generator: Any, nb_epochs: int | None = None, **kwargs: Any) -> None:
        """Min-max training from an ART ``DataGenerator`` (e.g. ``PyTorchDataGenerator`` over a
        ``DataLoader``): the dataset never has to be one array in memory."""
        nb_epochs = self.nb_epochs if nb_epochs is None else int(nb_epochs)
        device = self.er_classifier.device
        for _ in range(nb_epochs):
            for x_b, y_b in generator_batches(generator):
                x_t = (
                    x_b
                    if isinstance(x_b, torch.Tensor)
                    else torch.from_numpy(np.asarray(x_b, dtype=np.float32))
                )
                self.step(x_t.to(device, torch.float32), self._labels(y_b))
        self.er_classifier.er_model.eval()
