"""The ``er-art`` command line: thin commands over the library.

er-art --help
er-art plugins architectures

Every command runs through :func:`er_art.cli.common.as_command`: a write the machine refuses (a
full disk, a read-only file system, permission denied) anywhere in it ends as one sentence naming
the path, never a traceback.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
from er_art.cli.common import as_command

import er_art

app = typer.Typer(
    name="er-art",
    help="Embedding Regularized Classifier (ER-Classifier) on the Adversarial Robustness Toolbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each command lives in its own module with a ``register(app)`` function.
COMMAND_MODULES = [
    "er_art.cli.attack",
    "er_art.cli.embed",
    "er_art.cli.evaluate",
    "er_art.cli.intrinsic_dim",
    "er_art.cli.plugins_cmd",
    "er_art.cli.reproduce",
    "er_art.cli.train",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"er-art {er_art.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """er-art: train, attack and evaluate ER-Classifiers with ART."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)
for _info in app.registered_commands:
    if _info.callback is not None:
        _info.callback = as_command(_info.name or _info.callback.__name__, _info.callback)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
