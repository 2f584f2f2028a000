"""Outputs that cannot be written: refused before any work, and a write the machine refuses
mid-run (full disk, read-only file system, permission denied) is one sentence naming the path,
with how to continue for the commands that resume. Never a traceback.

The machine's refusals are simulated where the tests may run as root (which ignores permissions):
``atomic_write`` patched to raise after N writes, or every write under a folder refused with
EROFS. The chmod variants skip under root.
"""

from __future__ import annotations

import builtins
import errno
import importlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
import typer
from er_art.cli.app import app
from typer.testing import CliRunner

import er_art
from er_art.checkpoint import save_classifier
from er_art.runs import write_json

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
QUICK = ["-n", "16", "--batch-size", "16", "--max-iter", "1"]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(AS_ROOT, reason="root ignores file permissions")
# the modules that write through er_art.checkpoint.atomic_write (some import it by name)
WRITERS = [
    "er_art.checkpoint",
    "er_art.runs",
    "er_art.training.loop",
    "er_art.training.run",
    "er_art.evaluation.store",
    "er_art.embedding_plot",
    "er_art.reproduce.tables",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory as ``er-art train`` writes it: an untrained ER-Classifier (fast to attack
    and to embed; the numbers do not matter here)."""
    run = tmp_path_factory.mktemp("runs") / "er"
    classifier = er_art.build_classifier("test_digits", device_type="cpu")
    save_classifier(classifier, run / "checkpoint.pt")
    write_json(
        run / "run.json",
        {"config": {"dataset": "digits", "data_dir": None, "eps": 0.1}, "status": "finished"},
    )
    return run


@pytest.fixture
def no_work(monkeypatch) -> list[str]:
    """Every attack, embedding and reproduction entry point records its call and stops."""
    import er_art.embedding_plot
    import er_art.evaluation
    import er_art.reproduce

    calls: list[str] = []

    def stop(name):
        def called(*args, **kwargs):
            calls.append(name)
            raise RuntimeError(f"{name} ran before the output was checked")

        return called

    for module, name in [
        (er_art.evaluation, "attack_sweep"),
        (er_art.evaluation, "evaluate_suite"),
        (er_art.embedding_plot, "pgd_examples"),
        (er_art.embedding_plot, "embedding_figure"),
        (er_art.reproduce, "reproduce"),
    ]:
        monkeypatch.setattr(module, name, stop(name))
    return calls


def command(name: str, run: Path, out: Path) -> list[str]:
    """A quick invocation of command ``name`` writing to ``out``."""
    return {
        "attack": ["attack", "-c", str(run), "--method", "fgsm", "--eps", "0.1", *QUICK],
        "evaluate": [
            "evaluate",
            "-c",
            str(run),
            "--attacks",
            "fgsm",
            "--eps",
            "0.1",
            *QUICK,
            "--no-checks",
        ],  # fmt: skip
        "reproduce": [
            "reproduce",
            "--dataset",
            "digits",
            "--scale",
            "smoke",
            "--methods",
            "plain",
        ],  # fmt: skip
        "embed": ["embed", "-c", str(run), "-n", "12", "--no-adversarial", "--device", "cpu"],
    }[name] + ["--out", str(out)]


def one_sentence(result, code: int = 2) -> str:
    """The command failed with ``code``, one line on stderr starting ``error:``, no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, result.stderr
    return err


def refuse_writes_under(monkeypatch, directory: Path, code: int = errno.EROFS) -> None:
    """Every write, file creation and mkdir under ``directory`` fails with ``code`` (a read-only
    file system, or a folder we may not write, as the machine says it)."""
    directory = Path(directory).absolute()
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def inside(file) -> bool:
        if isinstance(file, int):
            return False
        return Path(os.fsdecode(file)).absolute().is_relative_to(directory)

    def refuse(file):
        return OSError(code, os.strerror(code), os.fsdecode(file))

    def fake_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            raise refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if inside(path):
            raise refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def refuse_writes_after(
    monkeypatch, n: int, code: int = errno.ENOSPC, named: bool = True, when=None
) -> list[Path]:
    """``atomic_write`` (everywhere it is imported) writes ``n`` files (of those ``when(path)``
    picks, default all), then raises ``OSError(code)``, naming the file if ``named``; the paths
    it was asked for."""
    from er_art import checkpoint

    real = checkpoint.atomic_write
    calls: list[Path] = []

    def writer(path, write):
        if when is not None and not when(Path(path)):
            return real(path, write)
        calls.append(Path(path))
        if len(calls) > n:
            if named:
                raise OSError(code, os.strerror(code), str(path))
            raise OSError(code, os.strerror(code))
        return real(path, write)

    for name in WRITERS:
        importlib.import_module(name)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("er_art") and (
            getattr(module, "atomic_write", None) is real
        ):
            monkeypatch.setattr(module, "atomic_write", writer)
    return calls


# ------------------------------------------------------------------ refused before any work
@pytest.mark.parametrize("name", ["attack", "evaluate", "reproduce"])
def test_an_out_that_is_a_file_is_refused_before_any_work(name, run_dir, tmp_path, no_work):
    out = tmp_path / "results"
    out.write_text("not a directory")
    err = one_sentence(runner.invoke(app, command(name, run_dir, out)))
    assert str(out) in err and "is a file" in err
    assert no_work == [] and out.read_text() == "not a directory"


@pytest.mark.parametrize("name", ["attack", "evaluate", "reproduce", "embed"])
def test_an_out_under_a_file_is_refused_before_any_work(name, run_dir, tmp_path, no_work):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "sub" / ("x.png" if name == "embed" else "results")
    err = one_sentence(runner.invoke(app, command(name, run_dir, out)))
    assert str(out) in err and f"{tmp_path / 'file'} is a file" in err
    assert no_work == []


@pytest.mark.parametrize("name", ["attack", "evaluate", "reproduce", "embed"])
@pytest.mark.parametrize("exists", [True, False])
def test_a_read_only_out_is_refused_before_any_work(
    name, exists, run_dir, tmp_path, no_work, monkeypatch
):
    folder = tmp_path / "read-only"
    folder.mkdir()
    out = folder / ("fig.png" if name == "embed" else "results")
    if exists and name != "embed":
        out.mkdir()
    refuse_writes_under(monkeypatch, folder)
    err = one_sentence(runner.invoke(app, command(name, run_dir, out)))
    assert str(out) in err and "Read-only file system" in err
    assert no_work == [] and list(folder.iterdir()) == ([out] if exists and name != "embed" else [])


@needs_permissions
@pytest.mark.parametrize("name", ["attack", "evaluate", "reproduce", "embed"])
def test_an_unwritable_out_is_refused_before_any_work_chmod(name, run_dir, tmp_path, no_work):
    folder = tmp_path / "locked"
    folder.mkdir()
    out = folder / ("fig.png" if name == "embed" else "results")
    folder.chmod(0o555)
    try:
        err = one_sentence(runner.invoke(app, command(name, run_dir, out)))
    finally:
        folder.chmod(0o755)
    assert str(out) in err and "Permission denied" in err
    assert no_work == [] and not out.exists()


def test_embed_out_that_is_a_directory_is_refused_before_any_work(run_dir, tmp_path, no_work):
    err = one_sentence(runner.invoke(app, command("embed", run_dir, tmp_path)))
    assert f"--out {tmp_path} is a directory" in err and str(tmp_path / "embedding.png") in err
    assert no_work == []


def test_embed_default_figure_in_a_read_only_run_is_refused_before_any_work(
    run_dir, no_work, monkeypatch
):
    refuse_writes_under(monkeypatch, run_dir)
    args = ["embed", "-c", str(run_dir), "-n", "12", "--device", "cpu"]
    err = one_sentence(runner.invoke(app, args))
    assert f"the figure {run_dir / 'embedding.png'}" in err and "Read-only file system" in err
    assert no_work == []


def test_a_writable_out_is_not_touched_by_the_check(tmp_path):
    from er_art.cli.output_paths import check_output_dir, check_output_file

    out = tmp_path / "a" / "b"
    check_output_dir(out)
    check_output_file(out / "fig.png")
    check_output_dir(None)
    assert list(tmp_path.iterdir()) == []  # nothing created, no probe left behind


# -------------------------------------------------------- a write refused in the middle of a run
@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "No space left on device writing"),
        (errno.EROFS, "Read-only file system writing"),
        (errno.EACCES, "Permission denied writing"),
    ],
)
def test_a_write_refused_during_attack_is_one_sentence_and_resume_continues(
    code, says, run_dir, tmp_path, monkeypatch
):
    out = tmp_path / "eval"
    args = ["attack", "-c", str(run_dir), "--method", "fgsm", "--eps", "0.1,0.2", *QUICK,
            "--out", str(out)]  # fmt: skip
    # the manifest and one unit are written, the next unit is refused
    calls = refuse_writes_after(monkeypatch, 2, code)
    err = one_sentence(runner.invoke(app, args))
    assert (
        says in err
        and str(calls[-1]) in err
        and "run the same command with --resume to continue" in err
    )
    assert len(list((out / "units").rglob("*.json"))) == 1  # what finished is kept
    monkeypatch.undo()
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [r["eps"] for r in json.loads((out / "results.json").read_text())] == [0.1, 0.2]


def test_a_full_disk_during_evaluate_names_the_out_when_the_writer_names_no_file(
    run_dir, tmp_path, monkeypatch
):
    out = tmp_path / "eval"
    args = command("evaluate", run_dir, out)
    refuse_writes_after(monkeypatch, 0, errno.ENOSPC, named=False)  # as write() on a full disk
    err = one_sentence(runner.invoke(app, args))
    assert f"No space left on device writing {out}" in err and "--resume" in err
    monkeypatch.undo()
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0


def test_a_full_disk_at_the_summary_files_is_one_sentence(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "eval"
    args = command("attack", run_dir, out)
    refuse_writes_after(monkeypatch, 2)  # the manifest and the unit; results.json is refused
    err = one_sentence(runner.invoke(app, args))
    assert f"writing {out / 'results.json'}" in err and "with --resume to continue" in err


def test_a_full_disk_during_training_says_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    args = ["train", "--arch", "test_cnn", "--trainer", "plain", "--device", "cpu",
            "--threads", "1", "--limit", "64", "--batch-size", "32", "--epochs", "1",
            "--out", str(out)]  # fmt: skip
    refuse_writes_after(monkeypatch, 1)  # run.json is written, the first checkpoint is refused
    err = one_sentence(runner.invoke(app, args))
    assert "No space left on device writing" in err and str(out) in err
    assert f"er-art train --resume --out {out}" in err


def test_a_full_disk_during_reproduce_says_run_it_again(tmp_path, monkeypatch):
    out = tmp_path / "repro"  # its first write, the manifest, is refused: no training starts
    refuse_writes_after(monkeypatch, 0)
    err = one_sentence(runner.invoke(app, command("reproduce", Path("unused"), out)))
    assert f"writing {out / 'reproduce.json'}" in err and "run the same command again" in err


def test_a_full_disk_while_reproduce_trains_says_run_reproduce_again(tmp_path, monkeypatch):
    out = tmp_path / "repro"
    refuse_writes_after(monkeypatch, 0, when=lambda path: path.name == "checkpoint.pt")
    err = one_sentence(
        runner.invoke(app, [*command("reproduce", Path("unused"), out), "--threads", "1"])
    )
    assert f"writing {out / 'runs' / 'plain' / 'checkpoint.pt'}" in err
    assert "run the same command again" in err and "er-art train" not in err


def test_a_full_disk_during_embed_is_one_sentence(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "fig.png"
    refuse_writes_after(monkeypatch, 0)
    err = one_sentence(runner.invoke(app, command("embed", run_dir, out)))
    assert f"No space left on device writing {out}" in err and "run the command again" in err
    assert "--resume" not in err and not out.exists()


@needs_permissions
def test_a_folder_made_read_only_during_attack_chmod(run_dir, tmp_path, monkeypatch):
    from er_art.evaluation import store

    out = tmp_path / "eval"
    real = store.atomic_write
    locked: list[Path] = []

    def lock_after_the_first_unit(path, write):
        real(path, write)
        if Path(path).parent.parent == out / "units":  # units/<run>/<attack>@<eps>.json
            Path(path).parent.chmod(0o555)
            locked.append(Path(path).parent)

    monkeypatch.setattr(store, "atomic_write", lock_after_the_first_unit)
    args = ["attack", "-c", str(run_dir), "--method", "fgsm", "--eps", "0.1,0.2", *QUICK,
            "--out", str(out)]  # fmt: skip
    try:
        err = one_sentence(runner.invoke(app, args))
    finally:
        for folder in locked:
            folder.chmod(0o755)
    assert locked and "Permission denied" in err and str(locked[0]) in err
    assert "with --resume to continue" in err


# -------------------------------------------------------------------------- the plumbing itself
def test_atomic_write_names_the_file_and_turns_a_torch_full_disk_into_enospc(tmp_path, monkeypatch):
    from er_art.checkpoint import atomic_write

    def no_space(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file

    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "a.json", no_space)
    assert caught.value.errno == errno.ENOSPC and str(tmp_path / "a.json") == caught.value.filename

    def torch_save_on_full_disk(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    real_statvfs = os.statvfs

    def full(path):  # the file system with no block free
        st = list(real_statvfs(path))
        st[4] = 0  # f_bavail
        return os.statvfs_result(st)

    monkeypatch.setattr(os, "statvfs", full)
    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "checkpoint.pt", torch_save_on_full_disk)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    with pytest.raises(RuntimeError):  # not a full disk: the error as it was
        atomic_write(tmp_path / "checkpoint.pt", torch_save_on_full_disk)
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_a_write_fault_outside_the_commands_own_handler_is_one_sentence(tmp_path):
    from er_art.cli.common import as_command

    def save(out: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "x.json"))

    small = typer.Typer()
    small.command("save")(as_command("save", save))
    small.command("other")(lambda: None)
    err = one_sentence(runner.invoke(small, ["save", str(tmp_path)]))
    assert err.startswith(f"error: No space left on device writing {tmp_path / 'x.json'}")


def test_a_permission_denied_read_is_not_called_a_write(tmp_path):
    from er_art.cli.write_faults import Invocation, write_fault_message

    err = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "checkpoint.pt"))
    reading = Invocation("attack", {"out": str(tmp_path / "eval"), "resume": False})
    assert write_fault_message(err, reading) == f"Permission denied: {tmp_path / 'checkpoint.pt'}."
    writing = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "eval" / "a"))
    assert "with --resume to continue" in write_fault_message(writing, reading)


def test_other_ranks_exit_quietly_on_a_write_fault(capsys):
    from er_art.cli.world import reported_errors

    class OtherRank:
        is_main = False

    with pytest.raises(typer.Exit) as caught, reported_errors(OtherRank()):
        raise OSError(errno.ENOSPC, "No space left on device", "eval/units/a.json")
    assert caught.value.exit_code == 2 and capsys.readouterr().err == ""
    with pytest.raises(ZeroDivisionError), reported_errors(OtherRank()):
        raise ZeroDivisionError  # a bug is not swallowed


def _raising_app() -> typer.Typer:
    small = typer.Typer()

    @small.command("boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    small.command("other")(lambda: None)
    return small


def test_the_suite_fails_a_command_that_ends_in_a_traceback():
    with pytest.raises(pytest.fail.Exception, match="ended with RuntimeError: a bug"):
        runner.invoke(_raising_app(), ["boom"])  # conftest.py's check


@pytest.mark.allows_traceback
def test_a_test_may_opt_out_of_the_traceback_check():
    result = runner.invoke(_raising_app(), ["boom"])
    assert isinstance(result.exception, RuntimeError)
