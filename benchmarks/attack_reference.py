"""er-art's own attacks on a fixed small model and seed: tests/data/attack_reference.npz.

Written at commit 08c5cef (issue 17: the attacks just moved into ``er_art/attacks/``, no code
changed), BEFORE the attack engine (``er_art/attacks/engine.py``) took over their ``generate()``
loops. tests/test_attack_engine.py runs the same attacks through the engine and compares: the
broken mask identical, ``x_adv`` within 1e-5.

    python benchmarks/attack_reference.py            # rewrites tests/data/attack_reference.npz

The model is a seeded tiny CNN trained for a few epochs on scikit-learn's bundled digits (8x8,
CPU, seconds); its weights are stored in the file, so the test rebuilds exactly this model without
training. Each case seeds torch's global generator (``torch.random.default_generator``, which
conftest.py's seed-shift probe does not shift) and runs one attack through its plugin (``pgd``,
``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab-t``, ``square``, ``cw-fast``) or its class, on a
stock ART ``PyTorchClassifier``, one intra-op thread. ``pgd-train`` is the training PGD
(``er_art.training.adversarial.pgd_linf`` at 08c5cef: the last iterate, ART's arithmetic).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMMIT = "08c5cef"
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "attack_reference.npz"
N_TEST = 60  # attacked examples (batch sizes below leave a ragged last batch)


def tiny_cnn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    )


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    return x, data.target.astype(np.int64)


def train_model() -> dict[str, np.ndarray]:
    """The CNN's weights after 3 seeded epochs on the digits not attacked."""
    x, y = digits()
    gen = torch.Generator().manual_seed(0)
    torch.random.default_generator.manual_seed(0)
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[N_TEST:]), torch.from_numpy(y[N_TEST:])
    for _ in range(3):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def classifier(weights: dict[str, np.ndarray]) -> Any:
    """A stock ART ``PyTorchClassifier`` over the CNN with ``weights``, clip values [0, 1]."""
    from art.estimators.classification import PyTorchClassifier

    model = tiny_cnn()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    return PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def _plugin(name: str, **kwargs: Any) -> Callable[[Any, np.ndarray, np.ndarray], np.ndarray]:
    def run(clf: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        from er_art.attacks import get_attack

        return get_attack(name).build(clf, **kwargs).generate(x, y)

    return run


def _class(path: str, y_none: bool = False, **kwargs: Any) -> Callable[..., np.ndarray]:
    def run(clf: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        import importlib

        module, name = path.rsplit(".", 1)
        attack = getattr(importlib.import_module(module), name)(clf, **kwargs)
        return attack.generate(x, None if y_none else y)

    return run


def _pgd_train(clf: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The training PGD: the last iterate of one random start, ART's arithmetic, device tensors."""
    from er_art.training.adversarial import build_pgd, generate_on_device

    pgd = build_pgd(clf, eps=0.1, eps_step=0.02, max_iter=7, num_random_init=1)
    return generate_on_device(pgd, torch.from_numpy(x), torch.from_numpy(y)).numpy()


# name -> how it is run; each starts from torch's global generator seeded 0
CASES: dict[str, Callable[[Any, np.ndarray, np.ndarray], np.ndarray]] = {
    "pgd": _plugin("pgd", eps=0.1, max_iter=10, restarts=3, batch_size=25),
    "pgd-no-start": _class(
        "er_art.attacks.pgd.PGD", eps=0.1, eps_step=0.025, max_iter=10, batch_size=25
    ),
    "pgd-l2-y-none": _class(
        "er_art.attacks.pgd.PGD",
        y_none=True,
        norm=2,
        eps=0.6,
        eps_step=0.15,
        max_iter=10,
        num_random_init=2,
        batch_size=25,
    ),
    "pgd-train": _pgd_train,
    "apgd-ce": _plugin("apgd-ce", eps=0.1, max_iter=20, restarts=3, batch_size=25),
    "apgd-dlr": _plugin("apgd-dlr", eps=0.1, max_iter=20, restarts=2, batch_size=25),
    "apgd-l2": _class(
        "er_art.attacks.apgd.AutoPGD", norm=2, eps=0.6, max_iter=15, nb_random_init=2, batch_size=25
    ),
    "apgd-t": _plugin(
        "apgd-t", eps=0.1, max_iter=10, restarts=1, n_target_classes=3, batch_size=25
    ),
    "fab-t": _plugin("fab-t", eps=0.1, max_iter=10, restarts=2, n_target_classes=3, batch_size=25),
    "fab-l2": _class(
        "er_art.attacks.fab.FABAttack",
        norm=2,
        eps=0.6,
        max_iter=10,
        nb_random_init=2,
        targeted=False,
        batch_size=25,
    ),
    "square": _plugin("square", eps=0.1, max_iter=60, restarts=2, batch_size=25),
    "square-y-none": _class(
        "er_art.attacks.square.SquareAttackTorch", y_none=True, eps=0.1, max_iter=40
    ),
    "cw-fast": _plugin("cw-fast", max_iter=10, binary_search_steps=4, batch_size=25),
}


def run_case(name: str, clf: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x_adv, broken)`` of one case; broken: misclassified with respect to ``y``."""
    torch.random.default_generator.manual_seed(0)
    x_adv = np.asarray(CASES[name](clf, x, y), dtype=np.float32)
    broken = clf.predict(x_adv, batch_size=64).argmax(1) != y
    return x_adv, broken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    weights = train_model()
    clf = classifier(weights)
    x, y = digits()
    x, y = x[:N_TEST], y[:N_TEST]
    arrays: dict[str, Any] = {"commit": np.array(COMMIT), "x": x, "y": y}
    arrays.update({f"weight/{k}": v for k, v in weights.items()})
    clean = clf.predict(x).argmax(1) == y
    print(f"clean accuracy {clean.mean():.3f} on {len(x)} digits")
    for name in CASES:
        x_adv, broken = run_case(name, clf, x, y)
        arrays[f"x_adv/{name}"], arrays[f"broken/{name}"] = x_adv, broken
        print(f"{name:15s} robust {1 - broken.mean():.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
