"""``ERClassifier``: the ER-Classifier as an ART ``PyTorchClassifier``.

Every ART attack, defence and trainer sees an ordinary PyTorch classifier whose ``forward`` gives
the logits C(Q(x)); ``fit`` and ``fit_generator`` run Algorithm 1 (three Adam optimizers, the
discriminator against the prior) instead of plain cross-entropy.

    >>> import er_art
    >>> clf = er_art.build_classifier("digits", device_type="cpu")
    >>> clf.fit(x_train, y_train, batch_size=64, nb_epochs=5)
    >>> from art.attacks.evasion import ProjectedGradientDescent
    >>> x_adv = ProjectedGradientDescent(clf, eps=0.1, eps_step=0.01, max_iter=40).generate(x_test)

Differences from a stock ``PyTorchClassifier``, each deliberate:
- ``loss_gradient`` and ``class_gradient`` differentiate with respect to the input only (no
  weight gradients), and ``fit`` frees the last step's weight gradients;
- inputs of any float dtype are cast to the model's float32 (ART hands float64 under NumPy 2);
- pickling is self-contained (no files in ART's data dir) and works with ``dill`` too (ART's
  parallel ``AutoAttack``);
- mixed precision is ``torch.amp`` bfloat16 autocast (``amp=True``), not ART's apex ``use_amp``;
- ART's standardisation runs on the input's own device (:class:`DeviceStandardisation`), and an
  identity one is skipped;
- on CUDA a conv net's weights are channels_last;
- a pickle holds CPU tensors only and comes back on a device the unpickling machine has (a CUDA
  pickle on a CPU-only machine: on the CPU, with a logged warning).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from art.preprocessing.standardisation_mean_std.pytorch import StandardisationMeanStdPyTorch
from art.preprocessing.standardisation_mean_std.utils import broadcastable_mean_std
from art.utils import check_and_transform_label_format

from er_art.devices import (
    cpu_module_copy,
    fits_on_device,
    to_cpu,
    usable_device,
    use_channels_last,
)
from er_art.models.er_model import ERModel
from er_art.models.priors import Prior, build_prior
from er_art.training.algorithm import DEFAULT_LAMBDAS, StepResult, algorithm1_step, make_optimizers

logger = logging.getLogger(__name__)

LAYER_ALIASES = {
    "embedding": "embedding",
    "encoder": "embedding",
    "logits": "logits",
    "classifier": "logits",
}


def resolve_device_type(device_type: str) -> str:
    """Map er-art's ``auto|cpu|cuda|gpu`` onto ART's ``cpu|gpu`` (``cuda`` needs CUDA)."""
    if device_type in ("auto", "gpu"):
        return "gpu"  # ART falls back to the CPU when CUDA is absent
    if device_type == "cpu":
        return "cpu"
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "device 'cuda' was asked for but CUDA is not available; use 'cpu' or 'auto'."
            )
        return "gpu"
    raise ValueError(f"Unknown device {device_type!r}; accepted: auto, cpu, cuda, gpu.")


class DeviceStandardisation(StandardisationMeanStdPyTorch):
    """ART's ``StandardisationMeanStdPyTorch`` on the input's own device.

    ART's makes its mean and std from NumPy on the device it was built for, at every call: a host
    copy (a synchronisation) per batch on CUDA, and a device that a pickle carries to machines
    without it. Here they are made once per device and kept; ``(0, 1)`` returns ``x`` unchanged.
    """

    def __init__(
        self,
        mean: float | np.ndarray = 0.0,
        std: float | np.ndarray = 1.0,
        apply_fit: bool = True,
        apply_predict: bool = True,
    ) -> None:
        super().__init__(
            mean=mean, std=std, apply_fit=apply_fit, apply_predict=apply_predict, device_type="cpu"
        )
        self._identity = bool(np.all(self.mean == 0) and np.all(self.std == 1))
        self._on_device: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._identity:
            return x, y
        key = (str(x.device), x.ndim)
        if key not in self._on_device:
            mean, std = broadcastable_mean_std(x, self.mean, self.std)
            self._on_device[key] = (
                torch.tensor(mean, dtype=torch.float32, device=x.device),
                torch.tensor(std, dtype=torch.float32, device=x.device),
            )
        mean_t, std_t = self._on_device[key]
        return (x - mean_t) / std_t, y

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_on_device"] = {}
        return state


def generator_batches(generator: Any) -> Iterator[tuple[Any, Any]]:
    """One epoch of ``(x, y)`` batches from an ART ``DataGenerator`` (a ``PyTorchDataGenerator``'s
    ``DataLoader`` is iterated directly); batches of one example are skipped (BatchNorm cannot train
    on them)."""
    from art.data_generators import PyTorchDataGenerator

    if isinstance(generator, PyTorchDataGenerator):
        batches: Iterable[tuple[Any, Any]] = generator.iterator
    else:
        n_batches = int(np.ceil(generator.size / generator.batch_size))
        batches = (generator.get_batch() for _ in range(n_batches))
    for x_b, y_b in batches:
        if len(x_b) >= 2:
            yield x_b, y_b


class ERClassifier(PyTorchClassifier):
    """Embedding Regularized Classifier as an ART classifier.

    :param model: the :class:`~er_art.models.er_model.ERModel` (encoder, head, discriminator).
    :param input_shape: shape of one input, e.g. ``(1, 28, 28)``.
    :param nb_classes: number of classes.
    :param prior: prior name (a registered prior plugin) or a :class:`~er_art.models.priors.Prior`.
    :param prior_params: parameters of a named prior, e.g. ``{"sigma": 1.0}``.
    :param lambda_d: lambda, weight of the discriminator objective (step a).
    :param lambda_ce: lambda_0, weight of the cross-entropy (step b).
    :param lambda_reg: lambda_1, weight of the encoder regularisation (step c).
    :param lr: base learning rate (the encoder's).
    :param lr_ratios: encoder : discriminator : head learning-rate ratios (default 1 : 0.5 : 0.05).
    :param clip_value: WGAN weight clipping of the discriminator, +-c.
    :param amp: bfloat16 mixed precision (``torch.amp``) in training: encoder and head under
        autocast, the critic in float32 (its clipped outputs differ below bfloat16's resolution).
    :param arch: registered architecture name (recorded for checkpoints), or ``None``.
    :param arch_options: options the architecture was built with (recorded for checkpoints).
    :param device_type: ``auto``/``gpu`` (CUDA when available), ``cpu`` or ``cuda``.
    Other parameters are ART's (``clip_values``, ``preprocessing_defences``, ...).
    """

    estimator_params = PyTorchClassifier.estimator_params + [
        "prior",
        "lambda_d",
        "lambda_ce",
        "lambda_reg",
        "lr",
        "lr_ratios",
        "clip_value",
        "amp",
    ]

    def __init__(
        self,
        model: ERModel,
        input_shape: tuple[int, ...],
        nb_classes: int,
        prior: str | Prior = "gaussian",
        prior_params: dict[str, float] | None = None,
        lambda_d: float = DEFAULT_LAMBDAS["lambda_d"],
        lambda_ce: float = DEFAULT_LAMBDAS["lambda_ce"],
        lambda_reg: float = DEFAULT_LAMBDAS["lambda_reg"],
        lr: float = 1e-4,
        lr_ratios: tuple[float, float, float] = (1.0, 0.5, 0.05),
        clip_value: float = 0.01,
        amp: bool = False,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        channels_first: bool = True,
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = (0.0, 1.0),
        device_type: str = "gpu",
        arch: str | None = None,
        arch_options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, ERModel):
            raise TypeError(f"ERClassifier needs an er_art.ERModel, got {type(model).__name__}.")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}.")
        if not clip_value > 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}.")
        self._requested_device_type = device_type
        if isinstance(preprocessing, tuple):
            preprocessing = DeviceStandardisation(mean=preprocessing[0], std=preprocessing[1])
        super().__init__(
            model=model,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=tuple(input_shape),
            nb_classes=nb_classes,
            optimizer=None,  # three optimizers of our own, below
            channels_first=channels_first,
            clip_values=clip_values,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=resolve_device_type(device_type),
        )
        self._er_model = model
        self._prior = build_prior(prior, **(prior_params or {}))
        self._lambda_d, self._lambda_ce, self._lambda_reg = (
            float(lambda_d),
            float(lambda_ce),
            float(lambda_reg),
        )
        self._lr = float(lr)
        self._lr_ratios = tuple(float(r) for r in lr_ratios)
        self._clip_value = float(clip_value)
        self._amp = bool(amp)
        self.arch = arch
        self.arch_options = dict(arch_options or {})
        self._layer_names = ["embedding", "logits"]
        use_channels_last(self._er_model, self._device)
        self._optimizers = make_optimizers(model, self._lr, self._lr_ratios)  # type: ignore[arg-type]
        self._er_model.eval()

    # ------------------------------------------------------------------ properties (ART params)
    @property
    def er_model(self) -> ERModel:
        """The underlying :class:`~er_art.models.er_model.ERModel` (encoder, head and
        discriminator)."""
        return self._er_model

    @property
    def optimizers(self):
        """Algorithm 1's three optimizers: ``.encoder``, ``.discriminator``, ``.classifier``."""
        return self._optimizers

    @property
    def embedding_dim(self) -> int:
        return self._er_model.embedding_dim

    @property
    def prior(self) -> Prior:
        return self._prior

    @prior.setter
    def prior(self, value: str | Prior) -> None:
        self._prior = build_prior(value)

    @property
    def lambda_d(self) -> float:
        return self._lambda_d

    @lambda_d.setter
    def lambda_d(self, value: float) -> None:
        self._lambda_d = float(value)

    @property
    def lambda_ce(self) -> float:
        return self._lambda_ce

    @lambda_ce.setter
    def lambda_ce(self, value: float) -> None:
        self._lambda_ce = float(value)

    @property
    def lambda_reg(self) -> float:
        return self._lambda_reg

    @lambda_reg.setter
    def lambda_reg(self, value: float) -> None:
        self._lambda_reg = float(value)

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"lr must be > 0, got {value}.")
        self._lr = float(value)
        self._optimizers.set_lr(self._lr, self._lr_ratios)  # type: ignore[arg-type]

    @property
    def lr_ratios(self) -> tuple[float, ...]:
        return self._lr_ratios

    @lr_ratios.setter
    def lr_ratios(self, value: tuple[float, float, float]) -> None:
        self._lr_ratios = tuple(float(r) for r in value)
        self._optimizers.set_lr(self._lr, self._lr_ratios)  # type: ignore[arg-type]

    @property
    def clip_value(self) -> float:
        return self._clip_value

    @clip_value.setter
    def clip_value(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"clip_value must be > 0, got {value}.")
        self._clip_value = float(value)

    @property
    def amp(self) -> bool:
        return self._amp

    @amp.setter
    def amp(self, value: bool) -> None:
        self._amp = bool(value)

    # ------------------------------------------------------------------ dtype and batches
    def _apply_preprocessing(self, x, y, fit: bool, no_grad: bool = True):  # type: ignore[override]
        """ART's preprocessing, then floats cast to float32 (ART hands float64 under NumPy 2)."""
        x_pre, y_pre = super()._apply_preprocessing(x, y, fit=fit, no_grad=no_grad)
        if isinstance(x_pre, torch.Tensor):
            if x_pre.dtype != torch.float32 and x_pre.is_floating_point():
                # differentiable: gradients flow back to a float64 input
                x_pre = x_pre.to(torch.float32)
        elif isinstance(x_pre, np.ndarray) and x_pre.dtype != np.float32:
            x_pre = x_pre.astype(np.float32)
        return x_pre, y_pre

    def _labels_to_tensor(self, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        if y.ndim == 2:
            y = self.reduce_labels(y)
        if isinstance(y, np.ndarray):
            y = torch.from_numpy(np.asarray(y))
        if y.ndim == 2:  # probability labels: train on their most likely class
            y = y.argmax(1)
        return y.to(self._device).long().reshape(-1)

    def _prepare_batch(
        self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch through ART's fit-time preprocessing: float32 / int64 device tensors."""
        if isinstance(x, torch.Tensor) and not self.all_framework_preprocessing:
            x = x.cpu().numpy()
        if isinstance(y, torch.Tensor) and isinstance(x, np.ndarray):
            y = y.cpu().numpy()
        if isinstance(y, np.ndarray) and y.ndim == 1 and not np.issubdtype(y.dtype, np.floating):
            y = y.astype(np.int64)
        if isinstance(x, torch.Tensor):
            x = x.to(self._device)
            y = (
                y.to(self._device)
                if isinstance(y, torch.Tensor)
                else torch.from_numpy(y).to(self._device)
            )
        x_pre, y_pre = self._apply_preprocessing(x, y, fit=True)
        x_t = x_pre if isinstance(x_pre, torch.Tensor) else torch.from_numpy(x_pre)
        return x_t.to(self._device), self._labels_to_tensor(y_pre)

    # ------------------------------------------------------------------ training: Algorithm 1
    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        x_adv: torch.Tensor | None = None,
        adv_ratio: float = 0.5,
        regularize: bool = True,
    ) -> StepResult:
        """One step of Algorithm 1 on preprocessed device tensors; nets left in train mode."""
        self._er_model.train()
        return algorithm1_step(
            self._er_model,
            self._optimizers,
            self._prior,
            x,
            y,
            x_adv,
            lambda_d=self._lambda_d,
            lambda_ce=self._lambda_ce,
            lambda_reg=self._lambda_reg,
            clip_value=self._clip_value,
            adv_ratio=adv_ratio,
            regularize=regularize,
            amp=self._amp,
        )

    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int = 128,
        nb_epochs: int = 10,
        training_mode: bool = True,
        drop_last: bool = False,
        scheduler: Any = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        """Train with Algorithm 1 for ``nb_epochs`` over ``(x, y)`` (one-hot or integer labels).

        :param scheduler: optional learning-rate scheduler (stepped once per epoch) or ``None``.
        :param kwargs: ``regularize=False`` trains encoder + head with cross-entropy only (E-CLA).
        """
        regularize = bool(kwargs.pop("regularize", True))
        y = check_and_transform_label_format(y, nb_classes=self.nb_classes)
        # The raw data go to the device once when they fit (else they stay on the host and go
        # batch by batch); preprocessing runs per batch, so no second copy is ever made.
        x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        y_arr = np.asarray(y)
        defences = self.preprocessing_defences or []
        if y_arr.ndim == 2 and not any(getattr(d, "apply_fit", False) for d in defences):
            # the most likely class, once: ART's label reduction per batch reads the GPU back
            y_arr = y_arr.argmax(axis=1).astype(np.int64)
        y_t = torch.from_numpy(y_arr)
        if fits_on_device(x_t.nbytes + y_t.nbytes, self._device):
            x_t, y_t = x_t.to(self._device), y_t.to(self._device)
        n = len(x_t)
        n_batches = n // batch_size if drop_last else int(np.ceil(n / batch_size))
        for epoch in range(nb_epochs):
            perm = torch.randperm(n).to(x_t.device)
            totals = torch.zeros(3, device=self._device)
            for b in range(n_batches):
                idx = perm[b * batch_size : (b + 1) * batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a single example
                    continue
                x_b, y_b = self._prepare_batch(x_t[idx].to(self._device), y_t[idx].to(self._device))
                res = self.train_step(x_b, y_b, regularize=regularize)
                totals += torch.stack([res.ce, res.disc, res.reg])
            if scheduler is not None:
                scheduler.step()
            if verbose:
                ce, disc, reg = (totals / max(n_batches, 1)).tolist()
                logger.info(
                    "epoch %d/%d: ce %.4f  disc %.4f  reg %.4f", epoch + 1, nb_epochs, ce, disc, reg
                )
        self._finish_training()

    def fit_generator(
        self, generator: Any, nb_epochs: int = 20, verbose: bool = False, **kwargs: Any
    ) -> None:
        """Train with Algorithm 1 from an ART ``DataGenerator`` (e.g. ``PyTorchDataGenerator``
        over a ``DataLoader``), so a dataset never has to be one array in memory.

        ART's own fast path for ``PyTorchDataGenerator`` trains plain cross-entropy with
        ``self._optimizer``; here every batch goes through :meth:`train_step`.
        """
        regularize = bool(kwargs.pop("regularize", True))
        for _ in range(nb_epochs):
            for x_b, y_b in generator_batches(generator):
                x_t, y_t = self._prepare_batch(x_b, y_b)
                self.train_step(x_t, y_t, regularize=regularize)
        self._finish_training()

    def _finish_training(self) -> None:
        """Nets to eval mode; the last step's weight gradients freed (inference needs none)."""
        self._er_model.eval()
        for opt in (
            self._optimizers.encoder,
            self._optimizers.discriminator,
            self._optimizers.classifier,
        ):
            opt.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ gradients and activations
    def loss_gradient(  # type: ignore[override]
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        training_mode: bool = False,
        **kwargs: Any,
    ) -> np.ndarray | torch.Tensor:
        """Gradient of the cross-entropy with respect to ``x`` only (no weight gradients)."""
        self._model.train(mode=training_mode)
        is_tensor = isinstance(x, torch.Tensor)
        if self.all_framework_preprocessing:
            x_grad = x.detach().clone() if is_tensor else torch.from_numpy(np.asarray(x))
            x_grad = x_grad.to(self._device).requires_grad_(True)
            y_in = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))
            inputs_t, y_pre = self._apply_preprocessing(
                x_grad, y=y_in.to(self._device), fit=False, no_grad=False
            )
        elif not is_tensor:
            x_pre, y_pre = self._apply_preprocessing(x, y=y, fit=False, no_grad=True)
            x_grad = torch.from_numpy(x_pre).to(self._device).requires_grad_(True)
            inputs_t = x_grad
        else:
            raise NotImplementedError(
                "Tensor inputs need framework-native (PyTorch) preprocessing defences only."
            )
        loss = self._loss(self._er_model(inputs_t), self._labels_to_tensor(y_pre))
        (grad,) = torch.autograd.grad(loss, x_grad)
        grads: np.ndarray | torch.Tensor = grad if is_tensor else grad.cpu().numpy()
        if not self.all_framework_preprocessing:
            grads = self._apply_preprocessing_gradient(x, grads)
        return grads

    def class_gradient(  # type: ignore[override]
        self,
        x: np.ndarray,
        label: int | list[int] | np.ndarray | None = None,
        training_mode: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """Per-class logit gradients with respect to ``x`` only (ART's own also fills weight
        gradients).

        :param label: ``None`` (all classes), one class index, or one index per example.
        :return: ``(N, nb_classes, *input_shape)``; ``(N, 1, *input_shape)`` with a ``label``.
        """
        self._model.train(mode=training_mode)
        if isinstance(label, list):
            label = np.array(label)
        valid = (
            label is None
            or (isinstance(label, (int, np.integer)) and 0 <= label < self.nb_classes)
            or (
                isinstance(label, np.ndarray)
                and label.ndim == 1
                and label.shape[0] == x.shape[0]
                and ((label >= 0) & (label < self.nb_classes)).all()
            )
        )
        if not valid:
            raise ValueError(
                f"Label {label} is out of range; accepted: None, 0..{self.nb_classes - 1}, "
                "or one label per example."
            )
        if self.all_framework_preprocessing:
            x_grad = torch.from_numpy(np.asarray(x)).to(self._device).requires_grad_(True)
            x_input, _ = self._apply_preprocessing(x_grad, y=None, fit=False, no_grad=False)
        else:
            x_pre, _ = self._apply_preprocessing(x, y=None, fit=False, no_grad=True)
            x_grad = torch.from_numpy(x_pre).to(self._device).requires_grad_(True)
            x_input = x_grad
        preds = self._er_model(x_input)  # (N, nb_classes)
        if label is None:
            classes = list(range(preds.shape[1]))
        elif isinstance(label, (int, np.integer)):
            classes = [int(label)]
        else:
            classes = [int(c) for c in np.unique(label)]
        per_class = [
            torch.autograd.grad(preds[:, c].sum(), x_grad, retain_graph=i < len(classes) - 1)[0]
            for i, c in enumerate(classes)
        ]
        grads = torch.stack(per_class, dim=1).cpu().numpy()  # (N, len(classes), *input_shape)
        if isinstance(label, np.ndarray):
            index = np.searchsorted(np.array(classes), label)
            grads = grads[np.arange(len(grads)), index][:, None]
        if not self.all_framework_preprocessing:
            grads = self._apply_preprocessing_gradient(x, grads)
        return grads

    @property
    def layer_names(self) -> list[str]:
        """``["embedding", "logits"]``: the encoder's output and the head's output."""
        return list(self._layer_names)

    def get_activations(  # type: ignore[override]
        self,
        x: np.ndarray | torch.Tensor,
        layer: int | str | None = None,
        batch_size: int = 128,
        framework: bool = False,
    ) -> np.ndarray | torch.Tensor:
        """The embedding (``layer="embedding"`` or 0) or the logits (``"logits"`` or 1) of ``x``."""
        if isinstance(layer, (int, np.integer)):
            if not 0 <= layer < len(self._layer_names):
                raise ValueError(
                    f"Layer index {layer} out of range; accepted: 0 (embedding), 1 (logits)."
                )
            name = self._layer_names[layer]
        elif isinstance(layer, str) and layer in LAYER_ALIASES:
            name = LAYER_ALIASES[layer]
        else:
            raise ValueError(f"Unknown layer {layer!r}; accepted: 'embedding' (0) or 'logits' (1).")
        self._er_model.eval()
        fn = self._er_model.encode if name == "embedding" else self._er_model
        if framework:
            x_t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
            x_pre, _ = self._apply_preprocessing(
                x_t.to(self._device), y=None, fit=False, no_grad=False
            )
            return fn(x_pre)
        x_pre, _ = self._apply_preprocessing(x, y=None, fit=False, no_grad=True)
        out = []
        with torch.no_grad():
            for start in range(0, len(x_pre), batch_size):
                out.append(
                    fn(torch.from_numpy(x_pre[start : start + batch_size]).to(self._device))
                    .cpu()
                    .numpy()
                )
        return np.concatenate(out)

    def embed(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Embeddings ``Q(x)`` of ``x``: an array of shape ``(N, embedding_dim)``."""
        return self.get_activations(x, "embedding", batch_size=batch_size)  # type: ignore[return-value]

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Re-initialise all three nets (the discriminator too) and fresh optimizers.

        A classifier built from a registered architecture gets the weights a fresh build would
        have (its own initialisation, ``init_weights`` files included); any other is reset with
        each layer's ``reset_parameters``.
        """

        def weight_reset(module: torch.nn.Module) -> None:
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()

        self._er_model.apply(weight_reset)
        if self.arch is not None:
            from er_art.models.architectures import get_architecture

            try:
                spec = get_architecture(self.arch)
                options = {"nb_classes": self.nb_classes, **self.arch_options}
                fresh = spec.build(embedding_dim=self.embedding_dim, **options)
                self._er_model.load_state_dict(fresh.state_dict())
            except (OSError, ValueError, RuntimeError, LookupError) as err:
                logger.warning(
                    "reset: rebuilding architecture %r failed (%s); used "
                    "reset_parameters() instead",
                    self.arch,
                    err,
                )
        self._er_model.eval()
        self._optimizers = make_optimizers(self._er_model, self._lr, self._lr_ratios)  # type: ignore[arg-type]

    def clone_for_refitting(self) -> ERClassifier:
        """A copy with the same architecture and hyperparameters, re-initialised for training."""
        import copy

        clone = copy.deepcopy(self)
        clone.reset()
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Self-contained pickling: nets and optimizer states travel inside the pickle (no stray
        files), as CPU tensors, so that a machine without this one's GPU can unpickle them.

        The optimizers travel as state dicts (plain tensors), so ``dill`` (ART's parallel
        AutoAttack) can pickle the classifier too: a ``torch.optim.Adam`` does not survive ``dill``.
        """
        state = self.__dict__.copy()
        for key in ("_model", "_model_wrapper", "_features"):
            state.pop(key, None)
        state["_er_model"] = cpu_module_copy(self._er_model)
        state["_optimizers"] = to_cpu(self._optimizers.state_dict())
        state["_device"] = str(self._device)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        optimizer_state = state.pop("_optimizers")
        self.__dict__.update(state)
        self._device = usable_device(state["_device"], "the pickled classifier")
        self._er_model.to(self._device)
        use_channels_last(self._er_model, self._device)
        self._model = self._make_model_wrapper(self._er_model)
        self._model.to(self._device)
        for op in self.preprocessing_operations:  # the same objects as preprocessing(_defences)
            if isinstance(getattr(op, "_device", None), torch.device):
                op._device = self._device  # ART's PyTorch preprocessors keep their device
        self._optimizers = make_optimizers(self._er_model, self._lr, self._lr_ratios)  # type: ignore[arg-type]
        self._optimizers.load_state_dict(optimizer_state)

    def __repr__(self) -> str:
        return (
            f"ERClassifier(arch={self.arch!r}, embedding_dim={self.embedding_dim}, "
            f"nb_classes={self.nb_classes}, "
            f"prior={self._prior!r}, lambda_d={self._lambda_d}, lambda_ce={self._lambda_ce}, "
            f"lambda_reg={self._lambda_reg}, lr={self._lr}, clip_values={self.clip_values!r}, "
            f"device={self._device})"
        )

    def config(self) -> dict[str, Any]:
        """JSON-able settings that rebuild this classifier with :func:`er_art.build_classifier`."""
        clip = (
            None
            if self.clip_values is None
            else [float(np.min(self.clip_values[0])), float(np.max(self.clip_values[1]))]
        )
        return {
            "kind": "er",
            "arch": self.arch,
            "arch_options": self.arch_options,
            "input_shape": list(self.input_shape),
            "nb_classes": int(self.nb_classes),
            "embedding_dim": int(self.embedding_dim),
            "prior": self._prior.name,
            "prior_params": self._prior.params(),
            "lambda_d": self._lambda_d,
            "lambda_ce": self._lambda_ce,
            "lambda_reg": self._lambda_reg,
            "lr": self._lr,
            "lr_ratios": list(self._lr_ratios),
            "clip_value": self._clip_value,
            "amp": self._amp,
            "clip_values": clip,
            "device_type": self._requested_device_type,
        }
