"""Plugin registry: entry-point discovery, listing without torch, errors, third-party plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

from er_art import registry
from er_art.registry import (
    KINDS,
    DuplicatePluginError,
    PluginInfo,
    PluginLoadError,
    UnknownPluginError,
    get_plugin,
    list_plugins,
    names,
)

BUILTIN_ARCHITECTURES = {
    "mnist",
    "cifar10",
    "stl10",
    "tinyimagenet",
    "digits",
    "test_digits",
    "test_mnist",
    "test_cifar10",
    "cnn",
    "vgg19",
    "test_cnn",
}


def test_builtins_are_listed_by_name():
    assert BUILTIN_ARCHITECTURES <= set(names("architectures"))
    assert {"gaussian", "uniform", "cauchy"} <= set(names("priors"))
    assert names("priors") == sorted(names("priors"))
    info = next(p for p in list_plugins("priors") if p.name == "gaussian")
    assert isinstance(info, PluginInfo)
    assert info.kind == "priors"
    assert info.value == "er_art.plugins.priors.gaussian:GaussianPrior"
    assert info.distribution == "er-art"


def test_list_all_kinds():
    kinds = {p.kind for p in list_plugins()}
    assert {"architectures", "priors"} <= kinds <= set(KINDS)


def test_wildcard_search():
    assert [p.name for p in list_plugins("architectures", "test_*")] == [
        "test_cifar10",
        "test_cnn",
        "test_digits",
        "test_mnist",
    ]
    assert [p.name for p in list_plugins("priors", "*ss*")] == ["gaussian"]
    assert list_plugins("priors", "nothing-matches-*") == []


def test_builtins_come_from_entry_points_one_per_item():
    for kind in ("architectures", "priors"):
        eps = list(metadata.entry_points(group=f"er_art.{kind}"))
        ep_names = [ep.name for ep in eps]
        assert set(names(kind)) == set(ep_names)
        # one entry point per item: each names a single module attribute
        assert all(":" in ep.value and "," not in ep.value for ep in eps)


def test_get_plugin_loads_the_registered_object():
    from er_art.models.architectures import Architecture
    from er_art.models.priors import Prior

    assert issubclass(get_plugin("priors", "uniform"), Prior)
    arch = get_plugin("architectures", "mnist")
    assert isinstance(arch, Architecture)
    assert arch.name == "mnist"


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownPluginError) as err:
        get_plugin("priors", "gausian")
    msg = str(err.value)
    assert "gausian" in msg and "'gaussian'" in msg and "uniform" in msg
    assert isinstance(err.value, ValueError)


def test_unknown_kind_is_an_error():
    with pytest.raises(UnknownPluginError, match="architectures"):
        list_plugins("architecture")
    with pytest.raises(UnknownPluginError):
        get_plugin("nope", "gaussian")


def test_listing_imports_no_torch():
    code = textwrap.dedent(
        """
        import sys
        import er_art.registry
        found = er_art.registry.list_plugins()
        assert found, "no plugins found"
        assert 'torch' not in sys.modules, 'listing imported torch'
        assert 'art' not in sys.modules, 'listing imported ART'
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_plugins_imports_no_torch():
    code = textwrap.dedent(
        """
        import sys
        from typer.testing import CliRunner
        from er_art.cli.app import app
        result = CliRunner().invoke(app, ["plugins"])
        assert result.exit_code == 0, result.output
        assert "gaussian" in result.output
        heavy = [m for m in ("torch", "art") if m in sys.modules]
        assert not heavy, f"er-art plugins imported {heavy}"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------- faked third-party packages
FAKE_MODULE = """
import torch
from torch import nn

from er_art.models.architectures import Architecture
from er_art.models.er_model import ERModel
from er_art.models.priors import Prior


class LaplacePrior(Prior):
    name = "laplace"

    def __init__(self, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError("scale must be > 0")
        self.scale = float(scale)

    def params(self):
        return {"scale": self.scale}

    def sample(self, n, dim, device="cpu", dtype=torch.float32, generator=None):
        loc, scale = torch.tensor(0.0, dtype=dtype), torch.tensor(self.scale, dtype=dtype)
        dist = torch.distributions.Laplace(loc, scale)
        return dist.sample((n, dim)).to(device)


def build(embedding_dim=3, nb_classes=4):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, embedding_dim))
    head = nn.Linear(embedding_dim, nb_classes)
    return ERModel(encoder, head, embedding_dim)


ARCH = Architecture("fake_arch", build, (2, 5, 5), 4, 3, defaults={"lr": 1e-2})
"""


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """A third-party package ``fake_er_plugins`` registering a prior and an architecture."""
    (tmp_path / "fake_er_plugins.py").write_text(FAKE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry._entry_points
    extra = {
        "er_art.priors": [
            metadata.EntryPoint("laplace", "fake_er_plugins:LaplacePrior", "er_art.priors")
        ],
        "er_art.architectures": [
            metadata.EntryPoint("fake_arch", "fake_er_plugins:ARCH", "er_art.architectures")
        ],
    }

    def fake_entry_points(group):
        return real(group) + extra.get(group, [])

    monkeypatch.setattr(registry, "_entry_points", fake_entry_points)
    registry.clear_cache()
    yield extra
    monkeypatch.undo()
    registry.clear_cache()
    sys.modules.pop("fake_er_plugins", None)


def test_third_party_plugins_are_found_and_usable(fake_plugins):
    import numpy as np

    import er_art

    assert "laplace" in names("priors")
    assert "fake_arch" in names("architectures")
    assert "gaussian" in names("priors")  # built-ins still there
    info = next(p for p in list_plugins("priors", "lap*"))
    assert info.value == "fake_er_plugins:LaplacePrior"

    prior = er_art.build_prior("laplace", scale=2.0)
    assert prior.sample(5, 3).shape == (5, 3)

    clf = er_art.build_classifier(
        "fake_arch", prior="laplace", prior_params={"scale": 0.5}, device_type="cpu"
    )
    assert clf.nb_classes == 4 and clf.embedding_dim == 3
    assert clf.config()["prior"] == "laplace" and clf.config()["prior_params"] == {"scale": 0.5}
    x = np.random.rand(16, 2, 5, 5).astype(np.float32)
    y = np.random.randint(0, 4, 16)
    clf.fit(x, y, batch_size=8, nb_epochs=1)
    assert clf.predict(x).shape == (16, 4)


def test_clear_cache_forgets_uninstalled_plugins(monkeypatch):
    real = registry._entry_points
    extra = metadata.EntryPoint("ghost", "nowhere:Ghost", "er_art.priors")
    monkeypatch.setattr(
        registry, "_entry_points", lambda g: real(g) + ([extra] if g == "er_art.priors" else [])
    )
    registry.clear_cache()
    assert "ghost" in names("priors")
    monkeypatch.undo()
    assert "ghost" in names("priors")  # cached until cleared
    registry.clear_cache()
    assert "ghost" not in names("priors")


def test_duplicate_names_with_different_values_are_an_error(monkeypatch):
    eps = [
        metadata.EntryPoint("dup", "pkg_a.priors:Dup", "er_art.priors"),
        metadata.EntryPoint("dup", "pkg_b.priors:Dup", "er_art.priors"),
    ]
    monkeypatch.setattr(
        registry, "_entry_points", lambda group: eps if group == "er_art.priors" else []
    )
    registry.clear_cache()
    try:
        with pytest.raises(DuplicatePluginError, match="dup.*registered twice"):
            list_plugins("priors")
    finally:
        monkeypatch.undo()
        registry.clear_cache()


def test_same_entry_point_seen_twice_is_not_a_duplicate(monkeypatch):
    ep = metadata.EntryPoint(
        "gaussian", "er_art.plugins.priors.gaussian:GaussianPrior", "er_art.priors"
    )
    monkeypatch.setattr(
        registry, "_entry_points", lambda group: [ep, ep] if group == "er_art.priors" else []
    )
    registry.clear_cache()
    try:
        assert names("priors") == ["gaussian"]
    finally:
        monkeypatch.undo()
        registry.clear_cache()


@pytest.mark.parametrize(
    "value,message",
    [
        ("no_such_module_xyz:Thing", "no_such_module_xyz"),
        ("er_art.registry:NoSuchAttr", "NoSuchAttr"),
    ],
)
def test_a_broken_plugin_fails_with_a_clear_error(monkeypatch, value, message):
    real = registry._entry_points
    broken = metadata.EntryPoint("broken", value, "er_art.priors")
    monkeypatch.setattr(
        registry, "_entry_points", lambda g: real(g) + ([broken] if g == "er_art.priors" else [])
    )
    registry.clear_cache()
    try:
        assert "broken" in names("priors")  # listing still works: nothing is imported
        with pytest.raises(PluginLoadError, match=f"'broken'.*failed to load.*{message}"):
            get_plugin("priors", "broken")
        assert get_plugin("priors", "gaussian") is not None
    finally:
        monkeypatch.undo()
        registry.clear_cache()
