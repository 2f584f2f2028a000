"""Tests for attack parameters: an integer or a real number (never a bool), and a norm's name; and
the checks built on them that every er-art attack declares (:func:`check_params`).

``True`` is an ``int`` to Python, so ``isinstance(True, int)`` would let ``max_iter=True`` through;
these tests refuse bools (and NumPy's) while accepting NumPy's integer and floating scalars.

    >>> is_int(np.int64(3)), is_int(True), is_number(0.5)
    (True, False, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """A real number (Python or NumPy, integer or floating), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def norm_key(norm: Any) -> str | None:
    """``"inf"`` or ``"2"`` for the accepted spellings of the Linf and L2 norms (``np.inf``,
    ``float("inf")``, ``"inf"``, ``"linf"``; ``2``, ``"2"``, ``"l2"``), else ``None``."""
    if isinstance(norm, str):
        return {"inf": "inf", "linf": "inf", "2": "2", "l2": "2"}.get(norm.strip().lower())
    if is_number(norm):
        if math.isinf(norm) and norm > 0:
            return "inf"
        if norm == 2:
            return "2"
    return None


# ---------------------------------------------------------------------------- parameter checks
# An attack declares its checks as data, ``{parameter: check}``, and :func:`check_params` runs
# them (``er_art.attacks.engine.AttackEngine._check_params``); each check raises one ValueError
# naming the parameter, the bad value and what is accepted.
Check = Callable[[str, Any], None]


def integer(minimum: int = 1) -> Check:
    """An integer (not a bool) ``>= minimum``."""

    def check(name: str, value: Any) -> None:
        if not (is_int(value) and value >= minimum):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")

    return check


def real(
    low: float | None = 0.0,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Check:
    """A finite real number (not a bool) in the interval ``low .. high`` (open ends where asked);
    ``None``: unbounded on that side."""
    if low is not None and high is not None:
        accepted = (
            f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )
    elif low is not None:
        accepted = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        accepted = "a finite number"

    def check(name: str, value: Any) -> None:
        ok = is_number(value) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise ValueError(f"{name} must be {accepted}, got {value!r}.")

    return check


def flag(name: str, value: Any) -> None:
    """``True`` or ``False`` (Python's or NumPy's)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}.")


def norm(accepted: tuple[str, ...] = ("inf", "2"), who: str = "") -> Check:
    """A norm :func:`norm_key` knows and ``accepted`` holds (``"inf"``, ``"2"``)."""

    def check(name: str, value: Any) -> None:
        if norm_key(value) in accepted:
            return
        if accepted == ("inf",):
            raise ValueError(
                f"{who or 'This attack'} implements only the Linf norm (np.inf or 'inf'), got "
                f"{name}={value!r}."
            )
        raise ValueError(f"{name} must be 'inf' (np.inf) or 2, got {value!r}.")

    return check


def check_params(owner: Any, checks: Mapping[str, Check]) -> None:
    """Run each check on the attribute of ``owner`` it names."""
    for name, check in checks.items():
        check(name, getattr(owner, name))
