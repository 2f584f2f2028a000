"""Resumable evaluations: every finished (run, eps, attack) unit on disk as soon as it is done.

An output directory holds ``evaluation.json`` (the options the evaluation was started with) and
``units/<run>/<attack>@<eps>.json``, one file per finished unit with its per-example outcomes
(clean correct, robust, perturbation norm), written atomically. The summary files
(``results.json``, ``checks.json``) are derived from the units, so the worst case can always be
recomputed, and an evaluation started again with ``resume=True`` skips the units it finds (the
idea of fra31/auto-attack's ``state_path``, per unit instead of per attack).

    >>> store = EvaluationStore.open("eval/", options, resume=True)
    >>> store.load("my-run", "pgd", 0.1)        # an AttackOutcome, or None if not done yet
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from er_art.checkpoint import atomic_write
from er_art.evaluation.outcome import AttackOutcome

logger = logging.getLogger(__name__)

MANIFEST = "evaluation.json"
UNITS = "units"
FORMAT = "er-art-evaluation"
# The version of the attacks' code a store's numbers come from; part of its options, so that a
# store is never resumed with units from code that gives other numbers. 1: ART's PGD, APGD and
# Square; 2: er-art's PyTorch PGD, APGD and Square (every adversarial iterate counts); 3: restarts
# under a stopping rule, the fast suite a cascade, the convergence check on the survivors.
ATTACKS_VERSION = 3


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


def canonical_json(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists, keys strings, sorted)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def versioned(options: dict[str, Any]) -> dict[str, Any]:
    """A store's options as its manifest holds them: canonical JSON with ``attacks_version``."""
    return canonical_json({**options, "attacks_version": ATTACKS_VERSION})


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, sort_keys=True, default=str)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


class EvaluationStore:
    """The units of one evaluation under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, options: dict[str, Any], started: bool = False) -> None:
        self.root = Path(root)
        self.options = options
        self._started = started  # the manifest is on disk (written with the first unit)

    @classmethod
    def open(cls, root: str | Path, options: dict[str, Any], resume: bool) -> EvaluationStore:
        """The store at ``root``: new, or (``resume``) the one started there with ``options``.

        :raises ValueError: ``root`` holds an evaluation and ``resume`` is False, or it was
            started with other options (one sentence naming the first difference).
        """
        root = Path(root)
        options = versioned(options)
        manifest = root / MANIFEST
        if manifest.is_file():
            if not resume:
                raise ValueError(
                    f"{root} already holds an evaluation; add --resume to continue it, or give "
                    "another --out."
                )
            saved = json.loads(manifest.read_text())
            before = saved.get("options", {}) if saved.get("format") == FORMAT else None
            if before is None:
                raise ValueError(f"{manifest} is not an er-art evaluation manifest.")
            if before.get("attacks_version") != ATTACKS_VERSION:
                raise ValueError(
                    f"--resume: {root} was computed by another version of er-art's attacks "
                    f"(attacks_version {before.get('attacks_version', 1)}, now {ATTACKS_VERSION}), "
                    "whose numbers would mix with these; give another --out."
                )
            for key in sorted(set(before) | set(options)):
                if before.get(key) != options.get(key):
                    raise ValueError(
                        f"--resume: {root} was started with {key}={before.get(key)!r}, not "
                        f"{options.get(key)!r}; run with the same options or give another --out."
                    )
            logger.info("resuming the evaluation in %s", root)
            return cls(root, options, started=True)
        if resume:
            logger.info("nothing to resume in %s; starting a new evaluation", root)
        return cls(root, options)

    def unit_path(self, label: str, key: str, eps: float) -> Path:
        return self.root / UNITS / _safe(label) / f"{_safe(key)}@{float(eps):.10g}.json"

    def load(self, label: str, key: str, eps: float) -> AttackOutcome | None:
        """The stored outcome of a unit, or None if it has not finished."""
        path = self.unit_path(label, key, eps)
        if not path.is_file():
            return None
        return AttackOutcome.from_json(json.loads(path.read_text()))

    def save(self, label: str, key: str, eps: float, outcome: AttackOutcome) -> Path:
        """Write a finished unit atomically (the manifest first, with the first unit)."""
        if not self._started:
            _write_json(
                self.root / MANIFEST, {"format": FORMAT, "version": 1, "options": self.options}
            )
            self._started = True
        path = self.unit_path(label, key, eps)
        _write_json(path, outcome.to_json())
        return path

    def finished(self) -> list[Path]:
        """The unit files written so far."""
        return sorted((self.root / UNITS).glob("*/*.json"))
