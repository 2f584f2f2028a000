"""The CUDA path (skipped without CUDA): building, Algorithm 1, PGD, amp, checkpoints across
devices."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)

import er_art

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
