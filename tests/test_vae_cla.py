"""VAE-CLA: the VAE encoder on an ER backbone, the loss CE + beta * KL, prediction through mu,
one Adam over two parameter groups, checkpoints."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import er_art
from er_art.baselines.vae_cla import (
    BETA,
    HEAD_LR_RATIO,
    VAEClassifier,
    VAEModel,
    kl_divergence,
    vae_architecture,
    vae_cla_step,
)
from er_art.checkpoint import load_classifier, read_checkpoint, save_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def vae_digits(**kw) -> VAEClassifier:
    return er_art.build_classifier("vae-digits", device_type="cpu", **kw)


def batch(digits, n=64):
    x_train, y_train, _, _ = digits
    return torch.from_numpy(x_train[:n]), torch.from_numpy(y_train[:n])


@pytest.mark.parametrize(
    ("name", "backbone"),
    [
        ("vae-digits", "digits"),
        ("vae-mnist", "mnist"),
        ("vae-mnist-small", "mnist-small"),
        ("vae-cifar10", "cifar10"),
        ("vae-stl10", "stl10"),
        ("vae-tinyimagenet", "tinyimagenet"),
    ],
)
def test_vae_architectures_mirror_their_er_backbone(name, backbone):
    vae, er = er_art.get_architecture(name), er_art.get_architecture(backbone)
    assert (vae.kind, vae.classifier_class) == ("vae", VAEClassifier)
    assert (vae.input_shape, vae.nb_classes, vae.embedding_dim) == (
        er.input_shape,
        er.nb_classes,
        er.embedding_dim,
    )
    assert vae.defaults["lr"] == er.defaults["lr"]
    # the backbone's own options pass through (cifar10: init_weights), plus beta
    assert vae.option_defaults() == {"beta": BETA, **er.option_defaults()}


def test_encoder_gives_mu_and_log_variance_and_the_head_reads_k(digits):
    clf = vae_digits(embedding_dim=5)
    model = clf.model
    assert isinstance(model, VAEModel) and model.embedding_dim == 5
    x, _ = batch(digits, 16)
    model.eval()
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (16, 5)
    with torch.no_grad():
        assert torch.equal(model(x), model.classifier(mu))  # prediction through mu
    assert clf.er_art_config["embedding_dim"] == 5


def test_predictions_are_deterministic(digits):
    clf = vae_digits()
    x = digits[2][:64]
    np.testing.assert_array_equal(clf.predict(x), clf.predict(x))
    y = np.eye(10, dtype=np.float32)[digits[3][:8]]  # one-hot, as ART's attacks pass labels
    np.testing.assert_array_equal(clf.loss_gradient(x[:8], y), clf.loss_gradient(x[:8], y))


def test_kl_divergence_is_the_closed_form():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logvar = torch.tensor([[0.0, np.log(4.0)], [np.log(0.25), 0.0]])
    per_dim = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    assert torch.allclose(kl_divergence(mu, logvar), per_dim.sum(1).mean())
    assert float(kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0


def test_the_loss_is_ce_plus_beta_kl(digits):
    clf = vae_digits(arch_options={"beta": 0.5})
    model, x, y = clf.model, *batch(digits, 32)
    torch.manual_seed(4)
    res = vae_cla_step(model, clf.optimizer, x, y)
    assert torch.allclose(res.loss, res.ce + 0.5 * res.kl)
    # the same step by hand: two identical builds (seed 0), the same eps (seed 4)
    fresh = vae_digits(arch_options={"beta": 0.5}, seed=0)
    again = vae_digits(arch_options={"beta": 0.5}, seed=0)
    fresh.model.train()
    torch.manual_seed(4)
    mu, logvar = fresh.model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    ce = F.cross_entropy(fresh.model.classifier(z), y)
    kl = kl_divergence(mu, logvar)
    torch.manual_seed(4)
    got = vae_cla_step(again.model, again.optimizer, x, y)
    assert torch.allclose(got.ce, ce.detach()) and torch.allclose(got.kl, kl.detach())
    assert torch.allclose(got.loss, (ce + 0.5 * kl).detach())


def test_one_adam_with_the_er_lr_ratio_for_the_head():
    clf = vae_digits(lr=2e-3)
    groups = clf.optimizer.param_groups
    assert [g["name"] for g in groups] == ["encoder", "classifier"]
    assert groups[0]["lr"] == 2e-3 and groups[1]["lr"] == pytest.approx(2e-3 * HEAD_LR_RATIO)
    n_params = sum(1 for _ in clf.model.parameters())
    assert sum(len(g["params"]) for g in groups) == n_params


def kl_over_training(digits, beta: float, epochs: int = 4) -> list[float]:
    """Mean KL per epoch of ``epochs`` over 512 digits."""
    x_train, y_train, _, _ = digits
    torch.manual_seed(0)
    clf = vae_digits(arch_options={"beta": beta}, seed=0)
    x, y = torch.from_numpy(x_train[:512]), torch.from_numpy(y_train[:512])
    means = []
    for _ in range(epochs):
        kls = [
            float(vae_cla_step(clf.model, clf.optimizer, x[i : i + 64], y[i : i + 64]).kl)
            for i in range(0, 512, 64)
        ]
        means.append(float(np.mean(kls)))
    return means


def test_the_kl_term_trains(digits):
    """beta = 1 pulls the KL down from its start; the default beta keeps it well below an
    unregularised (beta = 0) run's, where the cross-entropy alone shrinks sigma and spreads mu."""
    strong, default, none = (kl_over_training(digits, b) for b in (1.0, BETA, 0.0))
    assert strong[-1] < 0.5 * strong[0]
    assert none[-1] > none[0]  # nothing holds the posterior: the KL grows
    assert default[-1] < 0.7 * none[-1] and strong[-1] < default[-1]


def test_fit_runs_the_vae_step(digits):
    x_train, y_train, x_test, y_test = digits
    torch.manual_seed(0)
    clf = vae_digits(seed=0)
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    clf.fit(x_train[:256], np.eye(10)[y_train[:256]], batch_size=64, nb_epochs=2)
    assert not clf.model.training
    after = clf.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder"))
    # ART's own fit would train cross-entropy on head(mu); ours steps on CE + beta * KL
    calls = []
    real = VAEClassifier.train_step
    try:
        VAEClassifier.train_step = lambda self, x, y: calls.append(len(x)) or real(self, x, y)
        clf.fit(x_train[:128], y_train[:128], batch_size=64, nb_epochs=1)
    finally:
        VAEClassifier.train_step = real
    assert calls == [64, 64]
    assert clf.embed(x_test[:10]).shape == (10, 8)


def test_bad_beta_and_backbone_are_one_sentence():
    with pytest.raises(ValueError, match="beta"):
        vae_digits(arch_options={"beta": -1.0})
    with pytest.raises(ValueError, match="accepted: beta"):
        vae_digits(arch_options={"sigma": 1.0})
    with pytest.raises(ValueError, match="ER architecture"):
        vae_architecture(er_art.get_architecture("cnn"))


def test_builder_signature_lists_the_options():
    params = inspect.signature(er_art.get_architecture("vae-cifar10").builder).parameters
    assert list(params) == ["embedding_dim", "nb_classes", "beta", "init_weights"]


def test_checkpoint_round_trip(digits, tmp_path):
    x_train, y_train, x_test, _ = digits
    clf = vae_digits(embedding_dim=6, arch_options={"beta": 0.2}, lr=3e-3)
    clf.fit(x_train[:256], y_train[:256], batch_size=64, nb_epochs=1)
    save_classifier(clf, tmp_path / "vae.pt")
    config = read_checkpoint(tmp_path / "vae.pt")["classifier"]["config"]
    assert (config["kind"], config["arch"], config["embedding_dim"]) == ("vae", "vae-digits", 6)
    assert config["arch_options"] == {"beta": 0.2} and config["lr"] == 3e-3
    loaded = load_classifier(tmp_path / "vae.pt")
    assert isinstance(loaded, VAEClassifier) and loaded.vae.beta == 0.2
    np.testing.assert_array_equal(loaded.predict(x_test[:64]), clf.predict(x_test[:64]))
    a, b = clf.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(
        torch.equal(a["state"][k]["exp_avg_sq"], b["state"][k]["exp_avg_sq"]) for k in a["state"]
    )
