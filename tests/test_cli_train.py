"""``er-art train``: bad input (one sentence, non-zero exit, no traceback), SIGKILL, SIGINT."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art
from er_art.checkpoint import CheckpointError, read_checkpoint
from er_art.runs import read_run

runner = CliRunner()
TINY = [
    "--arch",
    "test_digits",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--max-iter",
    "2",
    "--limit",
    "200",
    "--batch-size",
    "32",
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and runs/LATEST land in the test's directory
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def one_sentence_error(result) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dataset", "digitz"], "digits"),
        (["--arch", "digitss"], "digits"),
        (["--prior", "cauhcy"], "cauchy"),
        (["--trainer", "er-pgdd"], "er-pgd"),
        (["--embedding-dim", "0"], "embedding-dim"),
        (["--embedding-dim", "four"], "embedding-dim"),
        (["--epochs", "-1"], "epochs"),
        (["--batch-size", "0"], "batch size"),
        (["--lr", "0"], "learning rate"),
        (["--lr", "-1e-3"], "learning rate"),
        (["--eps", "2"], "eps"),
        (["--eps", "0"], "eps"),
        (["--arch", "mnist"], "shape"),
        (["--device", "tpu"], "device"),
        (["--resume", "--out", "no-such-run"], "no-such-run"),
        (["--resume"], "--out"),
    ],
)
def test_bad_input_is_one_sentence(args, expected):
    result = runner.invoke(app, ["train", *args])
    assert expected in one_sentence_error(result)
    assert not Path("runs").exists() or not any(Path("runs").glob("digits-*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda():
    assert "CUDA" in one_sentence_error(runner.invoke(app, ["train", "--device", "cuda"]))


def test_unwritable_output_dir(tmp_path):
    (tmp_path / "file").write_text("")
    assert "Cannot write" in one_sentence_error(
        runner.invoke(app, ["train", *TINY, "--out", "file/run"])
    )


def test_missing_data_files(tmp_path):
    pytest.importorskip("er_art.plugins.datasets.mnist")
    err = one_sentence_error(
        runner.invoke(app, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path)])
    )
    assert str(tmp_path) in err


def test_resume_refuses_changed_settings(tmp_path):
    err = one_sentence_error(runner.invoke(app, ["train", "--resume", "--out", "x", "--lr", "0.1"]))
    assert "--lr" in err


@pytest.mark.integration
def test_train_writes_a_run_and_marks_it_latest():
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    (run_dir,) = Path("runs").glob("digits-er-pgd-*")
    assert str(run_dir) in result.stdout and "epoch 1/1" in result.stdout
    assert (Path("runs") / "LATEST").read_text().strip() == str(run_dir.resolve())
    assert read_run(run_dir)["status"] == "finished"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    assert isinstance(er_art.load_classifier(run_dir), er_art.ERClassifier)
    again = runner.invoke(app, ["train", "--resume", "--out", str(run_dir)])
    assert again.exit_code == 0, again.output


@pytest.mark.integration
def test_diverging_run_exits_with_a_message(tmp_path):
    result = runner.invoke(
        app, ["train", *TINY, "--trainer", "ecla", "--lr", "1e30", "--out", "run"]
    )
    assert result.exit_code == 1
    assert "NaN or infinite" in result.stderr and "Traceback" not in result.output
    er_art.load_classifier("run")  # the last good checkpoint is there


# ---------------------------------------------------------------------- whole processes
# 44 steps per epoch (1,400 digits, batch 32): long enough to be caught mid-run on a fast machine
ARGS = "--arch test_digits --device cpu --threads 1 --epochs 3 --checkpoint-every 3 --seed 7"
ARGS += " --max-iter 3 --batch-size 32"
ARGS = ARGS.split()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "er_art.cli.app", "train", *args]


def wait_for_checkpoint(
    run_dir: Path, proc: subprocess.Popen, min_step: int, timeout: float = 60.0
) -> dict:
    """The training state of the first checkpoint at or past ``min_step`` global steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be interrupted"
        try:
            state = read_checkpoint(run_dir)["training"]
            if state["global_step"] >= min_step:
                return state
        except CheckpointError:
            pass
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir)["classifier"]["model"]


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_at_any_moment_then_resume_is_exact(tmp_path):
    ref = subprocess.run(
        cli(*ARGS, "--out", "ref"), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(
        cli(*ARGS, "--out", "run"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_checkpoint(tmp_path / "run", proc, min_step=3)
        time.sleep(random.uniform(0.0, 0.05))  # some moment after a checkpoint, not on it
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = read_checkpoint(tmp_path / "run")["training"]
    assert not killed["finished"]
    resumed = subprocess.run(
        cli("--resume", "--out", "run"), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at" in resumed.stdout
    a, b = final_weights(tmp_path / "ref"), final_weights(tmp_path / "run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]


@pytest.mark.slow
@pytest.mark.integration
def test_ctrl_c_saves_and_exits_130(tmp_path):
    proc = subprocess.Popen(
        cli(*ARGS, "--out", "run"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_checkpoint(tmp_path / "run", proc, min_step=3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert read_run(tmp_path / "run")["status"] == "interrupted"
    state = read_checkpoint(tmp_path / "run")["training"]
    assert state["global_step"] >= 3 and not state["finished"]
