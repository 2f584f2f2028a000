"""What ``er-art reproduce`` runs, as data: the methods, the scales and the paper's numbers.

- :data:`METHODS`: every method of the paper's Figures 2 and 3 (and Table 2's Defense-GAN), the
  control ``ecla-pgd`` and the ablations of Figures 4 - 6 (:class:`Ablation`), ONE table from
  method to trainer, architecture per scale and dataset, and training options per scale. A
  trainer registered by a third-party package (entry point group ``er_art.trainers``) joins as an
  extra method with :data:`EXTRA_METHOD`'s settings.
- :data:`SCALES`: ``smoke`` (the bundled digits, minutes on a laptop CPU, every code path),
  ``cpu`` (real MNIST scaled down for 2 CPU cores) and ``paper`` (the authors' settings,
  NOTES.md; for a GPU). A scale holds the training options common to every method and every
  evaluation setting (epsilon grids, numbers of test images, attack budgets).
- :data:`PAPER_TABLE1` / :data:`PAPER_TABLE2` / :data:`PAPER_TABLE3`: the published numbers
  (percent), checked against ``../shared/paper/er-classifier-paper.txt``.

Precedence of training options, lowest first: the dataset's and architecture's defaults (what
``er-art train`` uses), the scale's ``train``, the method's ``train[scale]``, then the
``train_overrides`` given to :func:`er_art.reproduce.reproduce` (tests). Every resolved difference
from the ``paper`` scale is listed in the table's header (:mod:`er_art.reproduce.plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("paper", "worst-case", "adaptive")  # the values of table.csv's `protocol` column
CW_THRESHOLD = 0.005  # Table 2: C&W L2 / (number of input dimensions) <= 0.005
UNDERTRAINED_GAP = 0.02  # clean accuracy this far below the plain counterpart's: undertrained


@dataclass(frozen=True)
class Ablation:
    """What an ablation method (the paper's Figures 4 - 6) changes on its ``base`` method; the
    rest (trainer, architecture, epochs, data) is the base's."""

    base: str  # the method it varies (its paired comparisons are against this one)
    prior: str | None = None  # a prior plugin instead of the Gaussian (Figure 4)
    # the embedding dimension (Figure 5): "intrinsic" (Table 3's on the paper's datasets, else
    # er-art's Levina-Bickel estimate of the training images, --embedding-dim auto) or a factor of
    # the architecture's default
    embedding: str | float | None = None
    eps_factor: float | None = None  # the training PGD's eps and step times this (Figure 6)


@dataclass(frozen=True)
class Method:
    """One method of the paper's comparison."""

    name: str  # the method's name in table.csv (= its trainer's name for the built-ins)
    trainer: str  # trainer plugin (er-art plugins trainers)
    label: str  # the paper's name, e.g. "Madry's Adv"
    # architecture per scale and dataset: arch[scale][dataset], "*" matching any scale / dataset;
    # no entry: the trainer's default for the dataset (er-art train's)
    arch: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # TrainingConfig fields per scale: keys "*" (every scale), "<scale>", "<scale>:<dataset>",
    # later ones winning
    train: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    figures: tuple[int, ...] = ()  # the paper's figures that show it (2, 3)
    # the datasets the paper runs it on (None: every one); a scale with all_methods runs it anyway
    datasets: tuple[str, ...] | None = None
    adaptive: str | None = None  # the adaptive attack it needs: "eot" or "defense-gan"
    table2: bool = False  # evaluated under Table 2's C&W L2 threshold (where the dataset has it)
    builtin: bool = True  # False: a third party's trainer
    # the plain model of its family (plain: the baselines; ecla: the ER encoder + head): table.md
    # flags this method "undertrained" when its clean test accuracy is more than
    # UNDERTRAINED_GAP below that one's at the same scale
    counterpart: str | None = None
    ablation: Ablation | None = None  # a variant of another method (Figures 4 - 6)
    # one of the key comparison (er-pgd, ecla-pgd, madry): its worst case runs on
    # Scale.n_worst_key test images, enough for a 95 % interval of at most +-4 points
    key: bool = False

    def arch_for(self, scale: str, dataset: str) -> str | None:
        """The architecture at ``scale`` on ``dataset`` (None: the trainer's default)."""
        for s in (scale, "*"):
            table = self.arch.get(s, {})
            for d in (dataset, "*"):
                if d in table:
                    return table[d]
        return None

    def train_for(self, scale: str, dataset: str) -> dict[str, Any]:
        """The method's own training options at ``scale`` on ``dataset``."""
        options: dict[str, Any] = {}
        for key in ("*", scale, f"{scale}:{dataset}"):
            options.update(self.train.get(key, {}))
        return options

    def runs_on(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets


# The ER-Classifier family at CPU scale: the paper's MNIST encoder at a quarter of its width.
_SMALL_ER = {"cpu": {"mnist": "mnist-small"}}
# The paper's authors attacked the model's own clean predictions when training (NOTES.md).
_AUTHORS_PGD = {"use_predictions": True}

_ER_MINUS_TRAIN = {"smoke": {"epochs": 8}, "cpu": {"epochs": 3}}
_ER_MINUS_K_HALF_TRAIN = {**_ER_MINUS_TRAIN, "cpu": {"epochs": 8}}  # to its plateau (below)
_ER_PGD_TRAIN = {
    "*": _AUTHORS_PGD,
    "smoke": {"epochs": 8},
    "cpu": {"epochs": 6},  # as madry's: every min-max method the same budget at a scale
    "paper:stl10": {"epochs": 20},  # NOTES.md: with adversarial training
}
# NOTES.md: STL-10 with adversarial training 20 epochs
_MADRY_TRAIN = {"smoke": {"epochs": 8}, "cpu": {"epochs": 6}, "paper:stl10": {"epochs": 20}}
# Madry at training eps 0.4 on MNIST (Figure 6) collapses at cpu scale with the 2-epoch warm-up
# (28.4 % clean after 6 epochs); warmed up over 4 epochs it does not, but sits at 94.7 % after 6;
# after 10: 96.2 % (95.7 / 95.5 / 96.2 after epochs 8 - 10; docs/RESULTS.md)
_MADRY_EPS133_TRAIN = {**_MADRY_TRAIN, "cpu": {"epochs": 10, "eps_warmup": 4}}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "plain",
            "plain",
            "No Defense",
            # the trainer's default: Madry et al.'s small CNN (grey images), VGG19 (colour)
            train={"smoke": {"epochs": 8}, "cpu": {"epochs": 3}},
            figures=(2,),
        ),
        Method(
            "madry",
            "madry",
            "Madry's Adv",
            train=_MADRY_TRAIN,
            figures=(2, 6),
            counterpart="plain",
            key=True,
        ),
        Method(
            "rse",
            "rse",
            "RSE",
            # rse-digits / rse-cnn (sigma 0.8 / 0.4, MNIST) / rse-vgg19 (0.2 / 0.1, colour). CPU:
            # half the noise, 6 epochs. With the authors' 0.8 / 0.4 the small CNN on 10,000 images
            # plateaus ~4.5 points below No Defense (93 % after 11 - 17 epochs; 90 % after 2
            # epochs of all 60,000); at 0.4 / 0.2: 95.4 / 96.0 / 96.4 / 96.7 % after epochs 3 - 6
            # (docs/RESULTS.md)
            train={
                "smoke": {"epochs": 15},
                "cpu": {"epochs": 6, "arch_options": {"sigma_init": 0.4, "sigma_inner": 0.2}},
            },
            figures=(2,),
            adaptive="eot",
            counterpart="plain",
        ),
        Method(
            "ecla",
            "ecla",
            "E-CLA",
            arch=_SMALL_ER,
            train={"smoke": {"epochs": 8}, "cpu": {"epochs": 3}},
            figures=(3,),
        ),
        Method(
            "vae-cla",
            "vae-cla",
            "VAE-CLA",
            arch={"cpu": {"mnist": "vae-mnist-small"}},
            train={"smoke": {"epochs": 8}, "cpu": {"epochs": 3}},
            figures=(3,),
            counterpart="ecla",
        ),
        Method(
            "er-minus",
            "er-minus",
            "ER-Classifier-",
            arch=_SMALL_ER,
            train=_ER_MINUS_TRAIN,
            figures=(2, 3, 4, 5),
            counterpart="ecla",
        ),
        Method(
            "er-pgd",
            "er-pgd",
            "ER-Classifier",
            arch=_SMALL_ER,
            train=_ER_PGD_TRAIN,
            figures=(2, 3),
            table2=True,
            counterpart="ecla",
            key=True,
        ),
        Method(
            "ecla-pgd",
            "ecla-pgd",
            "E-CLA + min-max",
            # the control: er-pgd's architecture, training attack, epochs and data, without the
            # discriminator (not in the paper: it isolates what the regulariser adds to min-max)
            arch=_SMALL_ER,
            train=_ER_PGD_TRAIN,  # er-pgd's own: the same budget
            figures=(3,),
            counterpart="ecla",
            key=True,
        ),
        Method(
            "defense-gan",
            "defense-gan",
            "Defense-GAN",
            arch={"*": {"digits": "defense-gan-digits", "mnist": "defense-gan-mnist"}},
            # defense-gan-digits: L = 50, R = 4, 60 epochs by default; the projection is set per
            # scale at test time (Scale.defense_gan). CPU: G / D at a quarter width, z 32, the
            # digits preset's lr (the paper's width trains 4x slower and L x R projections of it
            # cost 54 ms an image at L = 20, R = 2); 6 epochs of 10,000 images reach 73% clean
            # accuracy through the projection (L = 20, R = 2), 77% at L = 50, R = 4.
            train={
                "smoke": {"epochs": 30},
                "cpu": {"epochs": 6, "lr": 1e-3, "arch_options": {"width": 16, "z_dim": 32}},
            },
            datasets=("mnist",),  # the paper compares with Defense-GAN on MNIST only (Table 2)
            adaptive="defense-gan",
            table2=True,
            counterpart="plain",
        ),
        # -- the paper's ablations. Figures 4 and 5: the ER-Classifier without min-max (as the
        # paper trained them), one setting changed; Figure 6: Madry's training eps.
        *(
            Method(
                f"er-minus-{prior}",
                "er-minus",
                f"ER-Classifier-, {label} prior",
                arch=_SMALL_ER,
                train=_ER_MINUS_TRAIN,
                figures=(4,),
                counterpart="ecla",
                ablation=Ablation("er-minus", prior=prior),
            )
            for prior, label in (("uniform", "Uniform(-3, 3)"), ("cauchy", "Cauchy(0, 1)"))
        ),
        *(
            Method(
                f"er-minus-k-{name}",
                "er-minus",
                f"ER-Classifier-, {label}",
                arch=_SMALL_ER,
                train=train,
                figures=(5,),
                counterpart="ecla",
                ablation=Ablation("er-minus", embedding=embedding),
            )
            for name, label, embedding, train in (
                # k = 2 on MNIST learns slower: 94.2 % clean after 3 epochs (2.8 points below
                # E-CLA, "undertrained"), 95.8 / 96.3 / 96.5 % after 6 / 8 / 10 (docs/RESULTS.md)
                ("half", "half the embedding dimension", 0.5, _ER_MINUS_K_HALF_TRAIN),
                ("double", "twice the embedding dimension", 2.0, _ER_MINUS_TRAIN),
                (
                    "intrinsic",
                    "embedding dimension = the data's intrinsic dimension",
                    "intrinsic",
                    _ER_MINUS_TRAIN,
                ),
            )
        ),
        *(
            Method(
                f"madry-eps{percent}",
                "madry",
                f"Madry's Adv, training eps x {label}",
                train=train,
                figures=(6,),
                counterpart="plain",
                ablation=Ablation("madry", eps_factor=factor),
            )
            for percent, label, factor, train in (
                (33, "1/3", 1 / 3, _MADRY_TRAIN),
                (67, "2/3", 2 / 3, _MADRY_TRAIN),
                (133, "4/3", 4 / 3, _MADRY_EPS133_TRAIN),
            )
        ),
    )
}

# A third party's trainer at every scale: its default architecture, these options.
EXTRA_METHOD = Method(
    "*",
    "*",
    "",
    train={"smoke": {"epochs": 5}, "cpu": {"epochs": 3}},
    figures=(2,),
    builtin=False,
)


@dataclass(frozen=True)
class Scale:
    """How big a reproduction is: training options common to all methods, every evaluation
    setting. ``None`` numbers of test images mean the whole test split."""

    name: str
    datasets: tuple[str, ...]  # the datasets this scale runs on
    description: str
    all_methods: bool = False  # run every method whatever the dataset (smoke: every code path)
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainingConfig fields, all methods
    # -- paper protocol: PGD with the dataset's step and steps, one random start, on this grid
    eps_grid: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # None: the dataset's
    n_paper: int | None = None
    paper_max_iter: int | None = None  # None: the dataset's (the authors')
    # -- Table 2: cw-fast at the normalised L2 threshold 0.005
    n_cw: int | None = 1000
    cw_params: Mapping[str, Any] = field(default_factory=dict)  # None: cw-fast's defaults
    # -- worst case: er-art evaluate's fast suite with its sanity checks
    worst_eps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # None: Table 1's
    # a min-max method's worst case (its threat model: the training eps); None: worst_eps
    worst_eps_min_max: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    n_worst: int | None = 1000
    # the key comparison's methods (Method.key): None as n_worst. The 95 % Wilson interval of an
    # accuracy is at most +-4.0 points from 600 images on (at 50 %), +-6.9 at 200
    n_worst_key: int | None = None
    suite_restarts: int | None = None  # None: each attack's converged default
    suite_max_iter: int | None = None
    square_queries: int = 5000  # the fast suite's own (the standard AutoAttack's)
    square_restarts: int | None = None  # None: as the other attacks (suite_restarts)
    checks: bool = True
    # -- adaptive attacks (RSE: EOT; Defense-GAN: BPDA and naive gradients) at the worst-case eps
    n_adaptive: int | None = 1000
    eot: int = 20  # EOT passes (the standard AutoAttack's "rand" version uses 20)
    adaptive_restarts: int | None = None  # PGD restarts of the adaptive attacks (None: converged)
    # -- Defense-GAN's test-time projection (paper: L = 200 steps from R = 10 starts)
    defense_gan: Mapping[str, int] = field(
        default_factory=lambda: {"projection_steps": 200, "restarts": 10}
    )
    n_defense_gan: int | None = 1000  # at most this many test images for Defense-GAN, any protocol
    naive_batch_size: int = 32  # attack batch of the naive (unrolled) Defense-GAN gradient
    intrinsic_n: int = 1000  # images for the intrinsic dimension (the paper: 1,000)
    batch_size: int = 512  # attack batch size (the fastest on a 2-core CPU: docs/BENCHMARKS.md)
    gpu: bool = False  # meant for a GPU (a warning on a machine without one)


# Table 1's epsilon columns (the worst case runs there at the paper scale).
TABLE1_EPS: dict[str, tuple[float, ...]] = {
    "mnist": (0.0, 0.1, 0.2, 0.3, 0.4),
    "cifar10": (0.0, 0.015, 0.03, 0.045, 0.06),
    "stl10": (0.0, 0.015, 0.03, 0.045, 0.06),
    "tinyimagenet": (0.0, 0.004, 0.01, 0.016, 0.02),
}

SMOKE = Scale(
    name="smoke",
    datasets=("digits",),
    description="the bundled 8x8 digits, a few epochs, small attack budgets: every code path in "
    "minutes on a CPU (not a dataset of the paper: no published numbers to compare with)",
    all_methods=True,
    # digits: our choice of grid, 0 .. 0.3 step 0.05 (the digits' own grid has steps of 0.025)
    eps_grid={"digits": tuple(round(0.05 * i, 3) for i in range(7))},
    n_paper=None,
    n_cw=100,
    worst_eps={"digits": (0.0, 0.1, 0.2)},
    n_worst=100,
    suite_restarts=2,
    suite_max_iter=10,
    square_queries=200,
    square_restarts=1,
    n_adaptive=50,
    eot=4,
    adaptive_restarts=2,
    defense_gan={"projection_steps": 20, "restarts": 2},
    n_defense_gan=50,
    intrinsic_n=1000,
)

CPU = Scale(
    name="cpu",
    datasets=("mnist",),
    description="real MNIST scaled down for 2 CPU cores: the quarter-width encoder mnist-small, "
    "the first 10,000 training images, PGD-10 min-max training, fewer epochs and test subsets; "
    "every attack at er-art's converged defaults",
    # min-max methods: PGD-10 with its eps warmed up over 2 of 6 epochs. Without the warm-up
    # Madry's training stalls at chance for its first epoch at eps 0.3 (79.5 % clean after 4
    # epochs, "undertrained"); with it 95.6 % after 4 and 96.9 % after 6 (docs/RESULTS.md)
    train={
        "limit": 10000,
        "max_iter": 10,
        "eps_step": 0.04,
        "eps_warmup": 2,
        "checkpoint_every": 50,
    },
    eps_grid={"mnist": tuple(round(0.05 * i, 3) for i in range(9))},  # 0 .. 0.4 step 0.05
    n_paper=500,
    n_cw=200,
    worst_eps={"mnist": (0.0, 0.1, 0.3)},
    # min-max methods at their training eps only: at 0.1 they stay robust on ~95 % of the images,
    # where every attack of the cascade runs in full (Madry's CNN: ~25 min of 2 cores at 600
    # images); eps 0.1 is where the methods without min-max differ (at 0.3 they are all broken)
    worst_eps_min_max={"mnist": (0.0, 0.3)},
    n_worst=200,
    n_worst_key=600,
    n_adaptive=100,
    eot=10,
    defense_gan={"projection_steps": 20, "restarts": 2},
    n_defense_gan=50,
)

PAPER = Scale(
    name="paper",
    datasets=("mnist", "cifar10", "stl10", "tinyimagenet"),
    description="the authors' settings (NOTES.md): the paper's architectures, full training "
    "sets, their epochs and PGD; the whole test split under the paper's protocol; meant for a GPU",
    train={"checkpoint_every": 200},
    n_paper=None,
    n_cw=1000,
    n_worst=1000,
    n_adaptive=1000,
    eot=20,
    n_defense_gan=200,
    gpu=True,
)

SCALES: dict[str, Scale] = {s.name: s for s in (SMOKE, CPU, PAPER)}

# Published robust accuracy (%) under the paper's PGD, Table 1: dataset -> method -> eps -> value.
# "Madry's Adv" is `madry`, "ER-Classifier" (with min-max) is `er-pgd`.
PAPER_TABLE1: dict[str, dict[str, dict[float, float]]] = {
    "mnist": {
        "madry": {0.0: 98.7, 0.1: 97.5, 0.2: 93.8, 0.3: 85.5, 0.4: 20.8},
        "er-pgd": {0.0: 99.1, 0.1: 98.7, 0.2: 97.2, 0.3: 94.9, 0.4: 71.1},
    },
    "cifar10": {
        "madry": {0.0: 82.6, 0.015: 68.0, 0.03: 42.3, 0.045: 21.6, 0.06: 12.0},
        "er-pgd": {0.0: 84.0, 0.015: 67.5, 0.03: 51.3, 0.045: 35.8, 0.06: 23.3},
    },
    "stl10": {
        "madry": {0.0: 63.6, 0.015: 53.5, 0.03: 36.8, 0.045: 25.0, 0.06: 18.7},
        "er-pgd": {0.0: 60.7, 0.015: 52.1, 0.03: 40.3, 0.045: 30.6, 0.06: 24.5},
    },
    "tinyimagenet": {
        "madry": {0.0: 57.3, 0.004: 48.6, 0.01: 26.5, 0.016: 15.1, 0.02: 12.0},
        "er-pgd": {0.0: 54.6, 0.004: 50.0, 0.01: 36.7, 0.016: 25.6, 0.02: 21.1},
    },
}

# Table 2 (MNIST): accuracy (%) under C&W with normalised L2 <= 0.005. Defense-GAN's figure is
# Athalye et al.'s (BPDA); the ER-Classifier's the authors' with the same C&W settings.
PAPER_TABLE2: dict[str, dict[str, float]] = {"mnist": {"defense-gan": 55.0, "er-pgd": 99.1}}

# Table 3: data dimension, Levina-Bickel intrinsic dimension (1,000 samples), embedding dim k.
PAPER_TABLE3: dict[str, dict[str, Any]] = {
    "mnist": {"data_dim": "1x28x28", "intrinsic_dim": 13, "embedding_dim": 4},
    "cifar10": {"data_dim": "3x32x32", "intrinsic_dim": 17, "embedding_dim": 16},
    "stl10": {"data_dim": "3x96x96", "intrinsic_dim": 20, "embedding_dim": 16},
    "tinyimagenet": {"data_dim": "3x64x64", "intrinsic_dim": 19, "embedding_dim": 20},
}


def paper_value(dataset: str, method: str, eps: float | str) -> float | None:
    """The published value (%) for ``method`` at ``eps`` on ``dataset``: Table 1 for an L-inf
    eps, Table 2 for ``"l2:0.005"``; None where the paper gives none."""
    if isinstance(eps, str):
        if eps == cw_eps_label(CW_THRESHOLD):
            return PAPER_TABLE2.get(dataset, {}).get(method)
        return None
    for e, value in PAPER_TABLE1.get(dataset, {}).get(method, {}).items():
        if abs(e - float(eps)) < 1e-9:
            return value
    return None


def cw_eps_label(threshold: float) -> str:
    """How a C&W row's budget is written in table.csv's eps column: ``l2:0.005``."""
    return f"l2:{threshold:g}"
