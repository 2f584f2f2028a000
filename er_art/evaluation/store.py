"""Resumable evaluations: every finished (run, eps, attack) unit on disk as soon as it is done.

An output directory holds ``evaluation.json`` (the options the evaluation was started with, among
them the SHA-256 of every checkpoint attacked and of the test examples attacked) and
``units/<run>/<attack>@<eps>.json``, one file per finished unit with its per-example outcomes
(clean correct, robust, perturbation norm), written atomically. The summary files
(``results.json``, ``checks.json``) are derived from the units, so the worst case can always be
recomputed, and an evaluation started again with ``resume=True`` skips the units it finds (the
idea of fra31/auto-attack's ``state_path``, per unit instead of per attack).

A store is never reused silently: a new one needs an empty (or new) directory, ``resume=True``
needs the same options, the same checkpoint bytes and the same test examples, and
``overwrite=True`` clears er-art's own files first (never a file it did not write). Every file
read back goes through :func:`er_art.json_files.read_json`: a truncated or edited one is one
sentence naming it (:class:`~er_art.json_files.FileFormatError`).

    >>> store = EvaluationStore.open("eval/", options, resume=True)
    >>> store.load("my-run", "pgd", 0.1)        # an AttackOutcome, or None if not done yet
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from er_art.checkpoint import RUN_CHECKPOINT, atomic_write, is_temporary, remove_temporaries
from er_art.evaluation.outcome import AttackOutcome
from er_art.json_files import FileFormatError, read_json

logger = logging.getLogger(__name__)

MANIFEST = "evaluation.json"
MANIFEST_VERSION = 1
UNITS = "units"
FORMAT = "er-art-evaluation"
# The files er-art writes into an output directory besides ``units/``: the summaries of
# cli/report.py's ``write_outputs``. ``overwrite=True`` removes these and nothing else.
OUTPUTS = (MANIFEST, "results.json", "results.csv", "checks.json", "accuracy_vs_eps.png")
# The options that hold content hashes (a list, one per checkpoint, or one value): a change is
# named as such on ``--resume`` rather than as a pair of digests.
CHECKPOINT_HASHES = "checkpoint_sha256"
DATA_HASHES = "data_sha256"
# The version of the attacks' code a store's numbers come from; part of its options, so that a
# store is never resumed with units from code that gives other numbers. 1: ART's PGD, APGD and
# Square; 2: er-art's PyTorch PGD, APGD and Square (every adversarial iterate counts); 3: restarts
# under a stopping rule, the fast suite a cascade, the convergence check on the survivors.
ATTACKS_VERSION = 3
_AGAIN = "give another --out, or --overwrite (instead of --resume) to evaluate it again."


# The options that describe the models of ``--model`` targets (cli/evaluating.py's run_options):
# another model on ``--resume`` is named as such.
MODELS = "models"


def _model_name(options: dict[str, Any]) -> str:
    """The ``--model`` (factory or file) and preprocessing an evaluation's options name."""
    models = options.get(MODELS)
    if not isinstance(models, list) or not models or not isinstance(models[0], dict):
        return "an er-art run"
    first = models[0]
    text = f"--model {first.get('model')}"
    if first.get("weights"):
        text += f" --weights {first['weights']}"
    extra = [f"{k} {first[k]}" for k in ("logits", "mean", "std", "input_range") if first.get(k)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


def canonical_json(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists, keys strings, sorted)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def versioned(options: dict[str, Any]) -> dict[str, Any]:
    """A store's options as its manifest holds them: canonical JSON with ``attacks_version``."""
    return canonical_json({**options, "attacks_version": ATTACKS_VERSION})


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (a checkpoint of any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def arrays_sha256(*arrays: Any) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes (in C order): the test examples attacked."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest (``evaluation.json``) at ``path``, checked.

    :raises FileFormatError: it is unreadable, not JSON, not of the manifest's shape or format, or
        written by a newer er-art (one sentence naming the file).
    """
    what = "an er-art evaluation manifest"
    data = read_json(path, {"format": str, "options": dict}, what=what, optional={"version": int})
    if data["format"] != FORMAT:
        raise FileFormatError(f"{path} is not {what} (format {data['format']!r:.60}).")
    if data.get("version", 1) > MANIFEST_VERSION:
        raise FileFormatError(f"{path} was written by a newer er-art (version {data['version']}).")
    return data


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, sort_keys=True, default=str)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def _stray(units: Path) -> Path | None:
    """The first entry of ``units/`` that is not a run's folder of unit files, or None."""
    for run in sorted(units.iterdir()):
        if run.is_symlink() or not run.is_dir():
            return run
        for path in sorted(run.iterdir()):
            if path.is_symlink() or not path.is_file():
                return path
            if path.suffix != ".json" and not is_temporary(path):
                return path
    return None


def _contents(root: Path) -> tuple[list[Path], list[Path]]:
    """What ``root`` holds besides temporaries of interrupted writes: er-art's own entries (the
    files of :data:`OUTPUTS`, ``units/``) and the others (for a ``units/`` that holds anything but
    unit files, the first such thing), each sorted."""
    if not root.is_dir():
        return [], []
    ours: list[Path] = []
    foreign: list[Path] = []
    for entry in sorted(root.iterdir()):
        if entry.is_symlink():
            foreign.append(entry)
        elif entry.is_file() and entry.name in OUTPUTS:
            ours.append(entry)
        elif entry.is_file() and is_temporary(entry):
            continue
        elif entry.name == UNITS and entry.is_dir():
            stray = _stray(entry)
            (ours if stray is None else foreign).append(entry if stray is None else stray)
        else:
            foreign.append(entry)
    return ours, foreign


def _remove_temporaries(root: Path) -> None:
    """Remove what interrupted writes left in ``root`` and ``root/units`` (nowhere else)."""
    removed = remove_temporaries(root, recursive=False) + remove_temporaries(root / UNITS)
    if removed:
        logger.info("removed %d temporary file(s) of interrupted writes in %s", len(removed), root)


def _changed_content(root: Path, key: str, before: Any, now: Any, checkpoints: list[str]) -> str:
    """The sentence refusing to resume ``root``, whose content hash ``key`` changed."""
    if before is None:
        return (
            f"--resume: {root} does not record which checkpoint bytes and test examples it was "
            f"computed on (an older er-art wrote it), so its units may come from another model; "
            f"{_AGAIN}"
        )
    name = None
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        index = next(i for i, (a, b) in enumerate(zip(before, now, strict=True)) if a != b)
        name = checkpoints[index] if index < len(checkpoints) else None
    if key == CHECKPOINT_HASHES:
        if name is None:
            return f"--resume: {root} was computed on another checkpoint; {_AGAIN}"
        where = Path(name)
        if where.is_dir():
            return (
                f"--resume: {root} was computed on another checkpoint of run {where.name} (its "
                f"{RUN_CHECKPOINT} changed since); {_AGAIN}"
            )
        return (
            f"--resume: {root} was computed on another version of the checkpoint {where} (the "
            f"file changed since); {_AGAIN}"
        )
    where = Path(name) if name is not None else None
    of = "" if where is None else f" for {'run ' + where.name if where.is_dir() else where}"
    return (
        f"--resume: {root} was computed on other test examples{of} (the data that --dataset, "
        f"--data-dir and --n-samples select changed since); {_AGAIN}"
    )


class EvaluationStore:
    """The units of one evaluation under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, options: dict[str, Any], started: bool = False) -> None:
        self.root = Path(root)
        self.options = options
        self._started = started  # the manifest is on disk (written with the first unit)

    @classmethod
    def open(
        cls,
        root: str | Path,
        options: dict[str, Any],
        resume: bool,
        overwrite: bool = False,
    ) -> EvaluationStore:
        """The store at ``root``: new, or (``resume``) the one started there with ``options``, or
        (``overwrite``) a new one in place of er-art's files there. Temporaries of interrupted
        writes are removed.

        :param options: every setting that changes a number; with ``checkpoint_sha256`` and
            ``data_sha256`` (:func:`file_sha256`, :func:`arrays_sha256`) a resumed store refuses
            units of another model or other examples.
        :raises ValueError: without ``resume`` or ``overwrite``, ``root`` is a non-empty
            directory; with ``resume``, ``root`` was started with other options (the first
            difference named) or holds units without a manifest; with ``overwrite``, ``root``
            holds a file er-art did not write (named); both flags at once. One sentence each.
        :raises FileFormatError: the manifest is unreadable or not an er-art manifest.
        """
        root = Path(root)
        if resume and overwrite:
            raise ValueError(
                f"--resume continues the evaluation in {root} and --overwrite deletes it; give one "
                "of them."
            )
        if root.exists() and not root.is_dir():
            raise ValueError(f"--out {root} is a file; give a directory (new or empty).")
        options = versioned(options)
        manifest = root / MANIFEST
        ours, foreign = _contents(root)
        if overwrite:
            if foreign:
                raise ValueError(
                    f"--overwrite deletes only er-art's own files, but {root} also holds "
                    f"{foreign[0].relative_to(root)}; move it away or give another --out."
                )
            _remove_temporaries(root)
            for path in ours:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            if ours:
                logger.info("deleted the earlier evaluation in %s", root)
            return cls(root, options)
        if resume and manifest.is_file():
            cls._check_resumable(root, read_manifest(manifest)["options"], options)
            _remove_temporaries(root)
            logger.info("resuming the evaluation in %s", root)
            return cls(root, options, started=True)
        if manifest.is_file():
            raise ValueError(
                f"{root} already holds an evaluation; add --resume to continue it, --overwrite to "
                "start it again, or give another --out."
            )
        if ours:
            raise ValueError(
                f"{root} holds the files of an earlier evaluation ({ours[0].name}) but no "
                f"{MANIFEST}, so what they were computed with is unknown; add --overwrite to start "
                "again, or give another --out."
            )
        if foreign:
            raise ValueError(
                f"--out {root} is not empty (it holds {foreign[0].relative_to(root)}); give a new "
                "or empty directory."
            )
        _remove_temporaries(root)
        if resume:
            logger.info("nothing to resume in %s; starting a new evaluation", root)
        return cls(root, options)

    @staticmethod
    def _check_resumable(root: Path, before: dict[str, Any], options: dict[str, Any]) -> None:
        """Raise ``ValueError`` (one sentence) unless a store started with ``before`` may be
        resumed with ``options``."""
        if before.get("attacks_version") != ATTACKS_VERSION:
            raise ValueError(
                f"--resume: {root} was computed by another version of er-art's attacks "
                f"(attacks_version {before.get('attacks_version', 1)}, now {ATTACKS_VERSION}), "
                "whose numbers would mix with these; give another --out."
            )
        hashes = (CHECKPOINT_HASHES, DATA_HASHES)
        changed = [k for k in sorted(set(before) | set(options)) if before.get(k) != options.get(k)]
        for key in changed:
            if key == MODELS:
                raise ValueError(
                    f"--resume: {root} was computed on another model ({_model_name(before)}, "
                    f"now {_model_name(options)}); {_AGAIN}"
                )
            if key not in hashes:
                raise ValueError(
                    f"--resume: {root} was started with {key}={before.get(key)!r}, not "
                    f"{options.get(key)!r}; run with the same options or give another --out."
                )
        for key in hashes:
            if key in changed:
                checkpoints = options.get("checkpoints")
                names = checkpoints if isinstance(checkpoints, list) else []
                raise ValueError(
                    _changed_content(root, key, before.get(key), options.get(key), names)
                )

    def unit_path(self, label: str, key: str, eps: float) -> Path:
        return self.root / UNITS / _safe(label) / f"{_safe(key)}@{float(eps):.10g}.json"

    def load(self, label: str, key: str, eps: float, n: int | None = None) -> AttackOutcome | None:
        """The stored outcome of a unit, or None if it has not finished.

        :param n: the number of examples attacked; a unit of another number is refused.
        :raises FileFormatError: the unit's file is truncated, edited or of another evaluation
            (one sentence naming it).
        """
        path = self.unit_path(label, key, eps)
        if not path.exists() and not path.is_symlink():
            return None
        what = "a unit of an er-art evaluation"
        outcome = AttackOutcome.from_json(read_json(path, what=what), where=f"{path} ({what})")
        if not math.isclose(outcome.eps, float(eps), rel_tol=1e-9, abs_tol=1e-12):
            raise FileFormatError(f"{path} ({what}) holds eps {outcome.eps!r}, not {eps!r}.")
        if n is not None and outcome.n != n:
            raise FileFormatError(
                f"{path} ({what}) holds {outcome.n} examples, not the {n} attacked here."
            )
        return outcome

    def save(self, label: str, key: str, eps: float, outcome: AttackOutcome) -> Path:
        """Write a finished unit atomically (the manifest first, with the first unit)."""
        if not self._started:
            _write_json(
                self.root / MANIFEST,
                {"format": FORMAT, "version": MANIFEST_VERSION, "options": self.options},
            )
            self._started = True
        path = self.unit_path(label, key, eps)
        _write_json(path, outcome.to_json())
        return path

    def finished(self) -> list[Path]:
        """The unit files written so far."""
        return sorted((self.root / UNITS).glob("*/*.json"))
