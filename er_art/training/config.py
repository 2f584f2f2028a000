"""The settings of a training run: :class:`TrainingConfig`, its defaults and checks, and the
untrained classifier it describes.

    >>> from er_art.training.run import TrainingConfig, resolve_config
    >>> cfg = resolve_config(TrainingConfig(dataset="digits", trainer="er-pgd"))
    >>> cfg.epochs, cfg.batch_size, cfg.eps            # the dataset's / architecture's defaults

``batch_size`` is the global batch: under torchrun each of the N processes takes ``batch_size / N``
examples of every step (:mod:`er_art.distributed`), so a run's hyperparameters do not depend on how
many processes train it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from art.estimators.classification import PyTorchClassifier

from er_art.datasets import DatasetSpec, get_dataset
from er_art.models.architectures import get_architecture
from er_art.models.build import ER_FALLBACKS, build_classifier
from er_art.models.er_classifier import resolve_device_type
from er_art.registry import get_plugin
from er_art.training.trainers import AttackSettings, get_trainer

logger = logging.getLogger(__name__)


@dataclass
class TrainingConfig:
    """Settings of one training run; ``None`` fields take the dataset's or architecture's."""

    dataset: str = "digits"  # dataset plugin
    data_dir: str | None = None  # where its files are (None: the plugin's default)
    arch: str | None = None  # architecture (None: the trainer's default for the dataset)
    # builder options of the architecture, e.g. {"sigma_init": 0.4} (None / missing: its defaults)
    arch_options: dict[str, Any] | None = None
    prior: str = "gaussian"  # prior plugin of the embedding (ER trainers)
    embedding_dim: int | str | None = (
        None  # k: an int, "auto" (Levina-Bickel estimate) or None (arch's)
    )
    trainer: str = "er-pgd"  # trainer plugin
    eps: float | None = None  # PGD budget of min-max trainers (None: the dataset's)
    eps_step: float | None = None  # PGD step (None: the dataset's)
    max_iter: int | None = None  # PGD iterations (None: the dataset's)
    num_random_init: int = 1  # PGD random starts
    use_predictions: bool = (
        False  # attack the model's clean predictions (authors' code) instead of labels
    )
    adv_ratio: float = 0.5  # ER min-max: weight of CE(adv)
    # min-max trainers: the training PGD's eps (and step) grow linearly over the first N epochs,
    # eps * (epoch + 1) / N, then stay at eps (0: the full eps from the first step)
    eps_warmup: int = 0
    epochs: int | None = None  # None: the architecture's (defaults["epochs"]), else the dataset's
    # the global batch: under torchrun split evenly over the processes (None: the dataset's)
    batch_size: int | None = None
    lr: float | None = None  # base learning rate (None: the architecture's)
    # ER trainers: lambda (discriminator), lambda_0 (cross-entropy), lambda_1 (encoder
    # regularisation) of Algorithm 1 (None: the architecture's, recorded resolved in run.json)
    lambda_d: float | None = None
    lambda_ce: float | None = None
    lambda_reg: float | None = None
    seed: int = 0  # seeds weights, data order, priors and attacks
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = False  # bfloat16 autocast in training (the critic stays in float32)
    deterministic: bool = False  # deterministic algorithms: exact resume on CUDA too (slower)
    compile: bool = False  # torch.compile the nets for this run (CUDA; first steps compile)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at the end of each epoch)
    limit: int | None = None  # use only the first N train and test examples (smoke tests)
    threads: int | None = (
        None  # torch CPU threads (None: the architecture's, else torch's: one per core)
    )
    embedding_dim_requested: int | str | None = (
        None  # what was asked for (e.g. "auto"), for the record
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------- configuration
def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def auto_embedding_dim(spec: DatasetSpec, data_dir: str | None, n: int = 1000) -> int:
    """k: the rounded Levina-Bickel intrinsic dimension (k1=6, k2=12) of n random train images."""
    from er_art.intrinsic_dim import suggest_embedding_dim

    return suggest_embedding_dim(spec.name, data_dir, n_samples=n)


def dataset_spec(cfg: TrainingConfig) -> DatasetSpec:
    """The dataset plugin of a config, completed from its files where needed (npz)."""
    return get_dataset(cfg.dataset).resolve(cfg.data_dir)


def resolve_config(config: TrainingConfig) -> TrainingConfig:
    """Fill every default from the dataset / architecture and check every value (``ValueError``,
    ``LookupError`` with close matches for unknown plugin names).

    The config returned remembers its values and the dataset it was resolved against, so
    :func:`resolved` (and through it :func:`er_art.training.run.train`) takes it as it is, without
    resolving or looking the dataset up again, for as long as none of its fields is changed."""
    cfg, spec = _resolve(config)
    return _remember(cfg, spec)


# where a config returned by resolve_config keeps (its fields then, its dataset), for resolved()
_RESOLVED = "_er_art_resolved"


def _remember(cfg: TrainingConfig, spec: DatasetSpec) -> TrainingConfig:
    vars(cfg)[_RESOLVED] = (cfg.to_dict(), spec)  # not a field: not in to_dict() nor run.json
    return cfg


def resolved(config: TrainingConfig) -> tuple[TrainingConfig, DatasetSpec]:
    """``config`` resolved and its dataset: as they are when ``config`` came from
    :func:`resolve_config` and has not been changed since (every field compared), else
    ``resolve_config(config)`` with its dataset. A run resolves its config once this way."""
    seen = vars(config).get(_RESOLVED)
    if seen is not None and seen[0] == config.to_dict():
        return config, seen[1]
    cfg = resolve_config(config)
    return cfg, vars(cfg)[_RESOLVED][1]


def _resolve(config: TrainingConfig) -> tuple[TrainingConfig, DatasetSpec]:
    """:func:`resolve_config`'s work: the resolved config (a copy) and its dataset."""
    cfg = dataclasses.replace(config)
    trainer = get_trainer(cfg.trainer)
    spec = dataset_spec(cfg)
    resolve_device_type(cfg.device)
    if cfg.arch is None:
        cfg.arch = trainer.default_arch(spec)
    arch = get_architecture(cfg.arch)
    if arch.kind != trainer.kind:
        raise ValueError(trainer.wrong_architecture(cfg.arch, arch.kind))
    if not arch.takes_input_shape and tuple(arch.input_shape) != tuple(spec.input_shape):
        raise ValueError(
            f"Architecture {cfg.arch!r} takes inputs of shape {tuple(arch.input_shape)}, "
            "but dataset "
            f"{spec.name!r} has shape {tuple(spec.input_shape)}."
        )
    if cfg.arch_options is not None and not isinstance(cfg.arch_options, dict):
        raise ValueError(f"arch options must be a dict, got {cfg.arch_options!r}.")
    arch.check_options(dict(cfg.arch_options or {}))
    cfg.arch_options = arch.resolved_options(dict(cfg.arch_options or {}))  # recorded in run.json
    if arch.embedding_dim is not None:  # ER and VAE-CLA architectures
        if cfg.embedding_dim_requested is None:
            cfg.embedding_dim_requested = cfg.embedding_dim
        if cfg.embedding_dim == "auto":
            cfg.embedding_dim = auto_embedding_dim(spec, cfg.data_dir)
        elif cfg.embedding_dim is None:
            cfg.embedding_dim = arch.embedding_dim
        cfg.embedding_dim = _positive_int("embedding dim", cfg.embedding_dim)
    elif cfg.embedding_dim is not None:
        raise ValueError(
            f"Trainer {trainer.name!r} trains {cfg.arch!r}, a model without an embedding; "
            "drop --embedding-dim."
        )
    if trainer.kind == "er":
        get_plugin("priors", cfg.prior)
    else:
        cfg.prior = "none"
    if cfg.epochs is None:  # a slow-converging model (e.g. RSE's noise) may ask for more
        cfg.epochs = arch.defaults.get("epochs", spec.epochs)
    _positive_int("epochs", cfg.epochs, minimum=0)
    cfg.batch_size = _positive_int(
        "batch size", spec.batch_size if cfg.batch_size is None else cfg.batch_size
    )
    _resolve_lambdas(cfg, trainer.kind, arch.lambdas())
    if cfg.lr is None:
        cfg.lr = arch.defaults.get("lr", ER_FALLBACKS["lr"])
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):  # also rejects NaN
        raise ValueError(f"learning rate must be > 0, got {cfg.lr!r}.")
    cfg.lr = float(cfg.lr)
    _positive_int("seed", cfg.seed, minimum=0)
    _positive_int("checkpoint every", cfg.checkpoint_every, minimum=0)
    if cfg.limit is not None:
        _positive_int("limit", cfg.limit, minimum=2)
    if cfg.threads is None:
        cfg.threads = arch.defaults.get("threads")  # small nets: the architecture says 1
    if cfg.threads is not None:
        _positive_int("threads", cfg.threads)
    if trainer.adversarial:
        low, high = spec.clip_values
        cfg.eps = spec.eps if cfg.eps is None else float(cfg.eps)
        cfg.eps_step = spec.eps_step if cfg.eps_step is None else float(cfg.eps_step)
        cfg.max_iter = spec.max_iter if cfg.max_iter is None else cfg.max_iter
        if not 0.0 < cfg.eps <= high - low:
            raise ValueError(
                f"eps must be in (0, {high - low:g}] for data in [{low:g}, {high:g}], "
                f"got {cfg.eps:g}."
            )
        if not 0.0 < cfg.eps_step <= high - low:
            raise ValueError(
                f"eps step must be in (0, {high - low:g}] for data in [{low:g}, {high:g}], "
                f"got {cfg.eps_step:g}."
            )
        cfg.max_iter = _positive_int("max iter", cfg.max_iter)
        _positive_int("num random init", cfg.num_random_init, minimum=0)
        if not 0.0 < cfg.adv_ratio <= 1.0:
            raise ValueError(f"adversarial ratio must be in (0, 1], got {cfg.adv_ratio}.")
        _positive_int("eps warm-up", cfg.eps_warmup, minimum=0)
    else:
        if cfg.eps is not None or cfg.eps_step is not None or cfg.max_iter is not None:
            logger.warning(
                "trainer %r does not attack; eps / eps step / max iter are ignored", trainer.name
            )
        if cfg.eps_warmup:
            raise ValueError(
                f"Trainer {trainer.name!r} does not attack while training; drop --eps-warmup."
            )
        cfg.eps = cfg.eps_step = cfg.max_iter = None
    return cfg, spec


LAMBDAS = {"lambda_d": "--lambda-d", "lambda_ce": "--lambda-ce", "lambda_reg": "--lambda-reg"}


def _resolve_lambdas(cfg: TrainingConfig, kind: str, defaults: dict[str, Any]) -> None:
    """Algorithm 1's lambdas: the architecture's (``defaults``, :meth:`Architecture.lambdas`) where
    not given; finite and >= 0; only for the ER trainers (the others have none)."""
    for name, flag in LAMBDAS.items():
        value = getattr(cfg, name)
        if kind != "er":
            if value is not None:
                raise ValueError(
                    f"Trainer {cfg.trainer!r} has no lambdas of Algorithm 1; drop {flag}."
                )
            continue
        value = defaults[name] if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise ValueError(f"{flag} must be a number >= 0, got {value!r}.")
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{flag} must be a finite number >= 0, got {value!r}.")
        setattr(cfg, name, float(value))


def warmup_factor(cfg: TrainingConfig, epoch: int) -> float:
    """The fraction of the training eps used in ``epoch`` (0-based) under ``cfg.eps_warmup``."""
    if not cfg.eps_warmup:
        return 1.0
    return min(1.0, (int(epoch) + 1) / int(cfg.eps_warmup))


def attack_settings(cfg: TrainingConfig, epoch: int | None = None) -> AttackSettings | None:
    """The training PGD of a resolved config; in ``epoch`` under an eps warm-up, its eps and step
    scaled by :func:`warmup_factor`."""
    if cfg.eps is None or cfg.eps_step is None or cfg.max_iter is None:
        return None
    factor = 1.0 if epoch is None else warmup_factor(cfg, epoch)
    return AttackSettings(
        eps=factor * cfg.eps,
        eps_step=factor * cfg.eps_step,
        max_iter=cfg.max_iter,
        num_random_init=cfg.num_random_init,
        use_predictions=cfg.use_predictions,
        adv_ratio=cfg.adv_ratio,
    )


def build_for(cfg: TrainingConfig, spec: DatasetSpec) -> PyTorchClassifier:
    """The untrained classifier of a resolved config (weights seeded by ``cfg.seed``)."""
    arch = get_architecture(cfg.arch)  # type: ignore[arg-type]
    common: dict[str, Any] = dict(
        nb_classes=spec.nb_classes,
        input_shape=tuple(spec.input_shape),
        lr=cfg.lr,
        amp=cfg.amp,
        clip_values=tuple(spec.clip_values),
        device_type=cfg.device,
        seed=cfg.seed,
    )
    if arch.kind == "er":
        common["prior"] = cfg.prior
        for name in LAMBDAS:  # None (a run.json from before they were recorded): the arch's
            if getattr(cfg, name) is not None:
                common[name] = getattr(cfg, name)
    return build_classifier(
        cfg.arch,  # type: ignore[arg-type]
        embedding_dim=cfg.embedding_dim,  # type: ignore[arg-type]
        arch_options=cfg.arch_options,
        **common,
    )
