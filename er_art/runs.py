"""Run directories of ``er-art train``: where they live and how to find the latest one.

A run directory holds:
- ``run.json``: ``{"config": {...resolved training config...}, "versions": {...},
  "git_revision": str|None, "created": ISO time,
  "status": "running"|"finished"|"interrupted"|"failed"}``;
- ``checkpoint.pt``: an :func:`er_art.save_classifier` file (with a training state), so
  ``er_art.load_classifier(run_dir)`` returns the classifier it trained;
- ``metrics.jsonl``: one JSON line per epoch.
``<root>/LATEST`` names the most recently started run (default root ``./runs``).

Every reader of run.json goes through :func:`read_run` (:func:`er_art.json_files.read_json`): a
truncated, hand-edited or foreign file, or a config field of the wrong type, is one sentence naming
the file. Whether the values make sense is :func:`er_art.training.run.resolve_config`'s to say.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from er_art.checkpoint import RUN_CHECKPOINT, atomic_write, write_failure
from er_art.json_files import FileFormatError, Shape, check_shape, read_json

DEFAULT_ROOT = Path("runs")
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
LATEST = "LATEST"
RUN_RECORD = "a run record (run.json)"

_NONE = type(None)
# the types of run.json's keys that er-art reads (others are kept as they are)
RUN_TYPES: Shape = {
    "status": str,
    "resumed": int,
    "world_size": int,
    "seed": int,
    "versions": dict,
    "git_revision": (str, _NONE),
    "created": str,
}
# the type of every field of er_art.training.run.TrainingConfig as run.json records it (all
# optional:
# a run.json of an older er-art lacks the newer ones); tests/test_faults_runs.py checks that every
# field is here
CONFIG_TYPES: Shape = {
    "dataset": str,
    "data_dir": (str, _NONE),
    "arch": (str, _NONE),
    "arch_options": (dict, _NONE),
    "prior": str,
    "embedding_dim": (int, str, _NONE),
    "trainer": str,
    "eps": (float, _NONE),
    "eps_step": (float, _NONE),
    "max_iter": (int, _NONE),
    "num_random_init": int,
    "use_predictions": bool,
    "adv_ratio": float,
    "eps_warmup": int,
    "epochs": (int, _NONE),
    "batch_size": (int, _NONE),
    "lr": (float, _NONE),
    "lambda_d": (float, _NONE),
    "lambda_ce": (float, _NONE),
    "lambda_reg": (float, _NONE),
    "seed": int,
    "device": str,
    "amp": bool,
    "deterministic": bool,
    "compile": bool,
    "checkpoint_every": int,
    "limit": (int, _NONE),
    "threads": (int, _NONE),
    "embedding_dim_requested": (int, str, _NONE),
}
METRICS_TYPES: Shape = {"epoch": int, "step": int, "test_acc": float, "elapsed": float}


class RunWriteError(OSError):
    """A file of a run directory could not be written (a full disk, a read-only file system, no
    permission, ...). The files written before are intact (every write is atomic) and
    ``er-art train --resume --out RUN`` continues from the last checkpoint once the file system
    takes writes again. ``errno`` and ``strerror`` are the failed write's; ``filename`` is the file
    it was writing (not its temporary)."""

    def __init__(self, path: str | Path, run_dir: str | Path, err: OSError) -> None:
        super().__init__(err.errno, err.strerror or str(err) or type(err).__name__, str(path))
        self.path, self.run_dir = Path(path), Path(run_dir)

    def __str__(self) -> str:
        if self.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            fix = "free some space"
        elif self.errno == errno.EROFS:
            fix = "make its file system writable"
        elif self.errno in (errno.EACCES, errno.EPERM):
            fix = "make it writable"
        else:
            fix = "fix that"
        return (
            f"{self.strerror} writing {self.path}; {fix}, then "
            f"`er-art train --resume --out {self.run_dir}` continues from the last checkpoint."
        )


@contextlib.contextmanager
def writing(path: str | Path, run_dir: str | Path) -> Iterator[None]:
    """Turn a failed write of ``path`` (a file of ``run_dir``) into a :class:`RunWriteError`
    naming them: an ``OSError``, or the ``RuntimeError`` that ``torch.save`` raises when its
    writer fails (e.g. "unexpected pos 704 vs 598" on a full disk, which says no errno)."""
    try:
        yield
    except RunWriteError:
        raise
    except OSError as err:
        raise RunWriteError(path, run_dir, err) from err
    except RuntimeError as err:
        cause = write_failure(err, Path(path))
        if cause is None:
            raise
        raise RunWriteError(path, run_dir, cause) from err


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a run directory, checked: an object with a ``config`` object, the keys
    of ``RUN_TYPES`` and the config's fields (``CONFIG_TYPES``) of their types where present.

    :raises FileNotFoundError: ``run_dir`` has no run.json.
    :raises FileFormatError: run.json is unreadable, not JSON (e.g. truncated), too deep, or not
        of that shape (a ``ValueError``; one sentence naming the file).
    """
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not an er-art run directory (no {RUN_JSON}).")
    info = read_json(path, {"config": dict}, what=RUN_RECORD, optional=RUN_TYPES)
    check_shape(info["config"], {}, f"the config in {path}", optional=CONFIG_TYPES)
    return info


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (one per epoch; none when it has no such file).

    :raises FileFormatError: the file is unreadable, or a line is not a JSON object with
        ``METRICS_TYPES``' keys of their types where present (one sentence naming the file and
        the line).
    """
    path = Path(run_dir) / METRICS
    where = f"{path} (a run's metrics log)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise FileFormatError(f"{where} is not UTF-8 text.") from None
    except OSError as err:
        raise FileFormatError(f"{where} cannot be read: {err.strerror or err}.") from None
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            raise FileFormatError(f"{where}, line {n}, is nested too deeply.") from None
        except ValueError as err:
            raise FileFormatError(
                f"{where}, line {n}, is not valid JSON ({getattr(err, 'msg', err)}): "
                "truncated or edited?"
            ) from None
        check_shape(record, {}, f"{where}, line {n}", optional=METRICS_TYPES)
        records.append(record)
    return records


def mark_latest(run_dir: str | Path, root: str | Path = DEFAULT_ROOT) -> None:
    """Record ``run_dir`` as the latest run under ``root``."""
    root = Path(root)
    atomic_write(
        root / LATEST, lambda tmp: Path(tmp).write_text(str(Path(run_dir).resolve()) + "\n")
    )


def latest_run(root: str | Path = DEFAULT_ROOT) -> Path:
    """The most recent run directory under ``root`` (what ``er-art attack`` uses by default)."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        raise FileNotFoundError(
            f"No run of 'er-art train' found under {Path(root).resolve()}; "
            "train one first or pass --checkpoint."
        )
    run_dir = Path(pointer.read_text().strip())
    if not (run_dir / RUN_CHECKPOINT).is_file():
        raise FileNotFoundError(f"The latest run {run_dir} has no {RUN_CHECKPOINT} yet.")
    return run_dir
