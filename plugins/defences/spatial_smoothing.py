"""``spatial-smoothing``: median filter over a sliding window (ART ``SpatialSmoothing``, NumPy).

[Xu et al., 2018] "Feature Squeezing" (https://arxiv.org/abs/1704.01155). Gradient: identity (BPDA).

Arguments (ART names):
    window_size (int): side of the median window. (Default: 3)
    apply_fit (bool): also smooth training data. (Default: False)
    apply_predict (bool): smooth at prediction time. (Default: True)
"""

from __future__ import annotations

from typing import Any

from er_art.defences import DefenceSpec


def _build(clip_values: Any, channels_first: bool, **kwargs: Any) -> Any:
    from art.defences.preprocessor import SpatialSmoothing

    return SpatialSmoothing(clip_values=clip_values, channels_first=channels_first, **kwargs)


DEFENCE = DefenceSpec(
    name="spatial-smoothing",
    factory=_build,
    defaults={"window_size": 3, "apply_fit": False, "apply_predict": True},
    description="Median spatial smoothing over a window_size x window_size window.",
)
