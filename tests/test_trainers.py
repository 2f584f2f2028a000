"""Trainer plugins and ``ERAdversarialTrainer``: ART PGD on device tensors, Algorithm 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.data_generators import PyTorchDataGenerator
from art.defences.trainer import AdversarialTrainerMadryPGD, Trainer

import er_art
from er_art.registry import UnknownPluginError
from er_art.training.adversarial import build_pgd, generate_on_device
from er_art.training.trainers import AttackSettings, get_trainer

TRAINERS = ["er-pgd", "er-minus", "ecla", "ecla-pgd", "plain", "madry"]
ATTACK = AttackSettings(eps=0.1, eps_step=0.025, max_iter=5)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_er():
    return er_art.build_classifier("test_digits", device_type="cpu")


def tiny_cnn():
    return er_art.build_classifier("test_cnn", input_shape=(1, 8, 8), device_type="cpu")


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str = "") -> bool:
    after = module.state_dict()
    return any(
        not torch.equal(v, after[k])
        for k, v in before.items()
        if k.startswith(prefix) and v.is_floating_point()
    )


def batch(digits, n=32):
    x_train, y_train, _, _ = digits
    return torch.from_numpy(x_train[:n]), torch.from_numpy(y_train[:n])


@pytest.mark.parametrize("name", TRAINERS)
def test_trainer_plugins_are_registered_specs(name):
    spec = get_trainer(name)
    assert spec.name == name
    assert spec.kind == ("baseline" if name in ("plain", "madry") else "er")
    assert spec.adversarial == (name in ("er-pgd", "ecla-pgd", "madry"))
    assert spec.description


def test_unknown_trainer_names_close_matches():
    with pytest.raises(UnknownPluginError, match="er-pgd"):
        get_trainer("er-pdg")


@pytest.mark.parametrize("name", TRAINERS)
def test_each_trainer_step_trains(name, digits):
    spec = get_trainer(name)
    clf = tiny_cnn() if spec.kind == "baseline" else tiny_er()
    net = clf.model
    before = params(net)
    step = spec.make_step(clf, ATTACK if spec.adversarial else None)
    x, y = batch(digits)
    res = step(x, y)
    assert torch.isfinite(res.ce) and 0 <= int(res.correct) <= len(y)
    if spec.kind == "er":
        assert changed(before, net, "encoder.") and changed(before, net, "classifier.")
        # E-CLA (with or without min-max) never touches the discriminator; ER trainers train it
        no_critic = name in ("ecla", "ecla-pgd")
        assert changed(before, net, "discriminator.") == (not no_critic)
        assert (float(res.disc) == 0.0) == no_critic and (float(res.reg) == 0.0) == no_critic
    else:
        assert changed(before, net)
        assert float(res.disc) == 0.0 and float(res.reg) == 0.0


def test_kind_mismatch_is_refused():
    with pytest.raises(ValueError, match="ER"):
        get_trainer("er-pgd").check_classifier(tiny_cnn())
    with pytest.raises(ValueError, match="baseline"):
        get_trainer("madry").check_classifier(tiny_er())
    with pytest.raises(ValueError, match="ERClassifier"):
        er_art.ERAdversarialTrainer(tiny_cnn(), eps=0.1, eps_step=0.01, max_iter=2)


def test_er_adversarial_trainer_is_an_art_trainer_with_dataset_defaults():
    clf = er_art.build_classifier("digits", device_type="cpu")
    trainer = er_art.ERAdversarialTrainer(clf)  # dataset named like the architecture
    assert isinstance(trainer, Trainer)
    from er_art.datasets import get_dataset

    spec = get_dataset("digits")
    assert (trainer.eps, trainer.eps_step, trainer.max_iter) == (
        spec.eps,
        spec.eps_step,
        spec.max_iter,
    )
    assert trainer.num_random_init == 1 and trainer.ratio == 0.5 and not trainer.use_predictions
    assert trainer.attack.eps == spec.eps and trainer.get_classifier() is clf
    with pytest.raises(ValueError, match="eps"):
        er_art.ERAdversarialTrainer(tiny_er())  # test_digits is no dataset: settings needed


@pytest.mark.parametrize("model", ["er", "baseline"])
def test_device_pgd_is_arts_iteration(digits, model):
    """Without a random start the device PGD gives exactly what ART's ``generate`` gives."""
    clf = tiny_er() if model == "er" else tiny_cnn()
    x, y = batch(digits, 16)
    pgd = build_pgd(clf, eps=0.1, eps_step=0.02, max_iter=5, num_random_init=0)
    ours = generate_on_device(pgd, x, y)
    arts = pgd.generate(x.numpy(), y=np.eye(10, dtype=np.float32)[y.numpy()])
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), arts)


def test_device_pgd_random_start(digits):
    """The random start (torch's RNG on the device): reproducible from the torch seed, inside the
    eps-ball and the data range, and a stronger attack than the clean input."""
    clf = tiny_er()
    x, y = batch(digits, 16)
    pgd = build_pgd(clf, eps=0.1, eps_step=0.02, max_iter=5)
    torch.manual_seed(1)
    first = generate_on_device(pgd, x, y)
    torch.manual_seed(1)
    assert torch.equal(first, generate_on_device(pgd, x, y))
    delta = (first - x).abs()
    assert float(delta.max()) <= 0.1 + 1e-6 and float(delta.max()) > 0.05
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_device_pgd_reads_nothing_back_from_the_device(digits, monkeypatch):
    """No host round trip inside the attack: no tensor is turned into NumPy or a Python number."""
    clf = tiny_er()
    x, y = batch(digits, 16)
    pgd = build_pgd(clf, eps=0.1, eps_step=0.02, max_iter=3)

    def refuse(*args, **kwargs):
        raise AssertionError("the attack read a tensor back to the host")

    for name in ("numpy", "item", "tolist", "__bool__", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    generate_on_device(pgd, x, y)


def test_attack_runs_in_eval_mode(digits):
    """BatchNorm running statistics do not move while the model is attacked."""
    clf = tiny_er()
    trainer = er_art.ERAdversarialTrainer(clf, eps=0.1, eps_step=0.02, max_iter=3)
    before = params(clf.er_model)
    x, y = batch(digits)
    trainer.adversarial_examples(x, y)
    assert not changed(before, clf.er_model)


def test_pgd_lowers_accuracy_and_use_predictions(digits):
    x_train, y_train, x_test, y_test = digits
    clf = tiny_er()
    clf.fit(x_train, y_train, batch_size=64, nb_epochs=4)
    x, y = torch.from_numpy(x_test[:128]), torch.from_numpy(y_test[:128])
    trainer = er_art.ERAdversarialTrainer(
        clf, eps=0.2, eps_step=0.05, max_iter=5, use_predictions=True
    )
    x_adv = trainer.adversarial_examples(x, y)
    clean = (clf.predict(x.numpy()).argmax(1) == y_test[:128]).mean()
    adv = (clf.predict(x_adv.numpy()).argmax(1) == y_test[:128]).mean()
    assert adv < clean


def test_fit_and_fit_generator_train_all_nets(digits):
    x_train, y_train, _, _ = digits
    clf = tiny_er()
    trainer = er_art.ERAdversarialTrainer(clf, eps=0.1, eps_step=0.025, max_iter=2, batch_size=64)
    before = params(clf.er_model)
    trainer.fit(x_train[:128], np.eye(10)[y_train[:128]], nb_epochs=1)  # one-hot labels
    for net in ("encoder.", "classifier.", "discriminator."):
        assert changed(before, clf.er_model, net)
    assert not clf.er_model.training
    before = params(clf.er_model)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(
            torch.from_numpy(x_train[:128]), torch.from_numpy(y_train[:128])
        ),
        batch_size=64,
    )
    trainer.fit_generator(PyTorchDataGenerator(loader, size=128, batch_size=64), nb_epochs=1)
    assert changed(before, clf.er_model, "encoder.")


def test_ecla_pgd_is_er_pgd_without_the_discriminator(digits):
    """The control: the same training PGD (budget, step, steps, starts, labels, clean/adversarial
    weight) as er-pgd; the same adversarial batch; no discriminator, no regularisation step."""
    settings = AttackSettings(eps=0.1, eps_step=0.025, max_iter=3, use_predictions=True)
    er = get_trainer("er-pgd").make_art_trainer(tiny_er(), settings)
    control = get_trainer("ecla-pgd").make_art_trainer(tiny_er(), settings)
    control.er_classifier.er_model.load_state_dict(er.er_classifier.er_model.state_dict())
    for field in ("eps", "eps_step", "max_iter", "num_random_init", "ratio", "use_predictions"):
        assert getattr(control, field) == getattr(er, field), field
    assert er.regularize and not control.regularize
    x, y = batch(digits, 16)
    torch.manual_seed(3)
    adv_er = er.adversarial_examples(x, y)
    torch.manual_seed(3)
    adv_control = control.adversarial_examples(x, y)
    torch.testing.assert_close(adv_er, adv_control)  # same weights, same attack
    before = params(control.er_classifier.er_model)
    res = control.step(x, y)
    assert not changed(before, control.er_classifier.er_model, "discriminator.")
    assert changed(before, control.er_classifier.er_model, "encoder.")
    assert float(res.disc) == 0.0 and float(res.reg) == 0.0


def test_art_trainer_factories():
    madry = get_trainer("madry").make_art_trainer(tiny_cnn(), ATTACK, nb_epochs=1, batch_size=32)
    assert isinstance(madry, AdversarialTrainerMadryPGD)
    er = get_trainer("er-pgd").make_art_trainer(tiny_er(), ATTACK)
    assert isinstance(er, er_art.ERAdversarialTrainer) and er.max_iter == ATTACK.max_iter
    with pytest.raises(ValueError, match="attack settings"):
        get_trainer("madry").make_step(tiny_cnn(), None)
