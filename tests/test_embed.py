"""t-SNE embedding maps: the library function and ``er-art embed`` on a small run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import er_art
from er_art.embedding_plot import embedding_figure, pgd_examples
from er_art.runs import mark_latest, write_json


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread for torch, OpenMP and BLAS in this module: t-SNE and training on ~100 points gain
    nothing from more, and on a shared 2-core machine spinning OpenMP threads slow them 10x."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_clf(_one_thread):
    """A test_digits ER-Classifier fitted for a moment (module-scoped: tests do not modify it)."""
    from er_art.datasets import get_dataset

    x, y = get_dataset("digits").arrays("train")
    torch.manual_seed(0)
    clf = er_art.build_classifier("test_digits", device_type="cpu")
    clf.fit(x, y, batch_size=64, nb_epochs=2)
    return clf


@pytest.fixture
def run_dir(small_clf, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "digits-run"
    er_art.save_classifier(small_clf, run / "checkpoint.pt")
    write_json(run / "run.json", {"config": {"dataset": "digits", "data_dir": None}})
    return run


def _png(path: Path) -> bool:
    return (
        path.is_file()
        and path.stat().st_size > 1000
        and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    )


def test_embedding_figure_clean_and_adversarial(small_clf, digits, tmp_path: Path) -> None:
    _, _, x_test, y_test = digits
    x, y = x_test[:60], y_test[:60]
    x_adv = pgd_examples(small_clf, x, eps=0.3, eps_step=0.05, max_iter=10)
    assert x_adv.shape == x.shape and np.abs(x_adv - x).max() <= 0.3 + 1e-5
    assert 0.0 <= x_adv.min() and x_adv.max() <= 1.0
    plot = embedding_figure(small_clf, x, y, x_adv, path=tmp_path / "sub" / "map.png", seed=0)
    assert _png(plot.path)
    assert plot.coords.shape == (60, 2) and plot.coords_adv.shape == (60, 2)
    assert plot.adv_success.shape == (60,) and plot.adv_success.dtype == bool
    assert plot.adv_accuracy < plot.clean_accuracy  # the attack lowers accuracy
    clean_only = embedding_figure(small_clf, x, y, path=tmp_path / "clean.png", seed=0)
    assert (
        clean_only.coords_adv is None and clean_only.adv_success is None and _png(clean_only.path)
    )


def test_embedding_figure_validation(small_clf, digits, tmp_path: Path) -> None:
    _, _, x_test, y_test = digits
    with pytest.raises(ValueError, match="at least 10"):
        embedding_figure(small_clf, x_test[:5], y_test[:5], path=tmp_path / "a.png")
    with pytest.raises(ValueError, match="must match"):
        embedding_figure(small_clf, x_test[:20], y_test[:20], x_test[:10], path=tmp_path / "a.png")


def _embed(*args: str, cwd: Path | None = None):
    from er_art.cli.app import app

    return CliRunner().invoke(app, ["embed", *args])


@pytest.mark.integration
def test_cli_embed_run_dir(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fig.png"
    result = _embed(
        "--checkpoint", str(run_dir), "--n-samples", "40", "--out", str(out), "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    assert _png(out) and "successful" in result.output and "40 digits test images" in result.output
    # a checkpoint file inside the run, no adversarial examples, the default output beside it
    result = _embed(
        "--checkpoint", str(run_dir / "checkpoint.pt"), "--n-samples", "30", "--no-adversarial"
    )
    assert result.exit_code == 0, result.output
    assert _png(run_dir / "embedding.png") and "successful" not in result.output


@pytest.mark.integration
def test_cli_embed_latest_run(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mark_latest(run_dir, root="runs")
    result = _embed("--n-samples", "20", "--eps", "0.1")
    assert result.exit_code == 0, result.output
    assert "eps=0.1 " in result.output and _png(run_dir / "embedding.png")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([], "No run of 'er-art train' found"),
        (["--n-samples", "3"], "--n-samples must be at least 10, got 3"),
        (["--checkpoint", "nowhere"], "No run directory or checkpoint at nowhere"),
        (["--eps", "-1"], "--eps must be non-negative"),
    ],
)
def test_cli_embed_user_errors(
    args: list[str], match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no runs/ here
    result = _embed(*args)
    assert result.exit_code == 2
    assert match in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_embed_needs_dataset_and_matching_shape(small_clf, tmp_path: Path) -> None:
    path = er_art.save_classifier(small_clf, tmp_path / "bare.pt")  # no run.json beside it
    result = _embed("--checkpoint", str(path), "--no-adversarial")
    assert result.exit_code == 2 and "pass --dataset" in result.output
    np.savez(tmp_path / "test-0.npz", x=np.zeros((12, 28, 28), np.uint8), y=np.arange(12) % 10)
    result = _embed(
        "--checkpoint", str(path), "--dataset", "npz", "--data-dir", str(tmp_path / "test-0.npz")
    )
    assert result.exit_code == 2 and "(1, 8, 8)" in result.output and "(1, 28, 28)" in result.output
