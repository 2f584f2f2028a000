"""Epsilon values from the command line: one value, a list, a sweep or the dataset's grid.

:func:`parse_eps` reads them (at most :data:`MAX_EPS_VALUES`, counted before a sweep is built);
:func:`check_eps_range` refuses values no attack of that norm can mean on the data: an L-inf eps
above the data's range, an L2 eps above ``sqrt(d)`` times it, a normalised L2 threshold
(``||delta||_2 / d``, the paper's Table 2 units) above ``range / sqrt(d)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EPS_TOLERANCE = 1e-9  # two eps values closer than this are the same
# each eps value is an attack run of its own: a list longer than this is a typo (0:1:1e-9), and
# building it would exhaust the memory before the first attack
MAX_EPS_VALUES = 1000


def _too_many(what: str, count: float) -> ValueError:
    counted = f"{count:,.0f}" if math.isfinite(count) else "more than 1e308"
    return ValueError(
        f"{what} gives {counted} eps values; at most {MAX_EPS_VALUES:,} are accepted (each is "
        "an attack run of its own): use a larger step."
    )


def parse_eps(text: str, eps_grid: Sequence[float] = ()) -> list[float]:
    """Epsilon values from ``"0.1"``, ``"0.1,0.2"``, a sweep ``"start:stop:step"`` (stop included
    within float tolerance) or ``"paper"`` (the dataset's ``eps_grid``).

    :raises ValueError: one sentence for text that is none of these, a value that is negative or
        not finite, or more than :data:`MAX_EPS_VALUES` values (a sweep is counted before it is
        built).
    """
    text = text.strip()
    if text == "paper":
        if not eps_grid:
            raise ValueError(
                "--eps paper needs a dataset with an eps_grid; give values or start:stop:step."
            )
        return [float(e) for e in eps_grid]
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > MAX_EPS_VALUES:
        raise _too_many("--eps", len(parts))
    values: list[float] = []
    for part in parts:
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
            if not all(math.isfinite(v) for v in (start, stop, step)):
                raise ValueError(f"Bad eps sweep {part!r}; start, stop and step must be finite.")
            if not step > 0 or stop < start:
                raise ValueError(f"Bad eps sweep {part!r}; accepted: step > 0 and stop >= start.")
            span = (stop - start) / step  # counted before building: it may be huge, even inf
            count = math.floor(span + 1e-6) + 1 if span <= MAX_EPS_VALUES else span + 1
            if len(values) + count > MAX_EPS_VALUES:
                raise _too_many(f"--eps {part!r}", count)
            values.extend(round(start + i * step, 10) for i in range(int(count)))
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


def eps_bound(
    norm: str,
    clip_values: Sequence[float],
    input_shape: Sequence[int],
    normalised_l2: bool = False,
) -> float:
    """The largest eps that means something for an attack measured in ``norm`` (``"inf"`` or
    ``"2"``) on inputs of ``input_shape`` in ``clip_values``: the range ``high - low`` (L-inf; a
    larger ball holds no other input), ``sqrt(d)`` times it (L2, ``d`` values per input: the
    distance between two corners), ``range / sqrt(d)`` for an L2 threshold normalised by ``d``
    (``normalised_l2``: cw / cw-fast's ``||delta||_2 / d``)."""
    low, high = (float(v) for v in clip_values)
    span = high - low
    if norm == "inf":
        return span
    d = math.prod(int(n) for n in input_shape)
    return span / math.sqrt(d) if normalised_l2 else span * math.sqrt(d)


def check_eps_range(
    values: Sequence[float],
    norm: str = "inf",
    clip_values: Sequence[float] = (0.0, 1.0),
    input_shape: Sequence[int] = (),
    normalised_l2: bool = False,
    what: str = "eps",
    positive: bool = False,
) -> list[float]:
    """``values`` when each lies in ``[0, eps_bound(...)]``, else one sentence naming the first
    value out of range, the bound and why (``what`` names the value, e.g. ``--l2-threshold``).

    An eps of 0 is accepted (a sweep's clean point) unless ``positive`` (a step size). Above the
    bound an attack's budget is the whole input space, or its threshold is larger than any
    perturbation, so the robust accuracy it reports means nothing (e.g. eps 8 on images in
    [0, 1]: robust accuracy 0).
    """
    bound = eps_bound(norm, clip_values, input_shape, normalised_l2)
    low, high = (float(v) for v in clip_values)
    opening = "(" if positive else "["
    for value in values:
        if (value > 0.0 or not positive and value == 0.0) and value <= bound * (1 + EPS_TOLERANCE):
            continue
        data = f"data in [{low:g}, {high:g}]"
        if norm == "inf":
            raise ValueError(f"{what} must be in {opening}0, {bound:g}] for {data}, got {value:g}.")
        d = math.prod(int(n) for n in input_shape)
        if normalised_l2:
            raise ValueError(
                f"{what} (an L2 threshold ||delta||_2 / {d}) must be in {opening}0, "
                f"{bound:.4g}] for {data} with {d} values per input (range / sqrt({d})), "
                f"got {value:g}."
            )
        raise ValueError(
            f"{what} (an L2 norm) must be in {opening}0, {bound:.4g}] for {data} with {d} values "
            f"per input (range x sqrt({d})), got {value:g}."
        )
    return list(values)
