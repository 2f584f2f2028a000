"""The attack wing: what an attack plugin is (:mod:`.spec`) and er-art's own attacks, batched in
PyTorch on the model's device. :mod:`.engine` owns their ``generate()`` (checks, labels, device
batching, eval mode, restarts, logging); each attack writes only its per-batch search:
:mod:`.pgd` (the one PGD of evaluation, training and ``er-art embed``), :mod:`.apgd` (APGD-CE /
DLR / T), :mod:`.fab`, :mod:`.square`, :mod:`.cw_fast`; :mod:`.view` is an attack's view of a
classifier (input-only gradients, attack losses, EOT).

Importing the package imports only the plugin contract (no torch), so ``er-art plugins`` stays
fast; the attacks are imported where they are used.
"""

from er_art.attacks.spec import (
    IMPLEMENTATIONS,
    NORMS,
    THREATS,
    AttackSpec,
    attack_names,
    check_implementation,
    get_attack,
    pgd_step,
    quarter_eps_step,
)

__all__ = [
    "IMPLEMENTATIONS",
    "NORMS",
    "THREATS",
    "AttackSpec",
    "attack_names",
    "check_implementation",
    "get_attack",
    "pgd_step",
    "quarter_eps_step",
]
