"""How many restarts does an attack need? The evidence behind the stopping rule's patience R.

    python benchmarks/restart_curves.py --run runs/digits --eps 0.1,0.2 --out curves-digits.json
    python benchmarks/restart_curves.py --run runs/mnist --eps 0.2,0.3 -n 300 --cap 64

Runs each attack with every restart up to a large cap (``patience=0``: no early stop), on the
examples no earlier restart broke, and records how many examples each restart newly broke. Since
a restart only ever attacks what the earlier ones left robust, stopping after restart k gives
exactly the examples the first k broke; so the rule "stop after R restarts in a row that break
nothing (at least R restarts)" can be replayed on the recorded curve for every R: how many
restarts it runs, what it costs (examples attacked, a proxy for gradient steps) and how many
breaks it misses (robust accuracy it overstates). docs/EVALUATION.md quotes the table. Not a test:
minutes to an hour on a CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_CAPS = {"pgd": 128, "apgd-ce": 128, "apgd-dlr": 128}
PATIENCES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def replay(breaks: list[int], robust_start: int, patience: int) -> tuple[int, int, int]:
    """``(restarts run, examples attacked, breaks missed)`` of the rule at ``patience`` on a
    recorded curve (``robust_start``: examples the first restart attacked)."""
    attacked, remaining, run = 0, robust_start, 0
    for run, b in enumerate(breaks, start=1):
        attacked += remaining
        remaining -= b
        if remaining == 0 or (run >= patience and not any(breaks[run - patience : run])):
            break
    return run, attacked, sum(breaks[run:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--eps", default="0.1,0.2")
    parser.add_argument("--attacks", default="pgd,apgd-ce")
    parser.add_argument("-n", "--n-samples", type=int, default=1000)
    parser.add_argument("--cap", type=int, default=None, help="restarts (default per attack)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", default=None, help="write the curves here (JSON)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from er_art.checkpoint import load_classifier
    from er_art.datasets import get_dataset
    from er_art.evaluation.running import run_attack
    from er_art.runs import read_run

    torch.set_num_threads(1)
    run = read_run(Path(args.run))
    config = run["config"]
    spec = get_dataset(config["dataset"]).resolve(config.get("data_dir"))
    x, y = spec.arrays("test", config.get("data_dir"), limit=args.n_samples)
    clf = load_classifier(args.run)
    curves = []
    for attack in args.attacks.split(","):
        cap = args.cap or DEFAULT_CAPS.get(attack, 128)
        for eps in [float(e) for e in args.eps.split(",")]:
            for seed in range(args.seeds):
                start = time.perf_counter()
                (outcome,) = run_attack(
                    clf, x, y, attack, [eps], restarts=cap, patience=0, seed=seed,
                    batch_size=args.batch_size,
                )  # fmt: skip
                s = outcome.settings
                curves.append(
                    {
                        "attack": attack,
                        "eps": eps,
                        "seed": seed,
                        "n": int(len(y)),
                        "clean_correct": int(outcome.clean_correct.sum()),
                        "breaks": s["breaks_per_restart"],
                        "robust": int(outcome.robust.sum()),
                        "seconds": time.perf_counter() - start,
                    }
                )
                c = curves[-1]
                first = [i + 1 for i, b in enumerate(c["breaks"]) if b]
                print(
                    f"{attack} eps={eps:g} seed={seed}: robust {c['robust']}/{c['n']} after "
                    f"{len(c['breaks'])} restarts ({c['seconds']:.0f} s); restarts that broke "
                    f"something: {first}",
                    flush=True,
                )
    if args.out:
        Path(args.out).write_text(json.dumps(curves, indent=1))
    print("\nreplay: patience R (minimum R) -> mean restarts run, cost (% of all restarts), "
          "breaks missed (points of robust accuracy: mean, max)")  # fmt: skip
    for attack in args.attacks.split(","):
        mine = [c for c in curves if c["attack"] == attack]
        for r in PATIENCES:
            rows = [replay(c["breaks"], c["clean_correct"], r) for c in mine]
            full = [replay(c["breaks"], c["clean_correct"], len(c["breaks"]) + 1) for c in mine]
            cost = sum(a for _, a, _ in rows) / max(1, sum(a for _, a, _ in full))
            missed = [100 * m / c["n"] for (_, _, m), c in zip(rows, mine, strict=True)]
            print(
                f"{attack:8s} R={r:<3d} restarts {np.mean([k for k, _, _ in rows]):6.1f}  "
                f"cost {100 * cost:5.1f} %  missed {np.mean(missed):.2f} / {max(missed):.2f}"
            )


if __name__ == "__main__":
    main()
