"""Cost of ART's PGD through ``ERClassifier`` against a bare PyTorch PGD loop on the same model.

Three ways to run the same L-inf PGD (one uniform random start, ``k`` sign steps, projection to the
eps-ball and to [0, 1]) on the same ``mnist`` ER model and the same batch:

- ``bare``: a plain PyTorch loop, ``k`` forward/backward passes with respect to the input only;
- ``er-art``: ``art.attacks.evasion.ProjectedGradientDescent`` (its PyTorch implementation)
  through :class:`er_art.ERClassifier`;
- ``art-stock``: the same attack through a stock ``art`` ``PyTorchClassifier`` wrapping the same
  ``ERModel`` (its ``loss_gradient`` also computes every weight gradient).

Each is run ``--repeats`` times after one warm-up run, interleaved; the table gives median seconds
per attack and the ratio to ``bare`` (all measured in this one process). ART's PGD also calls
``predict`` twice after the attack, only to log its success rate; the ``2x predict`` row times that
fixed cost, and the next line gives the ratio without it. On a CPU the table also gives each
method's process CPU time (``cpu s``), which other jobs on a shared machine disturb far less than
wall time. The last line splits one ``er-art`` attack's CPU time into the estimator's
``loss_gradient``, its ``predict`` and the rest of ART's attack loop.

    python benchmarks/bench_pgd_estimator.py --device cpu --batch 100 --steps 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("ART_DATA_PATH", tempfile.mkdtemp(prefix="er-art-bench-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from art.attacks.evasion import ProjectedGradientDescent  # noqa: E402
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (  # noqa: E402
    ProjectedGradientDescentPyTorch,
)
from art.estimators.classification import PyTorchClassifier  # noqa: E402

import er_art  # noqa: E402


def bare_pgd(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, k: int
) -> torch.Tensor:
    """The reference loop: random start, then ``k`` x (forward, CE, grad w.r.t. x, sign step,
    projections)."""
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp_(0.0, 1.0)
    for _ in range(k):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + step * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv.detach()


def art_pgd(
    classifier: PyTorchClassifier, batch: int, eps: float, step: float, k: int
) -> ProjectedGradientDescent:
    attack = ProjectedGradientDescent(
        classifier,
        eps=eps,
        eps_step=step,
        max_iter=k,
        num_random_init=1,
        batch_size=batch,
        verbose=False,
    )
    assert isinstance(attack._attack, ProjectedGradientDescentPyTorch)
    return attack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    parser.add_argument("--batch", type=int, default=100, help="examples per attack (default: 100)")
    parser.add_argument("--steps", type=int, default=10, help="PGD iterations k (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (default: 3)")
    parser.add_argument("--eps", type=float, default=0.3, help="L-inf radius (default: 0.3)")
    parser.add_argument("--eps-step", type=float, default=0.01, help="step size (default: 0.01)")
    parser.add_argument("--arch", default="mnist", help="ER architecture (default: mnist)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    clf = er_art.build_classifier(args.arch, device_type=args.device)
    model = clf.er_model.eval()
    device = clf.device
    stock = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=clf.input_shape,
        nb_classes=clf.nb_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu" if args.device == "cpu" else "gpu",
    )
    rng = np.random.default_rng(0)
    x_np = rng.random((args.batch, *clf.input_shape), dtype=np.float32)
    labels = clf.predict(x_np).argmax(1)  # PGD's usual labels: the model's own predictions
    y_onehot = np.eye(clf.nb_classes, dtype=np.float32)[labels]
    x_t = torch.from_numpy(x_np).to(device)
    y_t = torch.from_numpy(labels).to(device)

    er_attack = art_pgd(clf, args.batch, args.eps, args.eps_step, args.steps)
    stock_attack = art_pgd(stock, args.batch, args.eps, args.eps_step, args.steps)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    methods: dict[str, Callable[[], object]] = {
        "bare": lambda: (
            bare_pgd(model, x_t, y_t, args.eps, args.eps_step, args.steps).cpu().numpy()
        ),
        "er-art": lambda: er_attack.generate(x_np, y=y_onehot),
        "art-stock": lambda: stock_attack.generate(x_np, y=y_onehot),
        # ART's PGD ends every generate() with compute_success(): predict(x), predict(x_adv), only
        # to log the success rate. A fixed cost per attack, independent of k; timed on its own here.
        "2x predict": lambda: (clf.predict(x_np), clf.predict(x_np))[0],
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu_times: dict[str, list[float]] = {name: [] for name in methods}  # this process's CPU time
    for run in methods.values():  # warm-up
        run()
    for _ in range(args.repeats):
        for name, run in methods.items():
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            out = run()
            sync()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
            assert np.isfinite(np.asarray(out)).all()

    def med(table: dict[str, list[float]], name: str) -> float:
        return statistics.median(table[name])

    print(
        f"PGD k={args.steps}, batch {args.batch}, arch {args.arch}, device {device}, "
        f"torch threads {torch.get_num_threads()}, {args.repeats} repeats (median)"
    )
    # On a shared CPU wall time is noisy; the process's CPU time much less so.
    print(f"{'method':<12}{'median s':>10}{'min s':>10}{'ratio':>8}{'cpu s':>10}{'cpu ratio':>11}")
    for name in methods:
        wall, cpu = med(times, name), med(cpu_times, name)
        print(
            f"{name:<12}{wall:>10.3f}{min(times[name]):>10.3f}{wall / med(times, 'bare'):>8.3f}"
            f"{cpu:>10.3f}{cpu / med(cpu_times, 'bare'):>11.3f}"
        )
    loop = (med(times, "er-art") - med(times, "2x predict")) / med(times, "bare")
    cpu_loop = (med(cpu_times, "er-art") - med(cpu_times, "2x predict")) / med(cpu_times, "bare")
    print(
        "er-art without ART's end-of-attack success-rate log (2 predict calls): "
        f"ratio {loop:.3f} (cpu {cpu_loop:.3f})"
    )
    split = split_er_art(clf, lambda: er_attack.generate(x_np, y=y_onehot))
    print(
        "one er-art attack, CPU seconds inside ERClassifier.loss_gradient {loss_gradient:.3f}, "
        "inside predict {predict:.3f}, rest of ART's attack {rest:.3f}".format(**split)
    )


def split_er_art(clf: er_art.ERClassifier, run: Callable[[], object]) -> dict[str, float]:
    """Where one attack's CPU time goes: the estimator's gradients, its predictions, ART's loop."""
    spent = {"loss_gradient": 0.0, "predict": 0.0}

    def timed(name: str, method: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - start

        return wrapper

    for name in spent:  # instance attributes shadow the methods for this one run
        setattr(clf, name, timed(name, getattr(clf, name)))
    try:
        start = time.process_time()
        run()
        total = time.process_time() - start
    finally:
        for name in spent:
            delattr(clf, name)
    return {**spent, "rest": total - sum(spent.values())}


if __name__ == "__main__":
    main()
