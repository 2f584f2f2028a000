"""The run loop: resolved defaults, run directory contents, exact resume, divergence, bad values."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

import er_art
from er_art.checkpoint import read_checkpoint
from er_art.datasets import get_dataset
from er_art.runs import read_run
from er_art.training.run import (
    TrainingCallbacks,
    TrainingConfig,
    TrainingDiverged,
    epoch_order,
    resolve_config,
    resume,
    rng_state,
    set_rng_state,
    steps_per_epoch,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> TrainingConfig:
    base = dict(
        arch="test_digits", epochs=2, limit=200, batch_size=32, device="cpu", threads=1, max_iter=2
    )
    return TrainingConfig(**{**base, **kw})


def test_defaults_come_from_the_dataset_and_architecture():
    spec = get_dataset("digits")
    cfg = resolve_config(TrainingConfig())
    assert (cfg.arch, cfg.trainer, cfg.eps, cfg.eps_step, cfg.max_iter) == (
        spec.default_arch,
        "er-pgd",
        spec.eps,
        spec.eps_step,
        spec.max_iter,
    )
    assert (cfg.epochs, cfg.batch_size) == (spec.epochs, spec.batch_size)
    assert cfg.embedding_dim == er_art.get_architecture("digits").embedding_dim
    assert cfg.lr == er_art.get_architecture("digits").defaults["lr"]
    plain = resolve_config(TrainingConfig(trainer="plain"))
    assert plain.arch == "cnn" and plain.eps is None  # 1-channel data -> the small CNN; no attack
    assert resolve_config(TrainingConfig(trainer="madry")).eps == spec.eps


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "digitz"}, "digits"),
        ({"arch": "mnistt"}, "mnist"),
        ({"prior": "gausian"}, "gaussian"),
        ({"trainer": "madri"}, "madry"),
        ({"embedding_dim": 0}, "embedding dim"),
        ({"epochs": -1}, "epochs"),
        ({"batch_size": 0}, "batch size"),
        ({"lr": 0.0}, "learning rate"),
        ({"lr": float("nan")}, "learning rate"),
        ({"eps": 1.5}, "eps"),
        ({"eps": -0.1}, "eps"),
        ({"arch": "mnist"}, "shape"),
        ({"arch": "cnn"}, "ER architecture"),
        ({"trainer": "plain", "arch": "digits"}, "baseline"),
        ({"trainer": "plain", "embedding_dim": 4}, "embedding"),
        ({"lambda_d": -1.0}, "--lambda-d must be a finite number >= 0"),
        ({"lambda_reg": float("inf")}, "--lambda-reg must be a finite number >= 0"),
        ({"lambda_ce": "big"}, "--lambda-ce must be a number >= 0"),
        ({"trainer": "plain", "lambda_ce": 2.0}, "drop --lambda-ce"),
        ({"trainer": "plain", "eps_warmup": 2}, "drop --eps-warmup"),
        ({"eps_warmup": -1}, "eps warm-up must be an integer >= 0"),
    ],
)
def test_bad_settings_raise_one_sentence(change, message):
    with pytest.raises((ValueError, LookupError), match=message) as info:
        resolve_config(TrainingConfig(**change))
    assert "\n" not in str(info.value)


def test_lambdas_default_to_the_architectures_and_reach_the_classifier():
    from er_art.training.config import build_for

    cfg = resolve_config(TrainingConfig())
    lambdas = er_art.get_architecture("digits").lambdas()  # tests/test_architectures.py: all
    assert (cfg.lambda_d, cfg.lambda_ce, cfg.lambda_reg) == tuple(lambdas.values())
    chosen = resolve_config(TrainingConfig(lambda_d=0.5, lambda_ce=2.0, lambda_reg=0.0))
    clf = build_for(chosen, get_dataset("digits"))
    assert (clf._lambda_d, clf._lambda_ce, clf._lambda_reg) == (0.5, 2.0, 0.0)
    assert resolve_config(TrainingConfig(trainer="plain")).lambda_d is None  # no lambdas there


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(ValueError, match="CUDA"):
        resolve_config(TrainingConfig(device="cuda"))


def test_auto_embedding_dim(monkeypatch):
    intrinsic = pytest.importorskip("er_art.intrinsic_dim")
    cfg = resolve_config(TrainingConfig(embedding_dim="auto"))
    assert cfg.embedding_dim_requested == "auto"
    # The guide is the rounded Levina-Bickel estimate of 1,000 training images (k1=6, k2=12).
    by_k = intrinsic.dataset_intrinsic_dim("digits", None, 1000, 6, 12, "levina-bickel", "train", 0)
    assert cfg.embedding_dim == max(2, round(float(np.mean(list(by_k.values())))))
    assert 2 <= cfg.embedding_dim <= 64

    monkeypatch.setattr(intrinsic, "dataset_intrinsic_dim", lambda *a, **k: {6: 3.4, 12: 3.4})
    assert resolve_config(TrainingConfig(embedding_dim="auto")).embedding_dim == 3


def test_data_order_and_rng_state_round_trip(tmp_path):
    assert torch.equal(epoch_order(1, 3, 50), epoch_order(1, 3, 50))
    assert not torch.equal(epoch_order(1, 3, 50), epoch_order(1, 4, 50))
    assert (
        steps_per_epoch(65, 32) == 2 and steps_per_epoch(66, 32) == 3
    )  # a batch of one is dropped
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    path = tmp_path / "rng.pt"
    torch.save(rng_state(), path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(path, weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert (
        torch.equal(expected[0], got[0])
        and np.array_equal(expected[1], got[1])
        and expected[2] == got[2]
    )


def test_run_directory_contents(tmp_path):
    run_dir = tmp_path / "run"
    result = train(tiny(), run_dir, latest_root=tmp_path / "runs")
    info = read_run(run_dir)
    assert info["status"] == "finished" and info["seed"] == 0
    assert info["config"]["arch"] == "test_digits" and info["config"]["eps"] == 0.1
    assert {"er-art", "torch", "adversarial-robustness-toolbox", "numpy"} <= set(info["versions"])
    assert "git_revision" in info
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"ce", "disc", "reg", "train_acc", "test_acc", "time"} <= set(lines[0])
    assert 0.0 <= lines[-1]["test_acc"] <= 1.0
    clf = er_art.load_classifier(run_dir)
    assert isinstance(clf, er_art.ERClassifier)
    for k, v in result.classifier.er_model.state_dict().items():
        assert torch.equal(v, clf.er_model.state_dict()[k])
    assert (tmp_path / "runs" / "LATEST").read_text().strip() == str(run_dir.resolve())
    with pytest.raises(ValueError, match="already holds"):
        train(tiny(), run_dir, latest_root=None)


def test_baseline_run_loads_a_pytorch_classifier(tmp_path):
    train(tiny(trainer="madry", arch="test_cnn", epochs=1), tmp_path / "run", latest_root=None)
    clf = er_art.load_classifier(tmp_path / "run")
    assert isinstance(clf, PyTorchClassifier) and not isinstance(clf, er_art.ERClassifier)


class _Crash(TrainingCallbacks):
    """Dies (like a killed process) right after the given global step."""

    def __init__(self, at: int) -> None:
        self.at, self.n = at, 0

    def on_step(self, epoch, step, running):
        self.n += 1
        if self.n == self.at:
            raise SystemExit("killed")


@pytest.mark.parametrize("trainer", ["er-pgd", "madry"])
def test_resume_after_a_crash_gives_the_uninterrupted_weights(tmp_path, trainer):
    arch = "test_cnn" if trainer == "madry" else "test_digits"
    cfg = tiny(trainer=trainer, arch=arch, epochs=3, checkpoint_every=2)  # 7 steps per epoch
    reference = train(cfg, tmp_path / "ref", latest_root=None)
    with pytest.raises(SystemExit):
        train(
            cfg, tmp_path / "run", callbacks=_Crash(at=10), latest_root=None
        )  # mid-epoch 2, after ckpt 8
    state = read_checkpoint(tmp_path / "run")["training"]
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 1, 8)
    resumed = resume(tmp_path / "run", latest_root=None)
    a, b = reference.classifier.model.state_dict(), resumed.classifier.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("time", "elapsed")
    assert [{k: v for k, v in m.items() if k not in drop} for m in reference.metrics] == [
        {k: v for k, v in m.items() if k not in drop} for m in resumed.metrics
    ]
    assert read_run(tmp_path / "run")["status"] == "finished"


def test_eps_warmup_ramps_the_training_eps_and_resumes_exactly(tmp_path, monkeypatch):
    """--eps-warmup 2: epoch 1 trains at half the eps (and step), epochs 2 and 3 at the full one;
    a run killed mid-epoch and resumed gives the uninterrupted weights."""
    import dataclasses

    import er_art.training.loop as run_loop
    from er_art.training.trainers import get_trainer

    spec = get_trainer("madry")
    seen = []

    def spy(classifier, attack, amp=False):
        seen.append((round(attack.eps, 6), round(attack.eps_step, 6)))
        return spec.make_step(classifier, attack, amp=amp)

    monkeypatch.setattr(
        run_loop, "get_trainer", lambda name: dataclasses.replace(spec, make_step=spy)
    )
    cfg = tiny(trainer="madry", arch="test_cnn", epochs=3, eps=0.1, eps_step=0.04, eps_warmup=2,
               checkpoint_every=2)  # fmt: skip
    reference = train(cfg, tmp_path / "ref", latest_root=None)
    # built once at the start, then once per epoch: half the eps in epoch 1, the full eps after
    assert seen == [(0.1, 0.04), (0.05, 0.02), (0.1, 0.04), (0.1, 0.04)]
    assert read_run(tmp_path / "ref")["config"]["eps_warmup"] == 2
    with pytest.raises(SystemExit):
        train(cfg, tmp_path / "run", callbacks=_Crash(at=4), latest_root=None)  # epoch 1
    resumed = resume(tmp_path / "run", latest_root=None)
    a, b = reference.classifier.model.state_dict(), resumed.classifier.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train(dataclasses.replace(cfg, eps_warmup=0), tmp_path / "plain", latest_root=None)
    c = plain.classifier.model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the warm-up changed the training


def test_resume_can_extend_a_finished_run(tmp_path):
    train(tiny(trainer="er-minus", epochs=1), tmp_path / "run", latest_root=None)
    result = resume(tmp_path / "run", epochs=2, latest_root=None)
    assert [m["epoch"] for m in result.metrics] == [1, 2]


def test_resume_of_a_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an er-art run"):
        resume(tmp_path / "nope", latest_root=None)


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        train(tiny(trainer="ecla", lr=1e30, epochs=3), tmp_path / "run", latest_root=None)
    assert read_run(tmp_path / "run")["status"] == "failed"
    clf = er_art.load_classifier(tmp_path / "run")  # the last good one: finite weights
    assert all(torch.isfinite(p).all() for p in clf.er_model.parameters())


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="Cannot write"):
        train(tiny(), blocker / "run", latest_root=None)


# ---------------------------------------------------------------------- the device fast path
def _batches(source, n, seed=0):
    return list(source.batches(epoch_order(seed, 0, n), 0, steps_per_epoch(n, source.batch_size)))


def test_batch_source_indexes_tensors_like_the_loader():
    """The in-memory path (kept on the device where it fits) yields the DataLoader's batches."""
    from er_art.datasets import ArrayDataset
    from er_art.training.run import BatchSource

    x, y = get_dataset("digits").arrays("train", limit=100)
    direct = BatchSource(ArrayDataset(x, y), 32)
    assert direct.on_device
    loader = BatchSource(ArrayDataset(x, y, transform=lambda t: t), 32)  # no batched form
    assert not loader.on_device
    for (xa, ya), (xb, yb) in zip(_batches(direct, 100), _batches(loader, 100), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.dtype == torch.float32 and ya.dtype == torch.int64


def test_batched_crop_flip_on_the_device():
    """CIFAR-10's crop + flip runs on whole batches (drawn from torch's RNG): each image is a crop
    of its zero-padded self, flipped or not, and the batches follow the seed."""
    from er_art.plugins.datasets._images import crop_flip

    from er_art.datasets import ArrayDataset
    from er_art.training.run import BatchSource

    x = torch.rand(40, 3, 6, 6).numpy()
    y = np.arange(40) % 10
    augment = crop_flip(6, 2)
    source = BatchSource(ArrayDataset(x, y, transform=augment), 16)
    assert source.on_device
    torch.manual_seed(0)
    first = _batches(source, 40)
    torch.manual_seed(0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, _batches(source, 40), strict=True))
    order = epoch_order(0, 0, 40)
    padded = torch.nn.functional.pad(torch.from_numpy(x), (2, 2, 2, 2))
    images = torch.cat([b[0] for b in first])
    assert images.shape == (40, 3, 6, 6)
    for out, i in zip(images, order.tolist(), strict=True):
        crops = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out, crop) or torch.equal(out, crop.flip(2)) for crop in crops)
    assert augment(torch.from_numpy(x[0])).shape == (3, 6, 6)  # one image, as before


def test_test_accuracy_on_the_device_is_predicts(tmp_path):
    from er_art.training.run import _Run

    result = train(tiny(trainer="er-minus", epochs=1), tmp_path / "run", latest_root=None)
    run = _Run(result.config, tmp_path / "run", result.classifier, None, TrainingCallbacks())
    assert run.test_tensors is not None
    on_device = run.evaluate()
    run.test_tensors = None
    assert on_device == run.evaluate() == result.metrics[-1]["test_acc"]


@pytest.mark.slow
def test_compile_trains_resumes_and_saves(tmp_path, monkeypatch):
    """``compile=True`` (the eager backend here: no C++ compiler needed) trains, is recorded,
    resumes, and leaves checkpoints and pickles as without it."""
    import pickle

    import er_art.devices

    monkeypatch.setattr(er_art.devices, "COMPILE_OPTIONS", {"backend": "eager"})
    result = train(tiny(trainer="er-minus", epochs=1, compile=True), tmp_path / "run", None, None)
    assert read_run(tmp_path / "run")["config"]["compile"] is True
    clone = pickle.loads(pickle.dumps(result.classifier))
    x = get_dataset("digits").arrays("test", limit=8)[0]
    np.testing.assert_array_equal(clone.predict(x), result.classifier.predict(x))
    assert isinstance(er_art.load_classifier(tmp_path / "run"), er_art.ERClassifier)
    resumed = resume(tmp_path / "run", epochs=2, latest_root=None)
    assert [m["epoch"] for m in resumed.metrics] == [1, 2]


class _Record(TrainingCallbacks):
    def __init__(self) -> None:
        self.shown: list[tuple[int, dict]] = []

    def on_step(self, epoch, step, running):
        self.shown.append((epoch, dict(running)))


def test_reading_back_only_for_the_display_keeps_results(tmp_path, monkeypatch):
    """The GPU loop (losses read back at most every SYNC_SECONDS, here never within an epoch
    after its first step) trains the same weights and metrics, and still stops on NaN."""
    from er_art.training import loop as run_loop

    cfg = tiny(trainer="er-minus", epochs=2)
    every_step = train(cfg, tmp_path / "a", latest_root=None)
    monkeypatch.setattr(run_loop, "_reads_back_every_step", lambda device: False)
    monkeypatch.setattr(run_loop, "SYNC_SECONDS", 3600.0)
    record = _Record()
    throttled = train(cfg, tmp_path / "b", callbacks=record, latest_root=None)
    a, b = every_step.classifier.model.state_dict(), throttled.classifier.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = ("time", "elapsed")
    assert [{k: v for k, v in m.items() if k not in drop} for m in every_step.metrics] == [
        {k: v for k, v in m.items() if k not in drop} for m in throttled.metrics
    ]
    by_epoch = {}
    for epoch, shown in record.shown:
        assert set(shown) == {"ce", "disc", "reg", "train_acc"}
        by_epoch.setdefault(epoch, []).append(shown)
    assert all(all(s == shown[0] for s in shown) for shown in by_epoch.values())  # read once
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        train(tiny(trainer="ecla", lr=1e30, epochs=3), tmp_path / "c", latest_root=None)
    clf = er_art.load_classifier(tmp_path / "c")
    assert all(torch.isfinite(p).all() for p in clf.er_model.parameters())
