"""The trained runs a command attacks: each checkpoint with its dataset's test split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Target:
    """One classifier to attack, with its test data."""

    label: str
    path: Path
    classifier: Any
    x: Any
    y: Any
    dataset: Any  # DatasetSpec
    train_eps: float | None


def load_targets(
    checkpoints: list[Path] | None,
    dataset: str | None,
    data_dir: Path | None,
    n_samples: int | None,
    device: str,
    defences: list[str] | None,
    model_options: dict[str, Any] | None = None,
) -> list[Target]:
    """Load each checkpoint (default: the latest run), its dataset's test split and the defences.

    Test labels outside the model's classes are one sentence naming the dataset, the label and
    the classes (:func:`er_art.datasets.check_labels`).

    :param model_options: architecture options replaced at load time (``--model-option``), as
        :func:`er_art.load_classifier`'s ``options``.
    """
    import er_art
    from er_art.datasets import check_labels, get_dataset
    from er_art.defences import apply_defences
    from er_art.runs import latest_run, read_run

    paths = list(checkpoints or [latest_run()])
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"--n-samples must be a positive integer, got {n_samples}.")
    targets = []
    data_cache: dict[tuple[str, str | None], tuple[Any, Any]] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"No checkpoint or run directory at {path}.")
        run_dir = path if path.is_dir() else path.parent
        config: dict[str, Any] = {}
        if (run_dir / "run.json").is_file():
            config = read_run(run_dir).get("config", {})
        name = dataset or config.get("dataset")
        if name is None:
            raise ValueError(f"{path} has no run.json naming its dataset; pass --dataset.")
        spec = get_dataset(name)
        folder = data_dir if data_dir is not None else config.get("data_dir")
        key = (spec.name, None if folder is None else str(folder))
        if key not in data_cache:
            data_cache[key] = spec.arrays("test", folder, n_samples)
        x, y = data_cache[key]
        where = f"dataset {spec.name!r}" + ("" if folder is None else f" at {folder}")
        if not len(y):  # nothing to attack: the attacks would fail deep inside
            raise ValueError(f"{where} has no test examples; give data with at least one.")
        classifier = er_art.load_classifier(path, device_type=device, options=model_options)
        if tuple(classifier.input_shape) != tuple(x.shape[1:]):
            raise ValueError(
                f"{path} takes inputs of shape {tuple(classifier.input_shape)} but dataset "
                f"{spec.name!r} has "
                f"{tuple(x.shape[1:])}; pass the right --dataset."
            )
        check_labels(
            y, f"{where} (test split)", classifier.nb_classes, classes_of=f"the model at {path}"
        )
        if defences:
            apply_defences(classifier, defences)
        eps = config.get("eps")
        label = run_dir.name if path.is_dir() else path.stem
        targets.append(
            Target(label, path, classifier, x, y, spec, None if eps is None else float(eps))
        )
    labels = [t.label for t in targets]
    if len(set(labels)) < len(labels):  # same directory names: fall back to the full paths
        for t in targets:
            t.label = str(t.path)
    return targets


def set_threads(threads: int | None) -> None:
    """torch's CPU threads for the attacks: ``threads``, else torch's own default (one per core,
    or ``OMP_NUM_THREADS``; torchrun sets 1 per process). Measured on a quiet 2-core CPU
    (benchmarks/bench_cpu_defaults.py, docs/BENCHMARKS.md): two threads ran PGD and APGD 1.7-1.9
    times faster than one on the digits and MNIST nets. Training keeps its architecture's own
    thread count."""
    import torch

    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads}.")
    torch.set_num_threads(int(threads))


def default_eps(target: Target) -> float:
    """The eps a run is attacked at when none is given: its training eps, else the dataset's."""
    return target.train_eps if target.train_eps is not None else target.dataset.eps


def checked_eps(
    target: Target,
    values: list[float],
    attacks: list[Any],
    what: str = "eps",
    positive: bool = False,
) -> list[float]:
    """``values`` when each can mean something for every attack spec of ``attacks`` on the
    target's data (in its dataset's ``clip_values``, of its input shape), else one sentence
    (:func:`er_art.evaluation.eps.check_eps_range`): e.g. eps 8 on images in [0, 1].
    ``positive``: 0 is refused too (a step size)."""
    from er_art.evaluation.eps import check_eps_range

    for spec in attacks:
        check_eps_range(
            values,
            spec.norm,
            target.dataset.clip_values,
            tuple(target.x.shape[1:]),
            spec.normalised_l2,
            what,
            positive,
        )
    return values


def defence_names(target: Target) -> list[str]:
    found = target.classifier.preprocessing_defences or []
    return [type(d).__name__ for d in (found if isinstance(found, list) else [found])]
