"""Shared CLI plumbing: a user error is one sentence on stderr and exit code 2, no traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import typer

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    LookupError,
    FileNotFoundError,
    PermissionError,
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr and return the ``typer.Exit`` to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's user-facing exceptions into one line on stderr and a non-zero exit."""
    try:
        yield
    except typer.Exit:
        raise
    except USER_ERRORS as err:
        message = str(err).strip() or type(err).__name__
        if isinstance(err, OSError) and err.filename and str(err.filename) not in message:
            message = f"{message}: {err.filename}"
        raise fail(message.splitlines()[0]) from None


def setup_logging(verbose: bool = False) -> None:
    """Library loggers to stderr (INFO with --verbose, else WARNING)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
