"""Any PyTorch model as an ART ``PyTorchClassifier``: the normalisation inside, the checks first.

    >>> from er_art.models.wrapped import load_model, wrap_model
    >>> net = torchvision.models.resnet18(num_classes=10)             # returns logits
    >>> clf = wrap_model(net, x=x, y=y, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    >>> loaded = load_model("my_pkg.models:build", weights="model.pt")  # what --model reads

:func:`wrap_model` turns a ``torch.nn.Module`` (or a TorchScript module) that returns logits into
an ART ``PyTorchClassifier`` whose inputs are the data as it is stored, in ``clip_values`` (the
input range, [0, 1] images by default): the normalisation ``(x - mean) / std`` the model was
trained with runs *inside* the wrapped module (:class:`WrappedModel`), so the attacks perturb and
clip in the input range and the gradients flow through the normalisation. A model that returns a
tuple or a dict gets its logits picked with ``logits`` (a key, or an index).

Before any attack, one forward pass on one example checks that the model takes the data's shape,
returns logits ``(1, K)``, and that ``K`` covers the data's labels (and equals ``nb_classes``
when given); each failure is one sentence (:class:`ModelError`, a ``ValueError``).

:func:`load_model` reads what ``er-art evaluate --model`` accepts:

- ``PKG.MODULE:FACTORY``: ``FACTORY()`` builds the module; ``weights`` is a state dict saved with
  ``torch.save(model.state_dict(), FILE)``, read with ``torch.load(weights_only=True)`` (no code
  runs) and loaded with ``load_state_dict`` (strict);
- a TorchScript file (``torch.jit.save``), recognised by ``torch.jit.load``;
- a saved ART ``PyTorchClassifier`` (any subclass): a file written by ``torch.save(classifier,
  FILE)`` or ``pickle.dump(classifier, fh)``. The class the pickle holds is read from the file
  *before* unpickling, and a pickle of anything but a ``PyTorchClassifier`` is refused without
  running it; a classifier's pickle still runs code of the classes it names, so load only files
  you trust. A stock ``PyTorchClassifier`` pickle also writes its weights under ART's
  ``ART_DATA_PATH``; where that file is missing (another machine) the weights the pickle holds
  are used.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

logger = logging.getLogger(__name__)

FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ACCEPTED = (
    "accepted: PKG.MODULE:FACTORY (with --weights FILE), a TorchScript file, or a "
    "PyTorchClassifier saved with torch.save or pickle"
)


class ModelError(ValueError):
    """A model that cannot be evaluated as given (one sentence: what is wrong, what is accepted)."""


# ---------------------------------------------------------------------------- the wrapped module
def pick_logits(out: Any, logits: str | int | None = None) -> torch.Tensor:
    """The logits in a model's output ``out``: ``out`` itself when a tensor, else ``out[logits]``
    (a dict's key, or a tuple's index; ``"0"`` is index 0)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        keys = ", ".join(repr(k) for k in list(out)[:8])
        if logits is None:
            raise ModelError(
                f"the model returned a dict with keys {keys}, not a tensor of logits; pick the "
                "logits with logits='KEY' (er-art: --logits KEY)."
            )
        if logits not in out:
            raise ModelError(
                f"the model's output has no key {logits!r}; its keys are {keys} (--logits)."
            )
        return pick_logits(out[logits])
    if isinstance(out, (tuple, list)):
        kind = type(out).__name__
        if logits is None:
            raise ModelError(
                f"the model returned a {kind} of {len(out)}, not a tensor of logits; pick the "
                "logits with logits=INDEX (er-art: --logits INDEX, e.g. --logits 0)."
            )
        try:
            index = int(logits)
        except (TypeError, ValueError):
            raise ModelError(
                f"the model returned a {kind} of {len(out)}; --logits must be an index from 0 to "
                f"{len(out) - 1}, got {logits!r}."
            ) from None
        if not -len(out) <= index < len(out):
            raise ModelError(
                f"the model returned a {kind} of {len(out)}; --logits must be an index from 0 to "
                f"{len(out) - 1}, got {index}."
            )
        return pick_logits(out[index])
    raise ModelError(
        f"the model returned a {type(out).__name__}, not a tensor of logits; accepted: a tensor "
        "(N, classes), or a tuple / dict holding one (pick it with --logits)."
    )


class WrappedModel(nn.Module):
    """``model((x - mean) / std)``, its logits picked from a tuple or dict (:func:`pick_logits`).

    ``mean`` and ``std`` are buffers of shape ``(1, C, 1, ...)`` (one value per channel) or
    ``None`` (no normalisation: ``x`` goes to the model untouched)."""

    def __init__(
        self,
        model: nn.Module,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
        logits: str | int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.logits = logits
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std  # (B, C, ...) in the model's own units
        return pick_logits(self.model(x), self.logits)  # (B, K)


def _per_channel(
    values: float | Sequence[float] | None, what: str, shape: tuple[int, ...]
) -> torch.Tensor | None:
    """``values`` as a float32 tensor broadcasting over a batch of ``shape`` inputs (one value,
    or one per channel, the first dimension of ``shape``)."""
    if values is None:
        return None
    flat = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
    channels = shape[0] if shape else 1
    if len(flat) not in (1, channels):
        raise ModelError(
            f"{what} has {len(flat)} values but the inputs have {channels} channels (shape "
            f"{shape}); give one value or one per channel."
        )
    if not np.all(np.isfinite(flat)):
        raise ModelError(f"{what} must be finite numbers, got {flat.tolist()}.")
    if what == "std" and np.any(flat <= 0):
        raise ModelError(f"std must be positive, got {flat.tolist()}.")
    view = (1, len(flat)) + (1,) * max(len(shape) - 1, 0)
    return torch.as_tensor(flat, dtype=torch.float32).reshape(view)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(".")


def _run_one(module: nn.Module, one: torch.Tensor, name: str, shape: tuple[int, ...]) -> int:
    """The number of logits ``module`` returns for the one example ``one`` (1, *shape), in eval
    mode without gradients; a model that fails on it, or returns no logits, is one sentence."""
    mode = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(one)
    except ModelError:
        raise
    except Exception as err:  # the model's own error on a wrong shape: one line of it
        raise ModelError(
            f"{name} fails on one example of shape {shape} ({_first_line(err)}); give data of the "
            "shape it takes."
        ) from None
    finally:
        module.train(mode)
    out = pick_logits(out)
    if out.ndim != 2 or out.shape[0] != 1:
        raise ModelError(
            f"{name} returned a tensor of shape {tuple(out.shape)} for one example of shape "
            f"{shape}, not logits of shape (1, classes)."
        )
    return int(out.shape[1])


def _check_classes(k: int, y: np.ndarray | None, nb_classes: int | None, name: str) -> None:
    if nb_classes is not None and k != int(nb_classes):
        raise ModelError(
            f"{name} returns {k} logits but the data has {nb_classes} classes; give the model of "
            "these data (or the data of this model)."
        )
    if y is not None and len(y):
        high = int(np.max(y))
        if high >= k:
            raise ModelError(
                f"{name} returns {k} logits but the data has label {high}; give the model of "
                f"these data (labels 0 to {k - 1})."
            )


def check_forward(
    classifier: PyTorchClassifier,
    x: np.ndarray,
    y: np.ndarray | None = None,
    nb_classes: int | None = None,
    name: str = "the model",
) -> int:
    """One forward pass of ``classifier`` (its preprocessing, then its module) on ``x[:1]``: it
    takes the data's shape and returns logits ``(1, K)``, ``K`` its ``nb_classes``, covering the
    labels ``y`` (and equal to ``nb_classes`` when given).

    :return: ``K``.
    :raises ModelError: one sentence naming what is wrong.
    """
    shape = tuple(np.asarray(x).shape[1:])
    if tuple(classifier.input_shape) != shape:
        raise ModelError(
            f"{name} takes inputs of shape {tuple(classifier.input_shape)} but the data has "
            f"{shape}; give data of the shape it takes."
        )
    one = torch.as_tensor(np.asarray(x[:1], dtype=np.float32), device=classifier.device)
    try:
        x_in, _ = classifier._apply_preprocessing(one, y=None, fit=False, no_grad=True)
    except Exception as err:
        raise ModelError(
            f"{name}'s preprocessing fails on one example of shape {shape} ({_first_line(err)})."
        ) from None
    k = _run_one(classifier.model, torch.as_tensor(x_in), name, shape)
    if int(classifier.nb_classes) != k:
        raise ModelError(
            f"{name} returns {k} logits, not the {classifier.nb_classes} classes it was declared "
            "with."
        )
    _check_classes(k, y, nb_classes, name)
    return k


def wrap_model(
    model: nn.Module,
    *,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    input_shape: tuple[int, ...] | None = None,
    nb_classes: int | None = None,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    logits: str | int | None = None,
    device_type: str = "auto",
    name: str = "the model",
) -> PyTorchClassifier:
    """``model`` (logits out) as an ART ``PyTorchClassifier`` on inputs in ``clip_values``.

    :param x: examples of the data: one runs through the model to check it (shape, logits,
        classes); gives ``input_shape`` and the number of classes when those are not given.
    :param y: their labels; the model must have a logit for each.
    :param nb_classes: the data's classes (default: the model's output width).
    :param clip_values: the input range ``(lo, hi)`` the attacks keep to (``None``: unbounded).
    :param mean: ``(x - mean) / std`` before the model, inside the wrapped module; one value or
        one per channel (default: none).
    :param logits: the key (dict) or index (tuple) of the logits in the model's output.
    :param device_type: ``auto``, ``cpu`` or ``cuda``.
    :raises ModelError: the model does not fit the data (one sentence).
    """
    from er_art.models.er_classifier import resolve_device_type

    if isinstance(model, PyTorchClassifier):
        raise ModelError(
            "wrap_model takes a torch.nn.Module; an ART PyTorchClassifier is used as it is."
        )
    if not isinstance(model, nn.Module):
        raise ModelError(f"{name} is a {type(model).__name__}, not a torch.nn.Module; {ACCEPTED}.")
    if input_shape is None:
        if x is None:
            raise ModelError("wrap_model needs input_shape or example inputs x.")
        input_shape = tuple(int(d) for d in np.asarray(x).shape[1:])
    input_shape = tuple(int(d) for d in input_shape)
    if x is not None and tuple(np.asarray(x).shape[1:]) != input_shape:
        raise ModelError(
            f"input_shape {input_shape} differs from the data's {tuple(np.asarray(x).shape[1:])}."
        )
    if (mean is None) != (std is None):
        mean = 0.0 if mean is None else mean
        std = 1.0 if std is None else std
    wrapped = WrappedModel(
        model,
        _per_channel(mean, "mean", input_shape),
        _per_channel(std, "std", input_shape),
        logits,
    ).eval()
    width = nb_classes
    if x is not None:
        device = next((p.device for p in wrapped.parameters()), torch.device("cpu"))
        one = torch.as_tensor(np.asarray(x[:1], dtype=np.float32), device=device)
        width = _run_one(wrapped, one, name, input_shape)
        _check_classes(width, y, nb_classes, name)
    if width is None:
        raise ModelError("wrap_model needs nb_classes or example inputs x.")
    return PyTorchClassifier(
        wrapped,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=int(width),
        clip_values=None if clip_values is None else tuple(float(v) for v in clip_values),
        preprocessing=None,
        device_type=resolve_device_type(device_type),
    )


# ---------------------------------------------------------------------------- loading a model
@dataclass
class LoadedModel:
    """What :func:`load_model` read: a module or a classifier, and what identifies it."""

    model: Any  # torch.nn.Module (factory, TorchScript) or PyTorchClassifier (pickle)
    kind: str  # "factory", "torchscript" or "art-classifier"
    source: str  # the factory name or the file's resolved path
    identity: dict[str, Any] = field(default_factory=dict)  # what a store's manifest records

    @property
    def file(self) -> Path | None:
        """The file whose bytes the numbers depend on (weights or model file), if any."""
        path = self.identity.get("weights") or (None if self.kind == "factory" else self.source)
        return None if path is None else Path(path)


def is_factory(spec: str) -> bool:
    """Whether ``spec`` reads as ``PKG.MODULE:FACTORY`` (and is not an existing file)."""
    return bool(FACTORY.match(spec)) and not Path(spec).exists()


def load_model(spec: str | os.PathLike, weights: str | os.PathLike | None = None) -> LoadedModel:
    """The model ``spec`` names (see the module docstring for the three kinds).

    :raises ModelError: a factory that cannot be imported, is not callable, fails or builds no
        module; weights that do not load; a file that is none of the three kinds (one sentence).
    :raises FileNotFoundError: no file at ``spec`` or ``weights``.
    """
    from er_art.evaluation.store import file_sha256

    text = str(spec)
    if is_factory(text):
        model = _from_factory(text)
        identity: dict[str, Any] = {"kind": "factory", "model": text}
        if weights is not None:
            path = Path(weights)
            _load_weights(model, path, text)
            identity.update(weights=str(path.resolve()), sha256=file_sha256(path))
        return LoadedModel(model.eval(), "factory", text, identity)
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path} (--model); {ACCEPTED}.")
    if weights is not None:
        raise ModelError(
            f"--weights goes with --model PKG.MODULE:FACTORY; the file {path} holds its weights."
        )
    identity = {"model": str(path.resolve()), "sha256": file_sha256(path)}
    scripted = _torchscript(path)
    if scripted is not None:
        return LoadedModel(
            scripted, "torchscript", str(path.resolve()), {"kind": "torchscript", **identity}
        )
    classifier = load_pickled_classifier(path)
    return LoadedModel(
        classifier, "art-classifier", str(path.resolve()), {"kind": "art-classifier", **identity}
    )


def _from_factory(spec: str) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ModuleNotFoundError, or the module's own error while importing
        raise ModelError(
            f"--model {spec}: cannot import module {module_name!r} ({_first_line(err)}); give "
            "PKG.MODULE:FACTORY of an importable module (is it installed, or on PYTHONPATH?)."
        ) from None
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ModelError(
                f"--model {spec}: module {module_name!r} has no attribute {attr!r}; give "
                "PKG.MODULE:FACTORY naming a function or class that builds the model."
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelError(
            f"--model {spec}: {attr!r} is a {type(factory).__name__}, not callable; give "
            "PKG.MODULE:FACTORY naming a function or class that builds the model."
        )
    try:
        model = factory()
    except Exception as err:
        raise ModelError(
            f"--model {spec}: calling {attr}() failed ({_first_line(err)}); the factory must "
            "build the model without arguments."
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"--model {spec}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module."
        )
    return model


def _load_weights(model: nn.Module, path: Path, spec: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"No weights file at {path} (--weights).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(
            f"--weights {path} is not a file torch.load(weights_only=True) can read "
            f"({type(err).__name__}); give a state dict saved with "
            "torch.save(model.state_dict(), FILE)."
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a training checkpoint that nests it (e.g. Lightning)
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelError(
            f"--weights {path} holds a {type(state).__name__}, not a state dict of tensors; give "
            "one saved with torch.save(model.state_dict(), FILE)."
        )
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape that does not fit
        found = re.search(r"size mismatch for [^\n]*", str(err))
        why = found.group(0).rstrip(".") if found else _first_line(err)
        raise ModelError(f"--weights {path} do not fit {spec} ({why}).") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
        if unexpected:
            more = ", ..." if len(unexpected) > 3 else ""
            parts.append(f"unexpected {', '.join(unexpected[:3])}{more}")
        raise ModelError(f"--weights {path} do not fit {spec} ({'; '.join(parts)}).")


def _torchscript(path: Path) -> nn.Module | None:
    """The TorchScript module in ``path``, or None when it is not one."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if not any(n.endswith("constants.pkl") for n in archive.namelist()):
            return None  # torch.save's zip, not torch.jit.save's
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:
        raise ModelError(
            f"{path} looks like a TorchScript file but torch.jit.load cannot read it "
            f"({_first_line(err)[:120]})."
        ) from None


# ---------------------------------------------------------------------------- pickled classifiers
def pickled_class(data: bytes) -> tuple[str, str] | None:
    """The ``(module, name)`` of the first class a pickle names (the object's own class, for a
    pickle of one object), read without unpickling; None when it names none first."""
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            strings.append(str(arg))
        elif op.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            return module, name
        elif op.name == "STACK_GLOBAL":
            return (strings[-2], strings[-1]) if len(strings) >= 2 else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET", "STOP"):
            return None
    return None


class _Portable(PyTorchClassifier):
    """Unpickles a stock ``PyTorchClassifier`` whose weights file under ``ART_DATA_PATH`` is
    missing (a pickle made on another machine): the module the pickle holds keeps its weights."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        from art import config

        side = os.path.join(config.ART_DATA_PATH, str(state.get("model_name"))) + ".model"
        if os.path.isfile(side):
            super().__setstate__(state)
            return
        self.__dict__.update(state)
        model = state["inner_model"]
        model.eval()
        self._model = self._make_model_wrapper(model)
        self._device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        self._model.to(self._device)
        self.__dict__.pop("model_name", None)
        self.__dict__.pop("inner_model", None)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        return _Portable if found is PyTorchClassifier else found


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` needs: :class:`_Unpickler` and ``load``."""

    Unpickler = _Unpickler
    __name__ = "er_art_pickle"

    @staticmethod
    def load(fh: Any, **kwargs: Any) -> Any:
        return _Unpickler(fh, **kwargs).load()


def load_pickled_classifier(path: str | os.PathLike) -> PyTorchClassifier:
    """The ART ``PyTorchClassifier`` saved in ``path`` by ``torch.save`` or ``pickle.dump``.

    :raises ModelError: the file is not a pickle, or a pickle of something else (refused before
        any of it runs).
    """
    path = Path(path)
    zipped = zipfile.is_zipfile(path)
    try:
        if zipped:
            with zipfile.ZipFile(path) as archive:
                inner = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(inner)
        else:
            data = path.read_bytes()
        named = pickled_class(data)
    except Exception:
        named = None
        data = b""
    if named is None:
        raise ModelError(
            f"{path} is neither a TorchScript file nor a pickled classifier; {ACCEPTED}."
        )
    module, name = named
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, PyTorchClassifier)):
        raise ModelError(
            f"{path} is a pickle of {module}.{name}, not of an ART PyTorchClassifier (not "
            f"loaded); {ACCEPTED}."
        )
    try:
        if zipped:
            loaded = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_PickleModule
            )
        else:
            loaded = _Unpickler(io.BytesIO(data)).load()
    except Exception as err:
        raise ModelError(
            f"{path} holds a {module}.{name} that does not unpickle here "
            f"({_first_line(err)[:160]})."
        ) from None
    if type(loaded) is _Portable:
        loaded.__class__ = PyTorchClassifier
    if not isinstance(loaded, PyTorchClassifier):
        raise ModelError(f"{path} unpickled to a {type(loaded).__name__}, not a PyTorchClassifier.")
    loaded.model.eval()
    return loaded


# ---------------------------------------------------------------------------- data for a model
def read_npz(path: str | os.PathLike, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` examples of an ``.npz`` file's arrays ``x`` (float32) and ``y`` (int64
    labels), read without pickles; a file without them is one sentence naming it."""
    from er_art.datasets import check_labels

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No data file at {path} (--data).")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("x", "y") if k not in arrays.files]
            if missing:
                raise ValueError(
                    f"--data {path} has no array {missing[0]!r} (it holds "
                    f"{', '.join(arrays.files) or 'none'}); accepted: an .npz with arrays x and y."
                )
            x, y = arrays["x"][:limit], arrays["y"][:limit]
    except ValueError:
        raise
    except Exception as err:  # not a zip, truncated, object arrays (pickles)
        raise ValueError(
            f"--data {path} is not a readable .npz of arrays x and y ({type(err).__name__})."
        ) from None
    if x.ndim < 2 or x.dtype.kind not in "fiub":
        raise ValueError(
            f"--data {path}: x must be numbers of shape (N, C, H, W), got {x.dtype} of shape "
            f"{x.shape}."
        )
    y = check_labels(y, f"--data {path}")
    if len(x) != len(y) or not len(y):
        raise ValueError(
            f"--data {path}: x and y must hold the same number (> 0) of examples, got {len(x)} "
            f"and {len(y)}."
        )
    return np.ascontiguousarray(x, dtype=np.float32), y


def check_input_range(x: np.ndarray, clip_values: Sequence[float], where: str) -> None:
    """Refuse data outside the input range the attacks keep to (one sentence)."""
    lo, hi = (float(np.min(v)) for v in clip_values)
    low, high = float(np.min(x)), float(np.max(x))
    if low < lo - 1e-6 or high > hi + 1e-6:
        raise ValueError(
            f"{where} lie in [{low:g}, {high:g}], outside the input range [{lo:g}, {hi:g}]; give "
            "the range the data are stored in (--input-range LO,HI, e.g. 0,255) and normalise "
            "inside the model with --mean / --std."
        )
