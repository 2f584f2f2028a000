"""C&W L2: ART's CarliniL2Method (``cw``) against the PyTorch ``cw-fast``, time and robust accuracy.

    .venv/bin/python benchmarks/bench_cw.py --run runs/digits-er-pgd-<time>     # issue 10's check
    .venv/bin/python benchmarks/bench_cw.py --run RUN --configs defaults --repeats 3 --json cw.json

On the first ``--n`` test images of the run's dataset (the ones the model gets right are attacked,
as ``er-art attack`` does; true labels one-hot), each config runs ``cw`` and then the ``cw-fast``
variants back to back, ``--repeats`` times. Configs:

- ``defaults``: every plugin at its defaults (``binary_search_steps=10``, ``max_iter=10``,
  ``initial_const=0.01``; learning rate 0.01 for ``cw``, 0.05 for ``cw-fast``), plus
  ``cw-fast`` with ``cw``'s learning rate 0.01 (every parameter equal);
- ``strong``: the same with ``max_iter=100`` (ten times the iterations; ``cw`` gains little).

Robust accuracy is scored as er-art scores ``cw``: an example is robust when it is classified
correctly and its adversarial example is either classified correctly or farther than the threshold
``||delta||_2 / d`` (the paper's normalisation, d = input dimensions; 0.005 by default) from it.
Times are ``generate`` only; the ratio is ``cw``'s time over the variant's in the same repeat.
Run with one torch thread (``--threads``, default 1): small CPU models on a shared machine.
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

import er_art  # noqa: E402
from er_art.attacks import get_attack  # noqa: E402
from er_art.datasets import get_dataset  # noqa: E402

CONFIGS = {
    "defaults": {},
    "strong": {"max_iter": 100},
}
# (label, plugin, extra parameters): cw-fast also with every parameter equal to cw's
VARIANTS = [
    ("cw", "cw", {}),
    ("cw-fast", "cw-fast", {}),
    ("cw-fast lr=0.01", "cw-fast", {"learning_rate": 0.01}),
]


def robust_accuracy(
    clf, x: np.ndarray, y: np.ndarray, x_adv: np.ndarray, clean: np.ndarray, threshold_abs: float
) -> float:
    """Share of all examples that are correct and not broken within ``threshold_abs`` (L2)."""
    l2 = np.linalg.norm((x_adv - x).reshape(len(x), -1).astype(np.float64), axis=1)
    adv_correct = clf.predict(x_adv, batch_size=256).argmax(1) == y
    return float((clean & (adv_correct | (l2 > threshold_abs * (1 + 1e-6)))).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="run directory or checkpoint.")
    parser.add_argument("--dataset", default="digits", help="its test split is attacked.")
    parser.add_argument("--n", type=int, default=100, help="test images (the first n).")
    parser.add_argument("--configs", default="defaults,strong", help="from: " + ",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--l2-threshold", type=float, default=0.005, help="||delta||_2 / d.")
    parser.add_argument(
        "--also", default="0.0025,0.0075,0.01", help="more normalised thresholds to report."
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--json", default=None, help="also write the numbers here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; accepted: {', '.join(CONFIGS)}.")

    clf = er_art.load_classifier(args.run, device_type="cpu")
    x_all, y_all = get_dataset(args.dataset).arrays("test")
    x, y = x_all[: args.n].astype(np.float32), np.asarray(y_all[: args.n])
    clean = clf.predict(x, batch_size=256).argmax(1) == y
    dims = int(np.prod(x.shape[1:]))
    thresholds = [args.l2_threshold] + [float(t) for t in args.also.split(",") if t.strip()]
    one_hot = np.eye(clf.nb_classes, dtype=np.float32)[y]
    idx = np.flatnonzero(clean)  # er-art attacks only the examples the model gets right
    results: dict = {
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}",
        "run": str(Path(args.run)),
        "n": len(x),
        "clean_accuracy": float(clean.mean()),
        "dims": dims,
        "thresholds": thresholds,
        "rows": [],
    }
    print(
        f"{args.dataset}: {len(x)} images ({clean.sum()} correct, attacked), d = {dims}, "
        f"L2 threshold {args.l2_threshold} x {dims} = {args.l2_threshold * dims:g}; "
        f"torch threads {torch.get_num_threads()}"
    )
    extra = "  ".join(f"@{t:g}" for t in thresholds[1:])
    head = f"robust@{args.l2_threshold:g}"
    print(f"{'config':9} {'attack':16} {'rep':>3} {'time s':>8} {'x faster':>8} {head:>13}", extra)
    for config in configs:
        for rep in range(args.repeats):
            cw_seconds = None
            for label, plugin, extra_params in VARIANTS:
                params = {**CONFIGS[config], **extra_params}
                attack = get_attack(plugin).build(clf, batch_size=args.batch_size, **params)
                x_adv = x.copy()
                start = time.perf_counter()
                x_adv[idx] = attack.generate(x[idx], one_hot[idx])
                seconds = time.perf_counter() - start
                cw_seconds = seconds if plugin == "cw" else cw_seconds
                robust = [robust_accuracy(clf, x, y, x_adv, clean, t * dims) for t in thresholds]
                ratio = cw_seconds / seconds
                results["rows"].append(
                    {
                        "config": config,
                        "attack": label,
                        "params": params,
                        "repeat": rep,
                        "seconds": seconds,
                        "speedup_vs_cw": ratio,
                        "robust_accuracy": dict(zip(map(str, thresholds), robust, strict=True)),
                    }
                )
                others = "  ".join(f"{r:>7.2f}" for r in robust[1:])
                print(
                    f"{config:9} {label:16} {rep:>3} {seconds:>8.2f} {ratio:>8.1f} "
                    f"{robust[0]:>13.2f}  {others}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
