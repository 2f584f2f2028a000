"""``spatial-smoothing-pytorch``: median smoothing in PyTorch (ART ``SpatialSmoothingPyTorch``).

Needs the optional kornia package.

[Xu et al., 2018] "Feature Squeezing" (https://arxiv.org/abs/1704.01155). Framework-native, so
attacks differentiate through it (no NumPy round trip). Built as
:class:`DeviceSpatialSmoothingPyTorch`, ART's class made to run on CUDA and to pickle.

Arguments (ART names):
    window_size (int): side of the median window. (Default: 3)
    apply_fit (bool): also smooth training data. (Default: False)
    apply_predict (bool): smooth at prediction time. (Default: True)
    device_type (str): ``gpu`` (CUDA when available) or ``cpu``. (Default: "gpu")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from art.defences.preprocessor import SpatialSmoothingPyTorch

from er_art.defences import DefenceSpec, DefenceUnavailableError


class DeviceSpatialSmoothingPyTorch(SpatialSmoothingPyTorch):
    """ART's ``SpatialSmoothingPyTorch`` (1.20.1) that runs where its input is, and pickles.

    - ART clamps to ``clip_values`` with 0-d CPU tensors, which a CUDA input refuses (a
      device-mismatch error at the first ``predict``): here the bounds go to the input's device;
    - ART copies its median kernel from the host at every call: here it is kept per device;
    - ART's median filter is a class local to ``__init__``, which no pickle can hold: here it is
      left out of the pickle and rebuilt when unpickled.
    """

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.median_blur.kernel = self._kernel_on(x.device)
        clip = self.clip_values
        self.clip_values = None  # ART's own clamp is the one that fails on CUDA
        try:
            x, y = super().forward(x, y)
        finally:
            self.clip_values = clip
        if clip is not None:
            x = clamp_on_device(x, clip)
        return x, y

    def _kernel_on(self, device: torch.device) -> torch.Tensor:
        kernels = self.__dict__.setdefault("_kernels", {})
        if "cpu" not in kernels:
            kernels["cpu"] = self.median_blur.kernel.detach().cpu()
        key = str(device)
        if key not in kernels:
            kernels[key] = kernels["cpu"].to(device)
        return kernels[key]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("median_blur", None)
        state.pop("_kernels", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        fresh = SpatialSmoothingPyTorch(
            window_size=self.window_size,
            channels_first=self.channels_first,
            clip_values=self.clip_values,
            device_type="cpu",
        )
        self.median_blur = fresh.median_blur


def clamp_on_device(x: torch.Tensor, clip_values: Any) -> torch.Tensor:
    """``x`` clamped to ``clip_values`` (scalars or arrays), with the bounds on ``x``'s device."""
    low, high = clip_values
    if np.ndim(low) == 0 and np.ndim(high) == 0:
        return x.clamp(min=float(low), max=float(high))
    low_t = torch.as_tensor(np.asarray(low), dtype=x.dtype, device=x.device)
    high_t = torch.as_tensor(np.asarray(high), dtype=x.dtype, device=x.device)
    return torch.maximum(torch.minimum(x, high_t), low_t)


def _build(clip_values: Any, channels_first: bool, **kwargs: Any) -> Any:
    try:
        import kornia  # noqa: F401
    except ImportError as err:
        raise DefenceUnavailableError(
            "defence 'spatial-smoothing-pytorch' needs the kornia package (pip install kornia); "
            "'spatial-smoothing' works without it."
        ) from err
    return DeviceSpatialSmoothingPyTorch(
        clip_values=clip_values, channels_first=channels_first, **kwargs
    )


DEFENCE = DefenceSpec(
    name="spatial-smoothing-pytorch",
    factory=_build,
    defaults={"window_size": 3, "apply_fit": False, "apply_predict": True, "device_type": "gpu"},
    description="Median spatial smoothing in PyTorch (differentiable path; needs kornia).",
)
