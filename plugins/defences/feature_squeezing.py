"""``feature-squeezing``: reduce the colour bit depth (ART ``FeatureSqueezing``).

[Xu et al., 2018] "Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks"
(https://arxiv.org/abs/1704.01155). Gradient: identity (BPDA).

Arguments (ART names):
    bit_depth (int): bits per channel kept. (Default: 4)
    apply_fit (bool): also squeeze training data. (Default: False)
    apply_predict (bool): squeeze at prediction time. (Default: True)
"""

from __future__ import annotations

from typing import Any

from er_art.defences import DefenceSpec


def _build(clip_values: Any, channels_first: bool, **kwargs: Any) -> Any:
    from art.defences.preprocessor import FeatureSqueezing

    if clip_values is None:
        raise ValueError("feature-squeezing needs a classifier with clip_values.")
    return FeatureSqueezing(clip_values=clip_values, **kwargs)


DEFENCE = DefenceSpec(
    name="feature-squeezing",
    factory=_build,
    defaults={"bit_depth": 4, "apply_fit": False, "apply_predict": True},
    description="Feature squeezing: keep bit_depth bits per channel.",
)
