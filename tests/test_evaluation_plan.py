"""er_art.evaluation's units: seeds, restarts, the store, resuming, suites, checks at every eps."""

from __future__ import annotations

import json

import numpy as np
import pytest

import er_art.evaluation.plan as plan_module
from er_art.evaluation import (
    AttackOutcome,
    AttackRun,
    EvaluationStore,
    Suite,
    evaluate_suite,
    fast_suite,
    standard_suite,
)
from er_art.evaluation.checks import (
    check_iterative_beats_single_step,
    check_more_iterations,
    check_whitebox_beats_blackbox,
)
from er_art.evaluation.running import run_attack, unit_seed
from er_art.evaluation.stopping import RestartEvidence
from er_art.evaluation.store import ATTACKS_VERSION, MANIFEST
from er_art.evaluation.suites import CASCADE_PATIENCE

CHEAP = fast_suite(("pgd", "fgsm", "square"), max_iter=3, restarts=2, square_queries=10)


@pytest.fixture(scope="module")
def sample(digits):
    return digits[2][:40], digits[3][:40]


# ---------------------------------------------------------------------------- seeds, restarts
def test_unit_seeds_are_per_attack_and_eps_and_stable():
    seeds = {unit_seed(0, e, k) for e in (0.1, 0.2) for k in ("pgd", "pgd-x2")}
    assert len(seeds) == 4
    assert unit_seed(0, 0.1, "pgd") == unit_seed(0, 0.1000000000001, "pgd")
    assert unit_seed(1, 0.1, "pgd") != unit_seed(0, 0.1, "pgd")


def test_restarts_attack_only_what_earlier_restarts_left_robust(
    trained_digits, sample, monkeypatch
):
    from er_art.attacks.pgd import PGD

    x, y = sample
    sizes: list[int] = []
    original = PGD.generate

    def counting(self, x, y=None, **kwargs):
        sizes.append(len(x))
        return original(self, x, y, **kwargs)

    monkeypatch.setattr(PGD, "generate", counting)
    (one,) = run_attack(trained_digits, x, y, "pgd", [0.1], max_iter=3, restarts=1, batch_size=64)
    first = sizes[:]
    sizes.clear()
    (four,) = run_attack(trained_digits, x, y, "pgd", [0.1], max_iter=3, restarts=4, batch_size=64)
    assert 1 < len(sizes) <= 4 and sizes == sorted(sizes, reverse=True)  # fewer left each time
    assert sizes[-1] < sizes[0]
    assert sizes[0] == first[0] == int(one.clean_correct.sum())  # misclassified: never attacked
    assert four.accuracy <= one.accuracy and four.settings["restarts"] == 4


# ---------------------------------------------------------------------------- the store
def outcome(n: int = 5) -> AttackOutcome:
    rng = np.random.default_rng(0)
    return AttackOutcome(
        method="pgd",
        eps=0.1,
        norm="inf",
        clean_correct=rng.random(n) > 0.2,
        robust=rng.random(n) > 0.5,
        perturbation=rng.random(n) / 10,
        time_s=1.5,
        settings={"max_iter": 3, "art_params": {"batch_size": 4}},
    )


def test_store_round_trips_outcomes_and_writes_its_manifest_with_the_first_unit(tmp_path):
    store = EvaluationStore.open(tmp_path / "e", {"eps": [0.1], "seed": 0}, resume=False)
    assert not (tmp_path / "e" / MANIFEST).exists()  # nothing written before any work is done
    assert store.load("run/a", "pgd", 0.1) is None
    saved = outcome()
    path = store.save("run/a", "pgd", 0.1, saved)
    assert path.is_file() and (tmp_path / "e" / MANIFEST).is_file()
    loaded = store.load("run/a", "pgd", 0.1)
    for field in ("clean_correct", "robust", "perturbation"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(saved, field))
    assert loaded.settings == saved.settings and loaded.eps == saved.eps
    assert store.finished() == [path]


def test_store_refuses_other_options_and_unasked_resumption(tmp_path):
    options = {"eps": [0.1, 0.2], "max_iter": None, "seed": 0}
    EvaluationStore.open(tmp_path, options, resume=False).save("r", "pgd", 0.1, outcome())
    with pytest.raises(ValueError, match="already holds an evaluation; add --resume"):
        EvaluationStore.open(tmp_path, options, resume=False)
    with pytest.raises(ValueError, match=r"started with max_iter=None, not 80") as err:
        EvaluationStore.open(tmp_path, {**options, "max_iter": 80}, resume=True)
    assert "\n" not in str(err.value)
    resumed = EvaluationStore.open(tmp_path, dict(options), resume=True)
    assert resumed.load("r", "pgd", 0.1) is not None


def test_a_store_from_other_attack_code_is_not_resumed(tmp_path):
    """A store written before er-art's PyTorch attacks (no attacks_version in its manifest) holds
    numbers from ART's classes: resuming into it is refused in one sentence."""
    import json

    options = {"eps": [0.1], "seed": 0}
    EvaluationStore.open(tmp_path, options, resume=False).save("r", "pgd", 0.1, outcome())
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["options"]["attacks_version"] == ATTACKS_VERSION
    del manifest["options"]["attacks_version"]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="another version of er-art's attacks") as err:
        EvaluationStore.open(tmp_path, options, resume=True)
    assert "\n" not in str(err.value)
    assert f"attacks_version 1, now {ATTACKS_VERSION}" in str(err.value)


def test_an_interrupted_evaluation_resumes_to_the_same_numbers(
    trained_digits, sample, tmp_path, monkeypatch
):
    x, y = sample
    options = {"suite": "cheap"}
    whole = evaluate_suite(trained_digits, x, y, [0.1, 0.2], CHEAP, seed=3)
    store = EvaluationStore.open(tmp_path, options, resume=False)
    evaluate_suite(trained_digits, x, y, [0.1, 0.2], CHEAP, seed=3, store=store)
    units = sorted((tmp_path / "units").glob("*/*.json"))
    for path in units[::2]:  # "interrupted": half of the units never finished
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in units[1::2]}

    calls: list[str] = []
    original = plan_module.run_attack

    def counting(*args, **kwargs):
        calls.append(kwargs["key"])
        return original(*args, **kwargs)

    monkeypatch.setattr(plan_module, "run_attack", counting)
    store = EvaluationStore.open(tmp_path, options, resume=True)
    resumed = evaluate_suite(trained_digits, x, y, [0.1, 0.2], CHEAP, seed=3, store=store)
    assert len(calls) == len(units[::2])  # only the missing units ran again
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    for eps in (0.1, 0.2):
        a, b = whole.by_eps[eps], resumed.by_eps[eps]
        assert [o.method for o in a] == [o.method for o in b]
        for oa, ob in zip(a, b, strict=True):
            np.testing.assert_array_equal(oa.robust, ob.robust)
    assert [c.as_dict() for c in whole.checks] == [c.as_dict() for c in resumed.checks]


# ---------------------------------------------------------------------------- suites
def test_standard_suite_has_autoattacks_published_parameters():
    suite = standard_suite(10)
    assert [r.key for r in suite.runs] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert suite.cascade and suite.primary == "apgd-ce"
    apgd_ce, apgd_t, fab_t, square = suite.runs
    assert (apgd_ce.max_iter, apgd_ce.restarts) == (100, 1)
    assert (apgd_t.max_iter, apgd_t.restarts, apgd_t.params["n_target_classes"]) == (100, 1, 9)
    assert (fab_t.max_iter, fab_t.restarts, fab_t.params["n_target_classes"]) == (100, 1, 9)
    assert (square.max_iter, square.restarts, square.params["p_init"]) == (5000, 1, 0.8)
    assert standard_suite(5).runs[1].params["n_target_classes"] == 4  # min(9, classes - 1)


def test_a_cascade_attacks_only_what_is_still_robust(trained_digits, sample):
    x, y = sample
    cascade = Suite(
        "cheap-standard",
        (
            AttackRun("apgd-ce", "apgd-ce", max_iter=3, restarts=1),
            AttackRun("apgd-t", "apgd-t", max_iter=2, restarts=1, params={"n_target_classes": 3}),
            AttackRun("fab-t", "fab-t", max_iter=3, restarts=1, params={"n_target_classes": 3}),
            AttackRun("square", "square", max_iter=20, restarts=1),
        ),
        cascade=True,
        primary="apgd-ce",
    )
    result = evaluate_suite(trained_digits, x, y, [0.15], cascade, checks=False)
    outs = result.by_eps[0.15]
    assert [o.method for o in outs] == ["apgd-ce", "apgd-t", "fab-t", "square", "worst-case"]
    for earlier, later in zip(outs, outs[1:4], strict=False):
        assert not (later.robust & ~earlier.robust).any()  # robust sets are nested
    np.testing.assert_array_equal(outs[-1].robust, outs[3].robust)


def test_fast_suite_settings():
    suite = fast_suite(max_iter=7, restarts=3, square_queries=50)
    runs = {r.key: r for r in (*suite.runs, *suite.independent)}
    # a cascade, the primary first; FGSM (the single-step reference) on every example
    assert suite.cascade and [r.key for r in suite.runs] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert [r.key for r in suite.independent] == ["fgsm"] and suite.primary == "apgd-ce"
    assert runs["apgd-ce"].max_iter == 7 and runs["apgd-ce"].restarts == 3
    assert runs["fgsm"].max_iter is None and runs["fgsm"].restarts is None  # FGSM stays FGSM
    assert runs["square"].max_iter == 50
    doubled = runs["apgd-ce"].doubled()
    assert (doubled.key, doubled.max_iter, doubled.restarts) == ("apgd-ce-x2", 14, 6)
    # in a cascade the restarting attacks stop after CASCADE_PATIENCE restarts that break nothing;
    # alone, after their own patience
    defaults = fast_suite().runs[0]
    spec = defaults.spec
    assert defaults.resolved_patience() == CASCADE_PATIENCE < spec.patience
    assert fast_suite(("apgd-ce",)).runs[0].resolved_patience() == spec.patience
    # the convergence check: twice the steps; the restarts keep the stopping rule
    check_run = defaults.doubled_steps()
    assert check_run.max_iter == 2 * spec.defaults["max_iter"] and check_run.restarts is None
    assert check_run.resolved_patience() == CASCADE_PATIENCE
    # a fixed count (restarts no more than the patience): its restarts double instead
    fixed = fast_suite(restarts=2).runs[0]
    assert fixed.resolved_patience() is None and fixed.doubled_steps().restarts == 4
    assert [r.key for r in fast_suite(("square", "pgd")).runs] == ["pgd", "square"]
    with pytest.raises(ValueError, match="norm"):
        fast_suite(("pgd", "cw"))


# ---------------------------------------------------------------------------- checks
def test_comparisons_at_or_below_chance_are_uninformative_never_pass():
    for check in (
        check_more_iterations(0.05, 0.02, 100, eps=0.3, chance=0.1),
        check_iterative_beats_single_step(0.0, 0.1, 100, eps=0.3, chance=0.1),
        check_whitebox_beats_blackbox(0.0, 0.0, 100, eps=0.3, chance=0.1),
    ):
        assert check.status == "UNINFORMATIVE" and check.passed is None and not check.failed
        assert check.values["eps"] == 0.3 and "chance" in check.message
    assert check_iterative_beats_single_step(0.05, 0.3, 100, eps=0.3, chance=0.1).status == "PASS"


def test_checks_run_at_every_eps_and_square_meets_the_strongest_white_box(trained_digits, sample):
    x, y = sample
    result = evaluate_suite(trained_digits, x, y, [0.0, 0.1, 0.2], CHEAP)
    by_name: dict[str, list[float]] = {}
    for c in result.checks:
        by_name.setdefault(c.name, []).append(c.values["eps"])
    assert by_name["deterministic predictions"] == [0.0]
    assert by_name["chance at full range"] == [1.0]
    for name in (
        "more iterations and restarts do not help",
        "iterative at least as strong as single-step",
        "white-box at least as strong as black-box",
    ):
        assert by_name[name] == [0.1, 0.2]  # no checks at eps = 0: nothing may change there
    for eps in (0.1, 0.2):
        outs = result.by_eps[eps]
        whitebox = [o for o in outs if o.settings.get("threat") == "white-box"]
        square = next(
            c for c in result.checks if c.name.startswith("white-box") and c.values["eps"] == eps
        )
        # the cascade: Square after PGD, compared with what PGD left robust
        pgd = next(o for o in outs if o.method == "pgd")
        assert square.values["whitebox"] == pgd.accuracy >= min(o.accuracy for o in whitebox)
        assert outs[-1].method == "worst-case"
        assert "pgd-x2" in [o.method for o in outs]  # the checks' attacks count in the worst case
        assert outs[-1].accuracy <= min(o.accuracy for o in outs[:-1])
    json.dumps([c.as_dict() for c in result.checks])


# ---------------------------------------------------------------------------- cascade, convergence
def test_a_cascade_gives_the_worst_case_of_the_same_attacks_run_separately(trained_digits, digits):
    """Per example, the worst case of a cascade (each attack on what the earlier ones left robust)
    equals the worst case of the same attacks each run on every example. Shown with attacks whose
    outcome for an example depends on that example alone (BIM and PGD from x, FGSM): an attack
    with random starts draws them per chunk of examples, and a cascade hands it other chunks, so
    there the equality holds in distribution, not example by example."""
    x, y = digits[2][:120], digits[3][:120]
    runs = (
        AttackRun("fgsm", "fgsm"),
        AttackRun("bim", "bim", max_iter=5),
        AttackRun("pgd", "pgd", max_iter=5, restarts=0),
    )
    together = evaluate_suite(
        trained_digits, x, y, [0.1, 0.15], Suite("c", runs, cascade=True), checks=False
    )
    apart = evaluate_suite(
        trained_digits, x, y, [0.1, 0.15], Suite("s", runs, cascade=False), checks=False
    )
    for eps in (0.1, 0.15):
        cascade, separate = together.worst_case(eps), apart.worst_case(eps)
        np.testing.assert_array_equal(cascade.robust, separate.robust)
        assert 0 < cascade.robust.sum() < cascade.clean_correct.sum()  # a case worth comparing
        # later attacks of the cascade saw only the survivors: never more robust than before
        first, *later = together.by_eps[eps][:-1]
        for outcome in later:
            assert not (outcome.robust & ~first.robust).any()


class Totals:
    """A progress hook that records how many examples (times restarts) each unit attacked."""

    def __init__(self):
        self.started = []

    def start(self, description, total):
        self.started.append((description, total))

    def advance(self, n):
        pass

    def end(self):
        pass


def test_the_convergence_check_attacks_only_what_every_attack_left_robust(trained_digits, sample):
    x, y = sample
    suite = fast_suite(
        ("pgd", "square", "fgsm"), max_iter=3, restarts=6, square_queries=10, patience=2
    )
    hook = Totals()
    result = evaluate_suite(trained_digits, x, y, [0.1], suite, progress=hook)
    outs = {o.method: o for o in result.by_eps[0.1]}
    before = outs["pgd"].robust & outs["square"].robust & outs["fgsm"].robust
    (total,) = [t for d, t in hook.started if "pgd-x2 eps=0.1" in d]
    assert total == before.sum() * 6  # the survivors, times the restart cap (the same rule)
    doubled = outs["pgd-x2"]
    assert doubled.settings["max_iter"] == 6 and not (doubled.robust & ~before).any()
    check = next(c for c in result.checks if c.name.startswith("more iterations"))
    evidence = RestartEvidence.from_settings(outs["pgd"].settings)
    assert check.values["restarts_run"] == evidence.restarts_run
    assert check.values["stopped_by"] == evidence.stopped_by
    assert check.values["accuracy"] == pytest.approx(before.mean())
    assert check.values["accuracy_stronger"] == pytest.approx(doubled.accuracy)
