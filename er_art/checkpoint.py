"""Checkpoints: ``save_classifier`` / ``load_classifier``: written atomically, loaded without
running code.

A checkpoint is one ``torch.save`` file holding only tensors and plain containers: the classifier's
JSON-able config (architecture and all its options, prior, hyperparameters), the state dicts of
the nets and of their optimizers (an ER-Classifier's three; one for every other family, whatever
its number of parameter groups), and optionally a training state (epoch, RNG states, ...). It is
read with ``torch.load(weights_only=True)``, which refuses anything that would execute code, and
rebuilt through the architecture registry.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier

from er_art.devices import cpu_copy, to_cpu
from er_art.models.er_classifier import ERClassifier

logger = logging.getLogger(__name__)

FORMAT = "er-art-checkpoint"
VERSION = 1
RUN_CHECKPOINT = "checkpoint.pt"  # the file inside a training run directory


class CheckpointError(ValueError):
    """A file that is missing, corrupted or not an er-art checkpoint."""


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file.

    :raises OSError: a write the machine refused names ``path`` (or its temporary file) even
        where the writer gave no file name, and a full disk is ``errno.ENOSPC`` even where
        ``torch.save`` reported it as a ``RuntimeError``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp: owner only)
    finally:
        os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # write() on an open file names none
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except RuntimeError as err:  # torch.save's C++ writer on a full disk says no errno
        cause = write_failure(err, path)
        Path(tmp).unlink(missing_ok=True)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_failure(err: RuntimeError, path: Path) -> OSError | None:
    """The ``OSError`` behind ``torch.save``'s ``RuntimeError`` (``None``: not a failed write).
    The one Python raised when torch wrote through a file object, else the file system's state:
    read-only, or less free space than the file being replaced takes, is that; otherwise None."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    message = str(err)
    if "inline_container" not in message and "PytorchStreamWriter" not in message:
        return None
    try:
        fs = os.statvfs(path.parent)
    except OSError as stat_error:
        return stat_error
    if fs.f_flag & os.ST_RDONLY:
        return OSError(errno.EROFS, os.strerror(errno.EROFS))
    try:
        needed = max(path.stat().st_size, 1 << 20)  # the new file is about the old one's size
    except OSError:
        needed = 1 << 20
    if fs.f_bavail * fs.f_frsize < needed:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None  # not the machine refusing: the error as it was


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the temporary file of an :func:`atomic_write` (``.<name>.*.tmp``)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")


def remove_temporaries(directory: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Remove what interrupted :func:`atomic_write` calls left in ``directory`` (a write killed
    before its rename); the removed paths. Call it where a run or store is opened again."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")
    removed = []
    for path in found:
        if path.is_file() and not path.is_symlink() and is_temporary(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def classifier_state(classifier: PyTorchClassifier) -> dict[str, Any]:
    """The config and state dicts of an er-art classifier (ER or baseline): CPU copies, never the
    live (perhaps CUDA) tensors, so a checkpoint loads anywhere."""
    if isinstance(classifier, ERClassifier):
        if classifier.arch is None:
            raise CheckpointError(
                "Only classifiers built from a registered architecture can be saved "
                "(use er_art.build_classifier); pickle others instead."
            )
        config = classifier.config()
        model = classifier.er_model
        optimizers = to_cpu(classifier.optimizers.state_dict())
    else:
        config = getattr(classifier, "er_art_config", None)
        if config is None:
            raise CheckpointError(
                "This PyTorchClassifier was not built by er_art.build_classifier; cannot save it."
            )
        model = classifier.model
        optimizers = (
            {"model": to_cpu(classifier.optimizer.state_dict())}
            if classifier.optimizer is not None
            else {}
        )
    state = {k: cpu_copy(v) for k, v in model.state_dict().items()}
    return {"config": config, "model": state, "optimizers": optimizers}


def save_classifier(
    classifier: PyTorchClassifier, path: str | os.PathLike, training: dict | None = None
) -> Path:
    """Write ``classifier`` (nets, optimizers, prior, hyperparameters) to ``path`` atomically."""
    payload = {"format": FORMAT, "version": VERSION, "classifier": classifier_state(classifier)}
    if training is not None:
        payload["training"] = training
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    logger.info("saved checkpoint %s", path)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict of a file or a run directory (no code runs while reading)."""
    path = Path(path)
    if path.is_dir():
        path = path / RUN_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupted zip, foreign pickle, objects that would run code, ...
        raise CheckpointError(
            f"{path} is not a readable er-art checkpoint ({type(err).__name__})."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an er-art checkpoint (no '{FORMAT}' header).")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has no valid er-art format version (got {version!r}).")
    if version > VERSION:
        raise CheckpointError(f"{path} was written by a newer er-art (format {version}).")
    if not isinstance(payload.get("classifier"), dict):
        raise CheckpointError(f"{path} holds no classifier state.")
    return payload


def saved_device(saved: str, what: str = "the checkpoint") -> str:
    """The device to rebuild on when none is asked for: the saved one, or the CPU (with a logged
    warning) when it was CUDA and this machine has none."""
    if saved == "cuda" and not torch.cuda.is_available():
        logger.warning(
            "%s was trained on CUDA, but CUDA is not available here: using the CPU "
            "(pass a device to choose)",
            what,
        )
        return "cpu"
    return saved


def classifier_from_state(
    state: dict[str, Any],
    device_type: str | None = None,
    options: dict[str, Any] | None = None,
) -> PyTorchClassifier:
    """Rebuild a classifier from :func:`classifier_state`'s dict.

    :param device_type: ``auto``, ``cpu`` or ``cuda``; ``None``: the saved device, or the CPU when
        that was CUDA and this machine has none.
    :param options: architecture options that replace the saved ones (see
        :func:`load_classifier`).
    """
    from er_art.models.architectures import get_architecture
    from er_art.models.build import build_classifier

    config = dict(state["config"])
    saved = {k: v for k, v in config.get("arch_options", {}).items() if k != "init_weights"}
    if options:
        get_architecture(config["arch"]).check_options(dict(options))
        changed = {k: v for k, v in options.items() if saved.get(k, object()) != v}
        if changed:
            logger.info("loading %s with options %s (saved: %s)", config["arch"], changed, saved)
    options = {**saved, **(options or {})}
    device = device_type or saved_device(config.get("device_type", "auto"))
    clip = config.get("clip_values")
    common = dict(
        nb_classes=config["nb_classes"],
        input_shape=tuple(config["input_shape"]),
        lr=config["lr"],
        clip_values=None if clip is None else tuple(clip),
        device_type=device,
        arch_options=options,
    )
    if config.get("kind", "er") != "er":  # baselines, RSE, VAE-CLA, ...: one optimizer
        classifier = build_classifier(
            config["arch"], embedding_dim=config.get("embedding_dim"), **common
        )
        classifier.model.load_state_dict(state["model"])
        if "model" in state["optimizers"]:
            classifier.optimizer.load_state_dict(state["optimizers"]["model"])
        classifier.model.eval()
        return classifier
    classifier = build_classifier(
        config["arch"],
        embedding_dim=config["embedding_dim"],
        prior=config["prior"],
        prior_params=config["prior_params"],
        lambda_d=config["lambda_d"],
        lambda_ce=config["lambda_ce"],
        lambda_reg=config["lambda_reg"],
        lr_ratios=tuple(config["lr_ratios"]),
        clip_value=config["clip_value"],
        amp=config["amp"],
        **common,
    )
    classifier.er_model.load_state_dict(state["model"])
    classifier.optimizers.load_state_dict(state["optimizers"])
    classifier.er_model.eval()
    return classifier


def load_classifier(
    path: str | os.PathLike,
    device_type: str | None = None,
    options: dict[str, Any] | None = None,
) -> PyTorchClassifier:
    """Load a classifier saved by :func:`save_classifier`, or the one a training run directory
    trained.

    :param path: a checkpoint file, or a run directory of ``er-art train`` (its ``checkpoint.pt``).
    :param device_type: ``auto``, ``cpu`` or ``cuda``; default: the device it was built for, or
        the CPU (with a logged warning) when that was CUDA and this machine has none.
    :param options: architecture options that replace the saved ones, for settings that do not
        change the weights: e.g. ``{"gradient": "naive"}`` or ``{"projection_steps": 200,
        "restarts": 10}`` for Defense-GAN, ``{"ensemble": 50}`` for RSE. An option the
        architecture does not take is refused in one sentence; one that changes the shape of a
        weight fails to load (:class:`CheckpointError`). The loaded classifier's config records
        the values in use.
    :return: an :class:`ERClassifier`, or the architecture's ``PyTorchClassifier`` (sub)class for
        other families (baselines, RSE, VAE-CLA, ...).
    """
    payload = read_checkpoint(path)
    try:
        return classifier_from_state(payload["classifier"], device_type, options)
    except (KeyError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"{path} holds an inconsistent er-art checkpoint: {err}") from err
