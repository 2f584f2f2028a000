"""Tests for attack parameters: an integer or a real number (never a bool), and a norm's name.

``True`` is an ``int`` to Python, so ``isinstance(True, int)`` would let ``max_iter=True`` through;
these tests refuse bools (and NumPy's) while accepting NumPy's integer and floating scalars.

    >>> is_int(np.int64(3)), is_int(True), is_number(0.5)
    (True, False, True)
"""

from __future__ import annotations

import math
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
