"""``er-art reproduce`` (er_art.reproduce): the methods table and the paper's numbers, the plan and
its deviations, reuse and resumption, third-party trainers, the files, the CLI's errors; one
slow end-to-end run of every method on digits."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from er_art.cli.app import app
from typer.testing import CliRunner

from er_art import registry
from er_art.reproduce import (
    COLUMNS,
    METHODS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
    SCALES,
    Method,
    ReproduceCallbacks,
    build_plan,
    paper_value,
    reproduce,
    third_party_trainers,
)
from er_art.reproduce import protocols as reproduce_protocols
from er_art.reproduce import runs as reproduce_runs
from er_art.reproduce.plan import candidate_methods
from er_art.runs import read_run
from er_art.training.run import TrainingCallbacks, is_finished

PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "paper" / "er-classifier-paper.txt"
runner = CliRunner()

# Every code path at a fraction of smoke's cost (the train options are forced on every method).
TINY = dataclasses.replace(
    SCALES["smoke"],
    eps_grid={"digits": (0.0, 0.1)},
    n_paper=40,
    n_cw=20,
    worst_eps={"digits": (0.0, 0.1)},
    n_worst=20,
    suite_restarts=1,
    suite_max_iter=3,
    square_queries=10,
    n_adaptive=20,
    eot=2,
    adaptive_restarts=1,
    defense_gan={"projection_steps": 3, "restarts": 1},
    n_defense_gan=20,
    intrinsic_n=100,
)
TINY_TRAIN = {"epochs": 1, "limit": 150}


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def read_table(out: Path) -> list[dict[str, str]]:
    with open(out / "table.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


def fake_trainer(monkeypatch, name: str, spec) -> None:
    """Register ``spec`` as a third-party package's trainer ``name`` (a faked entry point)."""
    real = registry._entry_points

    def fake(group: str):
        found = real(group)
        if group == "er_art.trainers":
            found.append(
                SimpleNamespace(
                    name=name,
                    value=f"third_party:{name}",
                    dist=SimpleNamespace(name="third-party"),
                    load=lambda: spec,
                )
            )
        return found

    monkeypatch.setattr(registry, "_entry_points", fake)
    registry.clear_cache()


@pytest.fixture
def third_party(monkeypatch):
    from er_art.plugins.trainers.plain import make_step

    from er_art.training.trainers import TrainerSpec

    spec = TrainerSpec("my-trainer", "baseline", "a third party's CE trainer", make_step)
    fake_trainer(monkeypatch, "my-trainer", spec)
    yield spec
    monkeypatch.undo()
    registry.clear_cache()


# ---------------------------------------------------------------------------- the tables
def _paper_rows() -> list[list[str]]:
    if not PAPER_TEXT.is_file():
        pytest.skip("../shared/paper is not present")
    return [line.split("\t") for line in PAPER_TEXT.read_text().splitlines()]


def test_table1_numbers_are_the_papers():
    names = {
        "MNIST": "mnist",
        "CIFAR10": "cifar10",
        "STL10": "stl10",
        "Tiny Imagenet": "tinyimagenet",
    }
    found: dict[str, dict[str, list[float]]] = {}
    dataset = None
    for cells in _paper_rows():
        cells = [c.strip() for c in cells]
        if cells and cells[0] in names:
            dataset = names[cells[0]]
        numbers = [float(c) for c in cells if re.fullmatch(r"\d+\.\d", c)]
        method = {"Madry's Adv": "madry", "ER-Classifier": "er-pgd"}.get(
            next((c for c in cells if c in ("Madry's Adv", "ER-Classifier")), "")
        )
        if dataset and method and len(numbers) == 5:
            found.setdefault(dataset, {})[method] = numbers
    assert set(found) == set(PAPER_TABLE1)
    for dataset, methods in PAPER_TABLE1.items():
        for method, by_eps in methods.items():
            assert [by_eps[e] for e in sorted(by_eps)] == found[dataset][method], (dataset, method)


def test_tables_2_and_3_are_the_papers():
    rows = _paper_rows()
    table2 = {
        c[0].strip(): float(c[1])
        for c in rows
        if len(c) == 2 and re.fullmatch(r"\d+\.\d", c[1].strip())
    }
    assert table2["Defense-GAN"] == PAPER_TABLE2["mnist"]["defense-gan"]
    assert table2["ER-Classifier"] == PAPER_TABLE2["mnist"]["er-pgd"]
    names = {
        "MNIST": "mnist",
        "CIFAR10": "cifar10",
        "STL10": "stl10",
        "Tiny Imagenet": "tinyimagenet",
    }
    for cells in rows:
        if len(cells) == 4 and cells[0] in names and "times" in cells[1]:
            paper = PAPER_TABLE3[names[cells[0]]]
            assert (int(cells[2]), int(cells[3])) == (
                paper["intrinsic_dim"],
                paper["embedding_dim"],
            )
            dims = re.findall(r"\d+", cells[1])
            assert "x".join(dims) == paper["data_dim"]


def test_paper_value_lookup():
    assert paper_value("mnist", "madry", 0.1) == 97.5
    assert paper_value("cifar10", "er-pgd", 0.045) == 35.8
    assert paper_value("tinyimagenet", "madry", 0.004) == 48.6
    assert paper_value("mnist", "defense-gan", "l2:0.005") == 55.0
    assert paper_value("mnist", "er-pgd", "l2:0.005") == 99.1
    assert paper_value("mnist", "plain", 0.1) is None  # Figure 2 only, no number
    assert paper_value("mnist", "madry", 0.125) is None
    assert paper_value("digits", "er-pgd", 0.1) is None


def test_methods_table_has_every_method_of_figures_2_and_3():
    assert {"plain", "madry", "rse", "ecla", "vae-cla", "er-minus", "er-pgd", "defense-gan"} <= set(
        METHODS
    )
    fig2 = {m.name for m in METHODS.values() if 2 in m.figures}
    fig3 = {m.name for m in METHODS.values() if 3 in m.figures}
    assert fig2 == {"plain", "madry", "rse", "er-minus", "er-pgd"}
    assert {"ecla", "vae-cla", "er-minus"} <= fig3
    assert "ecla-pgd" in METHODS and "ecla-pgd" in fig3  # the control, next to er-pgd
    assert METHODS["rse"].adaptive == "eot" and METHODS["defense-gan"].adaptive == "defense-gan"
    smoke = {m.name for m in candidate_methods("digits", SCALES["smoke"])}
    assert set(METHODS) <= smoke  # every code path at smoke scale, Defense-GAN included
    assert "defense-gan" in {m.name for m in candidate_methods("mnist", SCALES["cpu"])}
    assert "defense-gan" not in {m.name for m in candidate_methods("cifar10", SCALES["paper"])}


# ---------------------------------------------------------------------------- plans
@pytest.mark.parametrize(
    ("dataset", "scale", "expected"),
    [
        ("digits", "huge", "Unknown scale 'huge'; accepted: smoke, cpu, paper."),
        ("digitz", "smoke", "Unknown dataset 'digitz'"),
        ("mnist", "smoke", "Scale 'smoke' runs on digits, not 'mnist'; mnist runs at scale cpu"),
        ("cifar10", "cpu", "Scale 'cpu' runs on mnist, not 'cifar10'; cifar10 runs at scale paper"),
        ("digits", "paper", "Scale 'paper' runs on mnist, cifar10, stl10, tinyimagenet, not"),
    ],
)
def test_bad_scale_or_dataset_is_one_sentence(tmp_path, dataset, scale, expected):
    with pytest.raises((ValueError, LookupError)) as err:
        build_plan(dataset, scale, tmp_path / "out")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_missing_trainer_or_architecture_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setitem(METHODS, "ghost", Method("ghost", "ghost-trainer", "Ghost"))
    with pytest.raises(ValueError, match=r"Method 'ghost' needs the trainer 'ghost-trainer', which "
                       r"is not registered .*--methods\.$"):  # fmt: skip
        build_plan("digits", "smoke", tmp_path)
    arch = {"*": {"*": "no-such-arch"}}
    monkeypatch.setitem(METHODS, "ghost", Method("ghost", "plain", "Ghost", arch=arch))
    with pytest.raises(ValueError, match="needs the architecture 'no-such-arch', which is not"):
        build_plan("digits", "smoke", tmp_path)
    plan = build_plan("digits", "smoke", tmp_path, methods=["plain"])  # leaving it out works
    assert [m.name for m in plan.methods] == ["plain"]
    with pytest.raises(ValueError, match="Unknown method 'nope'"):
        build_plan("digits", "smoke", tmp_path, methods=["nope"])


def test_cpu_plan_scales_mnist_down_and_says_so(tmp_path):
    plan = build_plan("mnist", "cpu", tmp_path, data_dir=tmp_path / "data")
    by = {m.name: m.config for m in plan.methods}
    assert set(METHODS) <= set(by)
    for name in ("ecla", "er-minus", "er-pgd"):
        assert by[name].arch == "mnist-small"
    assert by["vae-cla"].arch == "vae-mnist-small"
    assert by["plain"].arch == "cnn" and by["rse"].arch == "rse-cnn"
    assert all(c.limit == 10000 for c in by.values())
    assert by["er-pgd"].max_iter == 10 and by["er-pgd"].use_predictions
    assert by["plain"].max_iter is None  # no min-max: no training PGD
    # equal budgets: every min-max method the same PGD, warm-up, images and epochs
    minmax = ("madry", "er-pgd", "ecla-pgd", "madry-eps33")
    assert {(by[m].max_iter, by[m].eps_warmup, by[m].epochs, by[m].limit) for m in minmax} == {
        (10, 2, 6, 10000)
    }
    assert by["plain"].eps_warmup == 0 and by["er-minus"].eps_warmup == 0
    assert plan.paper_eps == [round(0.05 * i, 3) for i in range(9)]
    # the key comparison on enough images for +-4 points; the others on fewer
    n_worst = {m.name: plan.n_for("worst-case", m, 10000) for m in plan.methods}
    assert n_worst["er-pgd"] == n_worst["ecla-pgd"] == n_worst["madry"] == 600
    assert n_worst["plain"] == n_worst["er-minus-cauchy"] == 200
    # min-max methods under the worst case at their training eps; the others also at 0.1
    assert plan.worst_eps_for(plan.method("madry-eps133")) == [0.0, 0.3]
    assert plan.worst_eps_for(plan.method("er-pgd")) == [0.0, 0.3]
    assert plan.worst_eps_for(plan.method("er-minus")) == plan.worst_eps == [0.0, 0.1, 0.3]
    # the ablations on MNIST: Table 3's intrinsic dimension, Madry's eps 0.1, 0.2, 0.4
    assert (
        by["er-minus-k-intrinsic"].embedding_dim == 13 and by["er-minus-k-half"].embedding_dim == 2
    )
    assert [by[f"madry-eps{p}"].eps for p in (33, 67, 133)] == pytest.approx([0.1, 0.2, 0.4])
    text = "\n".join(plan.deviations(n_test=10000))
    for expected in (
        "architecture mnist-small (paper: mnist)",
        "the first 10,000 training images (paper: all)",
        "training PGD 10 steps of 0.04 at eps 0.3 (paper: 40 of 0.01 at 0.3)",
        "paper protocol: eps 0..0.4 step 0.05 (paper: 0..0.4 step 0.025)",
        "paper protocol: the first 500 test images (paper: all)",
        "Defense-GAN projection: L = 20 steps from R = 2 starts (paper: L = 200, R = 10)",
        "600 for the key comparison (madry, er-pgd, ecla-pgd)",
        "the min-max methods (madry, er-pgd, ecla-pgd, madry-eps33, madry-eps67, madry-eps133) "
        "at eps 0, 0.3 only",
        "training eps warmed up linearly over 2 epochs (paper: 0 epochs)",
    ):
        assert expected in text, text
    # the worst case at er-art's converged defaults: no budget of the suite is cut at this scale
    from er_art.evaluation.suites import SQUARE_QUERIES_FAST

    cpu = plan.scale
    assert (cpu.suite_restarts, cpu.suite_max_iter, cpu.adaptive_restarts) == (None, None, None)
    assert cpu.square_queries == SQUARE_QUERIES_FAST and cpu.square_restarts is None
    assert "per attack" not in text and "queries" not in text and "PGD 4 restarts" not in text


def test_paper_plan_is_the_authors_settings(tmp_path):
    plan = build_plan("mnist", "paper", tmp_path)
    er = plan.method("er-pgd").config
    assert (er.arch, er.epochs, er.max_iter, er.eps_step, er.eps) == ("mnist", 30, 40, 0.01, 0.3)
    assert plan.paper_eps == [round(0.025 * i, 3) for i in range(17)]
    assert plan.worst_eps == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert not any(d.startswith("training") for d in plan.deviations(n_test=10000))
    stl = build_plan("stl10", "paper", tmp_path, methods=["madry", "er-minus"])
    assert stl.method("madry").config.epochs == 20 and stl.method("er-minus").config.epochs == 30


def test_third_party_trainer_joins_the_plan(third_party, tmp_path):
    assert third_party_trainers() == ["my-trainer"]
    plan = build_plan("mnist", "cpu", tmp_path)
    mine = plan.method("my-trainer")
    assert mine is not None and not mine.method.builtin
    assert mine.config.arch == "cnn" and mine.config.epochs == 3  # its default arch, EXTRA_METHOD


def test_third_party_trainer_that_cannot_train_is_left_out(monkeypatch, tmp_path):
    from er_art.plugins.trainers.plain import make_step

    from er_art.training.trainers import TrainerSpec

    fake_trainer(monkeypatch, "alien", TrainerSpec("alien", "alien-kind", "no archs", make_step))
    try:
        plan = build_plan("digits", "smoke", tmp_path, methods=None)
        assert plan.method("alien") is None
        assert any(s.startswith("alien (third-party trainer): Trainer 'alien' has no default")
                   for s in plan.skipped)  # fmt: skip
        assert any(d.startswith("left out: alien") for d in plan.deviations(397))
    finally:
        monkeypatch.undo()
        registry.clear_cache()


# ---------------------------------------------------------------------------- runs and reuse
def test_third_party_method_is_trained_evaluated_and_in_the_table(third_party, tmp_path):
    out = tmp_path / "out"
    result = reproduce("digits", TINY, out, methods=["my-trainer"], train_overrides=TINY_TRAIN)
    rows = read_table(out)
    protocols = {r["protocol"] for r in rows if r["method"] == "my-trainer"}
    assert protocols == {"paper", "worst-case"}
    assert result.trained == ["my-trainer"]
    assert "my-trainer" in (out / "table.md").read_text()
    assert (out / "figure2.png").is_file()  # third parties join Figure 2


def test_second_call_reuses_runs_and_units_and_a_changed_plan_is_refused(monkeypatch, tmp_path):
    out = tmp_path / "out"
    first = reproduce("digits", TINY, out, methods=["ecla"], train_overrides=TINY_TRAIN)
    assert first.trained == ["ecla"] and is_finished(out / "runs" / "ecla")
    table = (out / "table.csv").read_text()
    checkpoint = (out / "runs" / "ecla" / "checkpoint.pt").stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(reproduce_runs, "train", no_training)
    monkeypatch.setattr(reproduce_runs, "resume", no_training)
    import er_art.evaluation.plan as evaluation_plan

    monkeypatch.setattr(evaluation_plan, "run_attack", no_training)  # every unit comes from disk
    second = reproduce("digits", TINY, out, methods=["ecla"], train_overrides=TINY_TRAIN)
    assert second.trained == [] and [m.action for m in second.methods] == ["reused"]
    assert (out / "table.csv").read_text() == table
    assert (out / "runs" / "ecla" / "checkpoint.pt").stat().st_mtime_ns == checkpoint

    with pytest.raises(ValueError, match=r"runs/ecla was trained with epochs=1, not 2 as planned"):
        reproduce(
            "digits", TINY, out, methods=["ecla"], train_overrides={**TINY_TRAIN, "epochs": 2}
        )
    with pytest.raises(ValueError, match="holds a reproduction with seed=0, not 1"):
        reproduce("digits", TINY, out, methods=["ecla"], seed=1, train_overrides=TINY_TRAIN)


def test_a_folder_that_is_not_a_reproduction_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no er-art reproduction; give a new or empty"):
        reproduce("digits", TINY, tmp_path, methods=["ecla"], train_overrides=TINY_TRAIN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


class _StopAtStep(TrainingCallbacks):
    def on_step(self, epoch, step, running):
        if step == 2:
            raise KeyboardInterrupt


def test_interrupted_training_resumes(tmp_path):
    out = tmp_path / "out"
    callbacks = ReproduceCallbacks()
    callbacks.training = _StopAtStep()
    with pytest.raises(KeyboardInterrupt):
        reproduce("digits", TINY, out, methods=["ecla"], train_overrides=TINY_TRAIN,
                  callbacks=callbacks)  # fmt: skip
    run_dir = out / "runs" / "ecla"
    assert read_run(run_dir)["status"] == "interrupted" and not is_finished(run_dir)
    result = reproduce("digits", TINY, out, methods=["ecla"], train_overrides=TINY_TRAIN)
    assert [m.action for m in result.methods] == ["resumed"] and is_finished(run_dir)
    assert {r.protocol for r in result.rows} == {"paper", "worst-case"}


def test_store_of_another_checkpoint_is_discarded_other_settings_refused(tmp_path):
    from er_art.evaluation import AttackOutcome

    root = tmp_path / "eval"
    outcome = AttackOutcome("pgd", 0.1, "inf", np.ones(3, bool), np.ones(3, bool), np.zeros(3), 0.0)
    store = reproduce_protocols.open_store(root, {"checkpoint_sha256": "a", "n": 3})
    store.save("m", "pgd", 0.1, outcome)
    again = reproduce_protocols.open_store(root, {"checkpoint_sha256": "a", "n": 3})
    assert again.load("m", "pgd", 0.1) is not None
    with pytest.raises(ValueError, match=r"holds results computed with n=3, not 4; delete that"):
        reproduce_protocols.open_store(root, {"checkpoint_sha256": "a", "n": 4})
    retrained = reproduce_protocols.open_store(root, {"checkpoint_sha256": "b", "n": 3})
    assert retrained.load("m", "pgd", 0.1) is None


def test_defense_gan_gradient_modes_are_switched_and_restored():
    from art.estimators.classification import PyTorchClassifier

    from er_art.baselines.defense_gan import build_defense_gan

    model = build_defense_gan((1, 8, 8), 10, z_dim=4, projection_steps=2, restarts=1)
    clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                            nb_classes=10, clip_values=(0.0, 1.0))  # fmt: skip
    found = reproduce_protocols.defense_gan_model(clf)
    assert found is model
    with reproduce_protocols.gradient_mode(found, "naive"):
        assert model.gradient == "naive"
    assert model.gradient == "bpda"
    runs = reproduce_protocols._adaptive_runs("defense-gan", TINY, found, include_cw=True)
    assert [(r.key, mode) for r, mode, _ in runs] == [
        ("pgd-bpda", "bpda"),
        ("cw-fast-bpda", "bpda"),
        ("pgd-naive", "naive"),
        ("cw-fast-naive", "naive"),
    ]
    assert reproduce_protocols._adaptive_runs("eot", TINY, None, False)[0][0].key == "pgd-eot2"


# ---------------------------------------------------------------------------- the command
def test_cli_bad_input_is_one_sentence(tmp_path):
    for args, expected in (
        (["--dataset", "digits", "--scale", "huge"], "error: Unknown scale 'huge'"),
        (["--dataset", "mnist", "--scale", "smoke"], "error: Scale 'smoke' runs on digits"),
        (
            ["--dataset", "mnist", "--scale", "cpu", "--data-dir", str(tmp_path / "none")],
            "error: MNIST not found",
        ),
        (["--dataset", "digits", "--scale", "smoke", "--methods", " , "], "error: --methods is"),
    ):
        result = runner.invoke(app, ["reproduce", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        err = result.stderr.strip()
        assert err.startswith(expected) and "\n" not in err, err
    assert not (tmp_path / "out").exists()


def test_cli_runs_and_reuses(monkeypatch, tmp_path):
    monkeypatch.setitem(SCALES, "smoke", TINY)
    monkeypatch.setitem(
        METHODS, "ecla", dataclasses.replace(METHODS["ecla"], train={"smoke": TINY_TRAIN})
    )
    args = [
        "reproduce",
        "-d",
        "digits",
        "--scale",
        "smoke",
        "--out",
        str(tmp_path),
        "--methods",
        "ecla",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "[ecla] training" in result.output and f"wrote {tmp_path / 'table.md'}" in result.output
    # the claims' verdicts are printed too; with E-CLA alone none can be measured
    assert "the paper's claims at this scale" in result.output
    assert "not measured" in result.output and f"wrote {tmp_path / 'claims.md'}" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "[ecla] reusing the finished run" in again.output


# ---------------------------------------------------------------------------- uncertainty
def row(method, protocol, robust, eps=0.1):
    robust = np.asarray(robust, dtype=bool)
    return reproduce_protocols.Row(method, eps, protocol, robust.mean(), len(robust), None, robust)


def test_rows_carry_their_wilson_interval():
    r = row("er-pgd", "worst-case", [True] * 81 + [False] * 182)
    low, high = r.interval
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)  # Newcombe (1998): 81 of 263
    csv_row = r.as_csv()
    assert csv_row["ci_low"] == "0.2553" and csv_row["ci_high"] == "0.3662"
    assert tuple(csv_row) == COLUMNS


def test_paired_comparisons_use_the_same_examples_and_say_when_nothing_is_shown():
    from er_art.reproduce.tables import paired_comparisons

    a = [True] * 30 + [False] * 10 + [True] * 2 + [False] * 58
    b = [True] * 30 + [True] * 10 + [False] * 2 + [False] * 58  # 10 vs 2 discordant
    close = [True] * 31 + [False] * 69
    rows = [
        row("er-pgd", "worst-case", b),
        row("madry", "worst-case", a),
        row("ecla-pgd", "worst-case", close),
        row("plain", "worst-case", [False] * 50),  # fewer images: paired on the first 50
        row("rse", "paper", [False] * 100),  # another protocol: not paired
    ]
    tests = {(t["a"], t["b"]): t for t in paired_comparisons(rows)}
    assert set(tests) == {("er-pgd", "madry"), ("er-pgd", "ecla-pgd"), ("er-pgd", "plain")}
    t = tests["er-pgd", "madry"]
    assert (t["only_a"], t["only_b"], t["n"]) == (10, 2, 100)
    assert t["p"] == pytest.approx(2 * 79 / 4096)
    t = tests["er-pgd", "plain"]
    assert (t["only_a"], t["only_b"], t["n"]) == (40, 0, 50)


def test_the_undertrained_flag_fires_on_a_deliberately_short_run(monkeypatch, tmp_path):
    """Madry's baseline trained for one epoch against No Defense trained for eight: table.md flags
    it (its clean accuracy is more than 2 points below its plain counterpart's)."""
    from er_art.reproduce.tables import undertrained

    monkeypatch.setitem(
        METHODS, "plain", dataclasses.replace(METHODS["plain"], train={"smoke": {"epochs": 8}})
    )
    monkeypatch.setitem(
        METHODS, "madry", dataclasses.replace(METHODS["madry"], train={"smoke": {"epochs": 1}})
    )
    result = reproduce(
        "digits", TINY, tmp_path, methods=["plain", "madry"], train_overrides={"limit": 300}
    )
    flagged = undertrained(result)
    assert set(flagged) == {"madry"} and "`plain`" in flagged["madry"]
    text = (tmp_path / "table.md").read_text()
    assert "**undertrained**" in text and "- undertrained: `madry`" in text
    for r in read_table(tmp_path):
        assert float(r["ci_low"]) <= float(r["robust_accuracy"]) <= float(r["ci_high"])


def test_each_ablation_trains_its_one_change_and_appears_in_the_table(tmp_path):
    """Figures 4 - 6: each variant is its base method with one setting changed (the prior, the
    embedding dimension, Madry's training eps), has rows in table.csv, its figure and its paired
    test against the base; claims.md reads the ablation claims."""
    ablations = {
        "er-minus": ["er-minus-uniform", "er-minus-cauchy", "er-minus-k-half",
                     "er-minus-k-double", "er-minus-k-intrinsic"],
        "madry": ["madry-eps33", "madry-eps67", "madry-eps133"],
    }  # fmt: skip
    names = [m for base, variants in ablations.items() for m in (base, *variants)]
    result = reproduce("digits", TINY, tmp_path, methods=names, train_overrides=TINY_TRAIN)
    config = {m.name: m.config for m in result.methods}
    assert config["er-minus"]["prior"] == "gaussian" and config["er-minus"]["embedding_dim"] == 8
    assert config["er-minus-uniform"]["prior"] == "uniform"
    assert config["er-minus-cauchy"]["prior"] == "cauchy"
    assert [config[f"er-minus-k-{k}"]["embedding_dim"] for k in ("half", "double")] == [4, 16]
    # digits is not in the paper's Table 3: er-art's estimate (`er-art train --embedding-dim auto`)
    from er_art.datasets import get_dataset
    from er_art.training.config import auto_embedding_dim

    expected = auto_embedding_dim(get_dataset("digits"), None)
    assert config["er-minus-k-intrinsic"]["embedding_dim"] == expected != 8
    eps = config["madry"]["eps"]
    for name, factor in (("madry-eps33", 1 / 3), ("madry-eps67", 2 / 3), ("madry-eps133", 4 / 3)):
        assert config[name]["eps"] == pytest.approx(factor * eps, abs=1e-6)
        assert config[name]["eps_step"] == pytest.approx(factor * config["madry"]["eps_step"],
                                                         abs=1e-6)  # fmt: skip
        assert config[name]["epochs"] == config["madry"]["epochs"]
    rows = read_table(tmp_path)
    for name in names:
        assert {"paper", "worst-case"} <= {r["protocol"] for r in rows if r["method"] == name}
    for figure in ("figure4.png", "figure5.png", "figure6.png"):
        assert (tmp_path / figure).is_file(), figure
    text = (tmp_path / "table.md").read_text()
    assert "| `er-minus` | `er-minus-cauchy` | worst-case |" in text
    assert "| `madry` | `madry-eps133` | worst-case |" in text
    claims = json.loads((tmp_path / "claims.json").read_text())
    prior = next(c for c in claims["claims"] if c["key"] == "gaussian-prior")
    assert prior["protocols"]["worst-case"]["verdict"] in ("held", "not held", "inconclusive")
    assert (tmp_path / "claims.md").is_file()


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_reproduce_every_method_end_to_end(monkeypatch, tmp_path):
    out = tmp_path / "repro"
    result = reproduce("digits", TINY, out, train_overrides=TINY_TRAIN)
    for name in ("table.csv", "table.md", "figure2.png", "figure3.png", "figure4.png",
                 "figure5.png", "figure6.png", "intrinsic_dim.json", "checks.json",
                 "reproduce.json", "claims.md", "claims.json"):  # fmt: skip
        assert (out / name).is_file(), name
    rows = read_table(out)
    assert sorted(result.trained) == sorted(m.name for m in result.plan.methods)
    for method in METHODS:
        protocols = {r["protocol"] for r in rows if r["method"] == method}
        assert {"paper", "worst-case"} <= protocols, (method, protocols)
    for r in rows:
        assert r["protocol"] in ("paper", "worst-case", "adaptive")
        assert 0.0 <= float(r["robust_accuracy"]) <= 1.0 and int(r["n"]) > 0
        assert float(r["ci_low"]) <= float(r["robust_accuracy"]) <= float(r["ci_high"])
        assert r["paper"] == ""  # digits: no published numbers
    value = {(r["method"], r["eps"], r["protocol"]): float(r["robust_accuracy"]) for r in rows}
    for method in ("rse", "defense-gan"):  # adaptive rows, never above the worst case (same n)
        for eps in ("0", "0.1"):
            assert value[method, eps, "adaptive"] <= value[method, eps, "worst-case"]
    assert ("defense-gan", "l2:0.005", "adaptive") in value
    assert ("er-pgd", "l2:0.005", "paper") in value
    intrinsic = json.loads((out / "intrinsic_dim.json").read_text())
    assert intrinsic["intrinsic_dim"] > 1 and 0 < intrinsic["embedding_intrinsic_dim"] <= 8.5
    text = (out / "table.md").read_text()
    assert "## Deviations from the paper's settings at this scale" in text
    assert "## Paired comparisons (exact McNemar)" in text and "| `er-pgd` | `ecla-pgd` |" in text
    assert "training options forced on every method: epochs=1, limit=150" in text
    assert "Defense-GAN projection: L = 3 steps from R = 1 starts" in text

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(reproduce_runs, "train", no_training)
    monkeypatch.setattr(reproduce_runs, "resume", no_training)
    table = (out / "table.csv").read_text()
    second = reproduce("digits", TINY, out, train_overrides=TINY_TRAIN)
    assert second.trained == [] and {m.action for m in second.methods} == {"reused"}
    assert (out / "table.csv").read_text() == table
