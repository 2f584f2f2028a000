"""The cost of honest evaluation, side by side in one run (issue 15's budgets).

    python benchmarks/bench_evaluation_cost.py --run runs/digits --eps 0.1,0.2 --readme
    python benchmarks/bench_evaluation_cost.py --run runs/mnist --eps 0.2,0.3 -n 1000
    python benchmarks/bench_evaluation_cost.py --run runs/digits --eps 0.1,0.2 \\
        --before-cli /path/to/older/venv/bin/er-art          # the same commands of an older er-art

Each row is a command as a user runs it (a subprocess of the installed ``er-art``), timed as a
whole (wall seconds, start-up included), with the robust accuracy it reports per eps:

- ``evaluate --suite standard``: the standard AutoAttack (the reference for time and strength);
- ``evaluate``: the default fast suite with its sanity checks (worst case);
- ``attack --method pgd`` at its defaults, and with twice the steps and twice the restart budget
  (cap and patience), the convergence criterion;
- with ``--readme``: the README's main command on a fresh directory (train, then PGD over 7 eps);
- with ``--before-cli``: ``evaluate`` and ``attack --method pgd`` of another er-art installation
  (e.g. the last release) on the same run, for a before / after table;
- when ``torchattacks`` is installed: its AutoAttack (``version="standard"``) on the same model and
  images, in a subprocess too (an outside reference; never needed by the tests).

Times are ratios to the standard AutoAttack of the same run: this machine is shared, so absolute
seconds are only indicative. The markdown table goes into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCHATTACKS = r"""
import json, sys, time
import numpy as np, torch, torchattacks
from er_art.checkpoint import load_classifier
from er_art.datasets import get_dataset
from er_art.runs import read_run
run, n, batch = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])
eps_list = [float(e) for e in sys.argv[2].split(",")]
config = read_run(run)["config"]
spec = get_dataset(config["dataset"]).resolve(config.get("data_dir"))
x, y = spec.arrays("test", config.get("data_dir"), limit=n)
clf = load_classifier(run)
net = clf.model.eval()  # an er-art run's model returns the logits
out = {}
for eps in eps_list:
    attack = torchattacks.AutoAttack(
        net, norm="Linf", eps=eps, version="standard", n_classes=clf.nb_classes, seed=0
    )
    correct = 0
    for lo in range(0, len(x), batch):
        xb, yb = torch.from_numpy(x[lo:lo + batch]), torch.from_numpy(y[lo:lo + batch]).long()
        adv = attack(xb, yb)
        with torch.no_grad():
            correct += int((net(adv).argmax(1) == yb).sum())
    out[eps] = correct / len(x)
print(json.dumps(out))
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return seconds, done


def robust(out: Path, method: str) -> dict[float, float]:
    """Robust accuracy (%) per eps of ``method`` (or the worst case) in ``out/results.json``."""
    records = json.loads((out / "results.json").read_text())
    return {r["eps"]: 100 * r["robust_accuracy"] for r in records if r["method"] == method}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--eps", default="0.1,0.2")
    parser.add_argument("-n", "--n-samples", type=int, default=1000)
    parser.add_argument("--cli", default=shutil.which("er-art") or "er-art")
    parser.add_argument("--before-cli", default=None, help="another er-art executable")
    parser.add_argument("--readme", action="store_true", help="also time the README's main job")
    parser.add_argument("--work", default=None, help="where outputs go (default: a temp dir)")
    parser.add_argument("--skip-torchattacks", action="store_true")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="er-art-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    run = str(Path(args.run).resolve())
    common = ["-c", run, "--eps", args.eps, "-n", str(args.n_samples)]
    eps_values = [float(e) for e in args.eps.split(",")]
    rows: list[tuple[str, float, dict[float, float]]] = []

    def row(name: str, cli: str, sub: list[str], method: str) -> None:
        out = work / name.replace(" ", "_").replace("/", "-")
        seconds, _ = timed([cli, *sub, *common, "--out", str(out)], work)
        rows.append((name, seconds, robust(out, method)))
        print(f"{name}: {seconds:.0f} s {rows[-1][2]}", flush=True)

    row("evaluate --suite standard", args.cli, ["evaluate", "--suite", "standard"], "worst-case")
    row("evaluate (defaults)", args.cli, ["evaluate"], "worst-case")
    row("attack --method pgd", args.cli, ["attack", "--method", "pgd"], "pgd")
    from er_art.attacks import get_attack

    pgd = get_attack("pgd")  # twice its steps, restart cap and patience
    doubled = [
        *("--max-iter", str(2 * pgd.defaults["max_iter"])),
        *("--restarts", str(2 * pgd.defaults["num_random_init"])),
        *("--patience", str(2 * pgd.patience)),
    ]
    row("attack --method pgd, 2x", args.cli, ["attack", "--method", "pgd", *doubled], "pgd")
    if args.before_cli:
        row("before: evaluate (defaults)", args.before_cli, ["evaluate"], "worst-case")
        row("before: attack --method pgd", args.before_cli, ["attack", "--method", "pgd"], "pgd")
    if not args.skip_torchattacks:
        try:
            import torchattacks  # noqa: F401
        except ImportError:
            print("torchattacks is not installed: no outside reference", flush=True)
        else:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", TORCHATTACKS, run, args.eps, str(args.n_samples), "512"],
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - start
            if done.returncode == 0:
                accs = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(
                    (
                        "torchattacks AutoAttack",
                        seconds,
                        {float(k): 100 * v for k, v in accs.items()},
                    )
                )
                print(f"torchattacks: {seconds:.0f} s {rows[-1][2]}", flush=True)
            else:
                print(f"torchattacks failed:\n{done.stderr[-2000:]}", flush=True)
    readme = None
    if args.readme:
        fresh = work / "readme"
        fresh.mkdir(exist_ok=True)
        t_train, _ = timed([args.cli, "train", "--out", str(fresh / "run")], fresh)
        t_attack, _ = timed(
            [args.cli, "attack", "-c", str(fresh / "run"), "--method", "pgd", "--eps",
             "0:0.3:0.05", "--out", str(fresh / "sweep")],
            fresh,
        )  # fmt: skip
        readme = (t_train, t_attack, robust(fresh / "sweep", "pgd"))
        print(f"README main job: {t_train:.0f} s + {t_attack:.0f} s {readme[2]}", flush=True)

    standard = rows[0][1]
    print(f"\n{args.run}, {args.n_samples} test images at most, eps {args.eps}\n")
    header = ", ".join(map(str, eps_values))
    print(f"| command | time s | time / standard | robust % at eps {header} |")
    print("|---|---|---|---|")
    for name, seconds, accs in rows:
        values = " / ".join(f"{accs.get(e, float('nan')):.1f}" for e in eps_values)
        print(f"| `{name}` | {seconds:.0f} | {seconds / standard:.2f} | {values} |")
    if readme is not None:
        t_train, t_attack, accs = readme
        values = " / ".join(f"{accs[e]:.1f}" for e in sorted(accs))
        print(f"\nREADME main job: train {t_train:.0f} s + PGD sweep {t_attack:.0f} s = "
              f"{t_train + t_attack:.0f} s; robust % at eps 0:0.3:0.05: {values}")  # fmt: skip


if __name__ == "__main__":
    main()
