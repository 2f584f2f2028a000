"""The wheel holds one top-level package, ``er_art``, with the plugins and the CLI inside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_only_er_art_at_the_top(tmp_path):
    # Build from a copy so the shared checkout gets no build/ or egg-info directories.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("er_art", "plugins", "cli"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("er_art-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"er_art"}, (
        f"unexpected top-level names: {sorted(top - dist_info - {'er_art'})}"
    )
    assert len(dist_info) == 1
    for required in (
        "er_art/__init__.py",
        "er_art/models/er_classifier.py",
        "er_art/plugins/__init__.py",
        "er_art/plugins/architectures/mnist.py",
        "er_art/plugins/priors/gaussian.py",
        "er_art/cli/__init__.py",
        "er_art/cli/app.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    assert not any(n.startswith(("tests/", "plugins/", "cli/", "benchmarks/")) for n in names)
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert "[er_art.architectures]" in entry_points and "[er_art.priors]" in entry_points
    assert "er-art = " in entry_points.replace("er-art=", "er-art = ")
