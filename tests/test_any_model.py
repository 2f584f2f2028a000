"""Any model: ``er_art.evaluate`` and ``er-art evaluate / attack --model`` (er_art.models.wrapped,
er_art.robustness): the wrapper, the bad-model errors, TorchScript and pickled classifiers, an
untrained torchvision model end to end, RobustBench's fields, and one model evaluated as an er-art
run, through ``--model`` and through the API with identical numbers (also over 2 processes).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from er_art.cli.app import app
from torch import nn
from typer.testing import CliRunner

import er_art
from er_art.models.wrapped import ModelError, WrappedModel, load_model, wrap_model
from tests.processes import same_seeds_in_subprocesses

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")

FACTORY = "tests.any_models"
# small budgets: every attack and check runs, in seconds
QUICK = ["--device", "cpu", "--threads", "1", "--attacks", "apgd-ce,square,fgsm"]
QUICK += ["--max-iter", "4", "--restarts", "2", "--square-iter", "20", "--batch-size", "16"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))  # tests.any_models importable as --model's factory


@pytest.fixture(scope="module")
def cifar_npz(tmp_path_factory) -> Path:
    """20 random 3x32x32 images in [0, 1] with 10-class labels (``--data``)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "cifar.npz"
    np.savez(path, x=rng.random((20, 3, 32, 32), dtype=np.float32), y=rng.integers(0, 10, 20))
    return path


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))


def _one_sentence(result) -> str:
    """The command's error: exit code 2, one line ``error: ...`` on stderr."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------------------- the wrapper
def test_the_normalisation_runs_inside_the_model_and_gradients_flow():
    net = _net()
    x = np.random.default_rng(0).random((6, 3, 4, 4), dtype=np.float32)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    clf = wrap_model(net, x=x, mean=mean, std=std, device_type="cpu")
    assert isinstance(clf.model, WrappedModel) and clf.nb_classes == 5
    assert tuple(clf.clip_values) == (0.0, 1.0)  # the attacks keep to the stored range
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    expected = net((torch.from_numpy(x) - m) / s).detach().numpy()
    np.testing.assert_allclose(clf.predict(x), expected, rtol=1e-5, atol=1e-6)
    # the input gradient goes through (x - mean) / std: d/dx = (d/dz) / std
    xt = torch.from_numpy(x).requires_grad_(True)
    loss = nn.functional.cross_entropy(net((xt - m) / s), torch.zeros(6, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, xt)
    got = clf.loss_gradient(x, np.eye(5, dtype=np.float32)[np.zeros(6, dtype=int)])
    np.testing.assert_allclose(got, grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y": np.arange(6)}, r"returns 5 logits but the data has label 5"),
        ({"nb_classes": 10}, r"returns 5 logits but the data has 10 classes"),
        ({"mean": (0.1, 0.2), "std": 1.0}, r"mean has 2 values but the inputs have 3 channels"),
        ({"mean": 0.0, "std": 0.0}, r"std must be positive"),
    ],
)
def test_a_model_that_does_not_fit_is_one_sentence(kwargs, match):
    x = np.zeros((6, 3, 4, 4), np.float32)
    with pytest.raises(ModelError, match=match) as err:
        wrap_model(_net(), x=x, device_type="cpu", **kwargs)
    assert "\n" not in str(err.value)


def test_logits_are_picked_from_a_dict_or_a_tuple():
    from tests.any_models import dict_output, tuple_output

    x = np.random.default_rng(1).random((3, 3, 32, 32), dtype=np.float32)
    with pytest.raises(ModelError, match=r"returned a dict with keys 'features', 'logits'"):
        wrap_model(dict_output(), x=x, device_type="cpu")
    with pytest.raises(ModelError, match=r"returned a tuple of 2, not a tensor of logits"):
        wrap_model(tuple_output(), x=x, device_type="cpu")
    by_key = wrap_model(dict_output(), x=x, logits="logits", device_type="cpu")
    by_index = wrap_model(tuple_output(), x=x, logits="0", device_type="cpu")
    assert by_key.nb_classes == by_index.nb_classes == 10
    np.testing.assert_allclose(by_key.predict(x), by_index.predict(x), rtol=1e-6)


def test_a_pickled_classifier_loads_and_a_foreign_pickle_never_runs(tmp_path):
    x = np.random.default_rng(2).random((4, 3, 4, 4), dtype=np.float32)
    clf = wrap_model(_net(), x=x, device_type="cpu")
    torch.save(clf, tmp_path / "clf.pt")
    with open(tmp_path / "clf.pkl", "wb") as fh:
        pickle.dump(clf, fh)
    for name in ("clf.pt", "clf.pkl"):
        loaded = load_model(tmp_path / name)
        assert loaded.kind == "art-classifier" and loaded.identity["sha256"]
        np.testing.assert_allclose(loaded.model.predict(x), clf.predict(x), rtol=1e-6)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump(Payload(), fh)
    with pytest.raises(ModelError, match=r"evil.pkl is a pickle of (posix|os)\.mkdir, not of an"):
        load_model(tmp_path / "evil.pkl")
    assert not marker.exists()
    refused = runner.invoke(app, ["evaluate", "--model", "evil.pkl", "--dataset", "digits"])
    assert "is a pickle of" in _one_sentence(refused) and not marker.exists()


# ---------------------------------------------------------------------------- the CLI's errors
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", f"{FACTORY}:tuple_output"], "returned a tuple of 2, not a tensor of logits"),
        (["--model", f"{FACTORY}:dict_output"], "returned a dict with keys 'features', 'logits'"),
        (["--model", f"{FACTORY}:five_classes"], "returns 5 logits but the data has label"),
        (["--model", "no_such_pkg.models:net"], "cannot import module 'no_such_pkg.models'"),
        (["--model", f"{FACTORY}:NOT_CALLABLE"], "'NOT_CALLABLE' is a int, not callable"),
        (["--model", f"{FACTORY}:tiny_cifar", "--weights", "cifar.npz"], "torch.load(weights_"),
        (["--model", f"{FACTORY}:resnet18", "--weights", "w.pt"], "do not fit"),
        (["--model", f"{FACTORY}:tiny_cifar", "--logits", "x"], None),  # a tensor: ignored
        (["--model", "cifar.npz"], "neither a TorchScript file nor a pickled classifier"),
        (["--model", f"{FACTORY}:tiny_cifar", "--mean", "a,b"], "--mean must be comma-separated"),
        (["--model", f"{FACTORY}:tiny_cifar", "--input-range", "0,0.5"], "outside the input range"),
        (["-c", "run", "--data", "cifar.npz"], "--data goes with --model"),
    ],
)
def test_each_bad_model_is_one_sentence(cifar_npz, args, expected, tmp_path):
    from tests.any_models import tiny_cifar

    (tmp_path / "cifar.npz").write_bytes(cifar_npz.read_bytes())
    torch.save(tiny_cifar().state_dict(), tmp_path / "w.pt")
    data = [] if "--data" in args else ["--data", "cifar.npz"]
    result = runner.invoke(app, ["evaluate", *args, *data, "--eps", "0.03", *QUICK, "--no-checks"])
    if expected is None:
        assert result.exit_code == 0, result.output
        return
    line = _one_sentence(result)
    assert expected in line, line


def test_the_wrong_input_shape_is_one_sentence():
    result = runner.invoke(
        app, ["evaluate", "--model", f"{FACTORY}:tiny_cifar", "--dataset", "digits", *QUICK]
    )
    line = _one_sentence(result)
    assert "fails on one example of shape (1, 8, 8)" in line and "give data of the shape" in line


# ---------------------------------------------------------------------------- end to end
@pytest.mark.integration
def test_a_torchscript_file_and_resume_refusing_another_model(cifar_npz, tmp_path):
    from tests.any_models import tiny_cifar

    scripted = torch.jit.trace(tiny_cifar(), torch.rand(1, 3, 32, 32))
    torch.jit.save(scripted, tmp_path / "net.pt")
    args = ["--data", str(cifar_npz), "--eps", "0.03", *QUICK]
    done = runner.invoke(app, ["evaluate", "--model", "net.pt", *args, "--out", "ts"])
    assert done.exit_code == 0, done.output
    records = json.loads((tmp_path / "ts" / "results.json").read_text())
    assert {r["method"] for r in records} >= {"apgd-ce", "square", "fgsm", "worst-case"}
    manifest = json.loads((tmp_path / "ts" / "evaluation.json").read_text())["options"]
    assert manifest["models"][0]["kind"] == "torchscript"
    again = runner.invoke(app, ["evaluate", "--model", "net.pt", *args, "--out", "ts", "--resume"])
    assert again.exit_code == 0, again.output
    attacked = runner.invoke(
        app, ["attack", "--model", "net.pt", "-m", "fgsm", *args[:4], "--device", "cpu"]
    )
    assert attacked.exit_code == 0 and "er-art evaluate --model" in attacked.output
    x = np.load(cifar_npz)["x"]
    torch.save(wrap_model(tiny_cifar(), x=x, device_type="cpu"), tmp_path / "clf.pt")
    saved = runner.invoke(app, ["evaluate", "--model", "clf.pt", *args, "--out", "pickled"])
    assert saved.exit_code == 0, saved.output
    pickled = json.loads((tmp_path / "pickled" / "results.json").read_text())
    assert _numbers(pickled) == _numbers(records)  # the same network, saved another way
    changed = torch.jit.trace(nn.Sequential(tiny_cifar(), nn.Tanh()), torch.rand(1, 3, 32, 32))
    torch.jit.save(changed, tmp_path / "net.pt")
    other = runner.invoke(app, ["evaluate", "--model", "net.pt", *args, "--out", "ts", "--resume"])
    assert "was computed on another version of the checkpoint" in _one_sentence(other)


@pytest.mark.slow
@pytest.mark.integration
def test_an_untrained_torchvision_resnet_under_the_standard_autoattack(cifar_npz, tmp_path):
    """RobustBench's fields in results.json (the worst case of the standard suite)."""
    args = ["evaluate", "--model", f"{FACTORY}:resnet18", "--data", str(cifar_npz)]
    args += ["--mean", "0.4914,0.4822,0.4465", "--std", "0.2471,0.2435,0.2616"]
    args += ["--suite", "standard", "--eps", "0.0314", "--device", "cpu", "--threads", "1"]
    done = runner.invoke(app, [*args, "--no-checks", "--out", "aa"])
    assert done.exit_code == 0, done.output
    records = json.loads((tmp_path / "aa" / "results.json").read_text())
    assert [r["method"] for r in records] == ["apgd-ce", "apgd-t", "fab-t", "square", "worst-case"]
    worst = records[-1]
    n_correct = round(worst["clean_accuracy"] * 20)
    assert worst["clean_acc"] == str(round(100 * n_correct / 20, 2))
    assert worst["autoattack_acc"] == str(round(100 * worst["robust_accuracy"], 2))
    assert worst["n_examples"] == 20 and worst["eps"] == 0.0314
    assert worst["threat_model"] == "Linf" and worst["version"] == "standard"
    assert worst["attacks_to_run"] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def test_the_api_report(tmp_path):
    """er_art.evaluate on a plain module: per eps each attack and the worst case with Wilson
    intervals, per-example outcomes, checks; RobustBench's fields with the standard suite."""
    from er_art.stats import wilson_interval

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 4))
    x = np.random.default_rng(3).random((24, 3, 4, 4), dtype=np.float32)
    y = net(torch.from_numpy(x)).argmax(1).numpy()
    report = er_art.evaluate(
        net, x, y, eps=[0.02, 0.3], attacks=["apgd-ce", "fgsm"], max_iter=4, restarts=2,
        square_queries=20, device_type="cpu", batch_size=16,
    )  # fmt: skip
    data = json.loads(json.dumps(report.to_json()))
    assert data["n"] == 24 and data["clean"]["accuracy"] == 1.0
    for row in data["eps"]:
        worst = row["worst_case"]
        assert worst["ci95"] == pytest.approx(list(wilson_interval(worst["robust"], 24)))
        assert worst["accuracy"] <= min(a["accuracy"] for a in row["attacks"])
        robust = data["per_example"]["robust"][f"{row['eps']:.10g}"]["worst-case"]
        assert sum(robust) == worst["robust"]
    assert report.accuracy(0.3) <= report.accuracy(0.02)
    assert {c["check"] for c in data["checks"]} and data["robustbench"] == []
    standard = er_art.evaluate(net, x, y, eps=0.3, suite="standard", device_type="cpu",
                               checks=False)  # fmt: skip
    (fields,) = standard.to_json()["robustbench"]
    assert fields["clean_acc"] == "100.0" and fields["n_examples"] == 24
    assert fields["autoattack_acc"] == str(round(100 * standard.accuracy(0.3), 2))
    with pytest.raises(ValueError, match=r"drop max_iter or use suite='fast'"):
        er_art.evaluate(net, x, y, eps=0.3, suite="standard", max_iter=3)


# ---------------------------------------------------------------------- three paths, one model
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A tiny er-art run on the bundled digits, and its network's weights as a state dict."""
    root = tmp_path_factory.mktemp("anyrun")
    here = Path.cwd()
    os.chdir(root)  # runs/LATEST lands there
    try:
        trained = runner.invoke(
            app,
            ["train", "--arch", "test_digits", "--device", "cpu", "--threads", "1", "--trainer"]
            + ["er-minus", "--epochs", "2", "--limit", "300", "--batch-size", "32"]
            + ["--out", str(root / "run")],
        )
    finally:
        os.chdir(here)
    assert trained.exit_code == 0, trained.output
    clf = er_art.load_classifier(root / "run", device_type="cpu")
    torch.save(clf.er_model.state_dict(), root / "weights.pt")
    return root


def _units(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "units").glob("*/*.json"))}


def _numbers(records: list[dict]) -> list[dict]:
    drop = ("time_s", "checkpoint", "label", "world_size")
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


@same_seeds_in_subprocesses
@pytest.mark.slow
@pytest.mark.integration
def test_one_model_as_a_run_through_model_and_through_the_api_gives_identical_numbers(
    digits_run, tmp_path
):
    run, weights = digits_run / "run", digits_run / "weights.pt"
    common = [*QUICK, "-n", "40", "--eps", "0.1,0.2"]
    as_run = runner.invoke(app, ["evaluate", "-c", str(run), *common, "--out", "as-run"])
    assert as_run.exit_code == 0, as_run.output
    model = ["--model", f"{FACTORY}:er_digits", "--weights", str(weights), "--dataset", "digits"]
    as_model = runner.invoke(app, ["evaluate", *model, *common, "--out", "as-model"])
    assert as_model.exit_code == 0, as_model.output
    units_run, units_model = _units(tmp_path / "as-run"), _units(tmp_path / "as-model")
    assert units_run.keys() == units_model.keys() and units_run
    for name, unit in units_run.items():
        for key in ("clean_correct", "robust", "perturbation"):
            assert unit[key] == units_model[name][key], (name, key)
    r_run = json.loads((tmp_path / "as-run" / "results.json").read_text())
    r_model = json.loads((tmp_path / "as-model" / "results.json").read_text())
    assert _numbers(r_run) == _numbers(r_model)
    checks_run = json.loads((tmp_path / "as-run" / "checks.json").read_text())
    checks_model = json.loads((tmp_path / "as-model" / "checks.json").read_text())
    assert [c["status"] for c in checks_run] == [c["status"] for c in checks_model]

    from er_art.datasets import get_dataset

    x, y = get_dataset("digits").arrays("test", None, 40)
    net = er_art.load_classifier(run, device_type="cpu").er_model  # a plain nn.Module
    report = er_art.evaluate(
        net, x, y, eps=[0.1, 0.2], attacks=["apgd-ce", "square", "fgsm"], max_iter=4,
        restarts=2, square_queries=20, batch_size=16, device_type="cpu",
    )  # fmt: skip
    api = report.records()
    assert [(r["method"], r["eps"]) for r in api] == [(r["method"], r["eps"]) for r in r_run]
    for a, b in zip(api, r_run, strict=True):
        assert a["robust_accuracy"] == b["robust_accuracy"], (a["method"], a["eps"])
        assert a["clean_accuracy"] == b["clean_accuracy"]
    for eps in (0.1, 0.2):
        for o in report.result.by_eps[eps]:
            unit = units_run.get(f"{o.method}@{eps:.10g}.json")
            if unit is not None:
                assert o.robust.astype(int).tolist() == unit["robust"], (o.method, eps)
    by_path = er_art.evaluate(
        str(run), x, y, eps=[0.1, 0.2], attacks=["apgd-ce", "square", "fgsm"], max_iter=4,
        restarts=2, square_queries=20, batch_size=16, device_type="cpu",
    )  # fmt: skip
    assert _numbers(by_path.records()) == _numbers(api)


@same_seeds_in_subprocesses
@pytest.mark.slow
@pytest.mark.integration
def test_two_processes_evaluate_a_model_as_one_and_resume(digits_run, tmp_path):
    """torchrun: the standard AutoAttack of a --model, shared over 2 processes, gives the numbers
    of one process; --resume of the finished store computes nothing new and agrees."""
    weights = digits_run / "weights.pt"
    args = ["evaluate", "--model", f"{FACTORY}:er_digits", "--weights", str(weights)]
    args += ["--dataset", "digits", "-n", "30", "--eps", "0.05", "--suite", "standard"]
    args += ["--device", "cpu", "--threads", "1", "--batch-size", "8", "--no-checks"]
    one = runner.invoke(app, [*args, "--out", "one"])
    assert one.exit_code == 0, one.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    command += ["2", "-m", "er_art.cli.app", *args, "--out", "two"]
    two = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert two.returncode == 0, two.stderr[-3000:]
    units_1, units_2 = _units(tmp_path / "one"), _units(tmp_path / "two")
    assert units_1.keys() == units_2.keys() and units_1
    for name, unit in units_1.items():
        for key in ("clean_correct", "robust", "perturbation"):
            assert unit[key] == units_2[name][key], (name, key)
    r1 = json.loads((tmp_path / "one" / "results.json").read_text())
    r2 = json.loads((tmp_path / "two" / "results.json").read_text())
    assert _numbers(r1) == _numbers(r2) and {r["world_size"] for r in r2} == {2}
    assert r1[-1]["autoattack_acc"] == r2[-1]["autoattack_acc"]
    resumed = subprocess.run(
        [*command, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _numbers(json.loads((tmp_path / "two" / "results.json").read_text())) == _numbers(r1)


@pytest.mark.slow
def test_the_readme_snippet_evaluates_a_plain_pytorch_model(capsys):
    """README's five lines, as written (an untrained ResNet-18, 16 random images)."""
    text = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    (snippet,) = [b for b in blocks if "er_art.evaluate(model" in b]
    assert len([line for line in snippet.splitlines() if line.strip()]) == 5
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'autoattack_acc'" in printed and "'clean_acc'" in printed
