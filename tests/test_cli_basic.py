"""The ``er-art`` root command: help, version, plugin listing and its errors."""

from __future__ import annotations

from er_art.cli.app import app
from typer.testing import CliRunner

import er_art

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "plugins" in result.output
    assert "ER-Classifier" in result.output


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "Usage" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"er-art {er_art.__version__}"


def test_plugins_lists_every_kind():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    for heading in ("architectures:", "priors:"):
        assert heading in result.output
    assert (
        "gaussian" in result.output
        and "er_art.plugins.priors.gaussian:GaussianPrior" in result.output
    )


def test_plugins_of_one_kind_with_a_pattern():
    result = runner.invoke(app, ["plugins", "architectures", "--pattern", "test_*"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()[1:]]
    assert names == ["test_cifar10", "test_cnn", "test_digits", "test_mnist"]


def test_plugins_with_no_match():
    result = runner.invoke(app, ["plugins", "priors", "-p", "zzz*"])
    assert result.exit_code == 0
    assert "no plugins match" in result.output


def test_unknown_kind_is_one_clear_line_and_exit_2():
    result = runner.invoke(app, ["plugins", "prior"])
    assert result.exit_code == 2
    assert "error:" in result.output and "priors" in result.output
    assert "Traceback" not in result.output
