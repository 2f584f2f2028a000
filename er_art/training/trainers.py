"""What a trainer plugin is: how one batch of training is done, so one run loop drives them all.

A trainer plugin's entry point (group ``er_art.trainers``) names a :class:`TrainerSpec`. The run
loop of ``er-art train`` (:mod:`er_art.training.run`) owns batching, checkpoints and resumption and
calls the trainer's per-batch step; ``spec.make_art_trainer`` gives the same training as an ART
``Trainer`` for library use.

A trainer trains one model family (``kind``, matched against ``Architecture.kind``: ``"er"``,
``"baseline"``, ``"rse"``, ``"vae"``, ``"defense-gan"`` or a third party's own); any other
architecture is refused in one sentence that lists the family's architectures. Which architecture
it trains when none is given is data: its ``default_archs`` table (by dataset name, number of input
channels, or ``"*"``), else its family's in :data:`DEFAULT_ARCHS`. A non-ER model with several
nets trains with ONE optimizer (``classifier.optimizer``) over its ``model.param_groups(lr)``
(:func:`er_art.models.build.optimizer_params`), so the run loop checkpoints and resumes it like any
other.

    >>> from er_art.training.trainers import get_trainer, AttackSettings
    >>> spec = get_trainer("er-pgd")
    >>> step = spec.make_step(classifier, AttackSettings(eps=0.1, eps_step=0.025, max_iter=10))
    >>> result = step(x_batch, y_batch)   # raw device tensors -> StepResult(ce, disc, reg, correct)

A third party adds one with, in its ``pyproject.toml``::

    [project.entry-points."er_art.trainers"]
    my-trainer = "my_pkg.trainers:TRAINER"   # an er_art.training.trainers.TrainerSpec
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from er_art.datasets import DatasetSpec
from er_art.models.architectures import architectures_of_kind
from er_art.models.er_classifier import ERClassifier
from er_art.registry import get_plugin, names
from er_art.training.algorithm import StepResult, autocast
from er_art.training.step_fit import fit_generator_with_step, fit_with_step  # noqa: F401 (re-exported)

# The architecture a trainer picks when none is given, per family: keys are a dataset's name, the
# number of its input channels (int), or "*" (any other dataset); "{arch}" in a value stands for
# the dataset's own default architecture. A trainer's ``default_archs`` overrides its family's.
DEFAULT_ARCHS: dict[str, dict[str | int, str]] = {
    "er": {"*": "{arch}"},
    "baseline": {1: "cnn", 3: "vgg19"},  # the paper's baselines by number of input channels
}

# A per-batch training step: raw inputs (B, *input_shape) in the data range and integer labels (B,),
# both on the classifier's device -> the step's losses. Nets are left in train mode.
BatchStep = Callable[[torch.Tensor, torch.Tensor], StepResult]


@dataclass(frozen=True)
class AttackSettings:
    """The PGD (L-inf) attack of min-max trainers."""

    eps: float  # perturbation budget, in the data's units
    eps_step: float  # step size
    max_iter: int  # iterations
    num_random_init: int = 1  # uniform random starts in the eps-ball
    use_predictions: bool = False  # attack the model's clean predictions instead of the true labels
    adv_ratio: float = 0.5  # ER min-max: weight r of CE(adv) in (1 - r) CE(clean) + r CE(adv)


@dataclass(frozen=True)
class TrainerSpec:
    """A trainer plugin."""

    name: str  # the short name, e.g. "er-pgd"
    # the model family it trains, matched against Architecture.kind: "er" (ER architectures),
    # "baseline" (plain classifiers: cnn, vgg19, ...), "rse", "vae", "defense-gan", or a third
    # party's own
    kind: str
    description: str
    # make_step(classifier, attack, amp=False) -> BatchStep; attack: None when not adversarial,
    # amp asks baselines for bfloat16 autocast (ER-Classifiers carry their own amp setting).
    make_step: Callable[..., BatchStep]
    adversarial: bool = False  # True: needs AttackSettings (eps, eps_step, max_iter)
    make_art_trainer: Callable[..., Any] | None = (
        None  # (classifier, attack, **fit defaults) -> ART Trainer
    )
    # the architecture picked when none is given (see DEFAULT_ARCHS); None: the family's
    default_archs: Mapping[str | int, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"TrainerSpec kind must be a non-empty string, got {self.kind!r}.")

    def default_arch(self, dataset: DatasetSpec) -> str:
        """The architecture this trainer trains on ``dataset`` when none is given."""
        table = self.default_archs
        if table is None:
            table = DEFAULT_ARCHS.get(self.kind, {})
        channels = dataset.input_shape[0] if dataset.input_shape else None
        for key in (dataset.name, channels, "*"):
            if key in table:
                name = table[key].replace("{arch}", dataset.default_arch)
                if name in names("architectures"):
                    return name
                break
        accepted = ", ".join(architectures_of_kind(self.kind)) or "none is registered"
        raise ValueError(
            f"Trainer {self.name!r} has no default architecture for dataset {dataset.name!r}; "
            f"pass --arch ({self.kind} architectures: {accepted})."
        )

    def wrong_architecture(self, arch: str, kind: str | None) -> str:
        """The one-sentence refusal of architecture ``arch`` (of family ``kind``)."""
        accepted = ", ".join(architectures_of_kind(self.kind)) or "none is registered"
        what = f"{family(kind)} architecture" if kind else "not from a registered architecture"
        return (
            f"Trainer {self.name!r} needs {family(self.kind)} architecture ({accepted}); "
            f"{arch!r} is {what}."
        )

    def check_classifier(self, classifier: PyTorchClassifier) -> None:
        """Raise ``ValueError`` when ``classifier`` is not of this trainer's family (a
        ``PyTorchClassifier`` not built by er-art counts as a baseline)."""
        kind = classifier_kind(classifier)
        if kind == self.kind or (kind is None and self.kind == "baseline"):
            return
        arch = getattr(classifier, "arch", None) or getattr(classifier, "er_art_config", {}).get(
            "arch", type(classifier).__name__
        )
        raise ValueError(self.wrong_architecture(arch, kind))


_FAMILY = {
    "er": "an ER",
    "baseline": "a baseline",
    "rse": "an RSE",
    "vae": "a VAE-CLA",
    "defense-gan": "a Defense-GAN",
}


def family(kind: str) -> str:
    """A model family as written in messages, with its article ("an ER", "a baseline")."""
    return _FAMILY.get(kind, f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind!r}")


def classifier_kind(classifier: PyTorchClassifier) -> str | None:
    """The model family of an er-art classifier (``"er"``, ``"baseline"``, ``"rse"``, ...), or
    ``None`` for a classifier er-art did not build."""
    if isinstance(classifier, ERClassifier):
        return "er"
    config = getattr(classifier, "er_art_config", None)
    return None if not isinstance(config, dict) else config.get("kind")


def get_trainer(name: str) -> TrainerSpec:
    """The registered trainer ``name`` (unknown names raise with close matches)."""
    return get_plugin("trainers", name)


# ---------------------------------------------------------------------- helpers for plugins
def as_er(classifier: PyTorchClassifier) -> ERClassifier:
    if not isinstance(classifier, ERClassifier):
        raise ValueError(
            f"This trainer needs an er_art.ERClassifier, got {type(classifier).__name__}."
        )
    return classifier


def er_min_max_trainer(
    name: str,
    classifier: PyTorchClassifier,
    attack: AttackSettings | None,
    *,
    regularize: bool = True,
    **fit_defaults: Any,
) -> Any:
    """The :class:`~er_art.training.adversarial.ERAdversarialTrainer` of trainer ``name`` with the
    min-max PGD ``attack`` (``er-pgd``; ``ecla-pgd`` with ``regularize=False``)."""
    from er_art.training.adversarial import ERAdversarialTrainer

    if attack is None:
        raise ValueError(f"Trainer {name!r} needs attack settings (eps, eps_step, max_iter).")
    return ERAdversarialTrainer(
        as_er(classifier),
        eps=attack.eps,
        eps_step=attack.eps_step,
        max_iter=attack.max_iter,
        num_random_init=attack.num_random_init,
        ratio=attack.adv_ratio,
        use_predictions=attack.use_predictions,
        regularize=regularize,
        **fit_defaults,
    )


def algorithm1_batch_step(classifier: PyTorchClassifier, regularize: bool = True) -> BatchStep:
    """Algorithm 1 per clean batch (``regularize=False``: cross-entropy only)."""
    clf = as_er(classifier)

    def step(x: torch.Tensor, y: torch.Tensor) -> StepResult:
        x_t, y_t = clf._prepare_batch(x, y)
        return clf.train_step(x_t, y_t, regularize=regularize)

    return step


def prepare_baseline_batch(
    classifier: PyTorchClassifier, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A raw batch through ART's fit-time preprocessing: float32 / int64 tensors on the device."""
    if classifier.all_framework_preprocessing:
        x_pre, _ = classifier._apply_preprocessing(x, None, fit=True)
    else:
        x_np, _ = classifier._apply_preprocessing(x.detach().cpu().numpy(), None, fit=True)
        x_pre = torch.from_numpy(np.asarray(x_np))
    return x_pre.to(classifier.device, torch.float32), y.to(classifier.device).long()


def cross_entropy_step(
    classifier: PyTorchClassifier, x: torch.Tensor, y: torch.Tensor, amp: bool = False
) -> StepResult:
    """One optimizer step of cross-entropy on a raw batch, as ART's ``PyTorchClassifier.fit`` does
    per batch (train mode, ``zero_grad``, ``CE(model(x), y)``, ``backward``, ``step``)."""
    if classifier.optimizer is None:
        raise ValueError("The classifier has no optimizer to train with.")
    x_t, y_t = prepare_baseline_batch(classifier, x, y)
    model = classifier.model
    model.train()
    classifier.optimizer.zero_grad()
    with autocast(x_t.device, amp):
        logits = model(x_t)  # (B, nb_classes)
    loss = F.cross_entropy(logits.float(), y_t)
    loss.backward()
    classifier.optimizer.step()
    zero = torch.zeros((), device=x_t.device)
    correct = (logits.detach().argmax(1) == y_t).sum()
    return StepResult(ce=loss.detach(), disc=zero, reg=zero, correct=correct)
