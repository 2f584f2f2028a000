"""Random Self-Ensemble (RSE; Liu, Cheng, Zhang & Hsieh, ECCV 2018, "Towards Robust Neural
Networks via Random Self-ensemble"), the paper's RSE baseline.

A noise layer ``x + N(0, sigma^2)`` goes before every convolution of a classifier: ``sigma_init``
on its input (before the first convolution), ``sigma_inner`` before every other one. The noise is
drawn afresh at every forward pass, in training *and* at test time (eval mode too), from torch's
global RNG (so training runs resume bit-exactly and ``torch.manual_seed`` repeats a prediction).
The prediction is the ensemble of ``ensemble`` noisy passes: the mean of their softmax.

- :class:`RSENet` wraps a classifier ``nn.Module``: ``forward(x)`` is ONE noisy pass (its logits),
  which is what gradients see; :meth:`RSENet.ensemble_log_proba` is the ensemble.
- :class:`RSEClassifier` is the ART ``PyTorchClassifier`` of an :class:`RSENet`: ``predict``
  returns the log of the mean softmax over ``ensemble`` passes (log-probabilities: ART's APGD
  refuses estimators whose predictions look like probabilities, and the argmax is the ensemble's
  vote); ``loss_gradient`` and ``class_gradient`` are those of one noisy pass, i.e. a stochastic
  gradient: an honest attack averages it over passes (expectation over transformation,
  ``er-art attack --eot N``).

The noise is in the units of the model's input (pixels in [0, 1]): the input noise goes before
anything else, VGG's in-network normalisation included, as in the RSE authors' code, which fed
unnormalised [0, 1] images to their first noise layer.

    >>> from er_art.baselines.rse import RSENet
    >>> from er_art.plugins.architectures.cnn import SmallCNN
    >>> net = RSENet(SmallCNN((1, 28, 28)), sigma_init=0.8, sigma_inner=0.4, ensemble=10)
    >>> logits = net(x)                       # one noisy pass, (B, 10)
    >>> log_p = net.ensemble_log_proba(x)     # log mean softmax over 10 passes, (B, 10)
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier
from torch import nn

logger = logging.getLogger(__name__)


def _sigma(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _ensemble(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"ensemble must be a positive integer, got {value!r}.")
    return int(value)


class GaussianNoise(nn.Module):
    """``x + N(0, sigma^2)``, fresh noise at every call, in train and eval mode alike."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = _sigma("sigma", sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0.0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


class NoisyConv2d(nn.Conv2d):
    """A ``Conv2d`` whose input gets ``N(0, sigma^2)`` noise first (RSE's inner noise layer).

    A subclass rather than ``Sequential(noise, conv)`` so the state-dict keys stay the plain
    network's (``features.3.weight``): an RSE net loads a plain one's weights and vice versa."""

    def __init__(self, *args: Any, sigma: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sigma = _sigma("sigma", sigma)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, sigma: float) -> NoisyConv2d:
        noisy = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            sigma=sigma,
        )
        noisy.load_state_dict(conv.state_dict())
        return noisy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma:
            x = x + self.sigma * torch.randn_like(x)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sigma={self.sigma:g}"


def add_inner_noise(net: nn.Module, sigma: float) -> int:
    """Replace every ``Conv2d`` of ``net`` but the first (in registration order, which is the
    order of the forward pass for sequential nets) by a :class:`NoisyConv2d` of ``sigma``, in
    place; return the number of convolutions."""
    convs = [
        (parent, child_name)
        for parent in net.modules()
        for child_name, child in parent.named_children()
        if type(child) is nn.Conv2d
    ]
    for parent, child_name in convs[1:]:
        setattr(parent, child_name, NoisyConv2d.from_conv(getattr(parent, child_name), sigma))
    return len(convs)


class RSENet(nn.Module):
    """A classifier with RSE noise layers.

    :param net: the classifier ``(B, *input_shape) -> (B, nb_classes)`` logits; its convolutions
        after the first get inner noise (in place).
    :param sigma_init: standard deviation of the noise on the input (before the first conv).
    :param sigma_inner: standard deviation of the noise before every other convolution.
    :param ensemble: noisy passes averaged by :meth:`ensemble_log_proba` (the RSE authors: 50).
    """

    def __init__(
        self, net: nn.Module, sigma_init: float, sigma_inner: float, ensemble: int = 10
    ) -> None:
        super().__init__()
        self.input_noise = GaussianNoise(_sigma("sigma_init", sigma_init))
        self.sigma_inner = _sigma("sigma_inner", sigma_inner)
        self.net = net
        if add_inner_noise(net, self.sigma_inner) == 0:
            raise ValueError(
                f"RSE needs a network with convolutions; {type(net).__name__} has none."
            )
        self.ensemble = ensemble

    @property
    def sigma_init(self) -> float:
        return self.input_noise.sigma

    @property
    def ensemble(self) -> int:
        return self._ensemble

    @ensemble.setter
    def ensemble(self, value: int) -> None:
        self._ensemble = _ensemble(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_noise(x))  # one noisy pass: (B, nb_classes) logits

    def ensemble_log_proba(self, x: torch.Tensor, passes: int | None = None) -> torch.Tensor:
        """``log(mean_i softmax(forward_i(x)))`` over ``passes`` (default ``ensemble``) noisy
        passes, computed stably in log space: ``(B, nb_classes)``."""
        n = self.ensemble if passes is None else _ensemble(passes)
        total: torch.Tensor | None = None
        for _ in range(n):
            log_p = F.log_softmax(self(x).float(), dim=1)  # (B, nb_classes)
            total = log_p if total is None else torch.logaddexp(total, log_p)
        assert total is not None
        return total - math.log(n)


class RSEClassifier(PyTorchClassifier):
    """The ART classifier of an :class:`RSENet` (see the module docstring): ``predict`` is the
    ensemble's log mean softmax, gradients are those of one noisy pass."""

    @property
    def rse_net(self) -> RSENet:
        model = self.model
        if not isinstance(model, RSENet):
            raise TypeError(f"RSEClassifier needs an RSENet, got {type(model).__name__}.")
        return model

    @property
    def ensemble(self) -> int:
        """Noisy passes per prediction (recorded in the checkpoint config)."""
        return self.rse_net.ensemble

    @ensemble.setter
    def ensemble(self, value: int) -> None:
        self.rse_net.ensemble = value
        config = getattr(self, "er_art_config", None)
        if isinstance(config, dict):
            config.setdefault("arch_options", {})["ensemble"] = self.rse_net.ensemble

    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's log-probabilities ``(B, nb_classes)`` of a preprocessed batch on the
        device (no gradient)."""
        with torch.no_grad():
            return self.rse_net.ensemble_log_proba(x.to(self._device, torch.float32))

    def predict(  # type: ignore[override]
        self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs: Any
    ) -> np.ndarray:
        """Log of the mean softmax over ``ensemble`` noisy passes: ``(N, nb_classes)``."""
        self._model.train(mode=training_mode)
        x_pre, _ = self._apply_preprocessing(x, y=None, fit=False)
        x_t = torch.from_numpy(np.ascontiguousarray(x_pre, dtype=np.float32))
        out = [
            self.predict_tensor(x_t[start : start + batch_size]).cpu().numpy()
            for start in range(0, len(x_t), batch_size)
        ]
        results = np.concatenate(out) if out else np.zeros((0, self.nb_classes), dtype=np.float32)
        return self._apply_postprocessing(preds=results, fit=False)

    def __repr__(self) -> str:
        net = self.rse_net
        return (
            f"RSEClassifier(sigma_init={net.sigma_init:g}, sigma_inner={net.sigma_inner:g}, "
            f"ensemble={net.ensemble}, nb_classes={self.nb_classes}, device={self._device})"
        )
