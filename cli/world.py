"""Commands under torchrun: every process joins the job, only rank 0 speaks.

    torchrun --standalone --nproc_per_node 2 --no-python er-art train ...
    torchrun --standalone --nproc_per_node 2 --no-python er-art evaluate ...

Without torchrun :func:`join` returns the one-process world and changes nothing. Under torchrun
the other ranks print nothing on stdout (tables, summaries), log only errors, and leave a user
error's sentence to rank 0, exiting with the same code. A command that went well ends with
``world.leave()`` on every process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import typer
from er_art.cli.common import is_user_error, user_errors


def join(device: str) -> Any:
    """This process's :class:`er_art.distributed.World` for a command run on ``device``."""
    from er_art.distributed import join_world

    world = join_world(device)
    if not world.is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the rest of the process)
        logging.getLogger("er_art").setLevel(logging.ERROR)
    return world


@contextlib.contextmanager
def reported_errors(world: Any) -> Iterator[None]:
    """:func:`er_art.cli.common.user_errors` on rank 0; on the other ranks the same exit code
    without the sentence (every rank meets the same error; a write the machine refuses included)."""
    if world.is_main:
        with user_errors():
            yield
        return
    try:
        yield
    except typer.Exit:
        raise
    except Exception as err:
        if not is_user_error(err):
            raise
        raise typer.Exit(2) from None
