"""ART's adversarial trainers drive the ER-Classifier through ``fit``: Algorithm 1 on adversarial
batches."""

from __future__ import annotations

import numpy as np
import torch
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
from art.defences.trainer import AdversarialTrainer, AdversarialTrainerMadryPGD

import er_art


def snapshots(clf):
    m = clf.er_model
    return {
        name: [p.detach().clone() for p in net.parameters()]
        for name, net in (
            ("encoder", m.encoder),
            ("classifier", m.classifier),
            ("discriminator", m.discriminator),
        )
    }


def assert_all_nets_changed(clf, before):
    after = snapshots(clf)
    for name in before:
        assert all(not torch.equal(a, b) for a, b in zip(after[name], before[name], strict=True)), (
            f"{name} did not train"
        )


def test_adversarial_trainer_trains_all_three_nets(digits):
    x, y = digits[0][:192], digits[1][:192]
    clf = er_art.build_classifier("test_digits", device_type="cpu")
    before = snapshots(clf)
    trainer = AdversarialTrainer(clf, attacks=FastGradientMethod(clf, eps=0.1), ratio=0.5)
    trainer.fit(x, np.eye(10)[y], nb_epochs=1, batch_size=64)
    assert trainer.get_classifier() is clf
    assert_all_nets_changed(clf, before)
    assert not clf.er_model.training
    assert np.isfinite(clf.predict(digits[2][:16])).all()


def test_adversarial_trainer_with_pgd_and_integer_labels(digits):
    x, y = digits[0][:128], digits[1][:128]
    clf = er_art.build_classifier("test_digits", device_type="cpu")
    before = snapshots(clf)
    pgd = ProjectedGradientDescent(clf, eps=0.1, eps_step=0.05, max_iter=2, verbose=False)
    AdversarialTrainer(clf, attacks=pgd, ratio=1.0).fit(x, y, nb_epochs=1, batch_size=64)
    assert_all_nets_changed(clf, before)


def test_madry_pgd_trainer_trains_all_three_nets(digits):
    x, y = digits[0][:128], digits[1][:128]
    clf = er_art.build_classifier("test_digits", device_type="cpu")
    before = snapshots(clf)
    trainer = AdversarialTrainerMadryPGD(
        clf, nb_epochs=1, batch_size=64, eps=0.1, eps_step=0.05, max_iter=2
    )
    trainer.fit(x, np.eye(10)[y])
    assert_all_nets_changed(clf, before)
    for p in clf.er_model.discriminator.parameters():
        assert p.abs().max() <= clf.clip_value + 1e-7
    assert not clf.er_model.training
