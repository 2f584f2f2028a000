"""Shared fixtures. ART writes to ART_DATA_PATH: a temporary dir, set before importing ART."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

if "ART_DATA_PATH" not in os.environ:  # removed when the session ends (it held 250 dirs in /tmp)
    _ART_DIR = tempfile.TemporaryDirectory(prefix="er-art-test-art-")
    os.environ["ART_DATA_PATH"] = _ART_DIR.name

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Small CPU nets on a shared 2-core machine: one intra-op thread is up to 10x faster than two
# (OpenMP oversubscription). Override with ER_ART_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("ER_ART_TEST_THREADS", "1")))

# A fragility probe: ER_ART_TEST_SEED_SHIFT=K adds K to every seed set through torch.manual_seed
# and np.random.seed in this process (fixtures, tests and the library's seeded attacks alike), so
# the trained fixtures and the attacks' random starts land elsewhere, as they do after a torch,
# NumPy or ART upgrade or on another CPU. A test that passes only at K = 0 depends on where its
# fixture landed; tests/README.md says how the suite was swept with it.
SEED_SHIFT = int(os.environ.get("ER_ART_TEST_SEED_SHIFT", "0"))
if SEED_SHIFT:
    _torch_seed, _numpy_seed = torch.manual_seed, np.random.seed

    def _shifted_torch_seed(seed):
        return _torch_seed(int(seed) + SEED_SHIFT)

    def _shifted_numpy_seed(seed=None):
        _numpy_seed(None if seed is None else (int(seed) + SEED_SHIFT) % 2**32)

    torch.manual_seed, np.random.seed = _shifted_torch_seed, _shifted_numpy_seed

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _no_traceback_from_the_cli(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Every ``CliRunner.invoke`` in the suite checks that the command ended without a traceback:
    none in its output, and no exception other than the exit (a user sees a traceback for any
    other). A test that means to see one opts out with ``@pytest.mark.allows_traceback``."""
    if request.node.get_closest_marker("allows_traceback"):
        return
    from typer.testing import CliRunner

    invoke = CliRunner.invoke

    def checked_invoke(self, *args, **kwargs):
        result = invoke(self, *args, **kwargs)
        streams = {"output": result.output}
        try:
            streams["stderr"] = result.stderr
        except ValueError:  # stderr not captured on its own
            pass
        for name, text in streams.items():
            if "Traceback" in (text or ""):
                pytest.fail(f"the command printed a traceback on its {name}:\n{text}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            pytest.fail(
                f"the command ended with {type(result.exception).__name__}: {result.exception} "
                f"(a traceback for the user); output:\n{result.output}"
            )
        return result

    monkeypatch.setattr(CliRunner, "invoke", checked_invoke)


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test whatever ER_ART_TEST_THREADS says (restored after):
    tiny nets run fastest on one thread (two OpenMP threads thrash on a busy 2-core machine).
    Modules that train them use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` (real MNIST, Fashion-MNIST, CIFAR-10); its tests skip without it."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: x_train (1400, 1, 8, 8), y_train, x_test (397, ...), y_test."""
    from er_art.datasets import get_dataset

    spec = get_dataset("digits")
    x_train, y_train = spec.arrays("train")
    x_test, y_test = spec.arrays("test")
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="session")
def trained_digits(digits):
    """A ``digits`` ER-Classifier trained with Algorithm 1 on the CPU (tests never modify it)."""
    import er_art

    x_train, y_train, _, _ = digits
    torch.manual_seed(0)
    clf = er_art.build_classifier("digits", device_type="cpu")
    clf.fit(x_train, y_train, batch_size=64, nb_epochs=8)
    return clf
