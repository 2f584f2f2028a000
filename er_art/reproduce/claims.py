"""The verdict on each of the paper's claims: ``claims.md`` and ``claims.json``.

Every claim is one or more comparisons "A is more robust than B". Each comparison is read under
each protocol separately (the paper's PGD; er-art's worst case; the adaptive attacks where a
method has them), at every eps > 0 both methods were attacked at, from the per-example outcomes:

- the two methods are compared on the test images both were attacked on (every protocol attacks
  a prefix of the same test images, so the first ``min(n_A, n_B)`` are common), by the exact
  McNemar test (:func:`er_art.stats.paired_test`);
- the p-values of one comparison over its eps values are Holm-adjusted (several eps, one claim);
- under ``adaptive``, a comparison in which one method has adaptive attacks (RSE, Defense-GAN)
  takes the other with its strongest evaluation (its worst case, else the paper's protocol: Table
  2's C&W); a comparison in which neither has them is left to the worst case;
- **held**: A is more robust at some eps with adjusted p < ``ALPHA`` and less robust at none;
  **not held**: A is less robust at some eps with adjusted p < ``ALPHA`` and more robust at none;
  otherwise **inconclusive** (no significant difference, or both directions). A claim of several
  comparisons is held when every one is held, not held when any is, and inconclusive otherwise;
  **not measured** when a method is missing.

Table 3's intrinsic dimension is a number, not a comparison: held when er-art's Levina-Bickel
estimate rounds to within ``INTRINSIC_TOLERANCE`` of the published one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from er_art.stats import paired_test, wilson_interval

ALPHA = 0.05
INTRINSIC_TOLERANCE = 0.1  # relative: |estimate - published| <= 10 % of the published value
HELD, NOT_HELD, INCONCLUSIVE, NOT_MEASURED = "held", "not held", "inconclusive", "not measured"
NOT_APPLICABLE = "–"  # e.g. the adaptive protocol when neither method has adaptive attacks
NO_PUBLISHED = "no published value"
PROTOCOL_TITLES = {"paper": "paper's protocol", "worst-case": "worst case", "adaptive": "adaptive"}


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``text`` holds when every comparison (A more robust than B) does."""

    key: str
    text: str
    source: str  # where the paper makes it
    comparisons: tuple[tuple[str, str], ...]
    eps: str = "linf"  # "linf": the L-inf budgets; else the one budget label (Table 2's C&W)
    note: str = ""


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "er-vs-madry",
        "The ER-Classifier is more robust than Madry's adversarial training",
        "Table 1",
        (("er-pgd", "madry"),),
    ),
    Claim(
        "er-minus-vs-plain",
        "ER-Classifier- (no min-max) is more robust than No Defense",
        "Figure 2",
        (("er-minus", "plain"),),
    ),
    Claim(
        "er-vs-ecla-vae",
        "The ER-Classifier is more robust than E-CLA and VAE-CLA",
        "Figure 3",
        (("er-minus", "ecla"), ("er-minus", "vae-cla")),
        note="read on ER-Classifier- (no min-max), trained like E-CLA and VAE-CLA, so that only "
        "the regulariser differs",
    ),
    Claim(
        "gaussian-prior",
        "The standard Gaussian is the best prior",
        "Figure 4",
        (("er-minus", "er-minus-uniform"), ("er-minus", "er-minus-cauchy")),
        note="ER-Classifier- with each prior, no min-max, as the paper trained them",
    ),
    Claim(
        "intrinsic-dimension",
        "An embedding dimension near the data's intrinsic dimension works best",
        "Figure 5",
        (
            ("er-minus-k-intrinsic", "er-minus"),
            ("er-minus-k-intrinsic", "er-minus-k-half"),
            ("er-minus-k-intrinsic", "er-minus-k-double"),
        ),
        note="the Levina-Bickel estimate as the embedding dimension against the default, half "
        "and twice it (ER-Classifier-, no min-max); the paper itself chose 4, not 13, on MNIST",
    ),
    Claim(
        "er-vs-defense-gan-cw",
        "The ER-Classifier is much more robust than Defense-GAN under C&W",
        "Table 2",
        (("er-pgd", "defense-gan"),),
        eps="l2:0.005",
    ),
    Claim(
        "regulariser-adds-to-min-max",
        "The regulariser adds robustness to min-max training (not asked by the paper)",
        "er-art's control",
        (("er-pgd", "ecla-pgd"),),
        note="the same encoder, head, PGD min-max, epochs and data; only the discriminator differs",
    ),
)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _rows_of(rows: list[Any], protocol: str) -> dict[tuple[str, Any], Any]:
    """(method, eps) -> the row of ``protocol`` with per-example outcomes."""
    return {(r.method, r.eps): r for r in rows if r.robust is not None and r.protocol == protocol}


def compare(a_row: Any, b_row: Any) -> dict[str, Any]:
    """A paired comparison of two rows on their common first test images."""
    n = min(a_row.n, b_row.n)
    a, b = np.asarray(a_row.robust[:n], bool), np.asarray(b_row.robust[:n], bool)
    test = paired_test(a, b)
    return {
        "eps": a_row.eps,
        "n": n,
        "accuracy_a": float(a.mean()),
        "interval_a": list(wilson_interval(int(a.sum()), n)),
        "accuracy_b": float(b.mean()),
        "interval_b": list(wilson_interval(int(b.sum()), n)),
        "only_a": test.only_a,
        "only_b": test.only_b,
        "p": test.p,
    }


def _direction_verdict(tests: list[dict[str, Any]]) -> str:
    better = any(t["p_holm"] < ALPHA and t["only_a"] > t["only_b"] for t in tests)
    worse = any(t["p_holm"] < ALPHA and t["only_a"] < t["only_b"] for t in tests)
    if better and not worse:
        return HELD
    if worse and not better:
        return NOT_HELD
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """A claim's verdict from its comparisons' (module docstring)."""
    if not verdicts or NOT_MEASURED in verdicts:
        return NOT_MEASURED
    if NOT_HELD in verdicts:
        return NOT_HELD
    if all(v == HELD for v in verdicts):
        return HELD
    return INCONCLUSIVE


def judge(claim: Claim, rows: list[Any], protocol: str) -> dict[str, Any]:
    """The verdict on ``claim`` under ``protocol``, with every comparison's numbers."""
    found = _rows_of(rows, protocol)
    adaptive = {m for m, _ in found} if protocol == "adaptive" else set()
    if protocol == "adaptive":  # a method without adaptive attacks: its strongest evaluation
        for fallback in ("worst-case", "paper"):
            for key, r in _rows_of(rows, fallback).items():
                found.setdefault(key, r)
    comparisons = []
    for a, b in claim.comparisons:
        if protocol == "adaptive" and not {a, b} & adaptive:
            continue  # neither has adaptive attacks: the worst case says it all
        eps_values = [
            e
            for (m, e) in found
            if m == a
            and (b, e) in found
            and ((claim.eps == "linf" and not isinstance(e, str) and e > 0) or e == claim.eps)
        ]
        tests = [compare(found[a, e], found[b, e]) for e in sorted(set(eps_values))]
        for t, p in zip(tests, holm([t["p"] for t in tests]), strict=True):
            t["p_holm"] = p
        verdict = _direction_verdict(tests) if tests else NOT_MEASURED
        comparisons.append({"a": a, "b": b, "verdict": verdict, "tests": tests})
    if not comparisons:
        return {"verdict": NOT_APPLICABLE, "comparisons": []}
    return {"verdict": combine([c["verdict"] for c in comparisons]), "comparisons": comparisons}


def intrinsic_verdict(intrinsic: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """Table 3: er-art's Levina-Bickel estimate of the data against the published one."""
    ours, theirs = intrinsic.get("intrinsic_dim"), published.get("intrinsic_dim")
    if ours is None:
        verdict = NOT_MEASURED
    elif theirs is None:
        verdict = NO_PUBLISHED
    else:
        verdict = HELD if abs(ours - theirs) <= INTRINSIC_TOLERANCE * theirs else NOT_HELD
    return {
        "verdict": verdict,
        "estimate": ours,
        "published": theirs,
        "n": intrinsic.get("n"),
        "k": intrinsic.get("k"),
        "embedding_dim": intrinsic.get("embedding_dim"),
        "published_embedding_dim": published.get("embedding_dim"),
    }


def judge_all(result: Any) -> dict[str, Any]:
    """Every claim under every protocol measured, and Table 3 (what claims.json holds)."""
    from er_art.reproduce.presets import PAPER_TABLE3

    plan = result.plan
    protocols = [p for p in PROTOCOL_TITLES if any(r.protocol == p for r in result.rows)]
    claims = []
    for claim in CLAIMS:
        by_protocol = {p: judge(claim, result.rows, p) for p in protocols}
        by_protocol = {p: v for p, v in by_protocol.items() if v["verdict"] != NOT_APPLICABLE}
        claims.append(
            {
                "key": claim.key,
                "claim": claim.text,
                "source": claim.source,
                "note": claim.note,
                "protocols": by_protocol,
            }
        )
    return {
        "dataset": plan.dataset,
        "scale": plan.scale.name,
        "alpha": ALPHA,
        "test": "exact McNemar on the common test images, Holm-adjusted over eps",
        "claims": claims,
        "table3": intrinsic_verdict(result.intrinsic, PAPER_TABLE3.get(plan.dataset, {})),
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _test_line(a: str, b: str, t: dict[str, Any]) -> str:
    eps = t["eps"] if isinstance(t["eps"], str) else f"{t['eps']:g}"
    ia, ib = t["interval_a"], t["interval_b"]
    return (
        f"| `{a}` | `{b}` | {eps} | {t['n']} | {_pct(t['accuracy_a'])} [{_pct(ia[0])}, "
        f"{_pct(ia[1])}] | {_pct(t['accuracy_b'])} [{_pct(ib[0])}, {_pct(ib[1])}] | "
        f"{t['only_a']} / {t['only_b']} | {t['p']:.3g} | {t['p_holm']:.3g} |"
    )


def render_claims(verdicts: dict[str, Any]) -> str:
    """claims.md: a summary table, then each claim's comparisons."""
    protocols = list(dict.fromkeys(p for c in verdicts["claims"] for p in c["protocols"]))
    head = " | ".join(PROTOCOL_TITLES[p] for p in protocols)
    lines = [
        f"# The paper's claims: {verdicts['dataset']}, scale `{verdicts['scale']}`",
        "",
        "Each claim is read under each protocol separately, from the per-example outcomes in "
        f"table.csv's evaluations: {verdicts['test']}, significance level {verdicts['alpha']:g}. "
        "**held**: A significantly more robust at some ε and less robust at none; **not held**: "
        "the reverse; **inconclusive**: no significant difference (or both directions). A scaled "
        "down run says what held at its own scale only.",
        "",
        f"| claim | source | {head} |",
        "|---|---|" + "---|" * len(protocols),
    ]
    for c in verdicts["claims"]:
        cells = " | ".join(
            c["protocols"][p]["verdict"] if p in c["protocols"] else "–" for p in protocols
        )
        lines.append(f"| {c['claim']} | {c['source']} | {cells} |")
    t3 = verdicts["table3"]
    estimate = "–" if t3["estimate"] is None else f"{t3['estimate']:.2f}"
    lines.append(
        f"| Table 3's intrinsic dimension ({estimate} here, {t3['published'] or '–'} published) | "
        f"Table 3 | {t3['verdict']} (not a protocol's) |" + " |" * (len(protocols) - 1)
    )
    for c in verdicts["claims"]:
        lines += ["", f"## {c['claim']} ({c['source']})", ""]
        if c["note"]:
            lines += [f"Read as: {c['note']}.", ""]
        for p, judged in c["protocols"].items():
            lines += [f"**{PROTOCOL_TITLES[p]}: {judged['verdict']}**", ""]
            tests = [(cmp["a"], cmp["b"], t) for cmp in judged["comparisons"] for t in cmp["tests"]]
            missing = [f"`{x['a']}` vs `{x['b']}`" for x in judged["comparisons"] if not x["tests"]]
            if tests:
                lines += [
                    "| A | B | ε | n | A % [95 % CI] | B % [95 % CI] | only A / only B | p | "
                    "p (Holm) |",
                    "|---|---|---|---|---|---|---|---|---|",
                ]
                lines += [_test_line(a, b, t) for a, b, t in tests]
            if missing:
                lines += ["", "Not measured: " + ", ".join(missing) + "."]
            lines.append("")
    lines += [
        "## Table 3: intrinsic dimension",
        "",
        f"Levina–Bickel estimate {estimate} on {t3['n']} training images (k = {t3['k']}), "
        f"published {t3['published'] or '–'}: **{t3['verdict']}** (held within "
        f"{100 * INTRINSIC_TOLERANCE:g} % of the published value).",
    ]
    return "\n".join(lines) + "\n"


def write_claims(result: Any, write_text: Any) -> list[Path]:
    """claims.json and claims.md into the reproduction's output directory."""
    verdicts = judge_all(result)
    out = result.plan.out
    return [
        write_text(out / "claims.json", json.dumps(verdicts, indent=2) + "\n"),
        write_text(out / "claims.md", render_claims(verdicts)),
    ]
