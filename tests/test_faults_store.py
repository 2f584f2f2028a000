"""Evaluation stores that know what they hold (``er-art evaluate`` / ``er-art attack --out``).

Each test is a fault found in the store: units of two models mixed by ``--resume`` after the run
was trained further, units of an earlier run reused without ``--resume``, unit files or manifests
that are truncated or edited, temporaries of interrupted writes left behind, and Ctrl-C. Every
refusal is one line on stderr (``error: ...``), exit code 2, no traceback, and the finished units
are still there afterwards.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from er_art.cli.app import app
from typer.testing import CliRunner

from er_art.evaluation.store import MANIFEST, EvaluationStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]

runner = CliRunner()
TRAIN = ["--arch", "test_digits", "--device", "cpu", "--threads", "1", "--max-iter", "2",
         "--limit", "200", "--batch-size", "32", "--epochs", "1"]  # fmt: skip
# One cheap attack at two eps on 24 test images: two units, in a second.
EVAL = ["--eps", "0.1,0.2", "--attacks", "fgsm", "--no-checks", "-n", "24", "--batch-size", "24",
        "--device", "cpu"]  # fmt: skip


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code: int = 2) -> str:
    """The one-line error of a refused command (exit ``code``, no traceback)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def snapshot(out: Path) -> dict[Path, bytes]:
    """The unit files of the store in ``out`` and their bytes."""
    return {p: p.read_bytes() for p in sorted((out / "units").glob("*/*.json"))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run as ``er-art train`` writes it: 1 epoch of the tiny digits net (a few seconds)."""
    where = tmp_path_factory.mktemp("train")
    with contextlib.chdir(where):  # runs/LATEST lands here
        result = invoke("train", *TRAIN, "--out", where / "run")
    assert result.exit_code == 0, result.output
    return where / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run this test may train further or change."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory) -> Path:
    """A finished store of ``EVAL`` on ``trained`` (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("evaluated") / "eval"
    result = invoke("evaluate", "-c", trained, *EVAL, "--out", out)
    assert result.exit_code == 0, result.output
    assert len(snapshot(out)) == 2
    return out


@pytest.fixture
def store(evaluated, tmp_path) -> Path:
    """A copy of ``evaluated`` as an interrupted evaluation leaves it: units, no results."""
    out = Path(shutil.copytree(evaluated, tmp_path / "eval"))
    for name in ("results.json", "results.csv"):
        (out / name).unlink()
    return out


# ------------------------------------------------------------------ 1. a store knows its model
def test_resume_refuses_units_of_a_checkpoint_trained_further(run, tmp_path):
    """Killed part-way, the run trained further with ``er-art train --resume``: resuming the
    evaluation would mix units of both models in results.json."""
    out = tmp_path / "eval"
    assert invoke("evaluate", "-c", run, *EVAL, "--out", out).exit_code == 0
    first, _ = snapshot(out)
    first.unlink()  # "killed" before the second unit and the summaries
    (out / "results.json").unlink()
    kept = snapshot(out)
    with contextlib.chdir(tmp_path):
        more = invoke("train", "--resume", "--out", run, "--epochs", "2")
    assert more.exit_code == 0, more.output

    err = one_line_error(invoke("evaluate", "-c", run, *EVAL, "--out", out, "--resume"))
    assert str(out) in err and "another checkpoint of run run" in err
    assert "checkpoint.pt changed since" in err and "--overwrite" in err
    assert snapshot(out) == kept and not (out / "results.json").exists()  # nothing lost or mixed

    again = invoke("evaluate", "-c", run, *EVAL, "--out", out, "--overwrite")
    assert again.exit_code == 0, again.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert len(manifest["options"]["checkpoint_sha256"][0]) == 64
    assert len(snapshot(out)) == 2 and (out / "results.json").is_file()


def test_resume_refuses_a_checkpoint_file_replaced_in_place(run, tmp_path):
    """The same check for ``-c FILE`` and ``er-art attack``: the bytes count, not the path."""
    checkpoint = tmp_path / "model.pt"
    shutil.copyfile(run / "checkpoint.pt", checkpoint)
    out = tmp_path / "attack"
    args = ["attack", "-c", checkpoint, "--method", "fgsm", *EVAL[:2], "-n", "24", "--dataset",
            "digits", "--out", out]  # fmt: skip
    assert invoke(*args).exit_code == 0
    kept = snapshot(out)
    other = tmp_path / "other"
    with contextlib.chdir(tmp_path):
        trained = invoke("train", *TRAIN, "--seed", "1", "--out", other)
    assert trained.exit_code == 0, trained.output
    shutil.copyfile(other / "checkpoint.pt", checkpoint)

    err = one_line_error(invoke(*args, "--resume"))
    assert f"another version of the checkpoint {checkpoint.resolve()}" in err
    assert snapshot(out) == kept


def test_resume_refuses_other_test_examples(run, tmp_path, digits):
    """The same checkpoint on a changed data file: the examples attacked are part of the store."""
    _, _, x_test, y_test = digits
    data = tmp_path / "test.npz"
    np.savez(data, x=x_test[:40], y=y_test[:40])
    out = tmp_path / "eval"
    args = ["evaluate", "-c", run, *EVAL, "--dataset", "npz", "--data-dir", data, "--out", out]
    assert invoke(*args).exit_code == 0
    kept = snapshot(out)
    changed = x_test[:40].copy()
    changed[0] = 1.0 - changed[0]
    np.savez(data, x=changed, y=y_test[:40])

    err = one_line_error(invoke(*args, "--resume"))
    assert f"{out} was computed on other test examples for run run" in err
    assert snapshot(out) == kept


def test_a_store_without_content_hashes_is_not_resumed(store, trained):
    """A manifest written before the hashes (an older er-art) cannot vouch for its units."""
    manifest = json.loads((store / MANIFEST).read_text())
    del manifest["options"]["checkpoint_sha256"], manifest["options"]["data_sha256"]
    (store / MANIFEST).write_text(json.dumps(manifest))
    err = one_line_error(invoke("evaluate", "-c", trained, *EVAL, "--out", store, "--resume"))
    assert "an older er-art wrote it" in err


# ------------------------------------------------------------ 2. a store is never reused silently
def test_leftover_units_without_a_manifest_are_not_reused(store, trained):
    """A fresh evaluation with other options must not report an earlier run's units."""
    (store / MANIFEST).unlink()
    kept = snapshot(store)
    fresh = ["evaluate", "-c", trained, *EVAL, "--max-iter", "4", "--out", store]
    err = one_line_error(invoke(*fresh))
    assert str(store) in err and "--overwrite" in err and MANIFEST in err
    assert snapshot(store) == kept
    err = one_line_error(invoke(*fresh, "--resume"))  # nothing to resume them from either
    assert MANIFEST in err and snapshot(store) == kept

    done = invoke(*fresh, "--overwrite")
    assert done.exit_code == 0, done.output
    options = json.loads((store / MANIFEST).read_text())["options"]
    assert options["max_iter"] == 4


def test_a_directory_of_other_files_is_refused_and_never_cleared(store, trained):
    (store / "notes.txt").write_text("mine")
    (store / "units" / "notes.md").write_text("mine too")
    args = ["evaluate", "-c", trained, *EVAL, "--out", store]
    err = one_line_error(invoke(*args))
    assert "already holds an evaluation" in err and "--overwrite" in err
    err = one_line_error(invoke(*args, "--overwrite"))
    assert "notes.txt" in err and "move it away" in err
    (store / "notes.txt").unlink()
    err = one_line_error(invoke(*args, "--overwrite"))
    assert "units/notes.md" in err
    assert (store / "units" / "notes.md").read_text() == "mine too" and len(snapshot(store)) == 2

    empty_of_ours = store.parent / "mine"
    empty_of_ours.mkdir()
    (empty_of_ours / "data.csv").write_text("1,2\n")
    err = one_line_error(invoke("evaluate", "-c", trained, *EVAL, "--out", empty_of_ours))
    assert "is not empty (it holds data.csv)" in err


def test_resume_and_overwrite_together_and_overwrite_without_out(store, trained):
    err = one_line_error(
        invoke("evaluate", "-c", trained, *EVAL, "--out", store, "--resume", "--overwrite")
    )
    assert "give one of them" in err
    err = one_line_error(invoke("attack", "-c", trained, "--method", "fgsm", "--overwrite"))
    assert "--overwrite needs --out" in err


def test_overwrite_deletes_every_file_er_art_wrote_there(store, trained):
    (store / "checks.json").write_text("[]")
    (store / "accuracy_vs_eps.png").write_bytes(b"png")
    done = invoke("evaluate", "-c", trained, *EVAL[:2], "--attacks", "fgsm", "-n", "24",
                  "--batch-size", "24", "--out", store, "--overwrite")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert not (store / "accuracy_vs_eps.png").exists()
    assert json.loads((store / "checks.json").read_text())  # the new evaluation's checks


# --------------------------------------------------------- 3. every file read back is checked
UNIT_DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "a list": lambda text: "[1, 2, 3]",
    "robust a string": lambda text: json.dumps({**json.loads(text), "robust": "yes"}),
    "a flag of 2": lambda text: json.dumps({**json.loads(text), "robust": [2] * 24}),
    "too short": lambda text: json.dumps({**json.loads(text), "perturbation": [0.0]}),
    "no eps": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "eps"}),
    "other examples": lambda text: json.dumps(
        {
            **json.loads(text),
            **{k: json.loads(text)[k][:5] for k in ("robust", "clean_correct", "perturbation")},
        }
    ),
    "other eps": lambda text: json.dumps({**json.loads(text), "eps": 0.3}),
    "not UTF-8": lambda text: "\udcff",
}


@pytest.mark.parametrize("damage", list(UNIT_DAMAGE))
def test_a_damaged_unit_file_is_one_sentence_naming_it(store, trained, damage):
    unit = next(iter(snapshot(store)))
    text = UNIT_DAMAGE[damage](unit.read_text())
    unit.write_bytes(text.encode("utf-8", "surrogateescape"))
    err = one_line_error(invoke("evaluate", "-c", trained, *EVAL, "--out", store, "--resume"))
    assert str(unit) in err, err


MANIFEST_DAMAGE = {
    "truncated": lambda text: text[:10],
    "a list": lambda text: "[]",
    "options a list": lambda text: json.dumps({**json.loads(text), "options": []}),
    "deeply nested": lambda text: text.replace(
        '"options": {', '"options": {"x": ' + "[" * 100 + "]" * 100 + ", "
    ),
    "nested past the parser": lambda text: text[:-2] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}",
    "another format": lambda text: json.dumps({**json.loads(text), "format": "other"}),
    "a newer version": lambda text: json.dumps({**json.loads(text), "version": 99}),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_a_damaged_manifest_is_one_sentence_naming_it(store, trained, damage):
    manifest = store / MANIFEST
    manifest.write_text(MANIFEST_DAMAGE[damage](manifest.read_text()))
    kept = snapshot(store)
    err = one_line_error(invoke("evaluate", "-c", trained, *EVAL, "--out", store, "--resume"))
    assert str(manifest) in err, err
    assert snapshot(store) == kept


def test_outcome_from_json_names_what_it_reads():
    from er_art.evaluation.outcome import AttackOutcome
    from er_art.json_files import FileFormatError

    good = {"method": "pgd", "eps": 0.1, "norm": "inf", "time_s": 1.0, "clean_correct": [1, 0],
            "robust": [1, 0], "perturbation": [0.0, 0.1]}  # fmt: skip
    assert AttackOutcome.from_json(good).n == 2
    for bad, message in [
        ([], "holds a list"),
        ({**good, "eps": "0.1"}, "'eps' must be a number"),
        ({**good, "robust": [True, None]}, "'robust' must hold 0 and 1"),
        ({**good, "perturbation": ["x", 0.0]}, "'perturbation' must hold numbers only, got 'x' at"),
        ({**good, "clean_correct": [1]}, "got 1, 2 and 2"),
        ({**good, "settings": [1]}, "'settings' must be an object"),
    ]:
        with pytest.raises(FileFormatError, match=message) as err:
            AttackOutcome.from_json(bad, where="u.json")
        assert str(err.value).startswith("u.json")


# ---------------------------------------------------------- 4. temporaries of interrupted writes
@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_reopening_a_store_removes_temporaries_of_interrupted_writes(store, trained, flag):
    unit = next(iter(snapshot(store)))
    temporaries = [store / ".results.json.k2j3.tmp", unit.parent / f".{unit.name}.x9a1.tmp"]
    for path in temporaries:
        path.write_text('{"half')
    done = invoke("evaluate", "-c", trained, *EVAL, "--out", store, flag)
    assert done.exit_code == 0, done.output
    assert not any(p.exists() for p in temporaries)
    assert len(snapshot(store)) == 2 and (store / "results.json").is_file()


def test_a_fresh_store_may_hold_only_temporaries(trained, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / ".evaluation.json.a1b2.tmp").write_text("{")
    done = invoke("evaluate", "-c", trained, *EVAL, "--out", out)
    assert done.exit_code == 0, done.output
    assert not (out / ".evaluation.json.a1b2.tmp").exists()


# ------------------------------------------------------------------------------------ 5. Ctrl-C
@pytest.mark.parametrize("command", ["evaluate", "attack"])
def test_ctrl_c_says_how_to_continue_and_exits_130(trained, tmp_path, monkeypatch, command):
    save = EvaluationStore.save
    saved: list[Path] = []

    def interrupted_after_one(self, *args, **kwargs):
        if saved:
            raise KeyboardInterrupt
        saved.append(save(self, *args, **kwargs))
        return saved[-1]

    out = tmp_path / "eval"
    args = [command, "-c", trained, *EVAL, "--out", out]
    if command == "attack":
        args += ["--method", "fgsm"]
    with monkeypatch.context() as patch:
        patch.setattr(EvaluationStore, "save", interrupted_after_one)
        err = one_line_error(invoke(*args), code=130)
    assert "interrupted" in err and str(out) in err
    assert "the same command with --resume" in err
    kept = snapshot(out)
    assert list(kept) == saved  # the finished unit is on disk, nothing half-written
    assert not list(out.rglob("*.tmp")) and not (out / "results.json").exists()

    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert all(p.read_bytes() == b for p, b in kept.items()) and len(snapshot(out)) == 2


def test_ctrl_c_with_overwrite_says_resume_instead(store, trained, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(EvaluationStore, "save", interrupt)
    result = invoke("evaluate", "-c", trained, *EVAL, "--out", store, "--overwrite")
    err = one_line_error(result, code=130)
    assert "--resume instead of --overwrite" in err
