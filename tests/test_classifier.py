"""ERClassifier: Algorithm 1 in fit, the ART estimator API, dtypes, devices and pickling."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import er_art
from er_art.models.er_classifier import ERClassifier


@pytest.fixture
def small(digits):
    """256 training and 32 test digits."""
    x_train, y_train, x_test, y_test = digits
    return x_train[:256], y_train[:256], x_test[:32], y_test[:32]


@pytest.fixture
def clf():
    return er_art.build_classifier("test_digits", device_type="cpu", seed=0)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    """True when every parameter tensor of ``module`` moved."""
    after = dict(module.named_parameters())
    return all(not torch.equal(before[k], after[k]) for k in before)


def nets(clf: ERClassifier) -> dict[str, nn.Module]:
    m = clf.er_model
    return {"encoder": m.encoder, "classifier": m.classifier, "discriminator": m.discriminator}


# ---------------------------------------------------------------- Algorithm 1
def test_fit_trains_all_three_nets(clf, small):
    x, y, _, _ = small
    before = {name: snapshot(net) for name, net in nets(clf).items()}
    clf.fit(x, y, batch_size=64, nb_epochs=1)
    for name, net in nets(clf).items():
        assert changed(before[name], net), f"{name} did not train"
    assert all(
        p.grad is None for p in clf.er_model.parameters()
    )  # the last step's gradients are freed


def test_discriminator_weights_are_clipped(small):
    x, y, _, _ = small
    clf = er_art.build_classifier("test_digits", device_type="cpu", clip_value=0.02)
    clf.fit(x, y, batch_size=64, nb_epochs=1)
    for p in clf.er_model.discriminator.parameters():
        assert p.abs().max() <= 0.02 + 1e-7
    assert (
        max(p.abs().max() for p in clf.er_model.discriminator.parameters()) > 0.019
    )  # clipping was active


def test_train_mode_during_fit_and_eval_mode_after(clf, small):
    x, y, _, _ = small
    modes: dict[str, set[bool]] = {name: set() for name in nets(clf)}
    for name, net in nets(clf).items():
        net.register_forward_pre_hook(lambda mod, _inp, name=name: modes[name].add(mod.training))
    clf.fit(x, y, batch_size=64, nb_epochs=1)
    assert modes == {"encoder": {True}, "classifier": {True}, "discriminator": {True}}
    assert not any(m.training for m in clf.er_model.modules())
    clf.predict(x[:4])
    assert not any(m.training for m in clf.er_model.modules())


def test_each_optimizer_zeroes_its_gradients_before_each_step(clf, small):
    x, y, _, _ = small
    log: list[tuple[str, str]] = []
    for name in ("encoder", "discriminator", "classifier"):
        opt = getattr(clf.optimizers, name)
        for method in ("zero_grad", "step"):
            original = getattr(opt, method)

            def wrapped(*args, _orig=original, _name=name, _method=method, **kwargs):
                log.append((_name, _method))
                return _orig(*args, **kwargs)

            setattr(opt, method, wrapped)
    clf.fit(x[:128], y[:128], batch_size=64, nb_epochs=1)
    steps = [e for e in log if e[1] == "step"]
    # per batch: D step (a), head + encoder steps (b), encoder step (c)
    assert sorted(steps) == sorted(
        [("discriminator", "step"), ("classifier", "step")] * 2 + [("encoder", "step")] * 4
    )
    last: dict[str, str] = {}
    for name, method in log:
        if method == "step":
            assert last.get(name) == "zero_grad", f"{name} stepped without zeroing its gradients"
        last[name] = method


def test_step_c_uses_the_pure_regulariser_gradient(clf, small):
    """The encoder's second update follows -lambda_1 * grad D(Q(x)) alone (no leftover CE grad)."""
    x, y, _, _ = small
    clf.lambda_reg = 0.7
    x_t, y_t = clf._prepare_batch(x[:64], y[:64])
    opt = clf.optimizers.encoder
    original = opt.step
    captured: list[tuple[dict, nn.Module, nn.Module]] = []

    def capture(*args, **kwargs):
        grads = {k: p.grad.clone() for k, p in clf.er_model.encoder.named_parameters()}
        captured.append(
            (grads, copy.deepcopy(clf.er_model.encoder), copy.deepcopy(clf.er_model.discriminator))
        )
        return original(*args, **kwargs)

    opt.step = capture
    clf.train_step(x_t, y_t)
    assert len(captured) == 2
    grads, encoder, disc = captured[1]  # state just before step (c)'s update
    encoder.train()
    disc.train()
    reg = 0.7 * disc(encoder(x_t)).mean()
    expected = torch.autograd.grad(-reg, list(encoder.parameters()))
    for (name, _), g in zip(encoder.named_parameters(), expected, strict=True):
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-7, msg=name)


def test_regularize_false_leaves_the_discriminator_alone(clf, small):
    x, y, _, _ = small
    d_before = snapshot(clf.er_model.discriminator)
    e_before = snapshot(clf.er_model.encoder)
    clf.fit(x, y, batch_size=64, nb_epochs=1, regularize=False)
    assert not changed(d_before, clf.er_model.discriminator)
    assert changed(e_before, clf.er_model.encoder)


@pytest.mark.parametrize("one_hot", [False, True])
def test_integer_and_one_hot_labels(clf, small, one_hot):
    x, y, x_test, _ = small
    labels = np.eye(10, dtype=np.float32)[y] if one_hot else y
    before = snapshot(clf.er_model.classifier)
    clf.fit(x, labels, batch_size=64, nb_epochs=1)
    assert changed(before, clf.er_model.classifier)
    assert clf.predict(x_test).shape == (32, 10)


def test_fit_learns(small, digits):
    x, y, _, _ = digits
    clf = er_art.build_classifier("test_digits", device_type="cpu", seed=0)
    acc0 = (clf.predict(x[:300]).argmax(1) == y[:300]).mean()
    # 16 epochs: the tiny test net gained 0.31-0.75 over seeds 0-9; 4 epochs gained 0.13 on one
    clf.fit(x[:600], y[:600], batch_size=64, nb_epochs=16)
    acc1 = (clf.predict(x[:300]).argmax(1) == y[:300]).mean()
    assert acc1 > acc0 + 0.2


def test_amp_trains_with_finite_losses(small):
    x, y, _, _ = small
    clf = er_art.build_classifier("test_digits", device_type="cpu", amp=True)
    before = {name: snapshot(net) for name, net in nets(clf).items()}
    x_t, y_t = clf._prepare_batch(x[:64], y[:64])
    res = clf.train_step(x_t, y_t)
    assert all(torch.isfinite(v) for v in (res.ce, res.disc, res.reg))
    clf.fit(x, y, batch_size=64, nb_epochs=1)
    for name, net in nets(clf).items():
        assert changed(before[name], net), name
    assert np.isfinite(clf.predict(x[:8])).all()


# ---------------------------------------------------------------- fit_generator
def test_fit_generator_over_a_dataloader_runs_algorithm1(clf, small):
    from art.data_generators import PyTorchDataGenerator
    from torch.utils.data import DataLoader, TensorDataset

    x, y, _, _ = small
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=64, shuffle=True
    )
    before = {name: snapshot(net) for name, net in nets(clf).items()}
    clf.fit_generator(PyTorchDataGenerator(loader, size=len(x), batch_size=64), nb_epochs=1)
    for name, net in nets(clf).items():
        assert changed(before[name], net), name
    assert not clf.er_model.training


def test_fit_generator_over_numpy_runs_algorithm1(clf, small):
    from art.data_generators import NumpyDataGenerator

    x, y, _, _ = small
    before = {name: snapshot(net) for name, net in nets(clf).items()}
    clf.fit_generator(NumpyDataGenerator(x, np.eye(10)[y], batch_size=64), nb_epochs=1)
    for name, net in nets(clf).items():
        assert changed(before[name], net), name
    assert not clf.er_model.training


# ---------------------------------------------------------------- ART estimator API
def test_predict_and_dtypes(clf, small):
    _, _, x, _ = small
    p32 = clf.predict(x)
    p64 = clf.predict(x.astype(np.float64))
    assert p32.shape == (32, 10) and p32.dtype == np.float32
    np.testing.assert_allclose(p64, p32, rtol=1e-5, atol=1e-6)


def reference_gradient(clf: ERClassifier, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    model = clf.er_model.eval()
    x_t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    loss = nn.functional.cross_entropy(model(x_t), torch.as_tensor(y).long())
    (g,) = torch.autograd.grad(loss, x_t)
    return g.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_gradient_is_input_only_and_correct(trained_digits, digits, dtype):
    clf = trained_digits
    x, y = digits[2][:16].astype(dtype), digits[3][:16]
    params = list(clf.er_model.parameters())
    for p in (
        params
    ):  # ART's APGD-DLR wraps the same nets in a stock PyTorchClassifier, which fills them
        p.grad = None
    grad = clf.loss_gradient(x, y)
    assert grad.shape == x.shape and np.isfinite(grad).all()
    assert all(p.grad is None for p in params), "loss_gradient computed weight gradients"
    np.testing.assert_allclose(grad, reference_gradient(clf, x, y), rtol=1e-4, atol=1e-7)
    # one-hot labels and torch tensors give the same gradient
    np.testing.assert_allclose(clf.loss_gradient(x, np.eye(10)[y]), grad, rtol=1e-5, atol=1e-8)
    g_t = clf.loss_gradient(torch.from_numpy(x), torch.from_numpy(y))
    assert isinstance(g_t, torch.Tensor)
    np.testing.assert_allclose(g_t.numpy(), grad, rtol=1e-5, atol=1e-8)
    assert all(p.grad is None for p in params)
    assert not clf.er_model.training


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_class_gradient_is_input_only_and_matches_art(trained_digits, digits, dtype):
    from art.estimators.classification import PyTorchClassifier

    clf = trained_digits
    x = digits[2][:8].astype(dtype)
    params = list(clf.er_model.parameters())
    for p in params:
        p.grad = None
    cg = clf.class_gradient(x)
    assert cg.shape == (8, 10, 1, 8, 8) and np.isfinite(cg).all()
    cg_one = clf.class_gradient(x, label=3)
    assert cg_one.shape == (8, 1, 1, 8, 8)
    np.testing.assert_allclose(cg_one[:, 0], cg[:, 3], rtol=1e-5, atol=1e-7)
    labels = np.array([0, 9, 3, 3, 1, 0, 9, 2])
    cg_per = clf.class_gradient(x, label=labels)
    assert cg_per.shape == (8, 1, 1, 8, 8)
    np.testing.assert_allclose(cg_per[:, 0], cg[np.arange(8), labels], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(clf.class_gradient(x, label=list(labels)), cg_per)
    assert all(p.grad is None for p in params), "class_gradient computed weight gradients"
    with pytest.raises(ValueError, match="out of range"):
        clf.class_gradient(x, label=10)
    # same values as ART's own implementation (which also fills weight gradients)
    art_cg = PyTorchClassifier.class_gradient(clf, x)
    for p in params:
        p.grad = None
    np.testing.assert_allclose(cg, art_cg, rtol=1e-4, atol=1e-6)


def test_compute_loss(trained_digits, digits):
    clf = trained_digits
    x, y = digits[2][:8], digits[3][:8]
    losses = clf.compute_loss(x, y)
    assert losses.shape == (8,) and (losses >= 0).all()
    mean = clf.compute_loss(x, y, reduction="mean")
    assert float(mean) == pytest.approx(float(losses.mean()), rel=1e-5)
    logits = torch.from_numpy(clf.predict(x))
    expected = nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction="none").numpy()
    np.testing.assert_allclose(losses, expected, rtol=1e-4, atol=1e-6)


def test_get_activations(trained_digits, digits):
    clf = trained_digits
    x = digits[2][:10]
    emb = clf.get_activations(x, "embedding", batch_size=4)
    assert emb.shape == (10, clf.embedding_dim)
    np.testing.assert_allclose(clf.get_activations(x, 0), emb, rtol=1e-6)
    np.testing.assert_allclose(clf.embed(x), emb, rtol=1e-6)
    logits = clf.get_activations(x, "logits")
    np.testing.assert_allclose(logits, clf.predict(x), rtol=1e-5, atol=1e-6)
    emb_t = clf.get_activations(torch.from_numpy(x), "embedding", framework=True)
    assert isinstance(emb_t, torch.Tensor) and emb_t.shape == (10, clf.embedding_dim)
    assert clf.layer_names == ["embedding", "logits"]
    with pytest.raises(ValueError, match="embedding"):
        clf.get_activations(x, "conv1")
    with pytest.raises(ValueError, match="out of range"):
        clf.get_activations(x, 2)


def test_get_and_set_params(clf, small):
    params = clf.get_params()
    for key in (
        "prior",
        "lambda_d",
        "lambda_ce",
        "lambda_reg",
        "lr",
        "lr_ratios",
        "clip_value",
        "amp",
        "clip_values",
        "nb_classes",
        "input_shape",
    ):
        assert key in params
    assert params["lr_ratios"] == (1.0, 0.5, 0.05)
    clf.set_params(lr=0.2, lambda_reg=0.3, lambda_d=2.0, prior="uniform", clip_value=0.05, amp=True)
    assert (clf.lr, clf.lambda_reg, clf.lambda_d, clf.clip_value, clf.amp) == (
        0.2,
        0.3,
        2.0,
        0.05,
        True,
    )
    assert clf.prior == er_art.build_prior("uniform")
    lrs = [clf.optimizers.encoder, clf.optimizers.discriminator, clf.optimizers.classifier]
    assert [o.param_groups[0]["lr"] for o in lrs] == pytest.approx([0.2, 0.1, 0.01])
    clf.set_params(lr_ratios=(1.0, 1.0, 1.0))
    assert [o.param_groups[0]["lr"] for o in lrs] == pytest.approx([0.2, 0.2, 0.2])
    cfg = clf.config()
    assert cfg["prior"] == "uniform" and cfg["lr"] == 0.2 and cfg["lambda_reg"] == 0.3
    with pytest.raises(ValueError, match="lr"):
        clf.set_params(lr=0.0)
    with pytest.raises(ValueError, match="clip_value"):
        clf.set_params(clip_value=-1.0)
    x, y, _, _ = small
    clf.fit(x[:64], y[:64], batch_size=64, nb_epochs=1)  # still trains with the new settings


def test_constructor_rejects_bad_values():
    model = er_art.get_architecture("test_digits").build()
    with pytest.raises(TypeError, match="ERModel"):
        ERClassifier(nn.Linear(2, 2), input_shape=(1, 8, 8), nb_classes=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr"):
        ERClassifier(model, input_shape=(1, 8, 8), nb_classes=10, lr=0)
    with pytest.raises(ValueError, match="clip_value"):
        ERClassifier(model, input_shape=(1, 8, 8), nb_classes=10, clip_value=0)


def test_clone_for_refitting(trained_digits, small):
    x, y, x_test, _ = small
    clone = trained_digits.clone_for_refitting()
    assert isinstance(clone, ERClassifier)
    assert clone.config() == trained_digits.config()
    for name, net in nets(clone).items():
        original = dict(nets(trained_digits)[name].named_parameters())
        assert any(not torch.equal(p, original[k]) for k, p in net.named_parameters()), name
        assert all(p.data_ptr() != original[k].data_ptr() for k, p in net.named_parameters())
    before = {name: snapshot(net) for name, net in nets(clone).items()}
    clone.fit(x, y, batch_size=64, nb_epochs=1)
    for name, net in nets(clone).items():
        assert changed(before[name], net), name
    assert clone.predict(x_test).shape == (32, 10)


def test_reset_reinitialises_all_three_nets(clf, small):
    x, y, _, _ = small
    clf.fit(x, y, batch_size=64, nb_epochs=1)
    before = {name: snapshot(net) for name, net in nets(clf).items()}
    clf.reset()
    for name, net in nets(clf).items():
        assert changed(before[name], net), name
    assert all(
        not o.state
        for o in (clf.optimizers.encoder, clf.optimizers.discriminator, clf.optimizers.classifier)
    )
    clf.fit(x, y, batch_size=64, nb_epochs=1)


# ---------------------------------------------------------------- devices
def test_device_type_cpu(clf):
    assert clf.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in clf.er_model.parameters())
    assert clf.config()["device_type"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        er_art.build_classifier("test_digits", device_type="cuda")
    with pytest.raises(ValueError, match="accepted: auto, cpu, cuda, gpu"):
        er_art.build_classifier("test_digits", device_type="tpu")
    path = er_art.save_classifier(
        er_art.build_classifier("test_digits", device_type="cpu"), tmp_path / "c.pt"
    )
    with pytest.raises(ValueError, match="CUDA is not available"):
        er_art.load_classifier(path, device_type="cuda")
    assert er_art.load_classifier(path, device_type="auto").device.type == "cpu"


# ---------------------------------------------------------------- pickling
def art_data_files() -> set[str]:
    from art import config

    root = config.ART_DATA_PATH
    return {str(p) for p in Path(root).rglob("*")} if os.path.isdir(root) else set()


def test_pickle_round_trip_is_self_contained(trained_digits, digits):
    from art.estimators.classification import PyTorchClassifier

    # the stock estimator, for contrast, writes its weights into ART_DATA_PATH when pickled
    stock = PyTorchClassifier(
        copy.deepcopy(trained_digits.er_model),
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        device_type="cpu",
    )
    before = art_data_files()
    pickle.dumps(stock)
    assert art_data_files() != before, "the contrast case no longer writes files: revisit this test"
    before = art_data_files()
    blob = pickle.dumps(trained_digits)
    assert art_data_files() == before, "pickling an ERClassifier wrote into ART_DATA_PATH"
    clone = pickle.loads(blob)
    x = digits[2][:32]
    np.testing.assert_array_equal(clone.predict(x), trained_digits.predict(x))
    assert clone.config() == trained_digits.config()
    # the unpickled optimizers drive the unpickled nets
    enc_param = next(clone.er_model.encoder.parameters())
    assert clone.optimizers.encoder.param_groups[0]["params"][0] is enc_param
    before_w = enc_param.detach().clone()
    clone.fit(digits[0][:128], digits[1][:128], batch_size=64, nb_epochs=1)
    assert not torch.equal(before_w, enc_param)
    assert art_data_files() == before


def test_pickle_keeps_the_optimizer_state(trained_digits):
    clone = pickle.loads(pickle.dumps(trained_digits))
    for name in ("encoder", "discriminator", "classifier"):
        a = getattr(clone.optimizers, name).state_dict()
        b = getattr(trained_digits.optimizers, name).state_dict()
        assert a["param_groups"] == b["param_groups"] and a["state"]
        for k in b["state"]:
            assert torch.equal(a["state"][k]["exp_avg_sq"], b["state"][k]["exp_avg_sq"])


def test_dill_round_trip(trained_digits, digits):
    """ART's parallel AutoAttack ships the estimator to workers with ``dill``."""
    dill = pytest.importorskip("dill")
    clone = dill.loads(dill.dumps(trained_digits))
    np.testing.assert_array_equal(
        clone.predict(digits[2][:16]), trained_digits.predict(digits[2][:16])
    )


def test_repr_names_the_settings(clf):
    text = repr(clf)
    assert "test_digits" in text and "GaussianPrior" in text and "lambda_reg" in text
