"""Every JSON file er-art reads back (run.json, evaluation.json, unit files, checks, reproduce
state) goes through :func:`read_json`: it checks the file's shape and types and names the file in
its one-sentence error, so a truncated, hand-edited or foreign file is never half-used.

    >>> data = read_json(path, {"format": str, "options": dict}, what="an evaluation manifest")

A shape maps each required key to its type (or a tuple of types); ``optional`` does the same for
keys that may be missing. ``int`` accepts no bool and ``float`` accepts an int, as JSON means them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Shape = Mapping[str, type | tuple[type, ...]]

# A file er-art wrote is far below both; a larger or deeper one is not ours (or is hostile).
MAX_BYTES = 512 * 1024 * 1024
MAX_DEPTH = 64


class FileFormatError(ValueError):
    """A JSON file er-art reads is missing, unreadable or not of the expected shape."""


def _type_names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        type(None): "null",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if k is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if k is not int and k is not float and isinstance(value, k):
            return True
    return False


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of ``value`` (stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return deepest


def check_shape(data: Any, shape: Shape, where: str, optional: Shape | None = None) -> None:
    """Raise :class:`FileFormatError` unless ``data`` is an object with ``shape``'s keys of its
    types (and ``optional``'s keys, where present, of theirs). ``where`` names the file."""
    if not isinstance(data, dict):
        raise FileFormatError(f"{where} holds {_type_names(type(data))}, not a JSON object.")
    for key, kind in shape.items():
        if key not in data:
            raise FileFormatError(f"{where} has no {key!r}.")
        if not _is(data[key], kind):
            raise FileFormatError(
                f"{where}: {key!r} must be {_type_names(kind)}, got {data[key]!r:.60}."
            )
    for key, kind in (optional or {}).items():
        if key in data and not _is(data[key], kind):
            raise FileFormatError(
                f"{where}: {key!r} must be {_type_names(kind)}, got {data[key]!r:.60}."
            )


def read_json(
    path: str | Path,
    shape: Shape | None = None,
    what: str = "a JSON file of er-art",
    optional: Shape | None = None,
) -> Any:
    """The JSON in ``path``, checked against ``shape`` (an object with those keys and types;
    ``None``: any JSON value).

    :raises FileFormatError: the file is missing, unreadable, too large, not UTF-8 JSON (e.g.
        truncated), nested deeper than ``MAX_DEPTH``, or not of ``shape``; one sentence naming
        ``path`` and saying it should be ``what``.
    """
    path = Path(path)
    where = f"{path} ({what})"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise FileFormatError(f"{where} is larger than {MAX_BYTES >> 20} MiB.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(f"{where} does not exist.") from None
    except IsADirectoryError:
        raise FileFormatError(f"{where} is a directory, not a file.") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{where} is not UTF-8 text.") from None
    except OSError as err:
        raise FileFormatError(f"{where} cannot be read: {err.strerror or err}.") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise FileFormatError(f"{where} is nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError as err:  # JSONDecodeError
        raise FileFormatError(
            f"{where} is not valid JSON ({err.msg} at line {err.lineno}): truncated or edited?"
        ) from None
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise FileFormatError(f"{where} is nested deeper than {MAX_DEPTH} levels.")
    if shape is not None or optional is not None:
        check_shape(data, shape or {}, where, optional)
    return data
