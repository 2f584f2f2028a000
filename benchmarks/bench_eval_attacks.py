"""The attacks inside evaluation: ART's NumPy loops against er-art's PyTorch implementations.

    .venv/bin/python benchmarks/bench_eval_attacks.py --run runs/digits-er-pgd-<time>   # issue 8
    .venv/bin/python benchmarks/bench_eval_attacks.py --run RUN --dataset npz --data-dir DIR \
        --n 200 --attacks apgd-ce --repeats 2

Two measurements on the first ``--n`` test images of the run's dataset, one after the other in
one process, so that the ratios compare like with like on a shared machine:

1. **the evaluation path**: ``er-art attack --method A`` for each ``A`` of ``--attacks`` (default
   ``pgd``, ``apgd-ce``, ``apgd-dlr``, ``square``) as the library runs it
   (:func:`er_art.evaluation.run_attack`: the plugin's converged defaults, e.g. 64 restarts for
   PGD and APGD, each restart on the examples no earlier one broke; Square with 1000 queries as in
   ``er-art evaluate``), with ``implementation=art`` (ART's ``ProjectedGradientDescent``,
   ``AutoProjectedGradientDescent``, ``SquareAttack``) and ``implementation=torch``
   (``er_art.attacks.pgd.PGD``, ``er_art.attacks.apgd.AutoPGD``,
   ``er_art.attacks.square.SquareAttackTorch``) at each
   ``--eps``, ``--repeats`` times: seconds, robust accuracy, and ART's time over torch's;
2. **the overhead**: one restart of ``AutoPGD`` (CE, 25 iterations) on every correctly classified
   image against a bare PyTorch loop of the same work, 26 forward and backward passes of the model
   per batch (the input gradient of the loss, a sign step, a clamp): ``AutoPGD``'s time over the
   bare loop's is the cost of the step-size schedule, the bookkeeping and the model-access layer.

Run with one torch thread (``--threads``, default 1): small CPU models on a shared machine.
Absolute times are only comparable within one run. ``--device cuda`` runs everything on the GPU
(benchmarks/gpu_checks.sh does, on a digits run it trains there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("ART_DATA_PATH", "/tmp/er-art-bench-art")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import er_art  # noqa: E402
from er_art.attacks.apgd import AutoPGD  # noqa: E402
from er_art.attacks.view import attack_view  # noqa: E402
from er_art.datasets import get_dataset  # noqa: E402
from er_art.evaluation.outcome import predict_labels  # noqa: E402
from er_art.evaluation.running import run_attack

IMPLEMENTATIONS = ("art", "torch")
ATTACKS = ("pgd", "bim", "apgd-ce", "apgd-dlr", "apgd-t", "square")


def bare_loop(clf, x: np.ndarray, y: np.ndarray, eps: float, steps: int, batch_size: int) -> None:
    """``steps`` input-gradient steps of the cross-entropy per batch, nothing else."""
    model = clf.model
    model.eval()
    for lo in range(0, len(x), batch_size):
        x0 = torch.as_tensor(x[lo : lo + batch_size], device=clf.device)
        yb = torch.as_tensor(y[lo : lo + batch_size], device=clf.device)
        xa = x0.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yb), xa)
            xa = (x0 + (xa.detach() + eps * g.sign() - x0).clamp(-eps, eps)).clamp(0, 1)
        xa.cpu().numpy()  # waits for the device


def sync(clf) -> None:
    if clf.device.type == "cuda":
        torch.cuda.synchronize(clf.device)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="run directory or checkpoint.")
    parser.add_argument("--dataset", default="digits", help="its test split is attacked.")
    parser.add_argument("--data-dir", default=None, help="the dataset's files, if it has any.")
    parser.add_argument("--n", type=int, default=397, help="test images (the first n).")
    parser.add_argument("--eps", default="0.1,0.2", help="comma-separated Linf budgets.")
    parser.add_argument("--attacks", default="pgd,apgd-ce,apgd-dlr,square", help="Plugins.")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--square-queries", type=int, default=1000)
    parser.add_argument("--restarts", type=int, default=None, help="default: each plugin's.")
    parser.add_argument("--max-iter", type=int, default=None, help="default: each plugin's.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the numbers here.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    eps_values = [float(e) for e in args.eps.split(",") if e.strip()]
    attacks = [s.strip() for s in args.attacks.split(",") if s.strip()]
    bad = [a for a in attacks if a not in ATTACKS]
    if bad:
        parser.error(f"unknown attack {bad[0]!r}; accepted: {', '.join(ATTACKS)}.")

    clf = er_art.load_classifier(args.run, device_type=args.device)
    kwargs = {"data_dir": args.data_dir} if args.data_dir else {}
    x_all, y_all = get_dataset(args.dataset).arrays("test", **kwargs)
    x, y = x_all[: args.n].astype(np.float32), np.asarray(y_all[: args.n]).astype(np.int64)
    clean = predict_labels(clf, x) == y
    results: dict = {
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}"
        + (f", {torch.cuda.get_device_name(0)}" if clf.device.type == "cuda" else ""),
        "run": str(Path(args.run)),
        "n": len(x),
        "clean_accuracy": float(clean.mean()),
        "evaluation": [],
        "overhead": [],
    }
    print(f"{args.dataset}: {len(x)} images, clean {clean.mean():.3f}; threads {args.threads}")
    print(f"{'attack':9} {'eps':>5} {'impl':>5} {'seconds':>8} {'robust':>7} {'art/torch':>9}")
    for attack in attacks:
        max_iter = args.square_queries if attack == "square" else args.max_iter
        for eps in eps_values:
            for rep in range(args.repeats):
                seconds = {}
                for impl in IMPLEMENTATIONS:
                    sync(clf)
                    start = time.perf_counter()
                    (outcome,) = run_attack(
                        clf,
                        x,
                        y,
                        attack,
                        [eps],
                        max_iter=max_iter,
                        restarts=args.restarts,
                        batch_size=args.batch_size,
                        seed=args.seed,
                        params={"implementation": impl},
                        clean_pred=np.where(clean, y, -1),
                    )
                    seconds[impl] = time.perf_counter() - start
                    ratio = seconds["art"] / seconds["torch"] if impl == "torch" else None
                    results["evaluation"].append(
                        {
                            "attack": attack,
                            "eps": eps,
                            "repeat": rep,
                            "implementation": impl,
                            "seconds": seconds[impl],
                            "robust_accuracy": outcome.accuracy,
                            "art_over_torch": ratio,
                            "settings": outcome.settings["art_params"],
                        }
                    )
                    shown = f"{ratio:9.2f}" if ratio else f"{'':9}"
                    print(
                        f"{attack:9} {eps:5g} {impl:>5} {seconds[impl]:8.1f} "
                        f"{outcome.accuracy:7.3f} {shown}",
                        flush=True,
                    )
    steps = 25
    idx = np.flatnonzero(clean)
    for eps in eps_values:
        torch.manual_seed(args.seed)
        view = attack_view(clf, "ce")
        attack = AutoPGD(view, eps=eps, max_iter=steps, batch_size=args.batch_size)
        sync(clf)
        start = time.perf_counter()
        attack.generate(x[idx], y[idx])  # returns NumPy: waits for the device
        ours = time.perf_counter() - start
        start = time.perf_counter()
        bare_loop(clf, x[idx], y[idx], eps, steps + 1, args.batch_size)
        bare = time.perf_counter() - start
        results["overhead"].append(
            {"eps": eps, "max_iter": steps, "autopgd_s": ours, "bare_s": bare, "ratio": ours / bare}
        )
        print(
            f"one restart of {steps} iterations, eps {eps:g}, {len(idx)} images: AutoPGD "
            f"{ours:.2f} s, bare loop {bare:.2f} s, ratio {ours / bare:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
