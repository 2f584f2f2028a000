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


def test_training_pgd_without_a_random_start_is_arts_pgd(reference):
    """keep="last" (training, embed) is ART's ProjectedGradientDescent iteration, to the bit."""
    from art.attacks.evasion import ProjectedGradientDescent

    from er_art.attacks.pgd import PGD

    ref, clf = reference
    x, y = ref["x"], ref["y"]
    kwargs = {"eps": 0.1, "eps_step": 0.02, "max_iter": 5, "num_random_init": 0, "batch_size": 25}
    ours = PGD(clf, keep="last", **kwargs).generate(x, y)
    arts = ProjectedGradientDescent(clf, verbose=False, **kwargs).generate(x, np.eye(10)[y])
    np.testing.assert_array_equal(ours, arts)
    on_device = PGD(clf, keep="last", **kwargs).generate_on_device(
        torch.from_numpy(x), torch.from_numpy(y)
    )
    np.testing.assert_array_equal(on_device.numpy(), arts)


def test_the_engine_checks_inputs_and_labels_for_every_attack(reference):
    from er_art.attacks.cw_fast import CarliniL2Fast
    from er_art.attacks.fab import FABAttack
    from er_art.attacks.pgd import PGD
    from er_art.attacks.square import SquareAttackTorch

    ref, clf = reference
    x, y = ref["x"][:4], ref["y"][:4]
    for attack in (PGD(clf), FABAttack(clf), SquareAttackTorch(clf), CarliniL2Fast(clf)):
        with pytest.raises(ValueError, match="float array"):
            attack.generate(x.astype(np.int64), y)
        with pytest.raises(ValueError, match="4 examples but y has 3"):
            attack.generate(x, y[:3])
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
            attack.generate(x, np.full(4, 10))
        with pytest.raises(ValueError, match=r"\(N,\) or \(N, 10\)"):
            attack.generate(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="target labels"):
        PGD(clf, targeted=True).generate(x)
    with pytest.raises(ValueError, match="keep must be one of every, last"):
        PGD(clf, keep="first")
    with pytest.raises(ValueError, match="keep='last'"):
        PGD(clf, keep="last", norm=2)


def test_the_model_is_attacked_in_eval_mode_and_its_modes_restored(reference):
    from er_art.attacks.apgd import AutoPGD

    ref, clf = reference
    clf.model.train()
    seen = []
    handle = clf.model[0].register_forward_hook(lambda m, i, o: seen.append(m.training))
    try:
        AutoPGD(clf, eps=0.1, max_iter=2).generate(ref["x"][:4], ref["y"][:4])
    finally:
        handle.remove()
    assert seen and not any(seen) and clf.model.training
    clf.model.eval()


def test_arts_plain_pgd_runs_as_the_training_pgd_on_the_device(reference, monkeypatch):
    """The madry trainer hands ART's PGD (from AdversarialTrainerMadryPGD): it runs as build_pgd's
    PGD with its settings, the same numbers, nothing read back to the host."""
    from art.attacks.evasion import ProjectedGradientDescent

    from er_art.training.adversarial import build_pgd, generate_on_device

    ref, clf = reference
    x, y = torch.from_numpy(ref["x"]), torch.from_numpy(ref["y"])
    settings = {"eps": 0.1, "eps_step": 0.025, "max_iter": 5, "num_random_init": 1}
    torch.random.default_generator.manual_seed(3)
    ours = generate_on_device(build_pgd(clf, **settings), x, y)
    art_pgd = ProjectedGradientDescent(clf, verbose=False, **settings)

    def refuse(*args, **kwargs):
        raise AssertionError("the attack read a tensor back to the host")

    torch.random.default_generator.manual_seed(3)
    with monkeypatch.context() as patch:
        for name in ("numpy", "item", "tolist", "__bool__", "cpu"):
            patch.setattr(torch.Tensor, name, refuse)
        theirs = generate_on_device(art_pgd, x, y)
    assert torch.equal(ours, theirs)
