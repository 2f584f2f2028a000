"""Which torch thread count and attack batch size should er-art's attacks use on a CPU?

    python benchmarks/bench_cpu_defaults.py --run runs/digits
    python benchmarks/bench_cpu_defaults.py --run runs/mnist -n 512 --batch-sizes 64,128,256,512

For every (threads, batch size) pair, one restart of PGD (40 steps) and of APGD-CE (25 iterations)
through ``er_art.evaluation.run_attack`` on the same test images, the best of ``--repeats`` runs;
the table gives seconds and the ratio to the fastest pair. Same process, back to back, so the
ratios hold on a shared machine; absolute times do not. docs/BENCHMARKS.md has the figures behind
the CLI's defaults (``--batch-size``, ``--threads``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("-n", "--n-samples", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=None, help="default: the run's training eps")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch-sizes", default="64,128,256,512,1024")
    parser.add_argument("--attacks", default="pgd,apgd-ce")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from er_art.checkpoint import load_classifier
    from er_art.datasets import get_dataset
    from er_art.evaluation.running import run_attack
    from er_art.runs import read_run

    config = read_run(Path(args.run))["config"]
    spec = get_dataset(config["dataset"]).resolve(config.get("data_dir"))
    x, y = spec.arrays("test", config.get("data_dir"), limit=args.n_samples)
    eps = args.eps if args.eps is not None else float(config.get("eps") or spec.eps)
    clf = load_classifier(args.run)
    iters = {"pgd": 40, "apgd-ce": 25}
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            for attack in args.attacks.split(","):
                best = float("inf")
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run_attack(
                        clf, x, y, attack, [eps], max_iter=iters.get(attack), restarts=1,
                        patience=0, batch_size=batch,
                    )  # fmt: skip
                    best = min(best, time.perf_counter() - start)
                rows.append((attack, threads, batch, best))
                print(f"{attack:8s} threads={threads} batch={batch:<5d} {best:7.2f} s", flush=True)
    print(f"\n{len(y)} images of {config['dataset']} at eps {eps:g}; ratio to the fastest")
    for attack in args.attacks.split(","):
        mine = [r for r in rows if r[0] == attack]
        fastest = min(r[3] for r in mine)
        for _, threads, batch, seconds in mine:
            print(f"| {attack} | {threads} | {batch} | {seconds:.2f} | {seconds / fastest:.2f} |")


if __name__ == "__main__":
    main()
