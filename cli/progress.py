"""A progress bar per attack on a terminal (stderr), fed by the library's progress hook."""

from __future__ import annotations

import sys
from typing import Any


class AttackProgress:
    """:class:`er_art.evaluation.running.ProgressHook` drawn with rich: one bar per attack."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        if self._task is None:
            self._progress.start()
        self._task = self._progress.add_task(description, total=max(total, 1))
        if total == 0:
            self._progress.update(self._task, completed=1)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def end(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()


def terminal_progress() -> AttackProgress | None:
    """A progress bar when stderr is a terminal, else None (logs and pipes stay clean)."""
    return AttackProgress() if sys.stderr.isatty() else None
