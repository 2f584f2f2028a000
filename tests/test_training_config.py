"""The training config is resolved once per run, and its dataset looked up once."""

from __future__ import annotations

import collections
import dataclasses

import pytest
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art.training.config
import er_art.training.loop
import er_art.training.run
from er_art.training.run import TrainingConfig, resolved, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(arch="test_digits", epochs=1, limit=200, batch_size=32, device="cpu", threads=1)


@pytest.fixture
def calls(monkeypatch) -> collections.Counter:
    """Counts of ``resolve_config`` and of the dataset lookup, under every name they are bound to
    (the CLI calls ``er_art.training.run.resolve_config``)."""
    counts: collections.Counter = collections.Counter()
    real_resolve = er_art.training.config.resolve_config
    real_lookup = er_art.training.config.get_dataset

    def counting_resolve(config):
        counts["resolve_config"] += 1
        return real_resolve(config)

    def counting_lookup(name):
        counts["dataset lookup"] += 1
        return real_lookup(name)

    for module in (er_art.training.config, er_art.training.run):
        monkeypatch.setattr(module, "resolve_config", counting_resolve)
    # dataset_spec (wherever it is imported) looks the dataset up through this name
    monkeypatch.setattr(er_art.training.config, "get_dataset", counting_lookup)
    assert er_art.training.loop.dataset_spec is er_art.training.config.dataset_spec
    return counts


def test_train_resolves_once(calls, tmp_path):
    train(TrainingConfig(**TINY, max_iter=2), tmp_path / "run", latest_root=None)
    assert calls == {"resolve_config": 1, "dataset lookup": 1}


def test_train_takes_a_resolved_config_as_it_is(calls, tmp_path):
    cfg = er_art.training.run.resolve_config(TrainingConfig(**TINY, max_iter=2))
    result = train(cfg, tmp_path / "run", latest_root=None)
    assert calls == {"resolve_config": 1, "dataset lookup": 1}
    assert result.config is cfg


def test_cli_train_resolves_once(calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    result = CliRunner().invoke(app, ["train", *args, "--max-iter", "2", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert calls == {"resolve_config": 1, "dataset lookup": 1}
    calls.clear()
    result = CliRunner().invoke(app, ["train", "--resume", "--out", "run", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert calls == {"resolve_config": 1, "dataset lookup": 1}


def test_a_changed_resolved_config_is_resolved_again(calls):
    cfg = er_art.training.run.resolve_config(TrainingConfig(dataset="digits", trainer="plain"))
    same, spec = resolved(cfg)
    assert same is cfg and spec.name == "digits" and calls["resolve_config"] == 1
    cfg.epochs = -1  # changed after resolving: checked again
    with pytest.raises(ValueError, match="epochs"):
        resolved(cfg)
    copy = dataclasses.replace(cfg, epochs=3, eps=0.1)  # a copy is a new config: resolved again
    again, _ = resolved(copy)
    assert again is not copy and again.eps is None and again.epochs == 3
    assert calls["resolve_config"] == 3
    assert "_er_art_resolved" not in cfg.to_dict()  # the memory is not a field of run.json
