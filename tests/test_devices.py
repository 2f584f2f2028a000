"""Defects that only a GPU shows (issue 8), reproduced on the CPU.

A CUDA tensor is simulated by its location tag: while pickling or saving, the storages of the
classifier's live tensors are tagged ``cuda:0`` (what ``torch.save`` records for a real CUDA
tensor), and a CPU-only machine is ``torch.cuda.is_available() == False`` (monkeypatched where the
test machine has CUDA). tests/test_gpu.py runs the same paths on a real GPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from collections.abc import Iterable, Iterator

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import er_art
from er_art.checkpoint import RUN_CHECKPOINT, read_checkpoint
from er_art.runs import RUN_JSON, read_run, write_json

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cpu_only(monkeypatch):
    """This process sees no CUDA (also on a machine that has it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def live_tensors(clf) -> list[torch.Tensor]:
    """Every tensor a classifier trains or trains with: weights, buffers, optimizer state."""
    tensors = [*clf.er_model.parameters(), *clf.er_model.buffers()]
    for opt in (clf.optimizers.encoder, clf.optimizers.discriminator, clf.optimizers.classifier):
        for state in opt.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
    return tensors


@contextlib.contextmanager
def stored_as_cuda(tensors: Iterable[torch.Tensor], device: str = "cuda:0") -> Iterator[None]:
    """While active, ``torch.save`` and ``pickle`` record the storages of ``tensors`` as living on
    ``device``, as they would for real CUDA tensors (copies made on the way are not tagged)."""
    pointers = {t.untyped_storage().data_ptr() for t in tensors}
    original = torch.serialization.location_tag

    def tag(storage):
        return device if storage.data_ptr() in pointers else original(storage)

    torch.serialization.location_tag = tag
    try:
        yield
    finally:
        torch.serialization.location_tag = original


def pretend_on(clf, device: str) -> None:
    """Make ``clf`` and its PyTorch preprocessors say they run on ``device``."""
    clf._device = torch.device(device)
    for op in clf.preprocessing_operations:
        if hasattr(op, "_device"):
            op._device = torch.device(device)


@pytest.fixture
def fitted(digits):
    clf = er_art.build_classifier("test_digits", device_type="cpu", seed=0)
    clf.fit(digits[0][:128], digits[1][:128], batch_size=64, nb_epochs=1)
    return clf


# ---------------------------------------------------------------- defect 1: pickle across devices
def test_a_cuda_pickle_unpickles_on_a_cpu_only_machine(fitted, digits, cpu_only, caplog):
    x = digits[2][:16]
    expected = fitted.predict(x)
    with stored_as_cuda(live_tensors(fitted)):
        pretend_on(fitted, "cuda:0")
        blob = pickle.dumps(fitted)
    pretend_on(fitted, "cpu")
    with caplog.at_level(logging.WARNING):
        clone = pickle.loads(blob)
    assert clone.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in clone.er_model.parameters())
    np.testing.assert_array_equal(clone.predict(x), expected)  # ART's standardisation too
    assert "CUDA is not available" in caplog.text
    clone.fit(digits[0][:128], digits[1][:128], batch_size=64, nb_epochs=1)  # optimizers work


def test_a_pickle_from_another_gpu_index_comes_back_on_this_gpu(monkeypatch, caplog):
    from er_art.models.er_classifier import usable_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with caplog.at_level(logging.WARNING):
        assert usable_device("cuda:1") == torch.device("cuda", 0)
    assert "cuda:1" in caplog.text
    assert usable_device("cuda:0") == torch.device("cuda", 0)
    assert usable_device("cpu") == torch.device("cpu")


def test_a_defended_cuda_pickle_unpickles_on_a_cpu_only_machine(fitted, digits, cpu_only):
    pytest.importorskip("kornia")
    from er_art.defences import apply_defences

    apply_defences(fitted, ["spatial-smoothing-pytorch"])
    x = digits[2][:8]
    expected = fitted.predict(x)
    defence = fitted.preprocessing_defences[0]
    kernel = defence.median_blur.kernel
    with stored_as_cuda([*live_tensors(fitted), kernel]):
        pretend_on(fitted, "cuda:0")
        blob = pickle.dumps(fitted)
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.predict(x), expected)


# ---------------------------------------------------------------- defect 2: median smoothing
def test_spatial_smoothing_pytorch_clamps_on_the_input_device(monkeypatch, fitted, digits):
    """ART 1.20.1 clamps with CPU 0-d tensors, which a CUDA input refuses. Here CUDA's rule
    (bounds on the input's device) is enforced for the meta device."""
    pytest.importorskip("kornia")
    from er_art.defences import get_defence

    defence = get_defence("spatial-smoothing-pytorch").build(fitted)
    x = torch.from_numpy(digits[2][:4])
    on_cpu, _ = defence.forward(x)
    clamp = torch.Tensor.clamp

    def strict_clamp(self, min=None, max=None):  # noqa: A002 (torch's names)
        for bound in (min, max):
            if isinstance(bound, torch.Tensor) and bound.device != self.device:
                raise RuntimeError(
                    f"Expected all tensors to be on the same device ({self.device}, {bound.device})"
                )
        return clamp(self, min=min, max=max)

    monkeypatch.setattr(torch.Tensor, "clamp", strict_clamp)
    out, _ = defence.forward(x.to("meta"))
    assert out.device.type == "meta" and out.shape == x.shape
    again, _ = defence.forward(x)
    assert torch.equal(again, on_cpu)
    assert float(on_cpu.min()) >= 0.0 and float(on_cpu.max()) <= 1.0


# ---------------------------------------------------------------- defect 3: AMP and the critic
def _critic_objectives(amp: bool, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Algorithm 1's critic objective over 4 steps of 50 images, paper MNIST settings."""
    from er_art.training.algorithm import make_optimizers

    clf = er_art.build_classifier("mnist", device_type="cpu", amp=amp, seed=0)
    # The paper's MNIST critic, head, prior, lambdas and clipping; the conv encoder is swapped for
    # a linear map because bf16 convolutions on a CPU without bf16 units take ~70 s per step.
    torch.manual_seed(3)
    clf.er_model.encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4))
    clf._optimizers = make_optimizers(clf.er_model, clf.lr, clf.lr_ratios)
    torch.manual_seed(1)
    return [float(clf.train_step(x[i : i + 50], y[i : i + 50]).disc) for i in range(0, 200, 50)]


def test_amp_keeps_the_critic_in_float32():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (200,), generator=gen)
    fp32 = _critic_objectives(False, x, y)
    amp = _critic_objectives(True, x, y)
    assert all(v != 0.0 for v in amp), amp  # bf16 critic: exactly 0 from the second step on
    for a, f in zip(amp, fp32, strict=True):
        assert abs(a - f) <= 0.5 * abs(f) + 2e-7, (amp, fp32)


# ---------------------------------------------------------------- defect 4: a GPU run on a CPU
def tiny_config(**kw):
    from er_art.training.run import TrainingConfig

    base = dict(
        arch="test_digits", epochs=1, limit=200, batch_size=32, device="cpu", threads=1, max_iter=2
    )
    return TrainingConfig(**{**base, **kw})


def as_if_trained_on_cuda(run_dir) -> None:
    """Rewrite a CPU run so that it reads like one trained with ``--device cuda``."""
    info = read_run(run_dir)
    info["config"]["device"] = "cuda"
    write_json(run_dir / RUN_JSON, info)
    payload = read_checkpoint(run_dir)
    payload["classifier"]["config"]["device_type"] = "cuda"
    torch.save(payload, run_dir / RUN_CHECKPOINT)


@pytest.fixture
def cuda_run(tmp_path):
    from er_art.training.run import train

    run_dir = tmp_path / "run"
    train(tiny_config(trainer="er-minus"), run_dir, latest_root=None)
    as_if_trained_on_cuda(run_dir)
    return run_dir


def test_a_cuda_checkpoint_loads_on_a_cpu_only_machine(cuda_run, cpu_only, caplog):
    with caplog.at_level(logging.WARNING):
        clf = er_art.load_classifier(cuda_run)
    assert clf.device.type == "cpu"
    assert "CUDA is not available" in caplog.text and "CPU" in caplog.text
    with pytest.raises(ValueError, match="CUDA is not available"):  # asked for explicitly
        er_art.load_classifier(cuda_run, device_type="cuda")


def test_a_cuda_run_resumes_on_a_cpu_only_machine(cuda_run, cpu_only, caplog):
    from er_art.training.run import resume

    with caplog.at_level(logging.WARNING):
        result = resume(cuda_run, epochs=2, latest_root=None)
    assert [m["epoch"] for m in result.metrics] == [1, 2]
    assert result.classifier.device.type == "cpu"
    assert "CUDA is not available" in caplog.text


def test_cli_resume_of_a_cuda_run_on_a_cpu_only_machine_says_so(
    cuda_run, cpu_only, monkeypatch, tmp_path
):
    from er_art.cli.app import app

    monkeypatch.chdir(tmp_path)  # the CLI points ./runs/LATEST at the run it resumed

    result = CliRunner().invoke(app, ["train", "--resume", "--out", str(cuda_run), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "CUDA is not available" in result.stderr


def test_cli_embed_of_a_cuda_run_on_a_cpu_only_machine(cuda_run, cpu_only, tmp_path):
    from er_art.cli.app import app

    args = ["embed", "--checkpoint", str(cuda_run), "--no-adversarial", "-n", "20"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "map.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "map.png").is_file()


# ---------------------------------------------------------------- defect 5: exact resume on CUDA
def test_rng_state_of_a_cpu_run_leaves_cuda_alone(monkeypatch, tmp_path):
    """Saving the RNG states of a ``--device cpu`` run must not initialise CUDA (a context on
    every GPU) even where CUDA is available (here: while the run saves its state)."""
    from er_art.training import run as training

    def initialise(*args, **kwargs):
        raise AssertionError("a --device cpu run initialised CUDA")

    monkeypatch.setattr(torch.cuda, "get_rng_state_all", initialise)
    monkeypatch.setattr(torch.cuda, "get_rng_state", initialise)
    saving = training._Run.training_state

    def with_cuda_available(self, *args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch.cuda, "is_available", lambda: True)
            return saving(self, *args, **kwargs)

    monkeypatch.setattr(training._Run, "training_state", with_cuda_available)
    training.train(tiny_config(trainer="er-minus"), tmp_path / "run", latest_root=None)


def test_cuda_rng_restore_warns_when_the_gpu_count_differs(monkeypatch, caplog):
    from er_art.training.run import rng_state, set_rng_state

    restored = []
    state = rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append(states))
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda s, device="cuda": restored.append((s, device))
    )
    with caplog.at_level(logging.WARNING):
        set_rng_state(state)
    assert "2 GPUs" in caplog.text and "1" in caplog.text
    assert restored  # the GPU that exists here gets the state of the same index


def test_deterministic_runs_deterministically_and_says_so(tmp_path, monkeypatch):
    from er_art.training.run import TrainingCallbacks, train

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []

    class Probe(TrainingCallbacks):
        def on_step(self, epoch, step, running):
            seen.append(
                (
                    torch.are_deterministic_algorithms_enabled(),
                    torch.backends.cudnn.deterministic,
                    torch.backends.cudnn.benchmark,
                )
            )

    before = torch.are_deterministic_algorithms_enabled()
    train(tiny_config(deterministic=True), tmp_path / "run", callbacks=Probe(), latest_root=None)
    assert seen and all(s == (True, True, False) for s in seen)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() == before  # restored after the run
    assert read_run(tmp_path / "run")["config"]["deterministic"] is True


def test_cli_train_takes_deterministic(tmp_path, monkeypatch):
    from er_art.cli.app import app

    monkeypatch.chdir(tmp_path)
    tiny = "--arch test_digits --device cpu --threads 1 --max-iter 2 --limit 100 --batch-size 32"
    args = ["train", *tiny.split(), "--epochs", "1", "--deterministic", "--out", "run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / RUN_JSON).read_text())["config"]["deterministic"]


# ---------------------------------------------------------------- defect 6: memory and state
def test_fit_never_preprocesses_the_whole_training_array_at_once(digits):
    """An identity standardisation over the whole array put a second copy of the training data on
    the GPU; ``fit`` preprocesses batch by batch."""
    clf = er_art.build_classifier("test_digits", device_type="cpu", seed=0)
    sizes = []
    original = clf._apply_preprocessing

    def spy(x, y, fit, no_grad=True):
        sizes.append(len(x))
        return original(x, y, fit=fit, no_grad=no_grad)

    clf._apply_preprocessing = spy
    clf.fit(digits[0][:256], digits[1][:256], batch_size=64, nb_epochs=1)
    assert sizes and max(sizes) <= 64


def test_checkpoints_hold_cpu_tensors_only(fitted, tmp_path):
    """The optimizer state of a CUDA classifier was checkpointed as CUDA storages."""
    with stored_as_cuda(live_tensors(fitted)):
        path = er_art.save_classifier(fitted, tmp_path / "c.pt")
    locations = set()

    def record(storage, location):
        locations.add(location)
        return storage

    torch.load(path, map_location=record, weights_only=True)
    assert locations == {"cpu"}
