"""The runs of a reproduction: its output folder and one ``er-art train`` run per method.

- ``OUT/reproduce.json`` says what the folder reproduces (dataset, scale, seed); a folder holding
  another reproduction, or anything else, is refused in one sentence, and so is a manifest that
  is not a JSON object of that shape (:func:`er_art.json_files.read_json`);
- ``OUT/runs/<method>/`` is an ``er-art train`` run directory (:mod:`er_art.training.run`): trained
  when absent, reused as it is when finished, continued with ``training.resume`` when
  interrupted, and refused when it was trained with other settings than the plan's.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from er_art.evaluation.store import canonical_json
from er_art.json_files import read_json
from er_art.reproduce.plan import MethodPlan, Plan
from er_art.runs import RUN_JSON, read_run, write_json
from er_art.training.run import DEFINING, git_revision, is_finished, package_versions, resume, train

logger = logging.getLogger(__name__)

MANIFEST_NAME = "reproduce.json"
FORMAT = "er-art-reproduce"
# the config fields that make a trained model what the plan wants: what makes a checkpoint what
# it is (er_art.training.run.DEFINING) and its number of epochs
COMPARED = (*DEFINING, "epochs")


# ---------------------------------------------------------------------------- the output folder
def open_output(plan: Plan) -> dict[str, Any]:
    """Create ``plan.out`` or check it holds a reproduction of the same dataset, scale and seed;
    returns its manifest (written before anything else, so an interrupted one is recognised)."""
    out = plan.out
    manifest = out / MANIFEST_NAME
    mine = {"dataset": plan.dataset, "scale": plan.scale.name, "seed": plan.seed}
    if manifest.is_file():
        saved = read_json(
            manifest,
            {},
            what="an er-art reproduce manifest",
            optional={"format": str, "dataset": str, "scale": str, "seed": int},
        )
        if saved.get("format") != FORMAT:
            raise ValueError(f"{manifest} is not an er-art reproduce manifest; use another --out.")
        for key, value in mine.items():
            if saved.get(key) != value:
                raise ValueError(
                    f"{out} holds a reproduction with {key}={saved.get(key)!r}, not {value!r}; "
                    "use another --out."
                )
        return saved
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(
            f"{out} exists and holds no er-art reproduction; give a new or empty --out."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"Cannot create output directory {out} ({err.strerror or err}).") from None
    saved = {
        "format": FORMAT,
        **mine,
        "data_dir": plan.data_dir,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git_revision": git_revision(),
    }
    write_json(manifest, saved)
    return saved


# ---------------------------------------------------------------------------- training
def check_run_config(run_dir: Path, planned: dict[str, Any]) -> None:
    """Refuse (one sentence) a run directory trained with other settings than the plan's."""
    saved = read_run(run_dir).get("config", {})
    for key in COMPARED:
        before, now = canonical_json(saved.get(key)), canonical_json(planned.get(key))
        if before != now:
            raise ValueError(
                f"{run_dir} was trained with {key}={before!r}, not {now!r} as planned; delete it "
                "to train it again, or use another --out."
            )


def obtain_run(mp: MethodPlan, callbacks: Any) -> str:
    """Train ``mp``'s run, resume it, or reuse it when finished: ``trained`` / ``resumed`` /
    ``reused``. Interruptions (SIGINT) propagate after the checkpoint is saved."""
    run_dir = mp.run_dir
    hooks = callbacks.training
    if not (run_dir / RUN_JSON).is_file():
        callbacks.on_train(mp.name, run_dir, "train")
        train(mp.config, run_dir, hooks, latest_root=None)
        return "trained"
    check_run_config(run_dir, mp.config.to_dict())
    if is_finished(run_dir):
        callbacks.on_train(mp.name, run_dir, "reuse")
        return "reused"
    callbacks.on_train(mp.name, run_dir, "resume")
    resume(run_dir, hooks, latest_root=None)
    return "resumed"
