"""Run directories of ``er-art train``: where they live and how to find the latest one.

A run directory holds:
- ``run.json``: ``{"config": {...resolved training config...}, "versions": {...},
  "git_revision": str|None, "created": ISO time,
  "status": "running"|"finished"|"interrupted"|"failed"}``;
- ``checkpoint.pt``: an :func:`er_art.save_classifier` file (with a training state), so
  ``er_art.load_classifier(run_dir)`` returns the classifier it trained;
- ``metrics.jsonl``: one JSON line per epoch.
``<root>/LATEST`` names the most recently started run (default root ``./runs``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from er_art.checkpoint import RUN_CHECKPOINT, atomic_write

DEFAULT_ROOT = Path("runs")
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
LATEST = "LATEST"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a run directory."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not an er-art run directory (no {RUN_JSON}).")
    return json.loads(path.read_text())


def mark_latest(run_dir: str | Path, root: str | Path = DEFAULT_ROOT) -> None:
    """Record ``run_dir`` as the latest run under ``root``."""
    root = Path(root)
    atomic_write(
        root / LATEST, lambda tmp: Path(tmp).write_text(str(Path(run_dir).resolve()) + "\n")
    )


def latest_run(root: str | Path = DEFAULT_ROOT) -> Path:
    """The most recent run directory under ``root`` (what ``er-art attack`` uses by default)."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        raise FileNotFoundError(
            f"No run of 'er-art train' found under {Path(root).resolve()}; "
            "train one first or pass --checkpoint."
        )
    run_dir = Path(pointer.read_text().strip())
    if not (run_dir / RUN_CHECKPOINT).is_file():
        raise FileNotFoundError(f"The latest run {run_dir} has no {RUN_CHECKPOINT} yet.")
    return run_dir
