"""Is er-art's APGD (and PGD) as strong as ART's? A paired comparison over many examples and seeds.

    python benchmarks/apgd_vs_art.py                      # the tests' digits model, all 397 images
    python benchmarks/apgd_vs_art.py --seeds 10 --restarts 1,5

Trains the test suite's ``trained_digits`` model (conftest.py: ``build_classifier("digits")``,
torch seed 0, Algorithm 1 for 8 epochs on one thread), then attacks every test image with
er-art's :class:`~er_art.attacks.apgd.AutoPGD` and
ART's ``AutoProjectedGradientDescent`` at the *same*
budget (eps, iterations, restarts), for several seeds each. For every pair it counts the
discordant examples (robust under one attack, broken by the other) and gives the exact McNemar
p-value (``scipy.stats.binomtest`` on the discordant pairs). A weaker er-art attack shows as many
more "ours robust, ART broken" pairs than the reverse, seed after seed.

It also runs ART's call as tests/test_apgd.py used to (ART's default ``nb_random_init=5`` against
er-art's one restart), to show what that comparison measured. Not a test: minutes on a CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("ART_DATA_PATH", tempfile.mkdtemp(prefix="er-art-bench-art-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import binomtest  # noqa: E402


def trained_digits():
    """The test suite's fixture model (tests/conftest.py), and the digits test split."""
    import er_art
    from er_art.datasets import get_dataset

    spec = get_dataset("digits")
    x_train, y_train = spec.arrays("train")
    x_test, y_test = spec.arrays("test")
    torch.manual_seed(0)
    np.random.seed(0)
    clf = er_art.build_classifier("digits", device_type="cpu")
    clf.fit(x_train, y_train, batch_size=64, nb_epochs=8)
    return clf, x_test, y_test


def robust(clf, x_adv: np.ndarray, y: np.ndarray) -> np.ndarray:
    from er_art.evaluation.outcome import predict_labels

    return predict_labels(clf, x_adv) == y


def mcnemar(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """``(a robust & b broken, a broken & b robust, exact two-sided McNemar p)``."""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return only_a, only_b, float(p)


def apgd_pair(clf, x, y, loss, eps, iters, restarts, art_restarts, seed):
    """Robust flags of er-art's APGD (``restarts``) and ART's (``art_restarts``), one seed."""
    from art.attacks.evasion import AutoProjectedGradientDescent

    from er_art.attacks.apgd import AutoPGD
    from er_art.attacks.view import attack_view

    view = attack_view(clf, loss)
    torch.manual_seed(seed)
    ours = AutoPGD(view, eps=eps, max_iter=iters, loss=loss, nb_random_init=restarts)
    ours = robust(clf, ours.generate(x, y), y)
    np.random.seed(seed)
    art = AutoProjectedGradientDescent(
        view, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=iters,
        nb_random_init=art_restarts, loss_type=None, verbose=False,
    )  # fmt: skip
    art = robust(clf, art.generate(x, np.eye(clf.nb_classes)[y]), y)
    return ours, art


def pgd_from_x(clf, x, y, eps, step, iters):
    """er-art's PGD and ART's from x (no random start): which examples an intermediate iterate
    broke (er-art's ``broken``), and whether the two agree on the examples no iterate broke."""
    from art.attacks.evasion import ProjectedGradientDescent

    from er_art.attacks.engine import Batch
    from er_art.attacks.pgd import PGD
    from er_art.attacks.view import attack_view

    view = attack_view(clf)
    attack = PGD(view, eps=eps, eps_step=step, max_iter=iters)
    rows = torch.from_numpy(np.eye(clf.nb_classes, dtype=np.float32)[y])
    with torch.no_grad():
        _, broken, _ = attack.attack_batch(Batch(torch.from_numpy(x), rows))  # from x
    broken = broken.numpy()
    ours = attack.generate(x, y)
    art = ProjectedGradientDescent(
        view, eps=eps, eps_step=step, max_iter=iters, num_random_init=0, verbose=False
    ).generate(x, np.eye(clf.nb_classes, dtype=np.float32)[y])
    keep = ~broken
    diff = float(np.abs(ours[keep] - art[keep]).max()) if keep.any() else 0.0
    return broken, robust(clf, ours, y), robust(clf, art, y), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--restarts", default="1,5", help="equal budgets to compare")
    parser.add_argument("--losses", default="ce,dlr")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    clf, x, y = trained_digits()
    clean = robust(clf, x, y)
    print(
        f"torch {torch.__version__}, numpy {np.__version__}; model trained in "
        f"{time.perf_counter() - start:.0f} s; clean accuracy {100 * clean.mean():.1f} % "
        f"on {len(y)} test images; eps {args.eps}, {args.iters} iterations"
    )
    budgets = [(int(r), int(r)) for r in args.restarts.split(",")] + [(1, 5)]
    print("loss | ours x ART restarts | seed | ours robust % | ART robust % | ours-only robust | "
          "ART-only robust | McNemar p")  # fmt: skip
    for loss in args.losses.split(","):
        for mine, theirs in budgets:
            totals = np.zeros(4)
            for seed in range(args.seeds):
                ours, art = apgd_pair(clf, x, y, loss, args.eps, args.iters, mine, theirs, seed)
                a, b, p = mcnemar(ours, art)
                totals += [ours.sum(), art.sum(), a, b]
                print(
                    f"{loss} | {mine} x {theirs} | {seed} | {100 * ours.mean():.1f} | "
                    f"{100 * art.mean():.1f} | {a} | {b} | {p:.3g}",
                    flush=True,
                )
            n = args.seeds * len(y)
            pooled = binomtest(int(totals[2]), int(totals[2] + totals[3])).pvalue
            print(
                f"{loss} | {mine} x {theirs} | all | {100 * totals[0] / n:.2f} | "
                f"{100 * totals[1] / n:.2f} | {int(totals[2])} | {int(totals[3])} | "
                f"{pooled:.3g} (pooled)",
                flush=True,
            )
    # the first 20 examples of the old PGD test, and then all of them
    for count in (20, len(y)):
        broken, ours, art, diff = pgd_from_x(clf, x[:count], y[:count], 0.01, 0.004, 5)
        print(
            f"PGD from x, eps 0.01, 5 steps of 0.004, first {count}: an iterate broke "
            f"{int(broken.sum())} (indices {np.flatnonzero(broken).tolist()[:10]}); robust at the "
            f"returned point: ours {int(ours.sum())}, ART {int(art.sum())}; largest |ours - ART| "
            f"on the examples no iterate broke: {diff:.2e}"
        )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
