"""Uncertainty of accuracies measured on n test examples, and paired comparisons of two of them.

    >>> from er_art.stats import wilson_interval, paired_test
    >>> wilson_interval(87, 100)                     # (0.792..., 0.922...): 95 % Wilson interval
    >>> paired_test(robust_a, robust_b)              # exact McNemar over the same examples

Both come from SciPy rather than formulas of our own: ``scipy.stats.binomtest(k,
n).proportion_ci(method="wilson")`` is the Wilson score interval (Wilson 1927; well behaved near 0
and 1, where accuracies under attack live, unlike the normal approximation), and the exact McNemar
test is the two-sided binomial test of the discordant pairs against 1/2 (McNemar 1947; exact, so
valid for the few discordant pairs of small test sets). Per-example outcomes are kept in every
evaluation store so each test can be recomputed from the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials, as fractions."""
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"Need 0 <= k <= n and n > 0, got k={k}, n={n}.")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class PairedTest:
    """An exact McNemar test of two per-example outcomes on the same examples: ``only_a`` examples
    A counts as a success and B does not, ``only_b`` the reverse, ``p`` the two-sided p-value."""

    n: int
    only_a: int
    only_b: int
    p: float

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "only_a": self.only_a, "only_b": self.only_b, "p": self.p}


def paired_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Exact McNemar test of boolean per-example outcomes ``a`` and ``b`` (e.g. robust under the
    worst case), which must describe the same examples in the same order."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"A paired test needs two outcomes of the same examples, got shapes {a.shape} and "
            f"{b.shape}."
        )
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return PairedTest(len(a), only_a, only_b, float(p))
