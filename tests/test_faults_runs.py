"""Training run directories that know what they hold: a run.json and a checkpoint.pt that disagree,
an invalid or corrupted run.json, an error or a full disk in the middle of training, temporaries
of interrupted writes. Each is one sentence on stderr, no traceback, and nothing finished lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art
from er_art import checkpoint as checkpoint_module
from er_art.checkpoint import RUN_CHECKPOINT, read_checkpoint
from er_art.json_files import FileFormatError
from er_art.runs import RUN_JSON, read_run, write_json
from er_art.training import loop as run_loop
from er_art.training.run import TrainingConfig, train

runner = CliRunner()
TINY = dict(arch="test_digits", device="cpu", threads=1, max_iter=2, limit=200, batch_size=32)
TINY_ARGS = "--arch test_digits --device cpu --threads 1 --max-iter 2 --limit 200 --batch-size 32"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/LATEST lands in the test's directory
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Untrained runs (epochs 0: run.json and the first checkpoint), copied by each test."""
    root = tmp_path_factory.mktemp("runs")
    n = torch.get_num_threads()
    made = {
        "base": {},
        "seed": {"seed": 1},
        "trainer": {"trainer": "er-minus"},
        "eps": {"eps": 0.2},
    }
    for name, changes in made.items():
        train(TrainingConfig(**{**TINY, "epochs": 0, **changes}), root / name, latest_root=None)
    torch.set_num_threads(n)
    return root


def copy_run(runs: Path, name: str = "base", to: str = "run") -> Path:
    shutil.copytree(runs / name, to)
    return Path(to)


def edit_run_json(run: Path, **config) -> None:
    info = read_run(run)
    info["config"].update(config)
    write_json(run / RUN_JSON, info)


def one_sentence_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def resume(run: Path | str, *args: str):
    return runner.invoke(app, ["train", "--resume", "--out", str(run), *args])


# ---------------------------------------------------------------------- 1: run.json vs checkpoint
@pytest.mark.parametrize(
    ("other", "field"), [("seed", "seed"), ("trainer", "trainer"), ("eps", "eps")]
)
def test_resume_refuses_the_checkpoint_of_another_run(runs, other, field):
    run = copy_run(runs)
    shutil.copy(runs / other / RUN_CHECKPOINT, run / RUN_CHECKPOINT)
    before = (run / RUN_CHECKPOINT).read_bytes()
    err = one_sentence_error(resume(run, "--epochs", "1"))
    assert str(run) in err and field in err and RUN_CHECKPOINT in err, err
    assert (run / RUN_CHECKPOINT).read_bytes() == before  # nothing trained, nothing written
    assert read_run(run)["status"] == "finished"


@pytest.mark.parametrize(("field", "value"), [("lr", 0.5), ("arch", "digits"), ("limit", 300)])
def test_resume_refuses_a_hand_edited_run_json_that_disagrees_with_its_checkpoint(
    runs, field, value
):
    run = copy_run(runs)
    edit_run_json(run, **{field: value})
    err = one_sentence_error(resume(run, "--epochs", "1"))
    assert str(run) in err and field in err, err
    assert read_checkpoint(run)["training"]["global_step"] == 0


# ---------------------------------------------------------------------- 2: an invalid run.json
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("batch_size", -5, "batch size"),
        ("batch_size", 0, "batch size"),
        ("epochs", -1, "epochs"),
        ("lr", -0.1, "learning rate"),
        ("eps", 7.0, "eps"),
        ("max_iter", 0, "max iter"),
        ("trainer", "er-pgdd", "er-pgd"),
        ("dataset", "digitz", "digits"),
        ("batch_size", "32", "batch_size"),
        ("arch_options", [1], "arch_options"),
    ],
)
def test_resume_validates_run_json_like_a_new_run(runs, field, value, expected):
    run = copy_run(runs)
    edit_run_json(run, **{field: value})
    err = one_sentence_error(resume(run, *([] if field == "epochs" else ["--epochs", "1"])))
    assert expected in err and str(run) in err, err
    assert read_checkpoint(run)["training"]["global_step"] == 0  # no empty epoch "trained"
    assert not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text()


# ---------------------------------------------------------------------- 3: a corrupted run.json
BAD_RUN_JSON = {
    "truncated": '{"config": {"dataset": "dig',
    "a list": "[1, 2]",
    "a string": '"run"',
    "deeply nested": '{"config": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "config not an object": '{"config": [1, 2]}',
    "no config": '{"status": "finished"}',
    "not utf-8": b'{"config": "\xff"}',
}


@pytest.mark.parametrize("command", ["train", "attack", "evaluate", "embed"])
@pytest.mark.parametrize("case", list(BAD_RUN_JSON))
def test_a_corrupted_run_json_is_one_sentence(runs, command, case):
    run = copy_run(runs)
    content = BAD_RUN_JSON[case]
    if isinstance(content, bytes):
        (run / RUN_JSON).write_bytes(content)
    else:
        (run / RUN_JSON).write_text(content)
    args = {
        "train": ["train", "--resume", "--out", str(run)],
        "attack": ["attack", "-c", str(run), "--method", "fgsm", "--eps", "0.1"],
        "evaluate": ["evaluate", "-c", str(run), "--eps", "0.1", "--n-samples", "10"],
        "embed": ["embed", "-c", str(run), "--no-adversarial", "--out", "map.png"],
    }[command]
    err = one_sentence_error(runner.invoke(app, args))
    assert RUN_JSON in err and str(run) in err, err
    assert read_checkpoint(run)["training"]["global_step"] == 0


# ---------------------------------------------------------------------- 4: errors mid-training
def fail_at_epoch_end(monkeypatch, error: BaseException | type) -> None:
    def evaluate(self):
        if isinstance(error, type):
            raise error("injected")
        raise error

    monkeypatch.setattr(run_loop._Run, "evaluate", evaluate)


@pytest.mark.parametrize("error", [RuntimeError, MemoryError, AssertionError, TypeError])
def test_an_error_in_the_middle_of_training_marks_the_run_failed(tmp_path, monkeypatch, error):
    fail_at_epoch_end(monkeypatch, error)
    with pytest.raises(error):
        train(TrainingConfig(**TINY, epochs=1), tmp_path / "run", latest_root=None)
    assert read_run(tmp_path / "run")["status"] == "failed"
    assert read_checkpoint(tmp_path / "run")["training"]["global_step"] == 0  # the last good one


def test_an_error_while_setting_up_the_loop_marks_the_run_failed(tmp_path, monkeypatch):
    def no_loop(*args, **kwargs):
        raise MemoryError("injected")

    monkeypatch.setattr("er_art.training.run._Run", no_loop)
    with pytest.raises(MemoryError):
        train(TrainingConfig(**TINY, epochs=1), tmp_path / "run", latest_root=None)
    assert read_run(tmp_path / "run")["status"] == "failed"


def test_every_config_field_has_its_type_in_run_json():
    import dataclasses

    from er_art.runs import CONFIG_TYPES

    assert {f.name for f in dataclasses.fields(TrainingConfig)} == set(CONFIG_TYPES)


def test_an_error_in_the_middle_of_a_resumed_run_marks_it_failed(runs, monkeypatch):
    run = copy_run(runs)
    fail_at_epoch_end(monkeypatch, RuntimeError)
    result = resume(run, "--epochs", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    err = result.stderr.strip()
    assert "\n" not in err and "RuntimeError: injected" in err and "--resume --out" in err, err
    assert read_run(run)["status"] == "failed"
    er_art.load_classifier(run)


def test_sigterm_marks_the_run_interrupted_and_exits_143(monkeypatch):
    def evaluate(self):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop training")

    monkeypatch.setattr(run_loop._Run, "evaluate", evaluate)
    previous = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(app, ["train", *TINY_ARGS.split(), "--epochs", "1", "--out", "run"])
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is restored
    assert result.exit_code == 143, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    assert "\n" not in err and "--resume --out run" in err, err
    assert read_run("run")["status"] == "interrupted"
    er_art.load_classifier("run")


# ---------------------------------------------------------------------- 5: a full disk
def failing_after(monkeypatch, module, calls: int, code: int):
    """Make ``module.atomic_write`` fail with ``code`` after ``calls`` good writes, as a full
    disk does: part of the file is written, then the write raises. Returns the undo."""
    real = module.atomic_write
    seen: list[Path] = []

    def atomic_write(path, write):
        seen.append(Path(path))
        if len(seen) <= calls:
            return real(path, write)

        def partial(tmp):
            Path(tmp).write_bytes(b"\0" * 100)
            raise OSError(code, os.strerror(code))

        return real(path, partial)

    monkeypatch.setattr(module, "atomic_write", atomic_write)
    return lambda: monkeypatch.setattr(module, "atomic_write", real)


@pytest.mark.parametrize(
    ("module", "name", "code"),
    [
        (checkpoint_module, RUN_CHECKPOINT, errno.ENOSPC),
        (checkpoint_module, RUN_CHECKPOINT, errno.EROFS),
        (run_loop, "metrics.jsonl", errno.ENOSPC),
    ],
)
def test_a_full_disk_during_training_is_one_sentence_and_resumable(monkeypatch, module, name, code):
    undo = failing_after(monkeypatch, module, 1, code)  # the first checkpoint is written
    args = ["train", *TINY_ARGS.split(), "--epochs", "1", "--out", "run"]
    err = one_sentence_error(runner.invoke(app, args))
    assert str(Path("run") / name) in err and os.strerror(code) in err, err
    assert "er-art train --resume --out run" in err, err
    assert read_run("run")["status"] == "failed"
    state = read_checkpoint("run")["training"]  # the last good checkpoint
    if name == RUN_CHECKPOINT:  # the first one; with metrics.jsonl, the epoch's
        assert state["global_step"] == 0 and not state["finished"]
    er_art.load_classifier("run")
    assert not list(Path("run").glob(".*.tmp"))
    undo()  # the disk takes writes again
    again = resume("run")
    assert again.exit_code == 0, again.output
    assert read_run("run")["status"] == "finished"
    assert read_checkpoint("run")["training"]["finished"]
    assert [json.loads(x)["epoch"] for x in Path("run/metrics.jsonl").read_text().splitlines()] == [
        1
    ]


TORCH_WRITER_ERROR = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


@pytest.mark.parametrize(
    ("flag", "free", "says"), [(0, 0, "No space left"), (os.ST_RDONLY, 10**9, "Read-only")]
)
def test_a_full_disk_that_torch_save_reports_without_an_errno(monkeypatch, flag, free, says):
    """torch.save writing to a path on a full disk raises RuntimeError("[enforce fail at
    inline_container.cc:672] . unexpected pos 704 vs 598"), with no errno: the file system says."""

    real, calls = checkpoint_module.atomic_write, []

    def atomic_write(path, write):
        calls.append(path)
        if len(calls) == 1:
            return real(path, write)

        def torch_writer_fails(tmp):
            Path(tmp).write_bytes(b"\0" * 100)
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
            )

        return real(path, torch_writer_fails)

    real_statvfs = os.statvfs

    def statvfs(path):  # the file system as full or read-only
        st = list(real_statvfs(path))
        st[1], st[4], st[8] = 4096, free // 4096, flag  # f_frsize, f_bavail, f_flag
        return os.statvfs_result(st)

    monkeypatch.setattr(checkpoint_module, "atomic_write", atomic_write)
    monkeypatch.setattr(os, "statvfs", statvfs)
    args = ["train", *TINY_ARGS.split(), "--epochs", "1", "--out", "run"]
    err = one_sentence_error(runner.invoke(app, args))
    assert says in err and str(Path("run") / RUN_CHECKPOINT) in err and "--resume --out run" in err
    assert read_checkpoint("run")["training"]["global_step"] == 0


def test_a_full_disk_when_run_json_is_written_is_one_sentence(runs, monkeypatch):
    from er_art import runs as runs_module

    run = copy_run(runs)
    failing_after(monkeypatch, runs_module, 0, errno.ENOSPC)
    err = one_sentence_error(resume(run, "--epochs", "1"))
    assert str(run / RUN_JSON) in err and "--resume --out run" in err, err
    assert read_run(run)["status"] == "finished"  # untouched
    assert read_checkpoint(run)["training"]["global_step"] == 0


# ---------------------------------------------------------------------- 6: temporaries
def test_resume_removes_the_temporaries_of_interrupted_writes(runs):
    run = copy_run(runs)
    leftovers = [run / ".checkpoint.pt.abc123.tmp", run / ".metrics.jsonl.x1.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 10)
    keep = run / "notes.tmp"  # not an atomic write's temporary
    keep.write_text("mine")
    result = resume(run)
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in leftovers)
    assert keep.read_text() == "mine"


# ---------------------------------------------------------------------- reproduce's state files
def test_reproduce_reads_its_manifest_through_read_json(tmp_path):
    from er_art.reproduce.runs import MANIFEST_NAME, open_output

    class Plan:
        out = tmp_path / "out"
        dataset, data_dir, seed = "digits", None, 0

        class scale:
            name = "smoke"

    Plan.out.mkdir()
    for content in ['{"format": "er-art-repro', "[]", '{"format": 3}', "[" * 100_000]:
        (Plan.out / MANIFEST_NAME).write_text(content)
        with pytest.raises(FileFormatError, match=MANIFEST_NAME):
            open_output(Plan)


def test_reproduce_reads_metrics_lines_through_check_shape(tmp_path):
    from er_art.reproduce.running import _metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "test_acc": 0.5}\n{"epoch": 2, "test_ac')
    with pytest.raises(FileFormatError, match="line 2"):
        _metrics(tmp_path)
    path.write_text('{"epoch": 1, "test_acc": 0.5}\n[1]\n')
    with pytest.raises(FileFormatError, match="line 2"):
        _metrics(tmp_path)
    path.write_text('{"epoch": 1, "test_acc": "high"}\n')
    with pytest.raises(FileFormatError, match="test_acc"):
        _metrics(tmp_path)
    path.write_text('{"epoch": 1, "test_acc": 0.5}\n\n')
    assert _metrics(tmp_path) == [{"epoch": 1, "test_acc": 0.5}]


def test_reproduce_reads_an_evaluation_manifest_through_read_json(tmp_path):
    from er_art.evaluation.store import MANIFEST
    from er_art.reproduce.protocols import open_store

    (tmp_path / MANIFEST).write_text('{"options": {"eps"')
    with pytest.raises(FileFormatError, match=MANIFEST):
        open_store(tmp_path, {"eps": [0.1]})
    (tmp_path / MANIFEST).write_text('{"format": "er-art-evaluation", "options": []}')
    with pytest.raises(FileFormatError, match="options"):
        open_store(tmp_path, {"eps": [0.1]})


def test_run_json_is_read_through_read_json(tmp_path):
    (tmp_path / RUN_JSON).write_text(json.dumps({"config": {"dataset": 3}}))
    with pytest.raises(FileFormatError, match="dataset"):
        read_run(tmp_path)


# ---------------------------------------------------------------------- more a run should know
def test_resume_refuses_fewer_epochs_than_trained(runs):
    run = copy_run(runs)
    assert resume(run, "--epochs", "1").exit_code == 0
    err = one_sentence_error(resume(run, "--epochs", "0"))
    assert "--epochs 0" in err and "1 epochs" in err, err
    assert read_run(run)["config"]["epochs"] == 1  # the record still says what was trained
    edit_run_json(run, epochs=0)
    err = one_sentence_error(resume(run))
    assert "epochs=0" in err and RUN_JSON in err, err


def test_resume_refuses_a_run_whose_checkpoint_was_removed(runs):
    run = copy_run(runs)
    assert resume(run, "--epochs", "1").exit_code == 0
    (run / RUN_CHECKPOINT).unlink()
    err = one_sentence_error(resume(run, "--epochs", "2"))
    assert RUN_CHECKPOINT in err and "1 epoch" in err, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # not trained over


@pytest.mark.parametrize(("key", "value"), [("epoch", "x"), ("global_step", None), ("rng", [])])
def test_resume_checks_the_training_state_it_reads_back(runs, key, value):
    run = copy_run(runs)
    payload = read_checkpoint(run)
    payload["training"][key] = value
    torch.save(payload, run / RUN_CHECKPOINT)
    err = one_sentence_error(resume(run, "--epochs", "1"))
    assert str(run / RUN_CHECKPOINT) in err and key in err, err
