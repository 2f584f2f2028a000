"""Priors: shapes, devices, dtypes, moments and parameter checks."""

from __future__ import annotations

import pytest
import torch

from er_art.models.priors import Prior, build_prior
from er_art.registry import UnknownPluginError

N = 20000


@pytest.mark.parametrize("name", ["gaussian", "uniform", "cauchy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_shape_device_dtype(name, dtype):
    prior = build_prior(name)
    assert isinstance(prior, Prior) and prior.name == name
    z = prior.sample(7, 5, device="cpu", dtype=dtype)
    assert z.shape == (7, 5) and z.dtype == dtype and z.device.type == "cpu"
    assert torch.isfinite(z).all()


def test_generator_makes_samples_reproducible():
    prior = build_prior("gaussian")
    a = prior.sample(4, 3, generator=torch.Generator().manual_seed(5))
    b = prior.sample(4, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_gaussian_moments(sigma):
    z = build_prior("gaussian", sigma=sigma).sample(N, 4, dtype=torch.float64)
    assert abs(z.mean().item()) < 0.05 * sigma
    assert z.std().item() == pytest.approx(sigma, rel=0.05)


def test_uniform_default_range_is_minus3_to_3():
    prior = build_prior("uniform")
    assert prior.params() == {"low": -3.0, "high": 3.0}
    z = prior.sample(N, 4)
    assert z.min() >= -3.0 and z.max() <= 3.0
    assert z.min() < -2.9 and z.max() > 2.9
    assert abs(z.mean().item()) < 0.1
    assert z.var().item() == pytest.approx(36 / 12, rel=0.05)


def test_uniform_custom_range():
    z = build_prior("uniform", low=1.0, high=2.0).sample(1000, 2)
    assert z.min() >= 1.0 and z.max() <= 2.0


def test_cauchy_median_and_quartiles():
    z = build_prior("cauchy", loc=0.0, scale=2.0).sample(N, 4, dtype=torch.float64).flatten()
    assert abs(z.median().item()) < 0.1
    q1, q3 = torch.quantile(z[:100000], torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
    assert q1 == pytest.approx(-2.0, abs=0.2) and q3 == pytest.approx(2.0, abs=0.2)
    assert torch.isfinite(z).all()


@pytest.mark.parametrize(
    "name,params",
    [
        ("gaussian", {"sigma": 0.0}),
        ("gaussian", {"sigma": -1.0}),
        ("uniform", {"low": 3.0, "high": -3.0}),
        ("uniform", {"low": 1.0, "high": 1.0}),
        ("cauchy", {"scale": 0.0}),
        ("gaussian", {"mu": 1.0}),  # unknown parameter
    ],
)
def test_bad_params_raise(name, params):
    with pytest.raises(ValueError):
        build_prior(name, **params)


def test_unknown_prior_lists_the_accepted_ones():
    with pytest.raises(UnknownPluginError, match="cauchy"):
        build_prior("cauchyy")


def test_params_equality_and_repr():
    assert build_prior("cauchy", scale=2.0) == build_prior("cauchy", scale=2.0)
    assert build_prior("cauchy") != build_prior("gaussian")
    assert hash(build_prior("uniform")) == hash(build_prior("uniform"))
    assert "sigma=1.5" in repr(build_prior("gaussian", sigma=1.5))
    prior = build_prior("gaussian")
    assert build_prior(prior) is prior


def test_params_with_a_ready_made_prior_are_an_error():
    with pytest.raises(ValueError, match="ready-made"):
        build_prior(build_prior("gaussian"), sigma=2.0)
