"""Helpers for tests that run training in a subprocess and interrupt it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from er_art.checkpoint import CheckpointError, read_checkpoint


def wait_for_checkpoint(
    run_dir: Path, proc: subprocess.Popen, min_step: int, timeout: float = 60.0
) -> dict:
    """The training state of the first checkpoint at or past ``min_step`` global steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be interrupted"
        try:
            state = read_checkpoint(run_dir)["training"]
            if state["global_step"] >= min_step:
                return state
        except CheckpointError:
            pass
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")
