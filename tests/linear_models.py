"""Linear classifiers with a closed-form minimal adversarial distance (FAB and C&W L2 tests).

For true class ``y`` and another class ``k`` the boundary ``f_y = f_k`` of an affine classifier is a
hyperplane with normal ``w_y - w_k``, so the smallest Linf (L2) step that crosses it is
``(f_y - f_k) / ||w_y - w_k||_1`` (``_2``), minimised over ``k``. The inputs of
:func:`linear_data` are kept far from the clip bounds, so the box never binds.
"""

from __future__ import annotations

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

N_CLASSES, SHAPE = 5, (1, 4, 4)


def linear_classifier(
    n_classes: int = N_CLASSES, clip_values=(0.0, 1.0), **kwargs
) -> PyTorchClassifier:
    """A stock classifier over ``Flatten -> Linear(16, n_classes)``, the same weights every call.

    The weights are ``nn.Linear``'s default initialisation (weight, then bias, each uniform on
    +-1/sqrt(16)) drawn from a generator of its own seeded 1: the weights ``torch.manual_seed(1)``
    gave, made independent of the global generator, so the closed-form geometry the tests rely on
    (minimal distances, see :func:`linear_data`) does not move when the seeds around it do
    (conftest.py's ER_ART_TEST_SEED_SHIFT). The global generator is still reset to 1, as before."""
    torch.manual_seed(1)
    layer = torch.nn.Linear(16, n_classes)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        layer.weight.uniform_(-0.25, 0.25, generator=generator)
        layer.bias.uniform_(-0.25, 0.25, generator=generator)
    model = torch.nn.Sequential(torch.nn.Flatten(), layer)
    return PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=SHAPE,
        nb_classes=n_classes,
        clip_values=clip_values,
        device_type="cpu",
        **kwargs,
    )


def linear_data(n: int = 16) -> np.ndarray:
    # far from the clip bounds (minimal distances here are < 0.1 in Linf, < 0.6 in L2)
    return np.random.default_rng(2).uniform(0.35, 0.65, size=(n, *SHAPE)).astype(np.float32)


def minimal_distance(
    clf: PyTorchClassifier, x: np.ndarray, norm: str | int = "inf"
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (the model's predictions) and the closed-form minimal distance of each example in
    the ``norm`` (``"inf"`` or 2)."""
    layer = clf.model[1]
    w = layer.weight.detach().numpy().astype(np.float64)
    b = layer.bias.detach().numpy().astype(np.float64)
    f = x.reshape(len(x), -1).astype(np.float64) @ w.T + b
    y = f.argmax(1)
    dual = 1 if str(norm) == "inf" else 2
    dist = np.array(
        [
            min(
                (f[i, y[i]] - f[i, k]) / np.linalg.norm(w[y[i]] - w[k], ord=dual)
                for k in range(len(w))
                if k != y[i]
            )
            for i in range(len(x))
        ]
    )
    return y, dist
