"""Checkpoints: exact round trips, atomic writes, and refusal of foreign or malicious files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

import er_art
from er_art.checkpoint import (
    RUN_CHECKPOINT,
    CheckpointError,
    atomic_write,
    load_classifier,
    read_checkpoint,
    save_classifier,
)


@pytest.fixture
def trained(digits):
    """A small test_digits classifier trained for one epoch, with non-default settings."""
    x, y, _, _ = digits
    clf = er_art.build_classifier(
        "test_digits",
        device_type="cpu",
        prior="cauchy",
        prior_params={"scale": 2.0},
        lambda_reg=0.3,
        lambda_d=0.8,
        lr=3e-3,
        lr_ratios=(1.0, 0.4, 0.1),
        clip_value=0.02,
        embedding_dim=6,
    )
    clf.fit(x[:256], y[:256], batch_size=64, nb_epochs=1)
    return clf


def test_round_trip_is_exact(trained, digits, tmp_path):
    path = save_classifier(trained, tmp_path / "model.pt", training={"epoch": 3})
    assert path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind
    loaded = load_classifier(path)
    x = digits[2][:64]
    np.testing.assert_array_equal(loaded.predict(x), trained.predict(x))
    assert loaded.config() == trained.config()
    assert loaded.prior == er_art.build_prior("cauchy", scale=2.0)
    assert (loaded.lambda_reg, loaded.lambda_d, loaded.lr, loaded.clip_value) == (
        0.3,
        0.8,
        3e-3,
        0.02,
    )
    assert loaded.lr_ratios == (1.0, 0.4, 0.1)
    assert loaded.embedding_dim == 6
    for sd_a, sd_b in zip(
        loaded.er_model.state_dict().values(), trained.er_model.state_dict().values(), strict=True
    ):
        assert torch.equal(sd_a, sd_b)  # discriminator and BN buffers included
    for name in ("encoder", "discriminator", "classifier"):
        a = getattr(loaded.optimizers, name).state_dict()
        b = getattr(trained.optimizers, name).state_dict()
        assert a["param_groups"] == b["param_groups"]
        assert a["state"].keys() == b["state"].keys() and a["state"]
        for k in a["state"]:
            assert torch.equal(a["state"][k]["exp_avg"], b["state"][k]["exp_avg"])
    assert read_checkpoint(path)["training"] == {"epoch": 3}
    assert not loaded.er_model.training


def test_resumed_training_equals_uninterrupted(trained, digits, tmp_path):
    x, y = digits[0][256:384], digits[1][256:384]
    loaded = load_classifier(save_classifier(trained, tmp_path / "m.pt"))
    for clf in (trained, loaded):
        torch.manual_seed(7)
        clf.fit(x, y, batch_size=64, nb_epochs=1)
    np.testing.assert_allclose(
        loaded.predict(digits[2][:32]), trained.predict(digits[2][:32]), rtol=1e-5, atol=1e-6
    )


def test_run_directory_and_device_override(trained, tmp_path):
    save_classifier(trained, tmp_path / RUN_CHECKPOINT)
    loaded = load_classifier(tmp_path, device_type="cpu")
    assert loaded.device.type == "cpu"
    assert loaded.config()["device_type"] == "cpu"


def test_baseline_round_trip(digits, tmp_path):
    x, y, x_test, _ = digits
    clf = er_art.build_classifier("test_cnn", device_type="cpu")
    clf.fit(x[:128], y[:128], batch_size=64, nb_epochs=1)
    loaded = load_classifier(save_classifier(clf, tmp_path / "cnn.pt"))
    np.testing.assert_array_equal(loaded.predict(x_test[:16]), clf.predict(x_test[:16]))
    assert loaded.er_art_config == clf.er_art_config


def test_unregistered_classifiers_cannot_be_saved(tmp_path):
    from er_art.models.er_classifier import ERClassifier

    model = er_art.get_architecture("test_digits").build()
    clf = ERClassifier(model, input_shape=(1, 8, 8), nb_classes=10, device_type="cpu")
    with pytest.raises(CheckpointError, match="registered architecture"):
        save_classifier(clf, tmp_path / "x.pt")
    assert not any(tmp_path.iterdir())


class RunsCode:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_torch_pickle(path, marker):
    torch.save(
        {"format": "er-art-checkpoint", "version": 1, "classifier": RunsCode(str(marker))}, path
    )


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    "kind,message",
    [
        ("missing", "No checkpoint"),
        ("random-bytes", "not a readable er-art checkpoint"),
        ("truncated", "not a readable er-art checkpoint"),
        ("plain-dict", "not an er-art checkpoint"),
        ("plain-pickle", "not a readable er-art checkpoint"),
        ("malicious", "not a readable er-art checkpoint"),
        ("newer-version", "newer er-art"),
        ("inconsistent", "inconsistent"),
        ("bad-version", "no valid er-art format version"),
        ("no-classifier", "holds no classifier state"),
    ],
)
def test_foreign_or_corrupted_files_are_refused(kind, message, trained, tmp_path):
    path = tmp_path / "bad.pt"
    marker = tmp_path / "code-ran"
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        save_classifier(trained, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "plain-dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif kind == "malicious":
        _write_torch_pickle(path, marker)
    elif kind == "newer-version":
        torch.save({"format": "er-art-checkpoint", "version": 99, "classifier": {}}, path)
    elif kind == "bad-version":
        torch.save({"format": "er-art-checkpoint", "version": "1", "classifier": {}}, path)
    elif kind == "no-classifier":
        torch.save({"format": "er-art-checkpoint", "version": 1}, path)
    elif kind == "inconsistent":
        torch.save(
            {"format": "er-art-checkpoint", "version": 1, "classifier": {"config": {}}}, path
        )
    with pytest.raises(CheckpointError, match=message):
        load_classifier(path)
    assert not marker.exists(), "loading a checkpoint ran code"
    assert isinstance(CheckpointError("x"), ValueError)


def test_atomic_write_creates_files_as_open_would(tmp_path):
    # mkstemp makes its file owner-only; a run or results in a shared folder must follow the umask
    before = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.json", lambda tmp: open(tmp, "w").write("{}"))
    finally:
        os.umask(before)
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o640


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda tmp: open(tmp, "wb").write(b"old"))

    def broken(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_save_creates_parent_directories(trained, tmp_path):
    path = save_classifier(trained, tmp_path / "a" / "b" / "m.pt")
    assert path.is_file()


# ---------------------------------------------------------------------- other model families
# A third party's family "twonets": a model of two nets with their own lr and betas (as
# Defense-GAN's generator / critic / classifier), its own ART classifier class, its own trainer.
TWO_NETS = """
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from er_art.training.algorithm import StepResult
from er_art.models.architectures import Architecture
from er_art.training.trainers import TrainerSpec, cross_entropy_step


class TwoNets(nn.Module):
    def __init__(self, nb_classes=10, width=8, head_lr_ratio=0.1):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(width * 36, nb_classes)
        self.head_lr_ratio = head_lr_ratio

    def forward(self, x):
        return self.head(self.features(x))

    def param_groups(self, lr):
        return [
            {"name": "features", "params": list(self.features.parameters()), "lr": lr,
             "betas": (0.5, 0.9)},
            {"name": "head", "params": list(self.head.parameters()),
             "lr": lr * self.head_lr_ratio},
        ]


class TwoNetsClassifier(PyTorchClassifier):
    pass


def build(nb_classes=10, width=8, head_lr_ratio=0.1):
    return TwoNets(nb_classes, width, head_lr_ratio)


ARCH = Architecture("two_nets", build, (1, 8, 8), 10, kind="twonets",
                    defaults={"lr": 1e-2}, classifier_class=TwoNetsClassifier)


def make_step(classifier, attack=None, amp=False):
    return lambda x, y: cross_entropy_step(classifier, x, y, amp=amp)


TRAINER = TrainerSpec("two-nets", "twonets", "A two-net model.", make_step,
                      default_archs={"digits": "two_nets"})
"""


@pytest.fixture
def two_nets(tmp_path, monkeypatch):
    from importlib import metadata

    from er_art import registry

    (tmp_path / "fake_two_nets.py").write_text(TWO_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry._entry_points
    extra = {
        "er_art.architectures": [
            metadata.EntryPoint("two_nets", "fake_two_nets:ARCH", "er_art.architectures")
        ],
        "er_art.trainers": [
            metadata.EntryPoint("two-nets", "fake_two_nets:TRAINER", "er_art.trainers")
        ],
    }
    monkeypatch.setattr(registry, "_entry_points", lambda g: real(g) + extra.get(g, []))
    registry.clear_cache()
    yield
    monkeypatch.undo()
    registry.clear_cache()
    import sys

    sys.modules.pop("fake_two_nets", None)


def test_a_model_with_param_groups_gets_one_optimizer_that_round_trips(two_nets, digits, tmp_path):
    clf = er_art.build_classifier("two_nets", device_type="cpu", arch_options={"width": 4})
    assert type(clf).__name__ == "TwoNetsClassifier"
    groups = clf.optimizer.param_groups
    assert [(g["name"], g["lr"], g["betas"]) for g in groups] == [
        ("features", 1e-2, (0.5, 0.9)),
        ("head", pytest.approx(1e-3), (0.9, 0.999)),
    ]
    x, y, x_test, _ = digits
    clf.fit(x[:128], y[:128], batch_size=64, nb_epochs=1)
    save_classifier(clf, tmp_path / "m.pt")
    config = read_checkpoint(tmp_path / "m.pt")["classifier"]["config"]
    assert config["kind"] == "twonets"
    assert config["arch_options"] == {"width": 4, "head_lr_ratio": 0.1}  # defaults recorded
    loaded = load_classifier(tmp_path / "m.pt")
    assert type(loaded).__name__ == "TwoNetsClassifier"
    np.testing.assert_array_equal(loaded.predict(x_test[:32]), clf.predict(x_test[:32]))
    a, b = clf.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert all(torch.equal(a["state"][k][n], b["state"][k][n]) for n in a["state"][k])


def test_a_third_party_family_trains_and_resumes_exactly(two_nets, tmp_path):
    from er_art.training.run import TrainingCallbacks, TrainingConfig, resolve_config, resume, train

    cfg = TrainingConfig(trainer="two-nets", epochs=2, limit=200, batch_size=32, device="cpu")
    assert resolve_config(cfg).arch == "two_nets"  # the trainer's default for digits
    with pytest.raises(ValueError, match=r"needs a 'twonets' architecture \(two_nets\)"):
        resolve_config(TrainingConfig(trainer="two-nets", arch="cnn"))
    reference = train(cfg, tmp_path / "ref", latest_root=None)

    class Crash(TrainingCallbacks):
        def on_step(self, epoch, step, running):
            if epoch == 1 and step == 2:
                raise SystemExit("killed")

    with pytest.raises(SystemExit):
        train(cfg, tmp_path / "run", callbacks=Crash(), latest_root=None)
    resumed = resume(tmp_path / "run", latest_root=None)
    a, b = reference.classifier.model.state_dict(), resumed.classifier.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
