"""Running a reproduction: each method's run obtained (:mod:`er_art.reproduce.runs`: trained,
reused or resumed), then evaluated under the three protocols (:mod:`er_art.reproduce.protocols`),
the output files rewritten after every method (:mod:`er_art.reproduce.tables`).

Layout of the output directory ``OUT``: ``reproduce.json``, ``runs/<method>/`` (an ``er-art
train`` run each), ``eval/<method>/<protocol>/`` (a resumable evaluation store each), and the
files of :mod:`~er_art.reproduce.tables`. A method whose training diverges is reported in the
tables and the others go on; an interruption (SIGINT) propagates, and the same call resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from er_art.reproduce.plan import Plan
from er_art.reproduce.protocols import (
    Row,
    data_intrinsic_dim,
    embedding_intrinsic_dim,
    evaluate_method,
    torch_threads,
)
from er_art.reproduce.runs import MANIFEST_NAME, obtain_run, open_output
from er_art.runs import read_metrics, read_run, write_json
from er_art.training.run import TrainingCallbacks, TrainingDiverged

logger = logging.getLogger(__name__)

__all__ = ["MethodRecord", "ReproduceCallbacks", "ReproduceResult", "Row", "run_plan"]


class ReproduceCallbacks:
    """Hooks of a reproduction (the CLI prints from them); every method is a no-op here.

    ``training`` receives the run loop's hooks, ``progress`` each attack's progress."""

    training: TrainingCallbacks | None = None
    progress: Any = None  # an er_art.evaluation.running.ProgressHook

    def on_plan(self, plan: Plan, n_test: int) -> None: ...

    def on_train(self, method: str, run_dir: Path, action: str) -> None:
        """Before a method's run: ``action`` is ``train``, ``resume`` or ``reuse``."""

    def on_evaluate(self, method: str, protocol: str, n: int) -> None: ...

    def on_method_done(self, method: str) -> None: ...


@dataclass
class MethodRecord:
    """What happened to one method: its run, how it was obtained, its evaluation."""

    name: str
    label: str
    run_dir: Path
    action: str = ""  # trained | resumed | reused
    config: dict[str, Any] = field(default_factory=dict)
    test_acc: float | None = None  # the run's last test accuracy (its own test subset)
    train_time: float | None = None  # seconds of training in all
    error: str | None = None  # why it has no numbers (training diverged)
    eval_settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReproduceResult:
    """Everything a reproduction measured and wrote."""

    plan: Plan
    rows: list[Row]
    methods: list[MethodRecord]
    checks: list[dict[str, Any]]
    intrinsic: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @property
    def trained(self) -> list[str]:
        """The methods trained (or resumed) by this call."""
        return [m.name for m in self.methods if m.action in ("trained", "resumed")]

    @property
    def failed(self) -> list[str]:
        return [m.name for m in self.methods if m.error]


# ---------------------------------------------------------------------------- the whole thing
def run_plan(plan: Plan, callbacks: ReproduceCallbacks | None = None) -> ReproduceResult:
    """Train and evaluate every method of ``plan``, writing the outputs after each one."""
    from er_art.reproduce.tables import write_outputs

    callbacks = callbacks or ReproduceCallbacks()
    x, y = plan.spec.arrays("test", plan.data_dir)  # a missing dataset fails here, in one sentence
    plan.spec.load("train", plan.data_dir)
    manifest = open_output(plan)
    n_test = len(y)
    limit = max(plan.max_n(n_test), min(plan.scale.intrinsic_n, n_test))
    x, y = x[:limit], y[:limit]
    callbacks.on_plan(plan, n_test)
    intrinsic = data_intrinsic_dim(plan)
    result = ReproduceResult(plan, [], [], [], intrinsic)
    for mp in plan.methods:
        record = MethodRecord(mp.name, mp.method.label or mp.name, mp.run_dir)
        result.methods.append(record)
        try:
            record.action = obtain_run(mp, callbacks)
        except TrainingDiverged as err:
            record.error = f"training diverged: {err}"
            logger.error("%s: %s", mp.name, record.error)
            continue
        info = read_run(mp.run_dir)
        record.config = info.get("config", {})
        metrics = _metrics(mp.run_dir)
        if metrics:
            record.test_acc = metrics[-1].get("test_acc")
            record.train_time = metrics[-1].get("elapsed")
        # the attacks run on torch's threads (one per core) unless --threads says otherwise;
        # training kept its architecture's (benchmarks/bench_cpu_defaults.py)
        with torch_threads(plan.threads):
            evaluated = evaluate_method(plan, mp, x, y, callbacks)
            if mp.name == "er-pgd":
                n = plan.scale.intrinsic_n
                intrinsic.update(embedding_intrinsic_dim(mp, x, n, plan.device))
        record.eval_settings = evaluated.settings
        result.rows += evaluated.rows
        result.checks += evaluated.checks
        result.files = write_outputs(result, n_test, final=False)
        callbacks.on_method_done(mp.name)
    result.files = write_outputs(result, n_test, final=True)
    manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["methods"] = [m.name for m in plan.methods]
    write_json(plan.out / MANIFEST_NAME, manifest)
    return result


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl records, each line checked (:func:`er_art.runs.read_metrics`)."""
    return read_metrics(run_dir)
