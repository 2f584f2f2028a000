"""The CUDA path (skipped without CUDA): building, Algorithm 1, PGD, amp, checkpoints across
devices; and issue 8's checks: no host sync in a training step, data on the GPU, exact resume with
--deterministic, the evaluate ensemble and each defence on CUDA, the AMP critic, CUDA pickles,
checkpoints and runs on a machine without CUDA. benchmarks/gpu_checks.sh runs them all."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)

import er_art
from er_art.checkpoint import read_checkpoint
from er_art.training.trainers import AttackSettings, get_trainer

pytestmark = pytest.mark.gpu
# cuDNN convolutions may use TF32 on recent GPUs: CPU and CUDA logits agree to about 1e-3.
ACROSS_DEVICES = {"rtol": 1e-2, "atol": 2e-3}


def on_cuda(clf) -> bool:
    return clf.device.type == "cuda" and all(p.is_cuda for p in clf.er_model.parameters())


@pytest.fixture
def cuda_clf():
    return er_art.build_classifier("test_digits", device_type="cuda", seed=0)


@pytest.mark.parametrize("device_type", ["cuda", "gpu", "auto"])
def test_build_on_cuda(device_type):
    clf = er_art.build_classifier("test_digits", device_type=device_type)
    assert on_cuda(clf)


def test_fit_and_predict_on_cuda(cuda_clf, digits):
    x, y, x_test, _ = digits
    before = [p.detach().clone() for p in cuda_clf.er_model.parameters()]
    cuda_clf.fit(x[:256], y[:256], batch_size=64, nb_epochs=2)
    after = list(cuda_clf.er_model.parameters())
    assert all(not torch.equal(b, p) for b, p in zip(before, after, strict=True))
    assert on_cuda(cuda_clf)
    pred = cuda_clf.predict(x_test[:32])
    assert isinstance(pred, np.ndarray) and pred.shape == (32, 10) and np.isfinite(pred).all()
    grad = cuda_clf.loss_gradient(x_test[:8], digits[3][:8])
    assert isinstance(grad, np.ndarray) and grad.shape == (8, 1, 8, 8)
    assert all(p.grad is None for p in cuda_clf.er_model.parameters())


def test_fit_generator_on_cuda(cuda_clf, digits):
    from art.data_generators import PyTorchDataGenerator
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch.from_numpy(digits[0][:256]), torch.from_numpy(digits[1][:256])
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    before = [p.detach().clone() for p in cuda_clf.er_model.discriminator.parameters()]
    cuda_clf.fit_generator(PyTorchDataGenerator(loader, size=256, batch_size=64), nb_epochs=1)
    assert all(
        not torch.equal(b, p)
        for b, p in zip(before, cuda_clf.er_model.discriminator.parameters(), strict=True)
    )


def test_pgd_on_cuda(cuda_clf, digits):
    x, y, x_test, y_test = digits
    cuda_clf.fit(x, y, batch_size=64, nb_epochs=3)
    attack = ProjectedGradientDescent(
        cuda_clf, eps=0.2, eps_step=0.02, max_iter=10, batch_size=100, verbose=False
    )
    assert isinstance(attack._attack, ProjectedGradientDescentPyTorch)
    x_adv = attack.generate(x_test[:100])
    assert np.abs(x_adv - x_test[:100]).max() <= 0.2 + 1e-5
    clean = (cuda_clf.predict(x_test[:100]).argmax(1) == y_test[:100]).mean()
    robust = (cuda_clf.predict(x_adv).argmax(1) == y_test[:100]).mean()
    assert robust < clean


def test_amp_on_cuda(digits):
    clf = er_art.build_classifier("test_digits", device_type="cuda", amp=True)
    x_t, y_t = clf._prepare_batch(digits[0][:64], digits[1][:64])
    assert x_t.is_cuda and y_t.is_cuda
    res = clf.train_step(x_t, y_t)
    assert all(torch.isfinite(v) for v in (res.ce, res.disc, res.reg))
    clf.fit(digits[0][:128], digits[1][:128], batch_size=64, nb_epochs=1)
    assert np.isfinite(clf.predict(digits[2][:8])).all()


def test_save_on_cuda_load_on_cpu_and_back(cuda_clf, digits, tmp_path):
    cuda_clf.fit(digits[0][:128], digits[1][:128], batch_size=64, nb_epochs=1)
    path = er_art.save_classifier(cuda_clf, tmp_path / "cuda.pt")
    x = digits[2][:32]
    on_cpu = er_art.load_classifier(path, device_type="cpu")
    assert on_cpu.device.type == "cpu"
    np.testing.assert_allclose(on_cpu.predict(x), cuda_clf.predict(x), **ACROSS_DEVICES)
    path_cpu = er_art.save_classifier(on_cpu, tmp_path / "cpu.pt")
    back = er_art.load_classifier(path_cpu, device_type="cuda")
    assert on_cuda(back)
    np.testing.assert_allclose(back.predict(x), cuda_clf.predict(x), **ACROSS_DEVICES)
    back.fit(
        digits[0][:128], digits[1][:128], batch_size=64, nb_epochs=1
    )  # optimizer state moved too
    assert er_art.load_classifier(path).device.type == "cuda"  # saved device is the default


def test_pickle_on_cuda(cuda_clf, digits):
    clone = pickle.loads(pickle.dumps(cuda_clf))
    assert on_cuda(clone)
    np.testing.assert_allclose(
        clone.predict(digits[2][:8]), cuda_clf.predict(digits[2][:8]), rtol=1e-4, atol=1e-5
    )


# ---------------------------------------------------------------- issue 8: CUDA, correct and fast
NO_CUDA = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def python(code: str, cwd, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli(*args: str, cwd, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "er_art.cli.app", *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("trainer", "arch", "amp"),
    [
        ("er-pgd", "digits", False),
        ("er-pgd", "digits", True),
        ("er-minus", "digits", False),
        ("ecla", "digits", False),
        ("madry", "cnn", False),
        ("plain", "cnn", False),
    ],
)
def test_training_steps_never_wait_for_the_gpu(digits, trainer, arch, amp):
    """A training step (PGD included) queues GPU work and returns: no host synchronisation."""
    clf = er_art.build_classifier(arch, input_shape=(1, 8, 8), device_type="cuda", amp=amp)
    step = get_trainer(trainer).make_step(clf, AttackSettings(0.1, 0.025, 5), amp=amp)
    x = torch.from_numpy(digits[0][:64]).cuda()
    y = torch.from_numpy(digits[1][:64]).cuda()
    step(x, y)  # warm-up: cuDNN / cuBLAS handles, lazy initialisations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            res = step(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v) for v in (res.ce, res.disc, res.reg))


def test_channels_last_and_data_on_the_gpu(digits, tmp_path):
    from er_art.training.run import BatchSource, TrainingConfig, epoch_order, train

    clf = er_art.build_classifier("digits", device_type="cuda")
    conv = [m for m in clf.er_model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    from er_art.datasets import ArrayDataset

    source = BatchSource(ArrayDataset(digits[0], digits[1]), 64, clf.device)
    assert source.on_device
    x_b, y_b = next(source.batches(epoch_order(0, 0, len(source)), 0, 2))
    assert x_b.is_cuda and y_b.is_cuda
    cfg = TrainingConfig(arch="digits", device="cuda", epochs=1, limit=256, max_iter=2)
    result = train(cfg, tmp_path / "run", latest_root=None)
    assert result.classifier.device.type == "cuda" and 0.0 <= result.metrics[0]["test_acc"] <= 1


CONFIG = dict(
    arch="digits", device="cuda", deterministic=True, epochs=2, checkpoint_every=5, seed=7,
    max_iter=3, batch_size=32, limit=640,
)  # fmt: skip
CLI_ARGS = (
    "--arch digits --device cuda --deterministic --epochs 2 --checkpoint-every 5 --seed 7 "
    "--max-iter 3 --batch-size 32 --limit 640"
).split()


@pytest.mark.slow
@pytest.mark.integration
def test_deterministic_training_killed_and_resumed_is_exact_on_cuda(tmp_path):
    """--deterministic on CUDA: a run killed mid-epoch and resumed in a new process ends with
    exactly the weights of an uninterrupted run (each in its own process: cuBLAS reads
    CUBLAS_WORKSPACE_CONFIG when the process makes its first handle)."""
    ref = cli("train", *CLI_ARGS, "--out", "ref", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    crash = python(
        f"""
        from er_art.training.run import TrainingCallbacks, TrainingConfig, train

        class Kill(TrainingCallbacks):
            n = 0
            def on_step(self, epoch, step, running):
                self.n += 1
                if self.n == 13:  # mid-epoch 1, three steps after the checkpoint of step 10
                    raise SystemExit(3)

        train(TrainingConfig(**{CONFIG!r}), "run", callbacks=Kill(), latest_root=None)
        """,
        cwd=tmp_path,
    )
    assert crash.returncode == 3, crash.stderr
    state = read_checkpoint(tmp_path / "run")["training"]
    assert (state["epoch"], state["step"], len(state["rng"]["cuda"]) > 0) == (0, 10, True)
    resumed = cli("train", "--resume", "--out", "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = read_checkpoint(tmp_path / "ref")["classifier"]["model"]
    b = read_checkpoint(tmp_path / "run")["classifier"]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["config"]["deterministic"] is True


@pytest.mark.slow
@pytest.mark.integration
def test_default_evaluate_ensemble_on_cuda(tmp_path):
    from er_art.cli.app import app
    from typer.testing import CliRunner

    from er_art.training.run import TrainingConfig, train

    train(
        TrainingConfig(arch="digits", device="cuda", epochs=2, limit=512, max_iter=3),
        tmp_path / "run",
        latest_root=None,
    )
    args = ["evaluate", "--checkpoint", str(tmp_path / "run"), "--eps", "0.1", "--n-samples"]
    result = CliRunner().invoke(app, [*args, "64", "--device", "cuda"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "name", ["feature-squeezing", "spatial-smoothing", "spatial-smoothing-pytorch", "jpeg"]
)
def test_each_defence_on_cuda(cuda_clf, digits, name):
    from er_art.defences import apply_defences

    if name == "spatial-smoothing-pytorch":
        pytest.importorskip("kornia")
    cuda_clf.fit(digits[0][:256], digits[1][:256], batch_size=64, nb_epochs=2)
    apply_defences(cuda_clf, [name])
    x, y = digits[2][:32], digits[3][:32]
    pred = cuda_clf.predict(x)
    assert pred.shape == (32, 10) and np.isfinite(pred).all()
    grad = cuda_clf.loss_gradient(x, y)
    assert grad.shape == x.shape and np.isfinite(grad).all()
    x_adv = ProjectedGradientDescent(
        cuda_clf, eps=0.1, eps_step=0.02, max_iter=5, verbose=False
    ).generate(x)
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-5
    if name == "spatial-smoothing-pytorch":  # NumPy defences go in a DefenceChain (no pickle)
        clone = pickle.loads(pickle.dumps(cuda_clf))
        np.testing.assert_allclose(clone.predict(x), pred, rtol=1e-4, atol=1e-5)


def _critic(amp: bool, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    clf = er_art.build_classifier("mnist", device_type="cuda", amp=amp, seed=0)
    torch.manual_seed(1)
    return [float(clf.train_step(x[i : i + 50], y[i : i + 50]).disc) for i in range(0, 200, 50)]


def test_amp_critic_against_fp32_on_the_paper_mnist_model():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 28, 28, generator=gen).cuda()
    y = torch.randint(0, 10, (200,), generator=gen).cuda()
    fp32, amp = _critic(False, x, y), _critic(True, x, y)
    assert all(v != 0.0 for v in amp), amp
    for a, f in zip(amp, fp32, strict=True):
        assert abs(a - f) <= 0.5 * abs(f) + 2e-7, (amp, fp32)


def test_cuda_pickle_unpickles_where_there_is_no_cuda(cuda_clf, digits, tmp_path):
    pytest.importorskip("kornia")
    from er_art.defences import apply_defences

    cuda_clf.fit(digits[0][:256], digits[1][:256], batch_size=64, nb_epochs=1)
    apply_defences(cuda_clf, ["spatial-smoothing-pytorch"])
    (tmp_path / "clf.pkl").write_bytes(pickle.dumps(cuda_clf))
    np.save(tmp_path / "x.npy", digits[2][:32])
    done = python(
        """
        import pickle, numpy as np, torch
        assert not torch.cuda.is_available()
        clf = pickle.loads(open("clf.pkl", "rb").read())
        assert clf.device.type == "cpu"
        np.save("pred.npy", clf.predict(np.load("x.npy")))
        clf.fit(np.load("x.npy"), np.zeros(32, dtype=np.int64), batch_size=16, nb_epochs=1)
        """,
        cwd=tmp_path,
        env=NO_CUDA,
    )
    assert done.returncode == 0, done.stderr
    assert "CUDA is not available" in done.stderr  # the logged fallback
    np.testing.assert_allclose(
        np.load(tmp_path / "pred.npy"), cuda_clf.predict(digits[2][:32]), **ACROSS_DEVICES
    )


def test_a_pickle_from_another_gpu_index(cuda_clf, digits, monkeypatch):
    """Saved from cuda:N, unpickled on a machine with fewer GPUs: on this machine's GPU."""
    n = torch.cuda.device_count()
    pointers = {
        t.untyped_storage().data_ptr()
        for t in [*cuda_clf.er_model.parameters(), *cuda_clf.er_model.buffers()]
    }
    original = torch.serialization.location_tag
    monkeypatch.setattr(
        torch.serialization,
        "location_tag",
        lambda s: f"cuda:{n}" if s.data_ptr() in pointers else original(s),
    )
    cuda_clf._device = torch.device("cuda", n)
    blob = pickle.dumps(cuda_clf)
    cuda_clf._device = torch.device("cuda", 0)
    monkeypatch.undo()
    clone = pickle.loads(blob)
    assert clone.device.type == "cuda" and clone.device.index < n
    np.testing.assert_allclose(
        clone.predict(digits[2][:8]), cuda_clf.predict(digits[2][:8]), rtol=1e-4, atol=1e-5
    )


@pytest.mark.slow
@pytest.mark.integration
def test_a_cuda_run_on_a_machine_without_cuda(tmp_path):
    from er_art.training.run import TrainingConfig, train

    train(
        TrainingConfig(arch="digits", device="cuda", epochs=1, limit=256, max_iter=2),
        tmp_path / "run",
        latest_root=None,
    )
    loaded = python(
        """
        import er_art
        assert er_art.load_classifier("run").device.type == "cpu"
        """,
        cwd=tmp_path,
        env=NO_CUDA,
    )
    assert loaded.returncode == 0 and "CUDA is not available" in loaded.stderr, loaded.stderr
    embedded = cli(
        "embed", "--checkpoint", "run", "--no-adversarial", "-n", "50", cwd=tmp_path, env=NO_CUDA
    )
    assert embedded.returncode == 0, embedded.stderr
    resumed = cli("train", "--resume", "--out", "run", "--epochs", "2", cwd=tmp_path, env=NO_CUDA)
    assert resumed.returncode == 0, resumed.stderr
    assert "CUDA is not available" in resumed.stderr


def test_a_cpu_run_never_initialises_cuda(tmp_path):
    done = python(
        """
        import torch
        from er_art.training.run import TrainingConfig, train
        train(TrainingConfig(arch="test_digits", device="cpu", epochs=1, limit=128, max_iter=2),
              "run", latest_root=None)
        print("initialised:", torch.cuda.is_initialized())
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "initialised: False" in done.stdout
