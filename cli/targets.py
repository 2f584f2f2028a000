"""The models a command attacks: each er-art run with its dataset's test split, or any model
(``--model``) with the data given (``--dataset`` / ``--data``)."""

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
    dataset: Any  # DatasetSpec (for --data: one made from the file, eps None)
    train_eps: float | None
    # --model: what identifies the model in a store's manifest (er_art.models.wrapped.LoadedModel's
    # identity and the preprocessing); None for an er-art run (its checkpoint's bytes do)
    identity: dict[str, Any] | None = None


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


MODEL_ONLY = ("--weights", "--logits", "--data", "--input-range", "--mean", "--std")


def targets_of(
    checkpoints: list[Path] | None,
    dataset: str | None,
    data_dir: Path | None,
    n_samples: int | None,
    device: str,
    defences: list[str] | None,
    model_options: dict[str, Any] | None,
    *,
    model: str | None = None,
    weights: Path | None = None,
    logits: str | None = None,
    data: Path | None = None,
    input_range: tuple[float, float] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> list[Target]:
    """The er-art runs of ``checkpoints`` (:func:`load_targets`), or the one ``model``
    (:func:`load_model_target`); the options of the other kind are refused in one sentence."""
    if model is None:
        given = [
            flag
            for flag, value in zip(
                MODEL_ONLY, (weights, logits, data, input_range, mean, std), strict=True
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"{given[0]} goes with --model; an er-art run (--checkpoint) carries its own data "
                "and preprocessing."
            )
        return load_targets(
            checkpoints, dataset, data_dir, n_samples, device, defences, model_options
        )
    if checkpoints:
        raise ValueError("Give --checkpoint (an er-art run) or --model (any model), not both.")
    if model_options:
        raise ValueError(
            "--model-option changes an er-art architecture; with --model, build the model as "
            "you want it in its factory."
        )
    return [
        load_model_target(
            model,
            weights=weights,
            logits=logits,
            dataset=dataset,
            data_dir=data_dir,
            data=data,
            n_samples=n_samples,
            input_range=input_range,
            mean=mean,
            std=std,
            device=device,
            defences=defences,
        )
    ]


def load_model_target(
    model: str,
    *,
    weights: Path | None,
    logits: str | None,
    dataset: str | None,
    data_dir: Path | None,
    data: Path | None,
    n_samples: int | None,
    input_range: tuple[float, float] | None,
    mean: list[float] | None,
    std: list[float] | None,
    device: str,
    defences: list[str] | None,
) -> Target:
    """``--model`` (:func:`er_art.models.wrapped.load_model`) on the test split of ``dataset``
    or the arrays of ``data``, checked on one example (shape, logits, classes) and wrapped with
    the input range and the normalisation inside (:func:`er_art.models.wrapped.wrap_model`)."""
    import dataclasses

    import numpy as np

    from er_art.datasets import DatasetSpec, get_dataset
    from er_art.defences import apply_defences
    from er_art.models.wrapped import (
        ModelError,
        check_forward,
        check_input_range,
        load_model,
        read_npz,
        wrap_model,
    )

    if n_samples is not None and n_samples < 1:
        raise ValueError(f"--n-samples must be a positive integer, got {n_samples}.")
    if (data is None) == (dataset is None):
        raise ValueError(
            "--model needs its data: give --dataset NAME (its test split; --data-dir for its "
            "files) or --data FILE.npz (arrays x and y), one of them."
        )
    if data is not None:
        if data_dir is not None:
            raise ValueError("--data-dir goes with --dataset; --data names the file itself.")
        x, y = read_npz(data, n_samples)
        spec = DatasetSpec(
            name=data.name,
            loader=read_npz,
            input_shape=tuple(x.shape[1:]),
            nb_classes=0,
            default_arch="",
            eps=None,  # type: ignore[arg-type]  # no default: --eps is needed
            eps_step=None,  # type: ignore[arg-type]
            max_iter=None,  # type: ignore[arg-type]
            clip_values=input_range or (0.0, 1.0),
        )
        where = f"the examples of --data {data}"
    else:
        spec = get_dataset(dataset)  # type: ignore[arg-type]
        x, y = spec.arrays("test", data_dir, n_samples)
        if input_range is not None:
            spec = dataclasses.replace(spec, clip_values=input_range)
        where = f"the test examples of dataset {spec.name!r}"
        if not len(y):
            raise ValueError(f"dataset {spec.name!r} has no test examples; give data with some.")
    loaded = load_model(model, weights)
    nb_classes = spec.nb_classes or None
    name = f"--model {model}"
    if loaded.kind == "art-classifier":
        given = [
            flag
            for flag, value in (("--mean", mean), ("--std", std), ("--logits", logits))
            if value is not None
        ]
        if given or input_range is not None:
            raise ModelError(
                f"{name} is a saved ART classifier, which carries its own clip_values and "
                f"preprocessing; drop {(given or ['--input-range'])[0]}."
            )
        classifier = loaded.model
        check_forward(classifier, x, y, nb_classes, name)
        if classifier.clip_values is not None:
            lo, hi = classifier.clip_values
            spec = dataclasses.replace(spec, clip_values=(float(np.min(lo)), float(np.max(hi))))
    else:
        classifier = wrap_model(
            loaded.model,
            x=x,
            y=y,
            nb_classes=nb_classes,
            clip_values=spec.clip_values,
            mean=mean,
            std=std,
            logits=logits,
            device_type=device,
            name=name,
        )
    check_input_range(x, spec.clip_values, where)
    if defences:
        apply_defences(classifier, defences)
    identity = {
        **{k: v for k, v in loaded.identity.items()},
        "logits": logits,
        "mean": mean,
        "std": std,
        "input_range": list(spec.clip_values),
    }
    label = _label(model) if loaded.kind == "factory" else Path(model).stem
    path = loaded.file or Path(model)
    return Target(label, path, classifier, x, y, spec, None, identity)


def _label(spec: str) -> str:
    """A factory's name as a run label (``pkg.models:resnet`` -> ``pkg.models-resnet``)."""
    return spec.replace(":", "-")


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
    """The eps a run is attacked at when none is given: its training eps, else the dataset's
    (``--data`` has none: one sentence asking for ``--eps``)."""
    if target.train_eps is not None:
        return target.train_eps
    if target.dataset.eps is None:
        raise ValueError(
            f"--eps is needed with --data (the file {target.dataset.name} has no default eps); "
            "give e.g. --eps 0.03."
        )
    return target.dataset.eps


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
