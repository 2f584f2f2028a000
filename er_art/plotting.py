"""Plots of evaluation records: accuracy against epsilon (the paper's Figure 2 style)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def plot_accuracy_vs_eps(
    records: Sequence[dict[str, Any]],
    path: str | Path,
    title: str | None = None,
    label_key: str = "label",
) -> Path:
    """Write a PNG of robust accuracy (%) against epsilon, one line per (run, method).

    :param records: evaluation records (``eps``, ``robust_accuracy``, ``method`` and an optional
        ``label_key`` naming the run, e.g. the checkpoint's directory name).
    :param path: the PNG to write.
    :param title: figure title (default: the methods shown).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        raise ValueError("No records to plot.")
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in records:
        key = (str(r.get(label_key) or r.get("checkpoint") or ""), str(r["method"]))
        series.setdefault(key, []).append((float(r["eps"]), 100.0 * float(r["robust_accuracy"])))
    runs = {k[0] for k in series}
    methods = {k[1] for k in series}
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    markers = "osD^vP*Xh<>"
    for i, ((run, method), points) in enumerate(sorted(series.items())):
        points.sort()
        parts = [p for p in (run if len(runs) > 1 else "", method if len(methods) > 1 else "") if p]
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker=markers[i % len(markers)],
            label=" / ".join(parts) or method,
        )
    ax.set_xlabel("epsilon")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Accuracy under {', '.join(sorted(methods))}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    logger.info("wrote %s", path)
    return path
