"""claims.md / claims.json: each of the paper's claims held, not held or inconclusive, from paired
tests of the per-example outcomes (er_art.reproduce.claims)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from er_art.reproduce import claims as claims_module
from er_art.reproduce.claims import (
    CLAIMS,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_MEASURED,
    combine,
    holm,
    judge,
    judge_all,
    render_claims,
)
from er_art.reproduce.protocols import Row

MADRY_CLAIM = next(c for c in CLAIMS if c.key == "er-vs-madry")


def row(method, protocol, robust, eps=0.3):
    robust = np.asarray(robust, dtype=bool)
    return Row(method, eps, protocol, robust.mean(), len(robust), None, robust)


def outcomes(both, only_a, only_b, neither):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


def test_holm_adjusts_like_the_textbook():
    # Holm (1979): sorted p 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_a_claim_is_inconclusive_when_the_test_is_not_significant():
    a, b = outcomes(50, 6, 3, 41)  # 6 against 3 discordant: p = 0.51
    judged = judge(MADRY_CLAIM, [row("er-pgd", "worst-case", a), row("madry", "worst-case", b)],
                   "worst-case")  # fmt: skip
    assert judged["verdict"] == INCONCLUSIVE
    (test,) = judged["comparisons"][0]["tests"]
    assert (test["only_a"], test["only_b"], test["n"]) == (6, 3, 100)
    assert test["p"] > 0.05 and test["accuracy_a"] > test["accuracy_b"]  # higher, not shown


def test_held_and_not_held_follow_the_direction_of_a_significant_difference():
    a, b = outcomes(40, 20, 2, 38)
    rows = [row("er-pgd", "paper", a), row("madry", "paper", b)]
    assert judge(MADRY_CLAIM, rows, "paper")["verdict"] == HELD
    rows = [row("er-pgd", "paper", b), row("madry", "paper", a)]
    assert judge(MADRY_CLAIM, rows, "paper")["verdict"] == NOT_HELD
    assert judge(MADRY_CLAIM, rows, "worst-case")["verdict"] == NOT_MEASURED


def test_several_eps_are_holm_adjusted_and_eps_zero_is_not_a_robustness_claim():
    a, b = outcomes(40, 9, 1, 50)  # p = 0.021 alone; with a second eps, Holm makes it 0.04
    c, d = outcomes(40, 3, 3, 54)
    rows = [
        row("er-pgd", "paper", a, eps=0.1), row("madry", "paper", b, eps=0.1),
        row("er-pgd", "paper", c, eps=0.2), row("madry", "paper", d, eps=0.2),
        row("er-pgd", "paper", b, eps=0.0), row("madry", "paper", a, eps=0.0),
    ]  # fmt: skip
    tests = judge(MADRY_CLAIM, rows, "paper")["comparisons"][0]["tests"]
    assert [t["eps"] for t in tests] == [0.1, 0.2]
    assert tests[0]["p_holm"] == pytest.approx(min(1.0, 2 * tests[0]["p"]))
    assert judge(MADRY_CLAIM, rows, "paper")["verdict"] == HELD  # 0.042 < 0.05


def test_methods_on_different_numbers_of_images_are_paired_on_the_common_first_ones():
    a, b = outcomes(40, 20, 2, 38)
    rows = [row("er-pgd", "worst-case", a + [False] * 100), row("madry", "worst-case", b)]
    (test,) = judge(MADRY_CLAIM, rows, "worst-case")["comparisons"][0]["tests"]
    assert test["n"] == 100 and (test["only_a"], test["only_b"]) == (20, 2)


def test_a_claim_of_several_comparisons_needs_every_one():
    assert combine([HELD, HELD]) == HELD
    assert combine([HELD, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([HELD, NOT_HELD]) == NOT_HELD
    assert combine([HELD, NOT_MEASURED]) == NOT_MEASURED


def test_claims_files_list_every_claim_with_numbers(tmp_path):
    a, b = outcomes(40, 20, 2, 38)
    rows = [row("er-pgd", p, a) for p in ("paper", "worst-case")]
    rows += [row("madry", p, b) for p in ("paper", "worst-case")]
    result = SimpleNamespace(
        plan=SimpleNamespace(dataset="mnist", scale=SimpleNamespace(name="cpu"), out=tmp_path),
        rows=rows,
        intrinsic={"intrinsic_dim": 12.6, "n": 1000, "k": [6, 12], "embedding_dim": 4},
    )
    verdicts = judge_all(result)
    assert [c["key"] for c in verdicts["claims"]] == [c.key for c in CLAIMS]
    assert verdicts["table3"]["verdict"] == HELD  # 12.6 against the published 13
    text = render_claims(verdicts)
    claim = "The ER-Classifier is more robust than Madry's adversarial training"
    assert f"| {claim} | Table 1 | held | held |" in text
    assert "| `er-pgd` | `madry` | 0.3 | 100 | 60.0 [50.2, 69.1] | 42.0 [32.8, 51.8] |" in text

    def write_text(path, text):
        path.write_text(text)
        return path

    files = claims_module.write_claims(result, write_text)
    assert [f.name for f in files] == ["claims.json", "claims.md"]
    loaded = json.loads(files[0].read_text())
    assert loaded["claims"][0]["protocols"]["worst-case"]["verdict"] == HELD


def test_the_adaptive_protocol_only_reads_comparisons_with_an_adaptive_method():
    from er_art.reproduce.claims import NOT_APPLICABLE

    a, b = outcomes(40, 20, 2, 38)
    rows = [row("er-pgd", "worst-case", a), row("madry", "worst-case", b)]
    assert judge(MADRY_CLAIM, rows, "adaptive")["verdict"] == NOT_APPLICABLE
    dgan = next(c for c in CLAIMS if c.key == "er-vs-defense-gan-cw")
    cw = "l2:0.005"
    rows = [row("er-pgd", "paper", a, eps=cw), row("defense-gan", "adaptive", b, eps=cw)]
    judged = judge(dgan, rows, "adaptive")  # er-pgd enters with its paper-protocol C&W
    assert judged["verdict"] == HELD and judged["comparisons"][0]["tests"][0]["eps"] == cw
