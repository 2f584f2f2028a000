"""What an attack plugin is: an ART evasion attack under a short name, capabilities as data.

An attack plugin's entry point (group ``er_art.attacks``) names an :class:`AttackSpec`. The spec
knows the attack's norm, whether it is white-box or black-box, iterative or single-step, whether it
has a perturbation budget ``eps`` (PGD, FGSM, Square, ...) or looks for a minimal perturbation
(C&W, DeepFool, HopSkipJump), and its parameters under ART's names with their defaults.

    >>> from er_art.attacks import get_attack
    >>> pgd = get_attack("pgd")
    >>> attack = pgd.build(classifier, eps=0.1, max_iter=40, restarts=2)   # an ART EvasionAttack
    >>> x_adv = attack.generate(x_test, y_test)

Gradient attacks whose ``eot`` flag is set get an :class:`~er_art.attacks.view.AttackView` of the
classifier: input-only gradients of the attack's loss, averaged over ``N`` stochastic forward
passes with ``--eot N`` (randomised models).

Step sizes scale with epsilon unless given: each spec's ``eps_step`` is a function of ``eps`` and
``max_iter`` (PGD / BIM: ``eps / 4``; FGSM: ``eps``; APGD: ``2 * eps``, its adaptive schedule's
starting step). The defaults are converged on the models we measured: twice the iterations and
restarts lower robust accuracy by at most 1.5 points (docs/EVALUATION.md says how they were
chosen). A third party adds an attack with, in its
``pyproject.toml``::

    [project.entry-points."er_art.attacks"]
    my-attack = "my_pkg.attacks:ATTACK"   # an er_art.attacks.AttackSpec
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from er_art.registry import get_plugin, names

logger = logging.getLogger(__name__)

NORMS = ("inf", "2")
THREATS = ("white-box", "black-box")
# where an attack's iterations run: er-art's batched PyTorch code on the estimator's device, or
# ART's own NumPy loop (an estimator call, a host round trip, per iteration): for comparisons
IMPLEMENTATIONS = ("torch", "art")


def check_implementation(attack: str, implementation: str) -> str:
    """``implementation`` if it is one of :data:`IMPLEMENTATIONS`, else one clear ValueError."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"Attack {attack!r} has no implementation {implementation!r}; accepted: "
            f"{', '.join(IMPLEMENTATIONS)}."
        )
    return implementation


def pgd_step(eps: float, max_iter: int) -> float:
    """Madry et al.'s step rule ``2.5 * eps / max_iter`` (reaches the boundary from any start)."""
    return 2.5 * eps / max(int(max_iter), 1)


def quarter_eps_step(eps: float, max_iter: int) -> float:
    """A fixed step of ``eps / 4`` whatever the number of steps (docs/EVALUATION.md: the converged
    defaults). More steps then search longer instead of moving more finely."""
    return eps / 4.0


@dataclass(frozen=True)
class AttackSpec:
    """An attack plugin.

    ``factory(classifier, **kwargs)`` returns the ART attack; ``kwargs`` are ART's argument names,
    resolved by :meth:`build` from ``defaults`` and the common options. Fields:
    """

    name: str  # the short name, e.g. "pgd"
    factory: Callable[..., Any]  # factory(classifier, **art_kwargs) -> art.attacks.EvasionAttack
    norm: str  # "inf" or "2": the norm the perturbation is measured (and bounded) in
    threat: str  # "white-box" (uses gradients) or "black-box" (uses predictions only)
    iterative: bool  # False for single-step attacks (FGSM)
    budgeted: bool = (
        True  # True: the attack takes an eps budget; False: minimal-perturbation attack
    )
    defaults: dict[str, Any] = field(default_factory=dict)  # ART parameter names -> defaults
    eps_step_rule: Callable[[float, int], float] | None = (
        None  # (eps, max_iter) -> eps_step when not given
    )
    max_iter_param: str | None = "max_iter"  # ART's name of the iteration count (None: has none)
    restarts_param: str | None = None  # ART's name of the random-restart count (None: has none)
    # the stopping rule (er_art.evaluation.stopping): restarts go on until `patience` in a row
    # break nothing, at least `min_restarts`, at most the restart count; None: all of them run
    patience: int | None = None
    min_restarts: int = 1
    targeted: bool = True  # supports targeted attacks
    eot: bool = False  # reads gradients through er_art.attacks.view, so --eot N averages them
    # generate() takes no labels: the attack attacks the model's own predictions (ART's DeepFool)
    attacks_predictions: bool = False
    # eps values are the paper's normalised L2 thresholds ||delta||_2 / d (Table 2), not absolute
    normalised_l2: bool = False
    description: str = ""
    paper: str = ""

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(
                f"Attack {self.name!r}: norm must be one of {', '.join(NORMS)}, got {self.norm!r}."
            )
        if self.threat not in THREATS:
            raise ValueError(
                f"Attack {self.name!r}: threat must be one of {', '.join(THREATS)}, "
                f"got {self.threat!r}."
            )

    @property
    def norm_value(self) -> float:
        """The norm as a number for NumPy (``np.inf`` or ``2``)."""
        return float("inf") if self.norm == "inf" else 2.0

    def art_kwargs(
        self,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int | None = None,
        restarts: int | None = None,
        batch_size: int = 128,
        targeted: bool = False,
        **params: Any,
    ) -> dict[str, Any]:
        """The keyword arguments :meth:`build` hands to ART (``defaults`` overridden)."""
        if targeted and not self.targeted:
            raise ValueError(f"Attack {self.name!r} has no targeted mode; drop --targeted.")
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            accepted = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"Attack {self.name!r} has no parameter {unknown[0]!r}; accepted: {accepted}."
            )
        kwargs: dict[str, Any] = dict(self.defaults)
        kwargs.update(params)
        if batch_size is not None:
            if int(batch_size) < 1:
                raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
            kwargs["batch_size"] = int(batch_size)
        if max_iter is not None:
            if self.max_iter_param is None:
                logger.info(
                    "attack %s has no iteration count; max_iter=%s ignored", self.name, max_iter
                )
            elif int(max_iter) < 1:
                raise ValueError(f"max_iter must be a positive integer, got {max_iter}.")
            else:
                kwargs[self.max_iter_param] = int(max_iter)
        if restarts is not None:
            if self.restarts_param is None:
                logger.info(
                    "attack %s has no random restarts; restarts=%s ignored", self.name, restarts
                )
            elif int(restarts) < 0:
                raise ValueError(f"restarts must be >= 0, got {restarts}.")
            else:
                kwargs[self.restarts_param] = int(restarts)
        if self.budgeted:
            if eps is None or not eps >= 0:
                raise ValueError(f"eps must be a number >= 0, got {eps}.")
            kwargs["eps"] = float(eps)
            if "eps_step" in self.defaults or self.eps_step_rule is not None:
                if eps_step is None:
                    n_iter = kwargs.get(self.max_iter_param, 1) if self.max_iter_param else 1
                    rule = self.eps_step_rule or (lambda e, _n: e)
                    eps_step = rule(float(eps), int(n_iter))
                elif not eps_step > 0:
                    raise ValueError(f"eps_step must be > 0, got {eps_step}.")
                # ART rejects eps_step <= 0 even when eps == 0: keep a tiny positive step then.
                kwargs["eps_step"] = float(eps_step) if eps_step > 0 else 1e-12
        if "targeted" in self.defaults or targeted:
            kwargs["targeted"] = bool(targeted)
        return kwargs

    def build(
        self,
        classifier: Any,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int | None = None,
        restarts: int | None = None,
        batch_size: int = 128,
        targeted: bool = False,
        **params: Any,
    ) -> Any:
        """The ART attack on ``classifier``.

        :param classifier: an ART classifier (ERClassifier or baseline ``PyTorchClassifier``).
        :param eps: budget in this attack's norm (ignored by minimal-perturbation attacks).
        :param eps_step: step size; default ``eps_step_rule(eps, max_iter)`` (scales with eps).
        :param max_iter: iterations; default the spec's ``defaults[max_iter_param]``.
        :param restarts: random restarts (PGD ``num_random_init``, APGD ``nb_random_init``, Square
            ``nb_restarts``); ignored by attacks without restarts.
        :param batch_size: attack batch size (default 128).
        :param targeted: targeted attack (then ``generate`` needs target labels).
        :param params: other ART parameters of this attack (see ``defaults``).
        """
        kwargs = self.art_kwargs(eps, eps_step, max_iter, restarts, batch_size, targeted, **params)
        logger.debug("building attack %s with %s", self.name, kwargs)
        return self.factory(classifier, **kwargs)


def get_attack(name: str) -> AttackSpec:
    """The registered attack ``name`` (unknown names raise with close matches)."""
    spec = get_plugin("attacks", name)
    if not isinstance(spec, AttackSpec):
        raise TypeError(
            f"The attack plugin {name!r} is a {type(spec).__name__}, "
            "not an er_art.attacks.AttackSpec."
        )
    return spec


def attack_names() -> list[str]:
    """Sorted names of the registered attacks."""
    return names("attacks")
