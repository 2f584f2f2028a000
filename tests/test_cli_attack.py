"""``er-art attack`` and ``er-art evaluate`` end to end on small run directories."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import art
import numpy as np
import pytest
import torch
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art
from er_art.checkpoint import save_classifier
from er_art.runs import mark_latest, write_json

pytestmark = pytest.mark.integration

runner = CliRunner()
FAST = ["--max-iter", "2", "-n", "24", "--batch-size", "24"]


def make_run(run_dir: Path, classifier, trainer: str) -> Path:
    """A run directory as ``er-art train`` writes it (run.json + checkpoint.pt)."""
    save_classifier(classifier, run_dir / "checkpoint.pt")
    write_json(
        run_dir / "run.json",
        {
            "config": {"dataset": "digits", "data_dir": None, "trainer": trainer, "eps": 0.1},
            "status": "finished",
        },
    )
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_digits):
    root = tmp_path_factory.mktemp("runs")
    er = make_run(root / "er", trained_digits, "er-minus")
    baseline = er_art.build_classifier("test_cnn", input_shape=(1, 8, 8), device_type="cpu", seed=0)
    plain = make_run(root / "plain", baseline, "plain")
    mark_latest(er, root)
    return root, er, plain


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_attack_sweep_writes_results_and_plot(runs, tmp_path):
    _, er, _ = runs
    out = tmp_path / "out"
    result = invoke(
        "attack",
        "-c",
        str(er),
        "--method",
        "pgd",
        "--eps",
        "0:0.2:0.1",
        *FAST,
        "--out",
        str(out),
        "--plot",
    )
    assert result.exit_code == 0, result.output
    assert "robust" in result.output and "pgd" in result.output
    records = json.loads((out / "results.json").read_text())
    assert [r["eps"] for r in records] == pytest.approx([0.0, 0.1, 0.2])
    for r in records:
        assert r["method"] == "pgd" and r["norm"] == "inf" and r["n_samples"] == 24
        assert 0.0 <= r["robust_accuracy"] <= r["clean_accuracy"] <= 1.0
        assert r["checkpoint"] == str(er) and "time_s" in r and "success_rate" in r
        versions = r["versions"]  # what computed the number, for anyone comparing it later
        assert versions["torch"] == torch.__version__ and versions["numpy"] == np.__version__
        assert versions["adversarial-robustness-toolbox"] == art.__version__
        # what the restarts did: the stopping rule's evidence (docs/EVALUATION.md)
        assert r["stopped_by"] in ("patience", "cap", "all broken")
        assert r["restarts_run"] <= r["restarts"] and r["stopping_rule"]["cap"] == r["restarts"]
        assert len(r["breaks_per_restart"]) == r["restarts_run"]
    accs = [r["robust_accuracy"] for r in records]
    assert accs[0] == records[0]["clean_accuracy"] and accs[2] <= accs[0]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 3 and {"method", "eps", "clean_accuracy", "robust_accuracy"} <= set(rows[0])
    assert (out / "accuracy_vs_eps.png").stat().st_size > 0


def test_attack_defaults_to_latest_run_and_its_training_eps(runs, tmp_path, monkeypatch):
    _, er, _ = runs
    monkeypatch.chdir(tmp_path)
    mark_latest(er, tmp_path / "runs")  # what er-art train does: ./runs/LATEST
    out = tmp_path / "latest"
    result = invoke("attack", "--method", "fgsm", "-n", "16", "--out", str(out))
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "results.json").read_text())
    assert record["eps"] == 0.1 and Path(record["checkpoint"]).resolve() == er.resolve()


def test_several_checkpoints_er_and_baseline_with_defence(runs, tmp_path):
    _, er, plain = runs
    out = tmp_path / "both"
    result = invoke(
        "attack",
        "-c",
        str(er),
        "-c",
        str(plain),
        "--method",
        "bim",
        "--eps",
        "0.1",
        *FAST,
        "--defence",
        "feature-squeezing",
        "--out",
        str(out),
        "--plot",
    )
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    assert {r["label"] for r in records} == {"er", "plain"}
    assert all(r["defences"] == ["DefenceChain"] for r in records)


def test_cw_reports_accuracy_under_the_l2_threshold(runs, tmp_path):
    _, er, _ = runs
    out = tmp_path / "cw"
    result = invoke(
        "attack",
        "-c",
        str(er),
        "--method",
        "cw",
        "--l2-threshold",
        "0.01",
        *FAST,
        "--param",
        "binary_search_steps=1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "results.json").read_text())
    assert record["l2_threshold"] == 0.01 and record["threshold_abs"] == pytest.approx(0.64)
    assert record["norm"] == "2"


def test_method_all_prints_worst_case_and_checks(runs, tmp_path):
    _, er, _ = runs
    out = tmp_path / "all"
    result = invoke(
        "attack",
        "-c",
        str(er),
        "--method",
        "all",
        "--eps",
        "0.1",
        *FAST,
        "--attacks",
        "pgd,fgsm,square",
        "--param",
        "square.max_iter=5",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "worst-case" in result.output
    for name in ("chance at full range", "more iterations", "iterative", "white-box"):
        assert name in result.output
    assert "PASS" in result.output or "FAIL" in result.output
    records = json.loads((out / "results.json").read_text())
    # the cascade (PGD > Square), FGSM on every example, the checks' doubled-steps PGD on what
    # every attack left robust, which counts in the worst case too
    assert [r["method"] for r in records] == ["pgd", "square", "fgsm", "pgd-x2", "worst-case"]
    checks = json.loads((out / "checks.json").read_text())
    assert len(checks) == 5 and {c["status"] for c in checks} <= {"PASS", "FAIL", "UNINFORMATIVE"}


def test_evaluate_command(runs, tmp_path):
    _, er, _ = runs
    out = tmp_path / "eval"
    result = invoke(
        "evaluate",
        "-c",
        str(er),
        "--eps",
        "0.05,0.1",
        "--attacks",
        "pgd,apgd-ce,fgsm,square",
        "--max-iter",
        "2",
        "--restarts",
        "1",
        "--square-iter",
        "5",
        "-n",
        "24",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    worst = [r for r in records if r["method"] == "worst-case"]
    assert [r["eps"] for r in worst] == [0.05, 0.1]
    for w in worst:
        same_eps = [r for r in records if r["eps"] == w["eps"] and r["method"] != "worst-case"]
        assert w["robust_accuracy"] <= min(r["robust_accuracy"] for r in same_eps)
    checks = json.loads((out / "checks.json").read_text())
    # determinism and full range once, then three checks at each eps, each with its eps
    assert len(checks) == 2 + 3 * 2
    assert sorted({c["values"]["eps"] for c in checks[2:]}) == [0.05, 0.1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "pgdd"], "pgd"),
        (["--eps", "0:1"], "start:stop:step"),
        (["--eps", "paperz"], "eps"),
        (["--defence", "jpegg"], "jpeg"),
        (["--n-samples", "0"], "n-samples"),
        (["--method", "square", "--targeted"], "targeted"),
        (["--plot"], "--out"),
        (["--method", "all", "--targeted"], "--method all"),
        (["--param", "novalue"], "NAME=VALUE"),
        (["--method", "pgd", "--param", "bogus=1"], "bogus"),
        (
            ["--method", "apgd-dlr", "--param", "implementation=jax"],
            "'apgd-dlr' has no implementation 'jax'; accepted: torch, art",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(runs, args, message):
    _, er, _ = runs
    result = runner.invoke(app, ["attack", "-c", str(er), *args])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_missing_checkpoint_and_no_latest_run(tmp_path, monkeypatch):
    result = runner.invoke(app, ["attack", "-c", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output and "Traceback" not in result.output
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["attack"])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
