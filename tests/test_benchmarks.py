"""The GPU benchmark and the GPU-check script run on a CPU machine (tiny sizes, --smoke /
--dry-run), so they are known to work before a GPU is lent."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_gpu_smoke(tmp_path, monkeypatch):
    import torch

    import er_art.devices

    monkeypatch.setattr(er_art.devices, "COMPILE_OPTIONS", dict(er_art.devices.COMPILE_OPTIONS))
    threads = torch.get_num_threads()
    try:
        results = load_script("bench_gpu").main(["--smoke", "--out", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "r.json").read_text()) == results
    assert [r["variant"] for r in results["training"]] == ["fp32", "amp", "compile"]
    assert all(r["seconds_per_epoch"] > 0 for r in results["training"])
    sweep = results["sweep"]
    assert sweep["images"] == 64 and len(sweep["robust_accuracy"]) == len(sweep["eps_values"]) == 3


def test_bench_gpu_refuses_bad_settings(capsys):
    bench = load_script("bench_gpu")
    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--variants", "fp16"])
    assert "fp16" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_gpu_checks_dry_run(tmp_path):
    """The script's CPU-runnable parts (the benchmark's smoke run is tested above)."""
    env = {**os.environ, "OUT": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_checks.sh"), "--dry-run", "--skip-bench"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "summary.txt").read_text()
    assert "0 step(s) failed" in summary and "=== pytest: exit 0" in summary
    assert (tmp_path / "pytest.xml").is_file()  # the gpu tests, collected and skipped here
