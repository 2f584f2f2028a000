"""``spatial-smoothing-pytorch``: median smoothing in PyTorch (ART ``SpatialSmoothingPyTorch``).

Needs the optional kornia package.

[Xu et al., 2018] "Feature Squeezing" (https://arxiv.org/abs/1704.01155). Framework-native, so
attacks differentiate through it (no NumPy round trip).

Arguments (ART names):
    window_size (int): side of the median window. (Default: 3)
    apply_fit (bool): also smooth training data. (Default: False)
    apply_predict (bool): smooth at prediction time. (Default: True)
    device_type (str): ``gpu`` (CUDA when available) or ``cpu``. (Default: "gpu")
"""

from __future__ import annotations

from typing import Any

from er_art.defences import DefenceSpec, DefenceUnavailableError


def _build(clip_values: Any, channels_first: bool, **kwargs: Any) -> Any:
    try:
        import kornia  # noqa: F401
    except ImportError as err:
        raise DefenceUnavailableError(
            "defence 'spatial-smoothing-pytorch' needs the kornia package (pip install kornia); "
            "'spatial-smoothing' works without it."
        ) from err
    from art.defences.preprocessor import SpatialSmoothingPyTorch

    return SpatialSmoothingPyTorch(clip_values=clip_values, channels_first=channels_first, **kwargs)


DEFENCE = DefenceSpec(
    name="spatial-smoothing-pytorch",
    factory=_build,
    defaults={"window_size": 3, "apply_fit": False, "apply_predict": True, "device_type": "gpu"},
    description="Median spatial smoothing in PyTorch (differentiable path; needs kornia).",
)
