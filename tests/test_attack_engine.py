"""Every attack through the attack engine gives the numbers it gave before the engine (issue 17).

tests/data/attack_reference.npz holds, for a fixed tiny CNN (its weights in the file) and seed,
each attack's ``x_adv`` and broken mask as ``benchmarks/attack_reference.py`` wrote them at commit
08c5cef, before ``er_art/attacks/engine.py`` took over the attacks' ``generate()`` loops. Here the
same cases run on today's code: the broken mask must be identical and ``x_adv`` within 1e-5.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "attack_reference.npz"


def _script():
    spec = importlib.util.spec_from_file_location(
        "attack_reference", REPO / "benchmarks" / "attack_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA) as data:
        ref = {k: data[k] for k in data.files}
    weights = {k.split("/", 1)[1]: v for k, v in ref.items() if k.startswith("weight/")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the threads the file was written with
    yield ref, SCRIPT.classifier(weights)
    torch.set_num_threads(threads)


def test_reference_file_records_its_commit(reference):
    ref, _ = reference
    assert str(ref["commit"]) == "08c5cef" == SCRIPT.COMMIT
    assert set(SCRIPT.CASES) == {k.split("/", 1)[1] for k in ref if k.startswith("broken/")}


@pytest.mark.parametrize("name", list(SCRIPT.CASES))
def test_attack_gives_its_reference_numbers(reference, name):
    ref, clf = reference
    x_adv, broken = SCRIPT.run_case(name, clf, ref["x"], ref["y"])
    np.testing.assert_array_equal(broken, ref[f"broken/{name}"])
    np.testing.assert_allclose(x_adv, ref[f"x_adv/{name}"], rtol=0, atol=1e-5)
