"""``jpeg``: JPEG compression of the input (ART ``JpegCompression``; 1- or 3-channel images).

[Dziugaite et al., 2016] "A study of the effect of JPG compression on adversarial images"
(https://arxiv.org/abs/1608.00853). Gradient: identity (BPDA).

Arguments (ART names):
    quality (int): JPEG quality, 1..95. (Default: 50)
    apply_fit (bool): also compress training data. (Default: False)
    apply_predict (bool): compress at prediction time. (Default: True)
"""

from __future__ import annotations

from typing import Any

from er_art.defences import DefenceSpec


def _build(clip_values: Any, channels_first: bool, **kwargs: Any) -> Any:
    from art.defences.preprocessor import JpegCompression

    if clip_values is None:
        raise ValueError("jpeg needs a classifier with clip_values (0..1 or 0..255).")
    return JpegCompression(clip_values=clip_values, channels_first=channels_first, **kwargs)


DEFENCE = DefenceSpec(
    name="jpeg",
    factory=_build,
    defaults={"quality": 50, "apply_fit": False, "apply_predict": True},
    description="JPEG compression at the given quality.",
)
