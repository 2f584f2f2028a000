"""Are the single-attack defaults converged? ``er-art attack`` at its defaults against the same with
doubled ``--max-iter`` and ``--restarts`` (docs/EVALUATION.md; issue 7's criterion: at most 1.5
points apart at every eps).

    python benchmarks/convergence.py --run runs/digits-er-pgd-<time> --eps 0.1,0.2,0.3
    python benchmarks/convergence.py --run runs/mnist-small --eps paper -n 500 --attacks pgd

Each command runs as a user would run it (a subprocess of the installed ``er-art``) and writes
its results under ``--work``; the table shows robust accuracy (%) per eps, the drop, and the time
of each command. Not a test: it takes minutes to hours.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

LIMIT = 1.5  # points


def defaults(attack: str) -> tuple[int, int | None]:
    """The plugin's own steps and restarts (what ``er-art attack`` runs without options)."""
    from er_art.attacks import get_attack

    spec = get_attack(attack)
    restarts = spec.defaults.get(spec.restarts_param) if spec.restarts_param else None
    return int(spec.defaults[spec.max_iter_param]), restarts


def run(args: list[str], out: Path) -> tuple[dict[float, float], float]:
    """``er-art attack ARGS --out OUT``: robust accuracy (%) per eps, and the wall time."""
    start = time.perf_counter()
    done = subprocess.run(
        ["er-art", "attack", *args, "--out", str(out)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"er-art attack {' '.join(args)} failed:\n{done.stderr}")
    records = json.loads((out / "results.json").read_text())
    return {r["eps"]: 100 * r["robust_accuracy"] for r in records}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory or checkpoint")
    parser.add_argument("--eps", default="0.1,0.2,0.3")
    parser.add_argument("--attacks", default="pgd,bim,apgd-ce,apgd-dlr")
    parser.add_argument("-n", "--n-samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--work", default="convergence-out", help="where the results go")
    args = parser.parse_args()
    work = Path(args.work)
    rows = []
    for attack in args.attacks.split(","):
        iters, restarts = defaults(attack)
        common = ["-c", args.run, "--method", attack, "--eps", args.eps,
                  "-n", str(args.n_samples), "--batch-size", str(args.batch_size)]  # fmt: skip
        doubled = ["--max-iter", str(2 * iters)]
        if restarts is not None:
            doubled += ["--restarts", str(2 * restarts)]
        base, t_base = run(common, work / f"{attack}-default")
        more, t_more = run(common + doubled, work / f"{attack}-doubled")
        for eps in base:
            drop = base[eps] - more[eps]
            rows.append((attack, eps, base[eps], more[eps], drop, t_base, t_more))
            print(
                f"{attack:9s} eps={eps:<6g} default {base[eps]:5.1f}  doubled {more[eps]:5.1f}  "
                f"drop {drop:+5.1f}  {'ok' if drop <= LIMIT else 'NOT CONVERGED'}  "
                f"({t_base:.0f} s / {t_more:.0f} s)",
                flush=True,
            )
    worst = max(r[4] for r in rows)
    print(f"largest drop: {worst:.1f} points ({'converged' if worst <= LIMIT else 'NOT'})")


if __name__ == "__main__":
    main()
