"""er_art.stats: the Wilson interval and the exact McNemar test against known values."""

from __future__ import annotations

import numpy as np
import pytest

from er_art.stats import paired_test, wilson_interval


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 81 of 263 -> 0.2553 to 0.3662; 15 of 148 -> 0.0624 to 0.1605
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    low, high = wilson_interval(0, 20)  # at zero successes the interval still has width
    assert low == 0.0 and high == pytest.approx(0.1611, abs=5e-5)
    assert wilson_interval(20, 20)[1] == 1.0


@pytest.mark.parametrize(("k", "n"), [(-1, 10), (11, 10), (0, 0)])
def test_wilson_interval_refuses_impossible_counts(k, n):
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(k, n)


def test_exact_mcnemar_matches_the_binomial_tail():
    # 10 pairs favour A, 2 favour B: p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096
    a = np.array([True] * 10 + [False] * 2 + [True] * 30 + [False] * 8)
    b = np.array([False] * 10 + [True] * 2 + [True] * 30 + [False] * 8)
    test = paired_test(a, b)
    assert (test.n, test.only_a, test.only_b) == (50, 10, 2)
    assert test.p == pytest.approx(2 * 79 / 4096)
    assert paired_test(b, a).p == pytest.approx(test.p)  # two-sided: symmetric
    assert paired_test(a, a).p == 1.0  # no discordant pair: no evidence either way
    with pytest.raises(ValueError, match="same examples"):
        paired_test(a, b[:-1])
