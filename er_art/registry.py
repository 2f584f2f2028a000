"""Plugin registry: every pluggable piece of er-art is found through ``importlib.metadata`` entry
points.

Built-in plugins are registered in ``pyproject.toml`` through exactly the same entry-point groups a
third-party package uses (``er_art.architectures``, ``er_art.priors``, ``er_art.datasets``,
``er_art.attacks``, ``er_art.defences``, ``er_art.trainers``), one entry point per item, so listing
them imports nothing (in particular not torch).

    >>> from er_art.registry import list_plugins, get_plugin
    >>> [p.name for p in list_plugins("priors")]
    ['cauchy', 'gaussian', 'uniform']
    >>> GaussianPrior = get_plugin("priors", "gaussian")

A third-party package adds one with, in its own ``pyproject.toml``::

    [project.entry-points."er_art.priors"]
    laplace = "my_pkg.priors:LaplacePrior"
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("architectures", "priors", "datasets", "attacks", "defences", "trainers")
GROUP_PREFIX = "er_art."


class PluginError(LookupError):
    """Base class of registry errors."""


class UnknownPluginError(PluginError, ValueError):
    """A plugin name that no installed package registers."""


class DuplicatePluginError(PluginError):
    """Two installed packages register different objects under one name."""


class PluginLoadError(PluginError):
    """A registered plugin whose module or attribute fails to import (e.g. a broken package)."""


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as listed without importing it."""

    kind: str
    name: str
    value: str  # "module:attribute"
    distribution: str  # the package that registers it


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownPluginError(
            f"Unknown plugin kind {kind!r}; accepted kinds: {', '.join(KINDS)}.{hint}"
        )
    return kind


def _entry_points(group: str) -> list[Any]:
    """The entry points of one group (a seam that tests replace to fake third-party packages)."""
    return list(metadata.entry_points(group=group))


@functools.cache
def _discover(kind: str) -> dict[str, tuple[PluginInfo, Any]]:
    found: dict[str, tuple[PluginInfo, Any]] = {}
    for ep in _entry_points(GROUP_PREFIX + kind):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown"
        info = PluginInfo(kind=kind, name=ep.name, value=ep.value, distribution=dist)
        if ep.name in found:
            previous = found[ep.name][0]
            if previous.value == info.value:
                continue  # the same package seen twice on sys.path (e.g. an editable install)
            raise DuplicatePluginError(
                f"The {kind.rstrip('s')} name {ep.name!r} is registered twice: "
                f"by {previous.distribution} ({previous.value}) and by {dist} ({info.value}); "
                "uninstall one of them."
            )
        found[ep.name] = (info, ep)
    return found


def clear_cache() -> None:
    """Forget discovered entry points (after installing a plugin package in a running process)."""
    _discover.cache_clear()
    _load.cache_clear()


def list_plugins(kind: str | None = None, pattern: str = "*") -> list[PluginInfo]:
    """Registered plugins of one kind (or all kinds) whose names match a shell-style ``pattern``."""
    kinds = KINDS if kind is None else (_check_kind(kind),)
    out: list[PluginInfo] = []
    for k in kinds:
        infos = sorted((info for info, _ in _discover(k).values()), key=lambda i: i.name)
        out.extend(i for i in infos if fnmatch.fnmatchcase(i.name, pattern))
    return out


def names(kind: str) -> list[str]:
    """Sorted names of the registered plugins of ``kind``."""
    return [info.name for info in list_plugins(kind)]


@functools.cache
def _load(kind: str, name: str) -> Any:
    return _discover(kind)[name][1].load()


def get_plugin(kind: str, name: str) -> Any:
    """Load the object registered under ``name``; an unknown name raises with close matches."""
    found = _discover(_check_kind(kind))
    if name not in found:
        close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownPluginError(
            f"Unknown {kind.rstrip('s')} {name!r}; "
            f"accepted: {', '.join(sorted(found)) or 'none'}.{hint}"
        )
    info = found[name][0]
    logger.debug("loading %s plugin %r from %s", kind, name, info.value)
    try:
        return _load(kind, name)
    except Exception as err:  # ImportError, AttributeError, or whatever the module raises
        raise PluginLoadError(
            f"The {kind.rstrip('s')} plugin {name!r} ({info.value}, from {info.distribution}) "
            f"failed to load: {type(err).__name__}: {err}"
        ) from err
