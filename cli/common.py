"""Shared CLI plumbing: a user error is one sentence on stderr and exit code 2, no traceback.

The same holds for a write the machine refuses (a full disk, a read-only file system, a quota,
permission denied; cli/write_faults.py words it): every command runs through :func:`as_command`
(cli/app.py), a net for a refused write outside the command's own :func:`user_errors`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import typer
from er_art.cli.write_faults import INVOCATION, Invocation, is_write_fault, write_fault_message

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    LookupError,
    FileNotFoundError,
    PermissionError,
)


def as_command(name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` as the command ``name``: it records the command and its options for
    :func:`user_errors`, and a refused write that escapes the command's own ``user_errors``
    still ends as one sentence (cli/app.py wraps every command with it)."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = INVOCATION.set(Invocation(name, dict(kwargs)))
        try:
            with user_errors(only_write_faults=True):
                return callback(*args, **kwargs)
        finally:
            INVOCATION.reset(token)

    return run


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is the user's or the machine's to fix (one sentence), not a bug."""
    return isinstance(err, USER_ERRORS) or is_write_fault(err)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr and return the ``typer.Exit`` to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors(only_write_faults: bool = False) -> Iterator[None]:
    """Turn the library's user-facing exceptions, and writes the machine refuses (full disk,
    read-only file system, quota, permission denied), into one line on stderr and exit code 2.

    :param only_write_faults: handle only the refused writes (the net cli/app.py puts around
        every command).
    """
    try:
        yield
    except typer.Exit:
        raise
    except Exception as err:
        if isinstance(err, OSError) and is_write_fault(err):
            raise fail(write_fault_message(err)) from None
        if only_write_faults or not isinstance(err, USER_ERRORS):
            raise
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
