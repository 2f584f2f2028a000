"""``er-art evaluate`` / ``er-art attack``: suites, protocols, checks per eps, resumable output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from er_art.cli.app import app
from typer.testing import CliRunner

from er_art.checkpoint import save_classifier
from er_art.runs import write_json
from tests.processes import same_seeds_in_subprocesses

pytestmark = pytest.mark.integration

runner = CliRunner()
QUICK = ["-n", "24", "--batch-size", "24"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, trained_digits):
    """A run directory as ``er-art train`` writes it (run.json + checkpoint.pt)."""
    run = tmp_path_factory.mktemp("runs") / "er"
    save_classifier(trained_digits, run / "checkpoint.pt")
    write_json(
        run / "run.json",
        {"config": {"dataset": "digits", "data_dir": None, "eps": 0.1}, "status": "finished"},
    )
    return run


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_single_attack_table_ends_with_the_upper_bound_line(run_dir):
    result = invoke("attack", "-c", str(run_dir), "--method", "fgsm", "--eps", "0.1,0.2", *QUICK)
    assert result.exit_code == 0, result.output
    assert "One attack gives an upper bound on robust accuracy" in result.output
    assert f"er-art evaluate -c {run_dir} --eps 0.1,0.2" in result.output


def test_paper_protocol_is_the_authors_pgd(run_dir, tmp_path):
    out = tmp_path / "paper"
    result = invoke(
        "attack", "-c", str(run_dir), "--method", "pgd", "--protocol", "paper", "--eps", "0.1",
        *QUICK, "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "results.json").read_text())
    # digits' table (plugins/datasets/digits.py): step 0.025, 10 steps; one random start
    assert record["protocol"] == "paper" and record["max_iter"] == 10
    assert record["eps_step"] == pytest.approx(0.025) and record["restarts"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["attack", "--method", "fgsm", "--protocol", "paper"], "--method pgd"),
        (["attack", "--protocol", "paper", "--max-iter", "5"], "drop --max-iter"),
        (["attack", "--protocol", "papers"], "converged, paper"),
        (["attack", "--resume"], "--resume needs --out"),
        (["evaluate", "--suite", "standard", "--max-iter", "5"], "drop --max-iter"),
        (["evaluate", "--suite", "standard", "--attacks", "pgd"], "drop --attacks"),
        (["evaluate", "--suite", "slow"], "fast, standard"),
        (["evaluate", "--eot", "0"], "--eot"),
        (["attack", "--method", "deepfool", "--eot", "3"], "does not support --eot"),
        (["attack", "--patience", "-1"], "--patience must be an integer >= 0"),
        (["evaluate", "--patience", "-2"], "--patience must be an integer >= 0"),
        (["evaluate", "--suite", "standard", "--patience", "4"], "drop --patience"),
        (["attack", "--protocol", "paper", "--patience", "4"], "drop --patience"),
    ],
)
def test_bad_evaluation_options_are_one_sentence(run_dir, args, message):
    result = runner.invoke(app, [*args, "-c", str(run_dir), *QUICK])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_standard_suite_records_each_autoattack_member(run_dir, tmp_path):
    """At eps 0.3 APGD-CE breaks all 24 examples, so the cascade's later members have nothing left
    to attack: the full standard parameters run in seconds and every member still has a record."""
    out = tmp_path / "aa"
    result = invoke("evaluate", "-c", str(run_dir), "--suite", "standard", "--eps", "0.3",
                    "--no-checks", *QUICK, "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    methods = [r["method"] for r in records]
    assert methods == ["apgd-ce", "apgd-t", "fab-t", "square", "worst-case"]
    assert {r["suite"] for r in records} == {"standard"}
    square = records[3]
    assert square["max_iter"] == 5000 and square["art_params"]["p_init"] == 0.8
    accs = [r["robust_accuracy"] for r in records]
    assert accs == sorted(accs, reverse=True)  # a cascade never gains robustness


def test_resume_with_other_options_is_refused(run_dir, tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "-c", str(run_dir), "--eps", "0.1", "--attacks", "fgsm,square",
            "--square-iter", "3", *QUICK, "--out", str(out)]  # fmt: skip
    assert invoke(*args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "add --resume" in again.output
    other = runner.invoke(app, [*args, "--resume", "--seed", "1"])
    assert other.exit_code == 2 and "started with seed=0, not 1" in other.output
    assert "Traceback" not in other.output
    same = invoke(*args, "--resume")
    assert same.exit_code == 0, same.output
    first = json.loads((out / "results.json").read_text())
    assert all(r["robust_accuracy"] is not None for r in first)


def _robust(path: Path) -> list[tuple[str, float, float]]:
    records = json.loads((path / "results.json").read_text())
    return [(r["method"], r["eps"], r["robust_accuracy"]) for r in records]


@same_seeds_in_subprocesses
@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_numbers_of_an_uninterrupted_one(run_dir, tmp_path):
    args = ["evaluate", "-c", str(run_dir), "--eps", "0.1,0.2", "--attacks", "pgd,fgsm,square",
            "--max-iter", "3", "--restarts", "2", "--square-iter", "20", "-n", "32",
            "--batch-size", "8"]  # fmt: skip
    whole = tmp_path / "whole"
    assert invoke(*args, "--out", str(whole)).exit_code == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "ER_ART_TEST_THREADS": "1", "OMP_NUM_THREADS": "1"}
    code = "import sys; from er_art.cli.app import main; sys.argv[0] = 'er-art'; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    units = killed / "units"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(units.glob("*/*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in units.glob("*/*.json")}
    assert done, "the evaluation wrote no unit before it was killed"
    assert not (killed / "results.json").exists()  # it really was interrupted

    resumed = invoke(*args, "--out", str(killed), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished units not rerun
    assert _robust(killed) == _robust(whole)
    checks = json.loads((killed / "checks.json").read_text())
    assert checks == json.loads((whole / "checks.json").read_text())
