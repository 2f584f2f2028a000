"""What a reproduction writes: ``table.csv`` (long format), ``table.md`` (the paper's numbers side
by side, every deviation in its header), the Figure 2 - 6 style PNGs, ``intrinsic_dim.json``
(Table 3), ``checks.json`` (the worst case's sanity checks) and ``claims.md`` / ``claims.json``
(the verdict on each of the paper's claims, :mod:`er_art.reproduce.claims`).

``table.csv`` has exactly the columns
``method,eps,protocol,robust_accuracy,n,ci_low,ci_high,paper``: ``robust_accuracy`` and
``paper`` are fractions in [0, 1] (``paper``: the published value where the paper's Table 1 or 2
gives one for that method and budget, whatever the row's protocol; empty otherwise); ``eps`` is
the L-inf budget, or ``l2:0.005`` for Table 2's C&W threshold (normalised L2,
``||delta||_2 / d``); ``n`` the number of test images; ``ci_low`` / ``ci_high`` the 95 % Wilson
interval of the robust accuracy (:mod:`er_art.stats`). table.md shows each accuracy with its
interval and, where two methods were attacked on the same test images, the exact McNemar test of
their per-example outcomes.
"""

from __future__ import annotations

import csv
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from er_art.checkpoint import atomic_write
from er_art.reproduce.claims import compare, write_claims
from er_art.reproduce.presets import (
    CW_THRESHOLD,
    METHODS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
    UNDERTRAINED_GAP,
    cw_eps_label,
)

logger = logging.getLogger(__name__)

COLUMNS = ("method", "eps", "protocol", "robust_accuracy", "n", "ci_low", "ci_high", "paper")
# The paired comparisons table.md reports: the ER-Classifier against every other method, and the
# paper's ER- against No Defense (each where both were attacked on the same images).
REFERENCE_PAIRS = (("er-minus", "plain"),)
PAIRED_PROTOCOLS = ("worst-case", "adaptive", "paper")
FIGURES = {
    2: "figure2.png",  # No Defense, Madry's Adv, RSE, ER-Classifier-, ER-Classifier (+ others)
    3: "figure3.png",  # E-CLA, VAE-CLA, ER-Classifier-, ER-Classifier, E-CLA + min-max
    4: "figure4.png",  # ER-Classifier- with the Gaussian, Uniform(-3, 3) and Cauchy(0, 1) priors
    5: "figure5.png",  # ER-Classifier- with embedding dimensions around the intrinsic one
    6: "figure6.png",  # Madry's Adv trained at several eps
}
FIGURE_TITLES = {
    2: "Figure 2 style",
    3: "Figure 3 style",
    4: "Figure 4 style (priors, no min-max)",
    5: "Figure 5 style (embedding dimension, no min-max)",
    6: "Figure 6 style (Madry's training eps)",
}


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def write_csv(rows: list[Any], path: Path) -> Path:
    """table.csv: one line per (method, eps, protocol)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r.as_csv())
    return _write_text(path, buffer.getvalue())


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _with_interval(row: Any) -> str:
    low, high = row.interval
    return f"{100 * row.robust_accuracy:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def _eps(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def _label(result: Any, method: str) -> str:
    record = next((m for m in result.methods if m.name == method), None)
    label = record.label if record else method
    return f"{label} (`{method}`)" if label != method else f"`{method}`"


def _protocol_table(result: Any, protocol: str) -> list[str]:
    """A method x eps table of one protocol (L-inf rows), the published rows under it."""
    rows = [r for r in result.rows if r.protocol == protocol and not isinstance(r.eps, str)]
    if not rows:
        return ["(nothing measured yet)"]
    eps_values = sorted({float(r.eps) for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    value = {(r.method, float(r.eps)): r for r in rows}
    lines = [
        "| method | n | " + " | ".join(f"ε={e:g}" for e in eps_values) + " |",
        "|---|---|" + "---|" * len(eps_values),
    ]
    for m in methods:
        ns = sorted({r.n for r in rows if r.method == m})
        cells = [_with_interval(value[m, e]) if (m, e) in value else "" for e in eps_values]
        n_text = "/".join(map(str, ns))
        lines.append(f"| {_label(result, m)} | {n_text} | " + " | ".join(cells) + " |")
    published = PAPER_TABLE1.get(result.plan.dataset, {})
    for m, by_eps in published.items():
        if m not in methods:  # the published row under its own method's only
            continue
        cells = []
        for e in eps_values:
            found = next((v for pe, v in by_eps.items() if abs(pe - e) < 1e-9), None)
            cells.append("" if found is None else f"*{found:.1f}*")
        if any(cells):
            name = METHODS[m].label if m in METHODS else m
            lines.append(f"| *published: {name}* (Table 1) | | " + " | ".join(cells) + " |")
    return lines


def comparison_pairs(methods: list[str]) -> list[tuple[str, str]]:
    """The pairs table.md tests: ``er-pgd`` against every method of the paper's comparison (and
    the control), :data:`REFERENCE_PAIRS`, and each ablation against the method it varies."""
    ablations = {m: METHODS[m].ablation for m in methods if m in METHODS and METHODS[m].ablation}
    pairs = [
        ("er-pgd", m)
        for m in methods
        if m != "er-pgd" and m not in ablations and "er-pgd" in methods
    ]
    pairs += [p for p in REFERENCE_PAIRS if p[0] in methods and p[1] in methods]
    pairs += [(a.base, m) for m, a in ablations.items() if a.base in methods]
    return pairs


def paired_comparisons(rows: list[Any]) -> list[dict[str, Any]]:
    """Exact McNemar tests of :func:`comparison_pairs` per protocol and eps, on the test images
    both rows were attacked on (every protocol attacks a prefix of the same test images)."""
    found = {(r.method, r.protocol, r.eps): r for r in rows if r.robust is not None}
    pairs = comparison_pairs(list(dict.fromkeys(r.method for r in rows)))
    out = []
    for protocol in PAIRED_PROTOCOLS:
        eps_values = list(dict.fromkeys(r.eps for r in rows if r.protocol == protocol))
        for eps in eps_values:
            for a, b in pairs:
                ra, rb = found.get((a, protocol, eps)), found.get((b, protocol, eps))
                if ra is not None and rb is not None:
                    out.append({"a": a, "b": b, "protocol": protocol, **compare(ra, rb)})
    return out


def _comparisons_section(result: Any) -> list[str]:
    tests = paired_comparisons(result.rows)
    if not tests:
        return []
    lines = [
        "",
        "## Paired comparisons (exact McNemar)",
        "",
        "Both methods on the same test images: *only A* counts the images A keeps robust and B "
        "does not, *only B* the reverse; p is the two-sided exact McNemar p-value. A difference "
        "whose p is 0.05 or more is no evidence either way.",
        "",
        "| A | B | protocol | ε | n | A % | B % | only A | only B | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        lines.append(
            f"| `{t['a']}` | `{t['b']}` | {t['protocol']} | {_eps(t['eps'])} | {t['n']} | "
            f"{_pct(t['accuracy_a'])} | {_pct(t['accuracy_b'])} | {t['only_a']} | "
            f"{t['only_b']} | {t['p']:.3g} |"
        )
    return lines


def _cw_table(result: Any) -> list[str]:
    label = cw_eps_label(CW_THRESHOLD)
    rows = [r for r in result.rows if r.eps == label]
    if not rows:
        return []
    dims = 1
    for d in result.plan.spec.input_shape:
        dims *= int(d)
    lines = [
        "",
        f"## Table 2: C&W L2 ≤ {CW_THRESHOLD:g} (normalised, ||δ||₂ / {dims} ≤ {CW_THRESHOLD:g}, "
        f"i.e. absolute L2 ≤ {CW_THRESHOLD * dims:.3g})",
        "",
        "`cw-fast` (Carlini & Wagner L2 in PyTorch)"
        + (
            "; adaptive: through BPDA and through the unrolled projection, the worst case per "
            "example (with the paper protocol's C&W on the same images)."
            if any(r.protocol == "adaptive" for r in rows)
            else "."
        ),
        "",
        "| method | paper protocol | n | adaptive | n | published |",
        "|---|---|---|---|---|---|",
    ]
    published = PAPER_TABLE2.get(result.plan.dataset, {})
    for m in dict.fromkeys(r.method for r in rows):
        p = next((r for r in rows if r.method == m and r.protocol == "paper"), None)
        a = next((r for r in rows if r.method == m and r.protocol == "adaptive"), None)
        pub = published.get(m)
        lines.append(
            f"| {_label(result, m)} | {_pct(p.robust_accuracy) if p else ''} | "
            f"{p.n if p else ''} | {_pct(a.robust_accuracy) if a else ''} | {a.n if a else ''} | "
            f"{'' if pub is None else f'*{pub:.1f}*'} |"
        )
    return lines


def _intrinsic_table(result: Any) -> list[str]:
    info = result.intrinsic
    paper = PAPER_TABLE3.get(result.plan.dataset, {})
    emb = info.get("embedding_intrinsic_dim")
    lines = [
        "",
        f"## Table 3: intrinsic dimension (Levina–Bickel, k = {info['k'][0]}..{info['k'][1]})",
        "",
        "| data | data dim | intrinsic dim (n) | paper | embedding dim k | paper's k | "
        "intrinsic dim of the er-pgd embedding (n) |",
        "|---|---|---|---|---|---|---|",
        f"| {info['dataset']} | {info['data_dim']} | {info['intrinsic_dim']:.2f} ({info['n']}) | "
        f"{paper.get('intrinsic_dim', '–')} | {info.get('embedding_dim', '–')} | "
        f"{paper.get('embedding_dim', '–')} | "
        + (f"{emb:.2f} ({info['embedding_n']})" if emb is not None else "–")
        + " |",
    ]
    return lines


def _checks_section(result: Any) -> list[str]:
    if not result.checks:
        return []
    lines = ["", "## Sanity checks of the worst case", ""]
    by_method: dict[str, dict[str, int]] = {}
    for c in result.checks:
        counts = by_method.setdefault(c["method"], {})
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    for m, counts in by_method.items():
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        lines.append(f"- {_label(result, m)}: {summary}")
        for c in result.checks:
            if c["method"] == m and c["status"] == "FAIL":
                warning = f" **{c['warning']}**" if c.get("warning") else ""
                lines.append(f"  - FAIL {c['check']}: {c['message']}{warning}")
    lines += ["", "Every check with its numbers is in `checks.json` (docs/EVALUATION.md)."]
    return lines


def undertrained(result: Any) -> dict[str, str]:
    """The methods whose clean test accuracy lies more than ``UNDERTRAINED_GAP`` below their plain
    counterpart's (presets' ``Method.counterpart``) at this scale: method -> the reason."""
    acc = {m.name: m.test_acc for m in result.methods if m.test_acc is not None}
    flagged = {}
    for mp in result.plan.methods:
        other = mp.method.counterpart
        if other is None or mp.name not in acc or other not in acc:
            continue
        if acc[mp.name] < acc[other] - UNDERTRAINED_GAP:
            flagged[mp.name] = (
                f"clean {100 * acc[mp.name]:.1f} % against {100 * acc[other]:.1f} % for `{other}`"
            )
    return flagged


def _methods_table(result: Any) -> list[str]:
    lines = [
        "| method | trainer | architecture | epochs | training images | test acc | training "
        "time | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    flagged = undertrained(result)
    for m in result.methods:
        c = m.config or next(
            (mp.config.to_dict() for mp in result.plan.methods if mp.name == m.name), {}
        )
        images = "all" if c.get("limit") is None else f"first {c['limit']:,}"
        acc = "–" if m.test_acc is None else f"{100 * m.test_acc:.1f}"
        if m.name in flagged:
            acc += " **undertrained**"
        time = "–" if m.train_time is None else f"{m.train_time:.0f} s"
        status = m.error or m.action or "pending"
        lines.append(
            f"| {_label(result, m.name)} | {c.get('trainer', '')} | {c.get('arch', '')} | "
            f"{c.get('epochs', '')} | {images} | {acc} | {time} | {status} |"
        )
    done = {m.name for m in result.methods}
    for name in (mp.name for mp in result.plan.methods if mp.name not in done):
        lines.append(f"| {_label(result, name)} | | | | | | | pending |")
    return lines


def _settings_lines(result: Any) -> list[str]:
    plan = result.plan
    spec, scale = plan.spec, plan.scale
    steps = scale.paper_max_iter or spec.max_iter
    restarts = scale.suite_restarts
    suite = (
        f"the cascade APGD-CE > APGD-T > FAB-T > Square ({scale.square_queries} queries"
        + (f", {_count(scale.square_restarts, 'restart')})" if scale.square_restarts else ")")
        + (f", {scale.suite_max_iter} iterations" if scale.suite_max_iter else "")
        + (f", {_count(restarts, 'restart')} each" if restarts else ", converged defaults")
        + " with FGSM on every example"
        + (", and the sanity checks' attacks" if scale.checks else "")
    )
    paper_eps = ", ".join(f"{e:g}" for e in plan.paper_eps)
    worst_eps = ", ".join(f"{e:g}" for e in plan.worst_eps)
    narrowed = [mp for mp in plan.methods if plan.worst_eps_for(mp) != plan.worst_eps]
    if narrowed:
        own = ", ".join(f"{e:g}" for e in plan.worst_eps_for(narrowed[0]))
        worst_eps += f" (the min-max methods {', '.join(m.name for m in narrowed)}: ε = {own})"
    lines = [
        f"- **paper**: the authors' PGD, {steps} steps of {spec.eps_step:g}, one random start "
        f"(`er-art attack --protocol paper`), at ε = {paper_eps}.",
        f"- **worst-case**: er-art's fast suite ({suite}), the worst case per example "
        f"(`er-art evaluate`), at ε = {worst_eps}.",
    ]
    kinds = {mp.method.adaptive for mp in plan.methods} - {None}
    if kinds:
        parts = []
        if "eot" in kinds:
            parts.append(f"RSE: PGD with EOT over {scale.eot} noisy passes")
        if "defense-gan" in kinds:
            dg = scale.defense_gan
            parts.append(
                "Defense-GAN: PGD (and C&W) through BPDA and through the unrolled projection "
                f"(L = {dg.get('projection_steps')}, R = {dg.get('restarts')})"
            )
        lines.append(
            "- **adaptive**: " + "; ".join(parts) + ". Each example counts as robust only if it "
            "survives these and every other attack run at that budget on it."
        )
    return lines


def render_markdown(result: Any, n_test: int, final: bool) -> str:
    """table.md (see the module docstring)."""
    import er_art

    plan = result.plan
    done = len([m for m in result.methods if not m.error])
    status = "complete" if final else f"in progress ({done} of {len(plan.methods)} methods)"
    data = f" --data-dir {plan.data_dir}" if plan.data_dir else ""
    lines = [
        f"# er-art reproduce: {plan.dataset}, scale `{plan.scale.name}`",
        "",
        f"`er-art reproduce --dataset {plan.dataset} --scale {plan.scale.name}{data} --out "
        f"{plan.out}` ({status}; er-art {er_art.__version__}, "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}). Scale: "
        f"{plan.scale.description}.",
        "",
        "Robust accuracy (%) on the first n test images, scored against the true labels, with "
        "its 95 % Wilson interval in brackets; *published* values are the paper's (Tables 1 and "
        "2). One attack only gives an upper bound: the worst case and the adaptive rows are the "
        "numbers to report.",
        "",
        "## Deviations from the paper's settings at this scale",
        "",
    ]
    deviations = plan.deviations(n_test)
    lines += [f"- {d}" for d in deviations] or ["- none"]
    failed = [m for m in result.methods if m.error]
    lines += [f"- not evaluated: `{m.name}` ({m.error})" for m in failed]
    lines += ["", "## Methods", ""] + _methods_table(result)
    lines += [
        "",
        "test acc: the last epoch's test accuracy as `er-art train` measured it (on its own test "
        "subset; Defense-GAN: its classifier without the projection). **undertrained**: more "
        f"than {100 * UNDERTRAINED_GAP:g} points below its plain counterpart (No Defense for the "
        "baselines, E-CLA for the ER family) at this scale; its robust accuracy compares a weaker "
        "classifier.",
    ]
    for name, why in undertrained(result).items():
        lines.append(f"- undertrained: `{name}` ({why})")
    lines += ["", "## Protocols", ""] + _settings_lines(result)
    for protocol, title in (
        ("paper", "Paper protocol (Figure 2 / Table 1)"),
        ("worst-case", "Worst case (er-art's fast suite)"),
        ("adaptive", "Adaptive attacks"),
    ):
        if protocol == "adaptive" and not any(r.protocol == protocol for r in result.rows):
            continue
        lines += ["", f"## {title}", ""] + _protocol_table(result, protocol)
    lines += _comparisons_section(result)
    lines += _cw_table(result)
    lines += _intrinsic_table(result)
    lines += _checks_section(result)
    figures = [name for name in FIGURES.values() if (plan.out / name).is_file()]
    if figures:
        lines += ["", "Figures: " + ", ".join(f"`{f}`" for f in figures) + "."]
    return "\n".join(lines) + "\n"


def write_figures(result: Any) -> list[Path]:
    """figure2.png ... figure6.png: robust accuracy against eps under the paper protocol, one line
    per method of that figure (third parties' methods join Figure 2; Figures 4 - 6 are the
    paper's ablations)."""
    from er_art.plotting import plot_accuracy_vs_eps

    written = []
    labels = {m.name: (m.label if m.label != m.name else m.name) for m in result.methods}
    for number, filename in FIGURES.items():
        members = {mp.name for mp in result.plan.methods if number in mp.method.figures}
        records = [
            {
                "label": labels.get(r.method, r.method),
                "method": "PGD",
                "eps": float(r.eps),
                "robust_accuracy": r.robust_accuracy,
            }
            for r in result.rows
            if r.protocol == "paper" and not isinstance(r.eps, str) and r.method in members
        ]
        if not records:
            continue
        title = f"{FIGURE_TITLES[number]}: {result.plan.dataset}, PGD (paper protocol)"
        written.append(plot_accuracy_vs_eps(records, result.plan.out / filename, title=title))
    return written


def write_outputs(result: Any, n_test: int, final: bool) -> list[Path]:
    """Every output file of ``result`` (rewritten after each method; ``final`` at the end)."""
    out = result.plan.out
    files = [write_csv(result.rows, out / "table.csv")]
    files += write_figures(result)
    files.append(_write_text(out / "table.md", render_markdown(result, n_test, final)))
    files.append(
        _write_text(out / "intrinsic_dim.json", json.dumps(result.intrinsic, indent=2) + "\n")
    )
    files.append(_write_text(out / "checks.json", json.dumps(result.checks, indent=2) + "\n"))
    files += write_claims(result, _write_text)
    logger.info("wrote %s", ", ".join(str(f) for f in files))
    return files
