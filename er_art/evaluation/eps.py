"""Epsilon values from the command line: one value, a list, a sweep or the dataset's grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

EPS_TOLERANCE = 1e-9  # two eps values closer than this are the same


def parse_eps(text: str, eps_grid: Sequence[float] = ()) -> list[float]:
    """Epsilon values from ``"0.1"``, ``"0.1,0.2"``, a sweep ``"start:stop:step"`` (stop included
    within float tolerance) or ``"paper"`` (the dataset's ``eps_grid``)."""
    text = text.strip()
    if text == "paper":
        if not eps_grid:
            raise ValueError(
                "--eps paper needs a dataset with an eps_grid; give values or start:stop:step."
            )
        return [float(e) for e in eps_grid]
    values: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        if ":" in part:
            pieces = part.split(":")
            if len(pieces) != 3:
                raise ValueError(
                    f"Bad eps sweep {part!r}; accepted: start:stop:step, e.g. 0:0.3:0.05."
                )
            try:
                start, stop, step = (float(p) for p in pieces)
            except ValueError:
                raise ValueError(
                    f"Bad eps sweep {part!r}; start, stop and step must be numbers."
                ) from None
            if not step > 0 or stop < start:
                raise ValueError(f"Bad eps sweep {part!r}; accepted: step > 0 and stop >= start.")
            n = int(math.floor((stop - start) / step + 1e-6)) + 1
            values.extend(round(start + i * step, 10) for i in range(n))
        else:
            try:
                values.append(float(part))
            except ValueError:
                raise ValueError(
                    f"Bad eps {part!r}; accepted: a number, start:stop:step, or 'paper'."
                ) from None
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise ValueError(f"eps values must be finite and >= 0, got {text!r}.")
    if not values:
        raise ValueError("No eps value given.")
    return values
