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
from er_art.checkpoint import read_checkpoint
from er_art.runs import read_run
from tests.processes import wait_for_checkpoint

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


# ---------------------------------------------------------------------- RSE and VAE-CLA runs
BASELINE_RUN = ["--device", "cpu", "--threads", "1", "--limit", "200", "--batch-size", "32"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("trainer", "arch", "cls"),
    [("rse", "rse-digits", "RSEClassifier"), ("vae-cla", "vae-digits", "VAEClassifier")],
)
def test_rse_and_vae_cla_train_load_and_attack(trainer, arch, cls):
    result = runner.invoke(
        app, ["train", "--trainer", trainer, *BASELINE_RUN, "--epochs", "1", "--out", "run"]
    )
    assert result.exit_code == 0, result.output
    assert f"arch {arch}" in result.stdout and "epoch 1/1" in result.stdout
    clf = er_art.load_classifier("run")
    assert type(clf).__name__ == cls
    config = read_checkpoint("run")["classifier"]["config"]
    assert config["arch"] == arch and config["kind"] == er_art.get_architecture(arch).kind
    attack = runner.invoke(
        app, ["attack", "--method", "fgsm", "-c", "run", "--eps", "0.1", "-n", "40", "--eot", "2"]
    )
    assert attack.exit_code == 0, attack.output
    assert "fgsm" in attack.stdout and "Traceback" not in attack.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--trainer", "rse", "--arch", "cnn"], "needs an RSE architecture"),
        (["--trainer", "vae-cla", "--arch", "digits"], "needs a VAE-CLA architecture"),
        (["--trainer", "plain", "--arch", "rse-digits"], "'rse-digits' is an RSE architecture"),
        (["--trainer", "rse", "--arch-option", "sigma=0.3"], "sigma_init"),
        (["--trainer", "vae-cla", "--arch-option", "beta"], "KEY=VALUE"),
        (["--trainer", "vae-cla", "--arch-option", "beta=-1"], "beta"),
        (["--trainer", "rse", "--embedding-dim", "4"], "embedding"),
    ],
)
def test_a_wrong_architecture_or_option_is_one_sentence_exit_2(args, expected):
    result = runner.invoke(app, ["train", *args, *BASELINE_RUN, "--out", "run"])
    assert result.exit_code == 2
    assert expected in one_sentence_error(result)
    assert not Path("run").exists()


@pytest.mark.integration
def test_arch_options_reach_the_model_and_the_records():
    result = runner.invoke(
        app,
        ["train", "--trainer", "rse", *BASELINE_RUN, "--epochs", "1", "--out", "run"]
        + ["--arch-option", "sigma_init=0.3", "--arch-option", "ensemble=3"],
    )
    assert result.exit_code == 0, result.output
    options = {"sigma_init": 0.3, "sigma_inner": 0.1, "ensemble": 3}  # rse-digits' sigma_inner
    assert read_run("run")["config"]["arch_options"] == options
    assert read_checkpoint("run")["classifier"]["config"]["arch_options"] == options
    clf = er_art.load_classifier("run")
    assert (clf.model.sigma_init, clf.ensemble) == (0.3, 3)
    again = runner.invoke(app, ["train", "--resume", "--out", "run", "--arch-option", "ensemble=5"])
    assert "--arch-option" in one_sentence_error(again)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("trainer", ["rse", "vae-cla"])
def test_sigkill_then_resume_is_exact_for_rse_and_vae_cla(tmp_path, trainer):
    """Both draw noise from torch's RNG at every step (RSE's noise layers, VAE-CLA's eps) and in
    the epoch-end evaluation (RSE's ensemble): the resumed run must still end bit-identical."""
    args = f"--trainer {trainer} --device cpu --threads 1 --epochs 3 --checkpoint-every 3"
    args = [*args.split(), "--seed", "7", "--batch-size", "32"]  # 44 steps per epoch
    ref = subprocess.run(
        cli(*args, "--out", "ref"), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(
        cli(*args, "--out", "run"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_checkpoint(tmp_path / "run", proc, min_step=3)
        time.sleep(random.uniform(0.0, 0.05))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not read_checkpoint(tmp_path / "run")["training"]["finished"]
    resumed = subprocess.run(
        cli("--resume", "--out", "run"), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at" in resumed.stdout
    a, b = final_weights(tmp_path / "ref"), final_weights(tmp_path / "run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ref_opt = read_checkpoint(tmp_path / "ref")["classifier"]["optimizers"]["model"]
    run_opt = read_checkpoint(tmp_path / "run")["classifier"]["optimizers"]["model"]
    assert all(
        torch.equal(ref_opt["state"][k]["exp_avg"], run_opt["state"][k]["exp_avg"])
        for k in ref_opt["state"]
    )
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    reference = [
        json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    ]
    drop = ("time", "elapsed")
    assert [{k: v for k, v in m.items() if k not in drop} for m in metrics] == [
        {k: v for k, v in m.items() if k not in drop} for m in reference
    ]
