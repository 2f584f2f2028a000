"""A write the machine refuses (a full disk, a quota, a read-only file system, permission
denied) as one sentence: what happened, the path, and for a command that resumes how to continue.

The command being run is recorded by :func:`er_art.cli.common.as_command` (every command runs
through it), so the sentence can say ``add --resume`` for ``evaluate --out D`` or name the run of
``train``.
"""

from __future__ import annotations

import contextvars
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# OSErrors that say the machine refused a write (not a bug): full disk, quota, read-only file
# system, permission denied. Any OSError with one of these errnos is a user error.
NO_SPACE = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None
)
WRITE_REFUSED = NO_SPACE | {errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class Invocation:
    """The command being run and its options (for the sentence of a refused write)."""

    command: str
    params: dict[str, Any] = field(default_factory=dict)


INVOCATION: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "er_art_cli_invocation", default=None
)


def is_write_fault(err: BaseException) -> bool:
    """A full disk, quota, read-only file system or permission denied."""
    return isinstance(err, OSError) and err.errno in WRITE_REFUSED


def is_temporary(path: Path) -> bool:
    """An atomic write's temporary (imported here, not at the top: ``er-art plugins`` and the
    other light commands never import torch)."""
    from er_art.checkpoint import is_temporary as temporary

    return temporary(path)


def _shown_path(filename: Any) -> Path | None:
    """The file a refused write was for: an atomic write's temporary ``.NAME.XXXX.tmp`` -> NAME."""
    if filename is None:
        return None
    path = Path(os.fsdecode(filename))
    if is_temporary(path):
        return path.with_name(path.name[1:-4].rsplit(".", 1)[0])
    return path


def _is_under(path: Path, directory: Any) -> bool:
    if directory is None:
        return False
    try:
        path.absolute().relative_to(Path(directory).absolute())
    except ValueError:
        return False
    return True


def _run_dir_of(path: Path) -> Path | None:
    """The ``er-art train`` run directory holding ``path`` (it has a run.json), if any."""
    for directory in [path, *list(path.parents)[:2]]:
        if os.path.isfile(directory / "run.json"):  # never raises: we are reporting an error
            return directory
    return None


def resume_store(resume: Any, overwrite: Any) -> str:
    """How an ``attack`` / ``evaluate`` with ``--out`` continues after it stopped."""
    if resume:
        return "run the same command again"
    if overwrite:
        return "run the same command with --resume instead of --overwrite"
    return "run the same command with --resume"


def _continuation(
    invocation: Invocation | None, path: Path | None, run_dir: Path | None = None
) -> str | None:
    """How the interrupted command continues (None: it does not resume). ``run_dir``: the
    training run the write was for, when the library says (``er_art.runs.RunWriteError``)."""
    if invocation is None:
        return None
    params = invocation.params
    if invocation.command in ("attack", "evaluate") and params.get("out") is not None:
        return f"{resume_store(params.get('resume'), params.get('overwrite'))} to continue"
    if invocation.command == "reproduce":
        return "run the same command again to continue where it stopped"
    if invocation.command == "train":
        if run_dir is None and path is not None:
            run_dir = _run_dir_of(path)
        if run_dir is None and params.get("out") is not None:
            run_dir = _run_dir_of(Path(params["out"]))
        if run_dir is not None:
            return f"`er-art train --resume --out {run_dir}` continues from the last checkpoint"
    return None


def write_fault_message(err: OSError, invocation: Invocation | None = None) -> str:
    """One sentence for a refused write: what happened, the path and (for a command that
    resumes) how to continue. Without a file name the command's ``--out`` is named."""
    invocation = invocation or INVOCATION.get()
    params = invocation.params if invocation is not None else {}
    path = _shown_path(err.filename)
    if path is None and params.get("out") is not None:
        path = Path(params["out"])
    where = str(path) if path is not None else "the output"
    # permission denied may be a read; it is a write when it hit an atomic write or an output
    is_output = err.errno not in (errno.EACCES, errno.EPERM) or (
        path is not None
        and (
            getattr(err, "run_dir", None) is not None  # er_art.runs.RunWriteError: a write
            or (err.filename is not None and is_temporary(Path(os.fsdecode(err.filename))))
            or _is_under(path, params.get("out"))
            or (getattr(invocation, "command", None) == "train" and _run_dir_of(path) is not None)
        )
    )
    strerror = err.strerror or os.strerror(err.errno or 0)
    if not is_output:
        return f"{strerror}: {where}."
    what = f"{strerror} writing {where}"
    if err.errno in NO_SPACE:
        fix = "free some space"
    elif err.errno == errno.EROFS:
        fix = "make its file system writable"
    else:
        fix = "make it writable"
    then = _continuation(invocation, path, getattr(err, "run_dir", None))
    if then is None:
        return f"{what}; {fix} and run the command again."
    return f"{what}; {fix}, then {then}."
