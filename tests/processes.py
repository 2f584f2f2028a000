"""Helpers for tests that run er-art in a subprocess (and interrupt it)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from er_art.checkpoint import CheckpointError, read_checkpoint

# conftest.py's fragility probe ER_ART_TEST_SEED_SHIFT shifts the seeds of the test process only:
# a test comparing numbers a subprocess computed with numbers computed in-process cannot hold
# under it, and is skipped there.
same_seeds_in_subprocesses = pytest.mark.skipif(
    int(os.environ.get("ER_ART_TEST_SEED_SHIFT", "0")) != 0,
    reason="ER_ART_TEST_SEED_SHIFT shifts the test process's seeds, not a subprocess's",
)


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
