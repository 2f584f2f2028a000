"""GPU benchmark of the paper's MNIST setting (issue 8): training epochs and an evaluation sweep.

1. Seconds per epoch of MNIST ``er-pgd`` (paper architecture ``mnist``, batch 100, PGD-40 min-max
   at eps 0.3, step 0.01) through the run loop of ``er-art train`` (data on the GPU, checkpoints
   off the clock), in fp32, with ``--amp`` (bf16 autocast, critic in fp32) and with ``--compile``
   (``torch.compile``). ``--steps`` steps are timed after ``--warmup`` untimed ones (compilation,
   cuDNN benchmarking) and extrapolated to the 600 steps of a 60,000-image epoch; ``--full-epoch``
   times whole epochs instead.
2. A 10,000-image MNIST PGD-40 sweep over the dataset's eps grid up to its training eps (13 values,
   0 .. 0.3) through the library's evaluation call ``er_art.evaluation.sweep_attack``, against the
   classifier the fp32 run trained. Only the examples classified correctly are attacked, so the
   sweep's cost depends on that classifier's accuracy (reported).

Goals on one H200: <= 10 s per epoch, <= 30 s for the sweep. Without ``--data-dir`` the images are
random (uint8 .npz shards of MNIST's shape, written to a temporary folder): the training times are
the same, the sweep attacks fewer examples.

    python benchmarks/bench_gpu.py --data-dir DATA --out bench_gpu.json     # DATA/MNIST/raw
    python benchmarks/bench_gpu.py --smoke                                  # CPU, tiny, ~1 min
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import er_art
from er_art.datasets import get_dataset
from er_art.training.run import TrainingCallbacks, TrainingConfig, train

EPOCH_GOAL_S = 10.0
SWEEP_GOAL_S = 30.0
MNIST_TRAIN = 60_000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(TrainingCallbacks):
    """Times steps ``warmup + 1 .. warmup + steps`` of the first epoch (GPU synchronised at both
    ends) and the first ``warmup`` steps (compilation, cuDNN's algorithm search)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.t0 = self.t_warm = self.t_end = None
        self.device: torch.device | None = None

    def on_epoch_start(self, epoch: int, epochs: int, start_step: int, steps: int) -> None:
        if epoch == 0:
            self.t0 = time.perf_counter()

    def on_step(self, epoch: int, step: int, running: dict[str, float]) -> None:
        if epoch != 0 or self.device is None:
            return
        if step == self.warmup:
            sync(self.device)
            self.t_warm = time.perf_counter()
        elif step == self.warmup + self.steps:
            sync(self.device)
            self.t_end = time.perf_counter()


def synthetic_npz(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Random uint8 MNIST-shaped train/test shards (the npz dataset plugin reads them)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.int64)
        np.savez(folder / f"{split}.npz", x=x, y=y)
    return folder


def train_variant(name: str, args: argparse.Namespace, data: dict[str, Any], out: Path) -> dict:
    """One training run of a variant (fp32 / amp / compile): its step times and epoch time."""
    steps = None if args.full_epoch else args.warmup + args.steps
    cfg = TrainingConfig(
        dataset=data["dataset"],
        data_dir=data["data_dir"],
        arch=args.arch,
        trainer="er-pgd",
        eps=0.3,
        eps_step=0.01,
        max_iter=args.max_iter,
        epochs=args.epochs if args.full_epoch else 1,
        batch_size=args.batch_size,
        seed=0,
        device=args.device,
        amp=name == "amp",
        compile=name == "compile",
        limit=None if steps is None else max(steps * args.batch_size, 2),
    )
    clock = StepClock(args.warmup, args.steps)
    clock.device = torch.device("cuda") if args.device == "cuda" else torch.device("cpu")
    result = train(cfg, out / name, callbacks=clock, latest_root=None)
    record: dict[str, Any] = {"variant": name, "train_acc": result.metrics[-1]["train_acc"]}
    epoch_steps = data["train_size"] // args.batch_size
    if args.full_epoch:
        times = [m["time"] for m in result.metrics]
        record.update(epoch_seconds=times, seconds_per_epoch=min(times), extrapolated=False)
    else:
        if clock.t_warm is None or clock.t_end is None:
            raise RuntimeError(f"{name}: the run ended before {steps} steps were timed.")
        per_step = (clock.t_end - clock.t_warm) / args.steps
        record.update(
            warmup_seconds=round(clock.t_warm - clock.t0, 2),
            seconds_per_step=round(per_step, 5),
            images_per_second=round(args.batch_size / per_step, 1),
            seconds_per_epoch=round(per_step * epoch_steps, 2),
            extrapolated=True,
            timed_steps=args.steps,
        )
    record["epoch_steps"] = epoch_steps
    return {"record": record, "classifier": result.classifier}


def run_sweep(classifier: Any, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    from er_art.evaluation.running import sweep_attack

    spec = data["spec"]
    x, y = spec.arrays("test", data["data_dir"], limit=args.sweep_n)
    eps_values = [e for e in spec.eps_grid if e <= spec.eps + 1e-9][: args.eps_count]
    clean = float((classifier.predict(x, batch_size=1000).argmax(1) == y).mean())
    sync(classifier.device)
    start = time.perf_counter()
    records = sweep_attack(
        classifier,
        x,
        y,
        "pgd",
        eps_values,
        max_iter=args.max_iter,
        restarts=1,
        eps_step=args.sweep_eps_step,
        batch_size=args.sweep_batch_size,
    )
    sync(classifier.device)
    seconds = time.perf_counter() - start
    return {
        "images": len(x),
        "attacked_per_eps": int(round(clean * len(x))),
        "clean_accuracy": round(clean, 4),
        "eps_values": eps_values,
        "max_iter": args.max_iter,
        "eps_step": args.sweep_eps_step,
        "batch_size": args.sweep_batch_size,
        "robust_accuracy": [round(float(r["robust_accuracy"]), 4) for r in records],
        "seconds": round(seconds, 2),
        "goal_seconds": SWEEP_GOAL_S,
        "meets_goal": seconds <= SWEEP_GOAL_S,
    }


def hardware(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "er-art": er_art.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def smoke(args: argparse.Namespace) -> None:
    """Tiny CPU settings that exercise every path (compile with torch's eager backend)."""
    import er_art.devices

    er_art.devices.COMPILE_OPTIONS = {"backend": "eager"}
    args.device, args.arch = "cpu", "test_mnist"
    args.batch_size, args.max_iter = 16, 2
    args.warmup, args.steps, args.full_epoch = 1, 2, False
    args.sweep_n, args.sweep_batch_size, args.eps_count = 64, 32, 3
    torch.set_num_threads(1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="Folder holding MNIST/raw.")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--variants", default="fp32,amp,compile", help="Of fp32, amp, compile.")
    parser.add_argument("--arch", default="mnist", help="Architecture (the paper's: mnist).")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=40, help="PGD steps (train and sweep).")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed steps first.")
    parser.add_argument("--steps", type=int, default=100, help="Timed steps (extrapolated).")
    parser.add_argument("--full-epoch", action="store_true", help="Time whole epochs instead.")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs with --full-epoch.")
    parser.add_argument("--sweep-n", type=int, default=10_000, help="Test images in the sweep.")
    parser.add_argument("--eps-count", type=int, default=13, help="Eps values in the sweep.")
    parser.add_argument("--sweep-eps-step", type=float, default=0.01)
    parser.add_argument("--sweep-batch-size", type=int, default=1000)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument(
        "--compile-mode",
        default=None,
        help="torch.compile mode of the compile variant, e.g. reduce-overhead (CUDA graphs).",
    )
    parser.add_argument("--out", default=None, help="Write the results as JSON here.")
    parser.add_argument("--smoke", action="store_true", help="Tiny CPU run of every path.")
    args = parser.parse_args(argv)
    if args.smoke:
        smoke(args)
    if args.compile_mode:
        import er_art.devices

        options = er_art.devices.COMPILE_OPTIONS
        er_art.devices.COMPILE_OPTIONS = {**options, "mode": args.compile_mode}
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here (use --smoke for a CPU check).")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - {"fp32", "amp", "compile"})
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; accepted: fp32, amp, compile.")

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        tmp_path = Path(tmp)
        if args.data_dir is None:
            synthetic = tmp_path / "data"
            synthetic.mkdir()
            steps = args.warmup + args.steps
            n_train = MNIST_TRAIN if args.full_epoch else steps * args.batch_size
            synthetic_npz(synthetic, n_train, max(args.sweep_n, 2))
            data = {"dataset": "npz", "data_dir": str(synthetic), "synthetic": True}
            data["spec"] = get_dataset("npz").resolve(synthetic)
            data["train_size"] = MNIST_TRAIN
        else:
            data = {"dataset": "mnist", "data_dir": args.data_dir, "synthetic": False}
            data["spec"] = get_dataset("mnist")
            data["train_size"] = MNIST_TRAIN
        results: dict[str, Any] = {
            "hardware": hardware(args.device),
            "setting": (
                f"arch {args.arch}, er-pgd, batch {args.batch_size}, PGD-{args.max_iter} "
                "(eps 0.3, step 0.01), MNIST"
                + (" shapes, random images" if data["synthetic"] else "")
            ),
            "smoke": bool(args.smoke),
            "epoch_goal_seconds": EPOCH_GOAL_S,
            "training": [],
        }
        trained = None
        for name in variants:
            out = train_variant(name, args, data, tmp_path / "runs")
            record = out["record"]
            record["meets_goal"] = record["seconds_per_epoch"] <= EPOCH_GOAL_S
            results["training"].append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
            if trained is None or name == "fp32":
                trained = out["classifier"]
        if not args.no_sweep and trained is not None:
            results["sweep"] = run_sweep(trained, args, data)
            print(json.dumps(results["sweep"]), file=sys.stderr, flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
