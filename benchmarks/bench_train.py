"""Training throughput of the ER trainers against a bare PyTorch cross-entropy loop.

Two modes, both on random data in [0, 1] of the architecture's input shape (no files needed):

``ratio`` (default; about a minute on a 2-core CPU)
    images/s of ``er-minus`` (Algorithm 1 on clean batches) and ``er-pgd`` (PGD min-max) against a
    bare loop (``CE(C(Q(x)))``, one Adam step) over the same encoder + head and the same batches,
    measured in one run in interleaved rounds (median per method) and reported as ratios::

        python benchmarks/bench_train.py --arch digits --device cpu --threads 1
        python benchmarks/bench_train.py --arch mnist --batches 5 --device cpu

On a CPU the ratios are also given in this process's CPU time (``cpu_time_*``), which other jobs
on a shared machine do not distort.

``paper-epoch`` (for a CUDA machine; benchmarks/bench_gpu.py times the whole run loop instead)
    seconds per epoch of 60,000 images for the paper's MNIST setting (``mnist`` architecture,
    batch 100, PGD-40 min-max, eps 0.3, step 0.01), with and without ``--amp`` (bfloat16 autocast),
    EXTRAPOLATED from ``--batches`` timed batches after warm-up::

        python benchmarks/bench_train.py --mode paper-epoch --device cuda --batches 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import er_art
from er_art.training.trainers import AttackSettings, get_trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batches(
    shape: tuple[int, ...], n: int, batch_size: int, nb_classes: int, device: torch.device
):
    gen = torch.Generator().manual_seed(0)
    return [
        (
            torch.rand(batch_size, *shape, generator=gen).to(device),
            torch.randint(0, nb_classes, (batch_size,), generator=gen).to(device),
        )
        for _ in range(n)
    ]


def bare_step(clf: er_art.ERClassifier, lr: float) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """Plain cross-entropy on the same encoder + head (a copy), one Adam step per batch."""
    import copy

    net = torch.nn.Sequential(
        copy.deepcopy(clf.er_model.encoder), copy.deepcopy(clf.er_model.classifier)
    )
    net.to(clf.device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def images_per_second(step, batches, device: torch.device, warmup: int = 2) -> float:
    return rates(step, batches, device, warmup)[0]


def rates(step, batches, device: torch.device, warmup: int = 2) -> tuple[float, float]:
    """Images per second of wall time and of this process's CPU time (on a shared CPU machine the
    second does not count other processes' load; on CUDA only the first means anything)."""
    for x, y in batches[:warmup]:
        step(x, y)
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for x, y in batches:
        step(x, y)
    sync(device)
    n = sum(len(y) for _, y in batches)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu_start)


def ratio_mode(args: argparse.Namespace) -> dict:
    arch = er_art.get_architecture(args.arch)
    spec = er_art.datasets.get_dataset(args.dataset) if args.dataset else None
    eps = spec.eps if spec else 0.1
    eps_step, max_iter = (spec.eps_step, spec.max_iter) if spec else (0.025, 10)
    clf = er_art.build_classifier(args.arch, device_type=args.device, amp=args.amp, seed=0)
    device = clf.device
    batches = random_batches(
        arch.input_shape, args.batches, args.batch_size, arch.nb_classes, device
    )
    attack = AttackSettings(eps=eps, eps_step=eps_step, max_iter=max_iter)
    steps = {
        "bare": bare_step(clf, clf.lr),
        "er-minus": get_trainer("er-minus").make_step(clf, None),
        "er-pgd": get_trainer("er-pgd").make_step(clf, attack),
    }
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):  # interleaved, so load changes hit every method alike
        for name, step in steps.items():
            w, c = rates(step, batches, device)
            wall[name].append(w)
            cpu[name].append(c)
    median = {name: statistics.median(r) for name, r in wall.items()}
    median_cpu = {name: statistics.median(r) for name, r in cpu.items()}
    extra = {}
    if device.type == "cpu":
        extra = {
            "cpu_time_images_per_s": {k: round(v, 1) for k, v in median_cpu.items()},
            "cpu_time_ratio_er_minus_to_bare": round(
                median_cpu["er-minus"] / median_cpu["bare"], 3
            ),
            "cpu_time_ratio_er_pgd_to_bare": round(median_cpu["er-pgd"] / median_cpu["bare"], 3),
        }
    return {
        "mode": "ratio",
        "arch": args.arch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "pgd": {"eps": eps, "eps_step": eps_step, "max_iter": max_iter},
        "images_per_s": {k: round(v, 1) for k, v in median.items()},
        "ratio_er_minus_to_bare": round(median["er-minus"] / median["bare"], 3),
        "ratio_er_pgd_to_bare": round(median["er-pgd"] / median["bare"], 3),
        **extra,
    }


def paper_epoch_mode(args: argparse.Namespace) -> dict:
    results = {}
    attack = AttackSettings(eps=0.3, eps_step=0.01, max_iter=40)
    for amp in (False, True):
        clf = er_art.build_classifier("mnist", device_type=args.device, amp=amp, seed=0)
        batches = random_batches((1, 28, 28), args.batches, 100, 10, clf.device)
        step = get_trainer("er-pgd").make_step(clf, attack)
        rate = images_per_second(step, batches, clf.device, warmup=min(3, args.batches))
        results["amp" if amp else "fp32"] = {
            "images_per_s": round(rate, 1),
            "seconds_per_epoch_60000": round(60_000 / rate, 1),
        }
    return {
        "mode": "paper-epoch",
        "setting": "mnist arch, batch 100, PGD-40 min-max (eps 0.3, step 0.01), random data",
        "extrapolated_from_batches": args.batches,
        "device": str(clf.device),
        **results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["ratio", "paper-epoch"], default="ratio")
    parser.add_argument("--arch", default="digits", help="ER architecture (ratio mode).")
    parser.add_argument(
        "--dataset", default=None, help="Take PGD settings from this dataset (default: arch's)."
    )
    parser.add_argument("--batches", type=int, default=20, help="Timed batches per round.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds (ratio mode).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (ratio mode).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dataset is None and args.mode == "ratio":
        from er_art.registry import names

        args.dataset = args.arch if args.arch in names("datasets") else None
    import er_art.datasets  # noqa: F401  (er_art.datasets.get_dataset above)

    result = ratio_mode(args) if args.mode == "ratio" else paper_epoch_mode(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
