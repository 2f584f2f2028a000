"""``er-art plugins [KIND] [--pattern GLOB]``: list the registered plugins (imports no torch)."""

from __future__ import annotations

from typing import Annotated

import typer
from er_art.cli.common import user_errors

from er_art.registry import KINDS, list_plugins


def plugins(
    kind: Annotated[
        str | None, typer.Argument(help=f"One of: {', '.join(KINDS)} (default: all).")
    ] = None,
    pattern: Annotated[
        str, typer.Option("--pattern", "-p", help="Shell-style wildcard on names, e.g. 'test_*'.")
    ] = "*",
) -> None:
    """List the registered plugins: architectures, priors, datasets, attacks, defences, trainers."""
    with user_errors():
        found = list_plugins(kind, pattern)
    current = None
    for info in found:
        if info.kind != current:
            current = info.kind
            typer.echo(f"{info.kind}:")
        typer.echo(f"  {info.name:<28} {info.value}  [{info.distribution}]")
    if not found:
        typer.echo("no plugins match", err=True)


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
