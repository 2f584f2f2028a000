"""Shared CLI plumbing: a user error is one sentence on stderr and exit code 2, no traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

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


def parse_value(text: str) -> Any:
    """An option value as typed: an integer, a number, true / false, none, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_key_values(values: list[str] | None, flag: str, example: str) -> dict[str, Any] | None:
    """``["sigma_init=0.4", "ensemble=50"]`` -> ``{"sigma_init": 0.4, "ensemble": 50}``; ``None``
    when there are none. A value without ``=`` is one sentence naming ``flag``."""
    if not values:
        return None
    options: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} must be KEY=VALUE (e.g. {example}), got {item!r}.")
        options[key.strip()] = parse_value(value)
    return options
