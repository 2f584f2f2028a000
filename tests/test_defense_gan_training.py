"""Defense-GAN wired into er-art: the ``defense-gan-*`` architectures, the ``defense-gan``
trainer, checkpoints, the ART classifier (predictions through the projection, the gradient mode
chosen at load time or on the loaded classifier), ``er-art train``. Tiny G / D on digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art
from er_art.baselines.defense_gan import DefenseGANModel
from er_art.baselines.defense_gan_classifier import DefenseGANClassifier
from er_art.checkpoint import read_checkpoint, save_classifier
from er_art.datasets import get_dataset
from er_art.runs import read_run
from er_art.training.run import TrainingCallbacks, TrainingConfig, resolve_config, resume, train
from er_art.training.trainers import get_trainer

# tiny G / D (z 8, width 8) and a short projection; the classifier is the cnn baseline's
TINY = {"z_dim": 8, "width": 8, "projection_steps": 5, "restarts": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> TrainingConfig:
    base = dict(
        trainer="defense-gan", epochs=2, limit=200, batch_size=32, device="cpu", arch_options=TINY
    )
    return TrainingConfig(**{**base, **kw})


class CountProjections:
    """Counts calls of DefenseGANModel.project (monkeypatched)."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        real = DefenseGANModel.project

        def counted(model, x, create_graph=False):
            self.n += 1
            return real(model, x, create_graph)

        monkeypatch.setattr(DefenseGANModel, "project", counted)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 2-epoch ``defense-gan`` run on 200 digits (tiny G / D, L = 5, R = 2)."""
    run_dir = tmp_path_factory.mktemp("dg") / "run"
    torch.manual_seed(0)
    result = train(tiny_config(), run_dir, latest_root=None)
    return result


@pytest.mark.parametrize(
    ("name", "shape", "steps", "restarts", "lr"),
    [
        ("defense-gan-digits", (1, 8, 8), 50, 4, 1e-3),
        ("defense-gan-mnist", (1, 28, 28), 200, 10, 1e-4),
        ("defense-gan-cifar10", (3, 32, 32), 200, 10, 1e-4),
    ],
)
def test_architectures_record_the_projection_and_train_with_one_adam(
    name, shape, steps, restarts, lr
):
    clf = er_art.build_classifier(name, device_type="cpu", arch_options={"z_dim": 8})
    assert isinstance(clf, DefenseGANClassifier) and isinstance(clf.model, DefenseGANModel)
    assert tuple(clf.input_shape) == shape
    options = clf.er_art_config["arch_options"]
    assert (options["projection_steps"], options["restarts"]) == (steps, restarts)
    assert (clf.projection_steps, clf.restarts, clf.gradient) == (steps, restarts, "bpda")
    groups = clf.optimizer.param_groups
    assert [(g["name"], g["lr"], g["betas"]) for g in groups] == [
        ("generator", lr, (0.5, 0.9)),
        ("critic", lr, (0.5, 0.9)),
        ("classifier", 1e-3, (0.9, 0.999)),
    ]
    assert sum(len(g["params"]) for g in groups) == sum(1 for _ in clf.model.parameters())


def test_the_trainer_picks_the_datasets_architecture_and_refuses_others():
    trainer = get_trainer("defense-gan")
    assert trainer.default_arch(get_dataset("digits")) == "defense-gan-digits"
    assert trainer.default_arch(get_dataset("mnist")) == "defense-gan-mnist"
    assert trainer.default_arch(get_dataset("fashion-mnist")) == "defense-gan-mnist"
    assert trainer.default_arch(get_dataset("cifar10")) == "defense-gan-cifar10"
    assert resolve_config(TrainingConfig(trainer="defense-gan")).arch == "defense-gan-digits"
    with pytest.raises(ValueError, match="needs a Defense-GAN architecture") as err:
        resolve_config(TrainingConfig(trainer="defense-gan", arch="cnn"))
    assert "defense-gan-digits" in str(err.value)
    with pytest.raises(ValueError, match="'defense-gan-digits' is a Defense-GAN architecture"):
        resolve_config(TrainingConfig(trainer="plain", arch="defense-gan-digits"))
    with pytest.raises(ValueError, match="restarts must be a positive integer, got 0"):
        er_art.build_classifier("defense-gan-digits", arch_options={"restarts": 0})


def test_training_steps_the_gan_and_the_classifier_without_projecting(tmp_path, monkeypatch):
    """Per-epoch test accuracy is the plain classifier's: no projection during training."""
    projections = CountProjections(monkeypatch)
    torch.manual_seed(0)
    result = train(tiny_config(epochs=1), tmp_path / "run", latest_root=None)
    assert projections.n == 0
    model = result.classifier.model
    assert int(model.critic_iterations) == 7  # 200 images, batches of 32: one critic step each
    record = result.metrics[-1]
    assert np.isfinite(record["disc"]) and record["reg"] >= 0.0
    x, y = get_dataset("digits").arrays("test", limit=200)
    with torch.no_grad():
        plain = model.classifier(torch.from_numpy(x)).argmax(1).numpy()
    assert record["test_acc"] == pytest.approx(float((plain == y).mean()))


def test_run_records_L_and_R_and_loads_as_an_art_classifier(trained_run, monkeypatch):
    run_dir = trained_run.run_dir
    options = read_run(run_dir)["config"]["arch_options"]
    assert (options["projection_steps"], options["restarts"]) == (5, 2)
    config = read_checkpoint(run_dir)["classifier"]["config"]
    assert config["kind"] == "defense-gan" and config["arch"] == "defense-gan-digits"
    assert config["arch_options"] == options
    loaded = er_art.load_classifier(run_dir)
    assert isinstance(loaded, DefenseGANClassifier)
    trained = trained_run.classifier.model
    assert int(loaded.model.critic_iterations) == int(trained.critic_iterations)
    x = get_dataset("digits").arrays("test", limit=40)[0]
    projections = CountProjections(monkeypatch)
    pred = loaded.predict(x)
    assert projections.n >= 1  # the ART classifier predicts through G(z*)
    np.testing.assert_allclose(pred, trained_run.classifier.predict(x), atol=1e-5)
    with torch.no_grad():
        recon = loaded.model.project(torch.from_numpy(x)).reconstruction
        expected = loaded.model.classifier(recon).numpy()
    np.testing.assert_allclose(pred, expected, atol=1e-5)


def test_bpda_gradient_is_the_classifiers_at_the_projection(trained_run):
    clf = er_art.load_classifier(trained_run.run_dir)
    x, y = get_dataset("digits").arrays("test", limit=16)
    grad = clf.loss_gradient(x, np.eye(10, dtype=np.float32)[y])
    assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    model = clf.model
    recon = model.project(torch.from_numpy(x)).reconstruction.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model.classifier(recon), torch.from_numpy(y).long())
    (expected,) = torch.autograd.grad(loss, recon)
    np.testing.assert_allclose(grad, expected.numpy(), atol=1e-6)
    assert all(p.grad is None for p in model.generator.parameters())


def test_gradient_mode_is_chosen_at_load_time_or_on_the_classifier(trained_run, tmp_path):
    x, y = get_dataset("digits").arrays("test", limit=8)
    labels = np.eye(10, dtype=np.float32)[y]
    bpda = er_art.load_classifier(trained_run.run_dir)
    naive = er_art.load_classifier(trained_run.run_dir, options={"gradient": "naive"})
    assert (bpda.gradient, naive.gradient) == ("bpda", "naive")
    assert naive.er_art_config["arch_options"]["gradient"] == "naive"
    g_bpda, g_naive = bpda.loss_gradient(x, labels), naive.loss_gradient(x, labels)
    assert np.isfinite(g_naive).all() and np.abs(g_naive).sum() > 0
    assert not np.allclose(g_bpda, g_naive)  # through the unrolled steps: another gradient
    np.testing.assert_array_equal(bpda.predict(x), naive.predict(x))  # same forward
    bpda.gradient = "naive"
    np.testing.assert_allclose(bpda.loss_gradient(x, labels), g_naive, atol=1e-6)
    save_classifier(bpda, tmp_path / "naive.pt")  # the mode in use is what a copy records
    assert er_art.load_classifier(tmp_path / "naive.pt").gradient == "naive"
    bpda.configure(projection_steps=7, restarts=3)
    assert (bpda.model.projection_steps, bpda.model.restarts) == (7, 3)
    assert bpda.er_art_config["arch_options"]["restarts"] == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: setattr(c, "gradient", "exact"), "Unknown gradient mode 'exact'"),
        (lambda c: c.configure(steps=3), "no setting 'steps'"),
        (lambda c: setattr(c, "restarts", 0), "restarts must be a positive integer, got 0"),
    ],
)
def test_bad_settings_are_one_sentence(trained_run, change, message):
    clf = er_art.load_classifier(trained_run.run_dir)
    with pytest.raises(ValueError, match=message) as err:
        change(clf)
    assert "\n" not in str(err.value)


def test_bad_load_options_are_one_sentence(trained_run):
    with pytest.raises(ValueError, match="has no option 'steps'; accepted: ") as err:
        er_art.load_classifier(trained_run.run_dir, options={"steps": 3})
    assert "projection_steps" in str(err.value)
    with pytest.raises(ValueError, match="Unknown gradient mode 'exact'"):
        er_art.load_classifier(trained_run.run_dir, options={"gradient": "exact"})


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(trained_run, tmp_path):
    """The critic counter (when the generator steps) and the one Adam's state resume exactly."""

    class Crash(TrainingCallbacks):
        def on_step(self, epoch, step, running):
            if epoch == 1 and step == 3:
                raise SystemExit("killed")

    torch.manual_seed(0)
    with pytest.raises(SystemExit):
        train(tiny_config(checkpoint_every=2), tmp_path / "run", Crash(), latest_root=None)
    resumed = resume(tmp_path / "run", latest_root=None)
    a = trained_run.classifier.model.state_dict()
    b = resumed.classifier.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_trains_the_gan_and_the_classifier(digits):
    x_train, y_train, _, _ = digits
    clf = er_art.build_classifier("defense-gan-digits", device_type="cpu", arch_options=TINY)
    generator = {k: v.clone() for k, v in clf.model.generator.state_dict().items()}
    clf.fit(x_train[:160], np.eye(10)[y_train[:160]], batch_size=32, nb_epochs=2)
    assert int(clf.model.critic_iterations) == 10 and not clf.model.training
    after = clf.model.generator.state_dict()
    assert any(not torch.equal(generator[k], after[k]) for k in generator)  # 2 generator steps


def test_cli_trains_a_couple_of_steps_and_attacks_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--trainer", "defense-gan", "--device", "cpu", "--threads", "1"]
    args += ["--limit", "64", "--batch-size", "32", "--epochs", "1", "--out", "run"]
    for key, value in TINY.items():
        args += ["--arch-option", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "arch defense-gan-digits" in result.stdout and "epoch 1/1" in result.stdout
    options = read_run("run")["config"]["arch_options"]
    assert (options["projection_steps"], options["restarts"]) == (5, 2)
    assert isinstance(er_art.load_classifier("run"), DefenseGANClassifier)
    attack = CliRunner().invoke(
        app,
        ["attack", "--method", "pgd", "-c", "run", "--eps", "0.1", "-n", "16"]
        + ["--max-iter", "2", "--restarts", "1", "--threads", "1"],
    )
    assert attack.exit_code == 0, attack.output
    assert "pgd" in attack.stdout and "Traceback" not in attack.output


def test_cli_model_option_picks_the_gradient_mode_and_refuses_bad_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--trainer", "defense-gan", "--device", "cpu", "--threads", "1"]
    args += ["--limit", "64", "--batch-size", "32", "--epochs", "1", "--out", "run"]
    for key, value in TINY.items():
        args += ["--arch-option", f"{key}={value}"]
    assert CliRunner().invoke(app, args).exit_code == 0
    attack = [
        "attack",
        "--method",
        "fgsm",
        "-c",
        "run",
        "--eps",
        "0.1",
        "-n",
        "8",
        "--threads",
        "1",
    ]
    naive = CliRunner().invoke(app, attack + ["--model-option", "gradient=naive", "--out", "a"])
    assert naive.exit_code == 0, naive.output
    manifest = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    assert manifest["options"]["model_options"] == {"gradient": "naive"}
    # resuming without the option is another evaluation: refused
    again = CliRunner().invoke(app, attack + ["--out", "a", "--resume"])
    assert again.exit_code == 2 and "Traceback" not in again.output
    unknown = CliRunner().invoke(app, attack + ["--model-option", "colour=red"])
    assert unknown.exit_code == 2 and "colour" in unknown.output
    assert "Traceback" not in unknown.output
    malformed = CliRunner().invoke(app, attack + ["--model-option", "naive"])
    assert malformed.exit_code == 2 and "--model-option must be KEY=VALUE" in malformed.output
