"""Output paths checked before any work: a directory (``--out``) or a file (``embed --out``)
that cannot be written is one sentence naming it, not a traceback after the first attack.

    >>> check_output_dir(out)           # in attack, evaluate, reproduce
    >>> check_output_file(figure)       # in embed
"""

from __future__ import annotations

import os
from pathlib import Path

from er_art.cli.write_faults import NO_SPACE


def _probe(directory: Path, flag: str, path: Path) -> None:
    """Create, fill and remove a small file in ``directory`` (``path`` or where it would be
    created); one sentence naming ``path`` when the machine refuses."""
    probe = directory / f".er-art-write-test-{os.getpid()}"
    try:
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * 4096)  # a full disk refuses data, not always an empty file
        finally:
            probe.unlink(missing_ok=True)
    except OSError as err:
        inside = "" if directory == path.absolute() else f" (in {directory})"
        fix = "free space or give" if err.errno in NO_SPACE else "give"
        raise ValueError(
            f"Cannot write {flag} {path}{inside}: {err.strerror or err}; {fix} a location you "
            "can write to."
        ) from None


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (one we may not look into counts as
    missing: the probe then fails in the folder that refuses us)."""
    path = path.absolute()
    while not os.path.exists(path) and path.parent != path:
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike | None, flag: str = "--out") -> None:
    """Refuse, in one sentence naming it, an output directory that cannot be written: an
    existing file, under a file, or where a file cannot be created (read-only, no permission,
    a full disk). Creates nothing: a missing directory is checked through its nearest existing
    ancestor. Call it before any work. ``None`` (no output) passes.

    :raises ValueError: the sentence.
    """
    if path is None:
        return
    path = Path(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a file, not a directory; give a directory.")
    found = _existing_ancestor(path)
    if not os.path.isdir(found):
        raise ValueError(f"Cannot create {flag} {path}: {found} is a file, not a directory.")
    _probe(found, flag, path)


def check_output_file(
    path: str | os.PathLike | None, flag: str = "--out", example: str = "out.png"
) -> None:
    """Refuse, in one sentence naming it, an output file that cannot be written: an existing
    directory, or one whose folder cannot be created or written. Creates nothing. ``None``
    passes.

    :param example: a file name to suggest when ``path`` is a directory.
    :raises ValueError: the sentence.
    """
    if path is None:
        return
    path = Path(path)
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a directory; give a file name (e.g. {path / example}).")
    found = _existing_ancestor(path.parent)
    if not os.path.isdir(found):
        raise ValueError(f"Cannot create {flag} {path}: {found} is a file, not a directory.")
    _probe(found, flag, path)
