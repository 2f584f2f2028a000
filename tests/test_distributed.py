"""torchrun: one model trained by several processes, exact resume, sharded evaluation.

The fast tests check the pieces in this process (the one-process world changes nothing, the data
split is DistributedSampler's, attack chunks do not depend on who runs them); the slow ones start
real 2-process gloo jobs on the CPU with torchrun (``python -m torch.distributed.run``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from er_art.cli.app import app
from torch.utils.data import DistributedSampler
from typer.testing import CliRunner

import er_art
from er_art.checkpoint import read_checkpoint
from er_art.distributed import World, join_world, shard_order
from er_art.runs import read_run
from tests.processes import same_seeds_in_subprocesses, wait_for_checkpoint

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------- the pieces, in-process
def test_one_process_world_changes_nothing():
    world = World()
    order = torch.randperm(11)
    assert torch.equal(world.shard(order), order) and world.shard_size(11) == 11
    assert world.local_batch_size(64) == 64 and world.is_main
    x = np.arange(10)
    assert np.array_equal(world.portion(x), x) and list(world.portion(range(3))) == [0, 1, 2]
    t = torch.tensor([1.5, 2.0])
    assert torch.equal(world.sum(t), t) and torch.equal(world.mean(t), t)
    assert world.any(True) and not world.any(False)
    assert world.gather("a") == ["a"] and world.broadcast("b") == "b"
    assert world.on_main(lambda: 3) == 3
    world.agree(lambda: pytest.fail("one process has nothing to compare"), "the weights")
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    with world.averaging_gradients([opt]):
        opt.step()
    assert not opt._optimizer_step_pre_hooks  # nothing is added, nothing is left behind
    world.leave()  # nothing to tear down


def test_join_world_without_torchrun_is_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert type(join_world("cpu")) is World
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1: a plain run
    monkeypatch.setenv("RANK", "0")
    assert type(join_world("cpu")) is World


@pytest.mark.parametrize("n", [10, 11, 3])
@pytest.mark.parametrize("size", [2, 3, 4])
def test_shards_are_distributed_sampler_splits(n, size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    for rank in range(size):
        sampler = DistributedSampler(range(n), num_replicas=size, rank=rank, shuffle=False)
        expected = order[torch.tensor(list(sampler))]
        assert torch.equal(shard_order(order, rank, size), expected)


def test_the_shards_of_a_step_are_the_global_batch():
    """Each process's batch of step s, put together, is the batch one process takes at step s."""
    n, batch, size = 100, 16, 4
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    local = batch // size
    for step in range(n // batch):
        parts = [
            shard_order(order, r, size)[step * local : (step + 1) * local] for r in range(size)
        ]
        together = torch.cat(parts).sort().values
        assert torch.equal(together, order[step * batch : (step + 1) * batch].sort().values)


def test_an_uneven_global_batch_is_one_sentence():
    world = World()
    world.size = 3  # as a 3-process job would split it
    with pytest.raises(ValueError, match=r"batch size 64 does not split evenly over 3 processes"):
        world.local_batch_size(64)


class _Rank(World):
    """Rank ``rank`` of ``size`` that sees only its own results (no other process exists)."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size


def test_attack_chunks_do_not_depend_on_who_attacks_them(digits):
    """A chunk draws from its own seed: rank 0 and rank 1 of a 2-process job, each attacking its
    chunks, give between them exactly the examples of one process attacking all of them."""
    from er_art.attacks import get_attack
    from er_art.evaluation.running import generate_adversarial

    _, _, x, y = digits
    x, y = x[:50], y[:50]
    clf = er_art.build_classifier("test_digits", device_type="cpu", seed=0)
    spec = get_attack("pgd")
    options = dict(max_iter=3, restarts=1, batch_size=16, seed=11)
    whole, _, _ = generate_adversarial(clf, x, y, spec, 0.1, **options)
    parts = [
        generate_adversarial(clf, x, y, spec, 0.1, world=_Rank(r, 2), **options)[0] for r in (0, 1)
    ]
    for c, lo in enumerate(range(0, len(x), 16)):
        mine, other = parts[c % 2], parts[1 - c % 2]
        np.testing.assert_array_equal(mine[lo : lo + 16], whole[lo : lo + 16])
        np.testing.assert_array_equal(other[lo : lo + 16], x[lo : lo + 16])  # not its chunk
    assert not np.array_equal(whole, x)


# ---------------------------------------------------------------------- real 2-process jobs
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
# 44 global steps per epoch (1,400 digits, global batch 32 = 2 x 16): long enough to be caught
# mid-run; the same settings in the library script and on the command line
RUN = dict(
    arch="test_digits",
    device="cpu",
    threads=1,
    epochs=3,
    checkpoint_every=3,
    seed=7,
    max_iter=3,
    batch_size=32,
)
RUN_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in RUN.items()]

# every rank trains through the library and saves what it holds at the end
SCRIPT = """
import sys, torch
from er_art.distributed import join_world
from er_art.training.run import TrainingConfig, train

world = join_world("cpu")
result = train(TrainingConfig(**{run}), sys.argv[1], latest_root=None, world=world)
clf = result.classifier
state = {{"model": clf.model.state_dict(), "optimizers": clf.optimizers.state_dict()}}
torch.save(state, f"{{sys.argv[1]}}-rank{{world.rank}}.pt")
world.leave()
"""


def torchrun(nproc: int, *args: str) -> list[str]:
    return [*TORCHRUN, str(nproc), *args]


def er_art_cli(nproc: int, *args: str) -> list[str]:
    return torchrun(nproc, "-m", "er_art.cli.app", *args)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _equal(a, b) -> bool:
    """Nested state dicts with bit-identical tensors."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.integration
def test_two_processes_train_one_model_and_resume_exactly_after_sigkill(tmp_path):
    # an uninterrupted 2-process run through the library: both ranks end with the same model
    script = tmp_path / "train_ranks.py"
    script.write_text(SCRIPT.format(run=RUN))
    ref = subprocess.run(
        torchrun(2, str(script), "ref"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    rank0 = torch.load(tmp_path / "ref-rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ref-rank1.pt", weights_only=True)
    assert _equal(rank0, rank1)  # weights, BatchNorm statistics, the three Adam states
    saved = read_checkpoint(tmp_path / "ref")["classifier"]
    assert _equal(saved["model"], rank0["model"])
    info = read_run(tmp_path / "ref")
    assert (info["world_size"], info["batch_size_per_process"]) == (2, 16)
    assert info["config"]["batch_size"] == 32 and info["status"] == "finished"
    metrics = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["step"] for m in metrics] == [44, 88, 132]  # global steps of 32
    assert isinstance(er_art.load_classifier(tmp_path / "ref"), er_art.ERClassifier)

    # the same run from the command line, SIGKILLed (every process) some time after a checkpoint
    proc = subprocess.Popen(
        er_art_cli(2, "train", *RUN_ARGS, "--out", "run"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        wait_for_checkpoint(tmp_path / "run", proc, min_step=6, timeout=180)
        time.sleep(random.uniform(0.0, 0.05))
    finally:
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = read_checkpoint(tmp_path / "run")["training"]
    assert not killed["finished"] and killed["world_size"] == 2

    # another number of processes is refused in one sentence
    alone = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path / "run")])
    assert alone.exit_code == 2, alone.output
    assert "trained by 2 processes, not 1; resume it with torchrun --nproc_per_node 2" in (
        alone.stderr
    )

    resumed = subprocess.run(
        er_art_cli(2, "train", "--resume", "--out", "run"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming at") == 1  # rank 0 speaks, rank 1 does not
    final = read_checkpoint(tmp_path / "run")["classifier"]
    assert _equal(final["model"], saved["model"])
    assert _equal(final["optimizers"], saved["optimizers"])


@same_seeds_in_subprocesses
@pytest.mark.slow
@pytest.mark.integration
def test_sharded_evaluation_and_attack_equal_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trained = runner.invoke(
        app,
        ["train", "--arch", "test_digits", "--device", "cpu", "--threads", "1", "--trainer"]
        + ["er-minus", "--epochs", "2", "--limit", "300", "--batch-size", "32", "--out", "run"],
    )
    assert trained.exit_code == 0, trained.output
    common = ["--checkpoint", "run", "--device", "cpu", "--threads", "1", "-n", "70"]
    common += ["--batch-size", "16", "--eps", "0,0.1"]
    commands = {
        # restarts on the examples still robust, checks, Square: every kind of unit
        "evaluate": ["evaluate", *common, "--attacks", "pgd,fgsm,square", "--max-iter", "3"]
        + ["--restarts", "2", "--square-iter", "30"],
        "attack": ["attack", "--method", "pgd", *common, "--max-iter", "3", "--restarts", "3"],
    }
    for name, args in commands.items():
        one = runner.invoke(app, [*args, "--out", f"{name}-1"])
        assert one.exit_code == 0, one.output
        two = subprocess.run(
            er_art_cli(2, *args, "--out", f"{name}-2"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=_env(),
        )
        assert two.returncode == 0, two.stderr[-3000:]
        assert two.stdout.count("wrote ") == len(
            [ln for ln in one.stdout.splitlines() if "wrote " in ln]
        )
        units_1 = sorted((tmp_path / f"{name}-1" / "units").glob("*/*.json"))
        units_2 = sorted((tmp_path / f"{name}-2" / "units").glob("*/*.json"))
        assert [p.name for p in units_1] == [p.name for p in units_2] and units_1
        for a, b in zip(units_1, units_2, strict=True):
            ua, ub = json.loads(a.read_text()), json.loads(b.read_text())
            for key in ("clean_correct", "robust", "perturbation"):
                assert ua[key] == ub[key], (a.name, key)
        r1 = json.loads((tmp_path / f"{name}-1" / "results.json").read_text())
        r2 = json.loads((tmp_path / f"{name}-2" / "results.json").read_text())
        drop = ("time_s", "world_size", "checkpoint")
        assert [{k: v for k, v in r.items() if k not in drop} for r in r1] == [
            {k: v for k, v in r.items() if k not in drop} for r in r2
        ]
        assert {r["world_size"] for r in r1} == {1} and {r["world_size"] for r in r2} == {2}
