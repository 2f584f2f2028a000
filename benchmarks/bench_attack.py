"""Attack-speed benchmark: er-art's PGD path against a bare PyTorch loop, and C&W L2 batch sizes.

    .venv/bin/python benchmarks/bench_attack.py                 # digits arch, 256 images, PGD-40
    .venv/bin/python benchmarks/bench_attack.py --arch mnist --n 128 --k 20 --cw-max-iter 5

1. PGD-k through ``er_art.evaluation.run_attack`` (what ``er-art attack`` calls: ART's
   ProjectedGradientDescent on the ERClassifier, plus scoring with clean and adversarial
   predictions)
   against k forward+backward passes of the same model in a bare PyTorch loop; reported as a ratio
   measured in this one run (goal <= 1.15). The best of ``--repeats`` runs of each is used.
2. ART's CarliniL2Method on ``--cw-n`` images at batch sizes 1, 10, 50, 100: seconds and the
   speed-up
   of the fastest batch size over batch size 1.
Numbers go to stdout as a table and, with ``--json PATH``, to a JSON file. Untrained weights: speed
does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("ART_DATA_PATH", "/tmp/er-art-bench-art")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import er_art  # noqa: E402
from er_art.attacks import get_attack  # noqa: E402
from er_art.evaluation.running import run_attack  # noqa: E402


def bare_pgd_passes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Seconds for k forward+backward passes (input gradient only), the floor of any PGD-k."""
    model.eval()
    start = time.perf_counter()
    x_adv = x.clone()
    for _ in range(k):
        x_adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = (x_adv.detach() + 0.01 * grad.sign()).clamp(0, 1)
    return time.perf_counter() - start


def best_of(repeats: int, fn) -> float:
    return min(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="digits", help="ER architecture (default digits, 1x8x8).")
    parser.add_argument("--n", type=int, default=256, help="images attacked by PGD.")
    parser.add_argument("--k", type=int, default=40, help="PGD steps.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cw-n", type=int, default=100, help="images attacked by C&W.")
    parser.add_argument("--cw-max-iter", type=int, default=10)
    parser.add_argument("--cw-binary-search-steps", type=int, default=3)
    parser.add_argument("--cw-batch-sizes", default="1,10,50,100")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)."
    )
    parser.add_argument("--json", default=None, help="also write the numbers here.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clf = er_art.build_classifier(args.arch, device_type="cpu")
    shape = tuple(clf.input_shape)
    rng = np.random.default_rng(0)
    x = rng.random((args.n, *shape), dtype=np.float32)
    y = rng.integers(0, clf.nb_classes, args.n)
    model = clf.model
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    pgd = get_attack("pgd")

    def er_art_pgd() -> float:
        start = time.perf_counter()
        run_attack(clf, x, y, pgd, [0.1], max_iter=args.k, restarts=1, batch_size=args.n)
        return time.perf_counter() - start

    bare_pgd_passes(model, xt[:8], yt[:8], 2)  # warm-up
    er_art_pgd()
    t_bare = best_of(args.repeats, lambda: bare_pgd_passes(model, xt, yt, args.k))
    t_er = best_of(args.repeats, er_art_pgd)
    results: dict = {
        "hardware": f"{platform.machine()}, torch threads {torch.get_num_threads()}",
        "arch": args.arch,
        "pgd": {
            "n": args.n,
            "k": args.k,
            "bare_s": t_bare,
            "er_art_s": t_er,
            "ratio": t_er / t_bare,
        },
        "cw": [],
    }
    print(
        f"PGD-{args.k} on {args.n} x {shape} ({args.arch}): bare loop {t_bare:.3f}s, "
        f"er-art attack path {t_er:.3f}s, ratio {t_er / t_bare:.3f} (goal <= 1.15)"
    )

    x_cw = x[: args.cw_n]
    y_cw = np.eye(clf.nb_classes, dtype=np.float32)[y[: args.cw_n]]
    cw = get_attack("cw")
    for bs in [int(b) for b in args.cw_batch_sizes.split(",")]:
        attack = cw.build(
            clf,
            max_iter=args.cw_max_iter,
            batch_size=bs,
            binary_search_steps=args.cw_binary_search_steps,
        )
        start = time.perf_counter()
        attack.generate(x_cw, y_cw)
        seconds = time.perf_counter() - start
        results["cw"].append({"batch_size": bs, "seconds": seconds})
        print(
            f"CarliniL2Method on {len(x_cw)} images, max_iter {args.cw_max_iter}, "
            f"binary_search_steps {args.cw_binary_search_steps}: batch {bs:>3} -> {seconds:.2f}s",
            flush=True,
        )
    base = results["cw"][0]["seconds"]
    fastest = min(results["cw"], key=lambda r: r["seconds"])
    results["cw_speedup"] = {
        "fastest_batch_size": fastest["batch_size"],
        "speedup_vs_batch_1": base / fastest["seconds"],
    }
    print(
        f"fastest C&W batch size {fastest['batch_size']}: "
        f"{base / fastest['seconds']:.1f}x faster than batch size 1"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
