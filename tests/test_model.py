"""ERModel and the architecture plugins: shapes, logits-only forward, D off the inference path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import er_art
from er_art.models.architectures import get_architecture
from er_art.models.er_model import Discriminator, ERModel

# name, input shape, embedding dim, classes
PAPER_ARCHS = [
    ("mnist", (1, 28, 28), 4, 10),
    ("cifar10", (3, 32, 32), 16, 10),
    ("stl10", (3, 96, 96), 16, 10),
    ("tinyimagenet", (3, 64, 64), 20, 200),
    ("digits", (1, 8, 8), 8, 10),
]
TINY_ARCHS = ["test_digits", "test_mnist", "test_cifar10", "digits"]


def count_calls(module: nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize(
    "name,shape,k,classes",
    [
        pytest.param(*a, marks=pytest.mark.slow) if a[0] in ("stl10", "cifar10") else a
        for a in PAPER_ARCHS
    ],
)
def test_paper_architectures_build_with_right_shapes(name, shape, k, classes):
    spec = get_architecture(name)
    assert tuple(spec.input_shape) == shape
    assert spec.embedding_dim == k and spec.nb_classes == classes and spec.kind == "er"
    model = spec.build()
    assert isinstance(model, ERModel) and model.embedding_dim == k
    model.eval()
    x = torch.rand(2, *shape)
    with torch.no_grad():
        logits = model(x)
        z = model.encode(x)
    assert isinstance(logits, torch.Tensor)  # logits only, no tuple
    assert logits.shape == (2, classes)
    assert z.shape == (2, k)
    assert model.discriminator(z).shape == (2, 1)


@pytest.mark.parametrize("name", TINY_ARCHS)
def test_forward_returns_only_logits_and_never_calls_the_discriminator(name):
    spec = get_architecture(name)
    model = spec.build(embedding_dim=5, nb_classes=7)
    d_calls = count_calls(model.discriminator)
    x = torch.rand(3, *spec.input_shape)
    for mode in (True, False):
        model.train(mode)
        out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (3, 7)
        assert model.encode(x).shape == (3, 5)
    assert d_calls[0] == 0


def test_predict_through_art_never_calls_the_discriminator(digits):
    clf = er_art.build_classifier("test_digits", device_type="cpu")
    d_calls = count_calls(clf.er_model.discriminator)
    enc_calls = count_calls(clf.er_model.encoder)
    x = digits[2][:10]
    assert clf.predict(x).shape == (10, 10)
    clf.loss_gradient(x, digits[3][:10])
    assert enc_calls[0] >= 2 and d_calls[0] == 0


@pytest.mark.parametrize("name", ["mnist", "digits", "test_mnist", "test_cifar10"])
def test_batch_of_one_in_eval_mode(name):
    spec = get_architecture(name)
    model = spec.build().eval()
    with torch.no_grad():
        logits = model(torch.rand(1, *spec.input_shape))
        z = model.encode(torch.rand(1, *spec.input_shape))
    assert logits.shape == (1, spec.nb_classes)
    assert z.shape == (1, spec.embedding_dim)


def test_batch_of_one_through_the_classifier():
    clf = er_art.build_classifier("mnist", device_type="cpu")
    x = torch.rand(1, 1, 28, 28).numpy()
    assert clf.predict(x).shape == (1, 10)
    assert clf.embed(x).shape == (1, 4)
    assert clf.loss_gradient(x, [3]).shape == (1, 1, 28, 28)


def test_discriminator_is_the_reference_critic():
    d = Discriminator(6)
    linears = [m for m in d if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 512)] + [(512, 512)] * 3 + [
        (512, 1)
    ]
    assert isinstance(d[-1], nn.LogSigmoid)
    assert (d(torch.randn(4, 6)) <= 0).all()  # log-sigmoid output


def test_embedding_dim_must_be_positive():
    with pytest.raises(ValueError, match="embedding_dim"):
        ERModel(nn.Identity(), nn.Identity(), 0)
    with pytest.raises(ValueError, match="embedding_dim"):
        er_art.build_classifier("test_digits", embedding_dim=-1, device_type="cpu")


def test_embedding_dim_and_classes_are_overridable():
    clf = er_art.build_classifier("test_mnist", embedding_dim=9, nb_classes=3, device_type="cpu")
    x = torch.rand(2, 1, 28, 28).numpy()
    assert clf.embed(x).shape == (2, 9)
    assert clf.predict(x).shape == (2, 3)


def test_wrong_input_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        er_art.build_classifier("mnist", input_shape=(3, 32, 32), device_type="cpu")


# ---------------------------------------------------------------- cifar10 init_weights
@pytest.fixture(scope="module")
def vgg_features_file(tmp_path_factory):
    from er_art.plugins.architectures.cifar10 import VGG19_CFG, vgg_features

    torch.manual_seed(1)
    features = vgg_features(VGG19_CFG)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_features.pt"
    # torchvision's full-model naming ("features.N.weight") is accepted too
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path, features.state_dict()


@pytest.mark.slow
def test_cifar10_init_weights_loads_vgg_features(vgg_features_file):
    path, expected = vgg_features_file
    model = get_architecture("cifar10").build(init_weights=str(path))
    got = model.encoder.features.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.slow
def test_cifar10_init_weights_rejects_a_wrong_file(tmp_path):
    wrong = tmp_path / "not_vgg.pt"
    torch.save(nn.Linear(3, 4).state_dict(), wrong)
    with pytest.raises(ValueError, match="not a VGG19 features state dict"):
        get_architecture("cifar10").build(init_weights=str(wrong))


@pytest.mark.parametrize("content", [b"not a torch file", "list"])
def test_cifar10_init_weights_rejects_unreadable_files(tmp_path, content):
    from er_art.plugins.architectures.cifar10 import VGG19_CFG, load_features, vgg_features

    path = tmp_path / "bad.pt"
    if content == "list":
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="VGG19 features state dict"):
        load_features(vgg_features(VGG19_CFG[:3]), str(path))
    with pytest.raises(FileNotFoundError):
        load_features(vgg_features(VGG19_CFG[:3]), str(tmp_path / "missing.pt"))


@pytest.mark.slow
def test_cifar10_reset_restores_the_init_weights(vgg_features_file):
    path, expected = vgg_features_file
    options = {"init_weights": str(path)}
    clf = er_art.build_classifier("cifar10", arch_options=options, device_type="cpu")
    with torch.no_grad():
        for p in clf.er_model.encoder.features.parameters():
            p.add_(1.0)
    head_before = [p.detach().clone() for p in clf.er_model.classifier.parameters()]
    clf.reset()
    got = clf.er_model.encoder.features.state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert all(
        not torch.equal(a, b)
        for a, b in zip(head_before, clf.er_model.classifier.parameters(), strict=True)
    )
