"""Defense-GAN (Samangouei, Kabkab & Chellappa, ICLR 2018), the paper's Table 2 baseline.

A WGAN-GP generator G and critic D (Gulrajani et al. 2017) are trained on clean training data and
a classifier C on clean data. At test time an input x is replaced by its projection on the range
of G: z* = argmin_z ||G(z) - x||^2, found by L gradient steps from R random starts, and the
classifier sees G(z*). The paper uses L = 200, R = 10, step size 10 (NOTES.md).

:class:`DefenseGANModel` is an ``nn.Module`` whose ``forward(x)`` returns ``C(G(z*))``'s logits, so
a stock ART ``PyTorchClassifier`` wraps it and every ART attack runs against it. Gradients with
respect to x come in two modes (``gradient=``):

- ``"bpda"`` (the default): Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner,
  ICML 2018): forward is the projection, backward is the identity, i.e. the classifier's gradient
  at G(z*) is handed to x. It cannot be masked by the projection's dynamics;
- ``"naive"``: gradients flow through the unrolled L-step projection (every step differentiated
  with ``create_graph=True``). Exact for the computation as run, but it shatters where the
  projection's steps are unstable (large step sizes, long projections), and memory grows with
  L x R x batch size. On small generators at the paper's step size it can be *stronger* than BPDA
  (tests/test_defense_gan.py measures both), so an honest evaluation attacks with both and counts
  the worst case per example.

Training reads like the paper, one batch at a time with one Adam optimizer over three parameter
groups (:meth:`DefenseGANModel.param_groups`): :func:`defense_gan_step` = :func:`wgan_gp_step`
(a critic step on the batch; a generator step after every ``n_critic``-th critic step) +
:func:`classifier_step` (cross-entropy on the clean batch).

    >>> import torch
    >>> from art.estimators.classification import PyTorchClassifier
    >>> from er_art.baselines.defense_gan import build_defense_gan, defense_gan_step
    >>> model = build_defense_gan((1, 8, 8), nb_classes=10, z_dim=32, projection_steps=50,
    ...                           restarts=4)
    >>> optimizer = torch.optim.Adam(model.param_groups(lr=2e-4))
    >>> result = defense_gan_step(model, optimizer, x, y)   # StepResult(ce, disc, reg, correct)
    >>> clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
    ...                         nb_classes=10, clip_values=(0.0, 1.0))
    >>> clf.predict(x_test)                                  # C(G(z*)), BPDA gradients

In er-art it is trained by ``er-art train --trainer defense-gan`` (architectures
``defense-gan-digits``, ``defense-gan-mnist``, ``defense-gan-cifar10``) and loaded as an
:class:`~er_art.baselines.defense_gan_classifier.DefenseGANClassifier`, whose gradient mode and
projection
settings can be changed after training (``load_classifier(run, options={"gradient": "naive"})``).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from er_art.training.algorithm import StepResult

logger = logging.getLogger(__name__)

GRADIENTS = ("bpda", "naive")  # gradient modes of DefenseGANModel
Z_INITS = ("fixed", "random")  # where the projection's R starts come from
SHAPES = ((1, 8, 8), (1, 28, 28), (3, 32, 32))  # input shapes the G / D builders know

# The authors' WGAN-GP settings (kabkabm/defensegan, models/gan.py and cfgs/gans/default.yml).
GAN_LR = 1e-4  # Adam lr of G and D
GAN_BETAS = (0.5, 0.9)  # Adam betas of G and D
CLASSIFIER_LR = 1e-3  # Adam lr of the classifier (the authors' whitebox.py default)
N_CRITIC = 5  # critic steps per generator step
LAMBDA_GP = 10.0  # gradient-penalty weight


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if shape not in SHAPES:
        accepted = ", ".join("x".join(map(str, s)) for s in SHAPES)
        raise ValueError(
            f"Defense-GAN has no generator / critic for input shape {shape}; accepted: {accepted}."
        )
    return shape  # type: ignore[return-value]


class _Crop(nn.Module):
    """Keep the top-left ``size`` x ``size`` pixels (the authors' 8x8 -> 7x7 step for MNIST)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : self.size, : self.size]


class Generator(nn.Module):
    """DCGAN-style WGAN-GP generator z -> image in [0, 1] (sigmoid), sized by ``input_shape``.

    The authors' MNIST generator for 1x28x28 (Linear(z, 4*4*4w)-ReLU, three 5x5 stride-2
    deconvolutions 4w -> 2w -> w -> C, the 8x8 map cropped to 7x7, no BatchNorm, w = 64); the same
    with 4 -> 8 -> 16 -> 32 for 3x32x32; a two-deconvolution version (2 -> 4 -> 8, w = 32) for the
    8x8 digits. Without BatchNorm the generator computes the same in train and eval mode, which the
    projection relies on.
    """

    def __init__(
        self, input_shape: Sequence[int], z_dim: int = 128, width: int | None = None
    ) -> None:
        super().__init__()
        c, h, _ = _check_shape(input_shape)
        if int(z_dim) < 1:
            raise ValueError(f"z_dim must be a positive integer, got {z_dim}.")
        self.z_dim = int(z_dim)
        self.input_shape = (c, h, h)
        if h == 8:
            w = width or 32
            self.start, chans = 2, [2 * w, w]
        else:
            w = width or 64
            self.start, chans = 4, [4 * w, 2 * w, w]
        self.start_channels = chans[0]
        self.fc = nn.Linear(self.z_dim, chans[0] * self.start * self.start)
        layers: list[nn.Module] = []
        outs = chans[1:] + [c]
        for i, (c_in, c_out) in enumerate(zip(chans, outs, strict=True)):
            # 5x5, stride 2, 'SAME': doubles the spatial size, as the authors' Deconv2D
            layers.append(nn.ConvTranspose2d(c_in, c_out, 5, 2, padding=2, output_padding=1))
            if h == 28 and i == 0:
                layers.append(_Crop(7))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(z))  # (B, c0 * s * s)
        h = h.view(-1, self.start_channels, self.start, self.start)  # (B, c0, s, s)
        return torch.sigmoid(self.deconv(h))  # (B, C, H, W)


class Critic(nn.Module):
    """WGAN-GP critic image -> score (no BatchNorm: the gradient penalty is per example).

    The authors' MNIST discriminator for 1x28x28 (5x5 stride-2 convolutions C -> w -> 2w -> 4w with
    LeakyReLU(0.2), 28 -> 14 -> 7 -> 4, Linear(4*4*4w, 1), w = 64); the same for 3x32x32
    (32 -> 16 -> 8 -> 4); two convolutions (8 -> 4 -> 2, w = 32) for the 8x8 digits.
    """

    def __init__(self, input_shape: Sequence[int], width: int | None = None) -> None:
        super().__init__()
        c, h, _ = _check_shape(input_shape)
        w = width or (32 if h == 8 else 64)
        chans = [c, w, 2 * w] if h == 8 else [c, w, 2 * w, 4 * w]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 5, 2, padding=2), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.features(torch.zeros(1, c, h, h)).shape[1]
        self.out = nn.Linear(flat, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)  # (B,)


def default_classifier(input_shape: Sequence[int], nb_classes: int = 10) -> nn.Module:
    """A small CNN for any (C, H, W): three 3x3 convolutions (32, 64 stride 2, 128 stride 2),
    Linear(128)-ReLU, Linear(nb_classes). Pass the project's own baseline model (e.g. the ``cnn``
    architecture) to :func:`build_defense_gan` to compare like with like."""
    c, h, w = (int(s) for s in input_shape)
    features = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = features(torch.zeros(1, c, h, w)).shape[1]
    return nn.Sequential(features, nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, nb_classes))


# ---------------------------------------------------------------------------------- projection
@dataclass
class Projection:
    """The result of :func:`project`, per example."""

    z: torch.Tensor  # (N, z_dim): the lowest-error code over all steps and restarts
    reconstruction: torch.Tensor  # (N, C, H, W): G(z)
    error: torch.Tensor  # (N,): mean squared error ||G(z) - x||^2 / (C H W) of the best restart


def fixed_starts(restarts: int, z_dim: int, seed: int = 0) -> torch.Tensor:
    """``(restarts, z_dim)`` standard-normal starts from a private generator seeded with ``seed``.

    Row r is the same whatever ``restarts`` is (the rows are drawn one after another), so more
    restarts only add starts: the best error over R + 1 starts is never worse than over R."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.stack([torch.randn(z_dim, generator=gen) for _ in range(int(restarts))])


def project(
    generator: nn.Module,
    x: torch.Tensor,
    steps: int,
    restarts: int,
    lr: float = 10.0,
    *,
    momentum: float = 0.7,
    z_init: torch.Tensor | None = None,
    create_graph: bool = False,
) -> Projection:
    """z* = argmin_z ||G(z) - x||^2 per example: ``steps`` gradient steps from ``restarts`` starts.

    All N x R starts are optimised together as one batch. The objective of each start is the
    per-example *mean* squared error over pixels, summed over the batch, so each code's gradient is
    independent of the batch and of the image size (the authors' ``image_rec_loss``). The optimiser
    is the authors' (``reconstruct`` in kabkabm/defensegan's models/gan.py): gradient descent with
    heavy-ball momentum 0.7 (``v <- momentum v + g; z <- z - lr v``; ``momentum=0`` is plain
    gradient descent) at a constant step size ``lr`` (10 in the paper). Their code builds a x0.1
    decay at 80% of the steps, but as we read it the decay never fires (the schedule reads an
    iteration variable the loop never increments), so the step stays constant here. The step is
    written out (not ``torch.optim``) so that ``create_graph=True`` can differentiate through it.
    Every iterate is scored and the lowest-error one over all steps and starts is returned (the
    authors keep each start's last iterate; with momentum the last is not always the best). So the
    result is the best of a superset when ``steps`` or ``restarts`` grow (with the same starts).

    The generator's parameters enter as constants (``torch.func.functional_call`` on detached
    copies): the projection never builds a graph into them, so no backward pass through it - ART's
    ``loss.backward()`` included - leaves a ``.grad`` on the generator. Runs under
    ``torch.enable_grad()``, so it works inside ``torch.no_grad()`` (ART's ``predict``).

    :param generator: z ``(B, z_dim)`` -> images ``(B, C, H, W)``; needs a ``z_dim`` attribute
        unless ``z_init`` is given.
    :param x: targets ``(N, C, H, W)``.
    :param steps: gradient steps L (0: the best start).
    :param restarts: random starts R per example.
    :param lr: step size.
    :param momentum: heavy-ball momentum in [0, 1).
    :param z_init: starts ``(R, z_dim)`` shared by every example (e.g. :func:`fixed_starts`) or
        ``(N, R, z_dim)``; ``None`` draws ``N(0, I)`` starts from torch's global RNG (deterministic
        given ``torch.manual_seed``).
    :param create_graph: differentiate through the L steps (the naive gradient with respect to x);
        otherwise the result is detached from x.
    """
    steps, restarts = int(steps), int(restarts)
    if steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}.")
    if restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts}.")
    n = x.shape[0]
    if z_init is None:
        z0 = torch.randn(n, restarts, int(generator.z_dim), device=x.device)  # (N, R, z_dim)
    elif z_init.dim() == 2:
        z0 = z_init.to(x.device, x.dtype).unsqueeze(0).expand(n, -1, -1)  # (N, R, z_dim)
    else:
        z0 = z_init.to(x.device, x.dtype)  # (N, R, z_dim)
    if z0.shape[1] != restarts:
        raise ValueError(f"z_init has {z0.shape[1]} starts per example, restarts is {restarts}.")
    params = {name: p.detach() for name, p in generator.named_parameters()}
    buffers = dict(generator.named_buffers())

    def generate(z: torch.Tensor) -> torch.Tensor:
        return functional_call(generator, (params, buffers), (z,))

    shape = x.shape[1:]
    target = (x if create_graph else x.detach()).unsqueeze(1).expand(n, restarts, *shape)
    target = target.reshape(n * restarts, *shape)  # (N R, C, H, W)
    z = z0.reshape(n * restarts, -1).detach()  # (N R, z_dim)
    velocity = torch.zeros_like(z)
    with torch.enable_grad():
        for t in range(steps + 1):  # L steps: L + 1 iterates, each scored
            if not create_graph:
                z = z.detach().requires_grad_(t < steps)
            elif not z.requires_grad:
                z = z.requires_grad_(True)
            recon = generate(z)  # (N R, C, H, W)
            err = (recon - target).pow(2).flatten(1).mean(1)  # (N R,)
            kept_z, kept_recon = (z, recon) if create_graph else (z.detach(), recon.detach())
            if t == 0:  # the starts (a NaN here stays visible instead of returning x itself)
                best_err, best_z, best_recon = err.detach(), kept_z, kept_recon
            else:
                better = err.detach() < best_err  # (N R,)
                best_err = torch.where(better, err.detach(), best_err)
                best_z = torch.where(better[:, None], kept_z, best_z)  # (N R, z_dim)
                mask = better.view(-1, *[1] * len(shape))  # (N R, 1, 1, 1)
                best_recon = torch.where(mask, kept_recon, best_recon)  # (N R, C, H, W)
            if t == steps:
                break
            (grad,) = torch.autograd.grad(err.sum(), z, create_graph=create_graph)
            velocity = momentum * velocity + grad  # (N R, z_dim)
            z = z - lr * velocity
    best = best_err.view(n, restarts).argmin(1)  # (N,)
    rows = torch.arange(n, device=x.device)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "projected %d inputs (L=%d, R=%d, lr=%g): mean squared error %.5f",
            n, steps, restarts, lr, float(best_err.view(n, restarts)[rows, best].mean()),
        )  # fmt: skip
    return Projection(
        z=best_z.view(n, restarts, -1)[rows, best].detach(),
        reconstruction=best_recon.view(n, restarts, *shape)[rows, best],  # (N, C, H, W)
        error=best_err.view(n, restarts)[rows, best],
    )


# ------------------------------------------------------------------------------------- model
def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class DefenseGANModel(nn.Module):
    """Generator, critic and classifier; ``forward(x)`` is the classifier's logits on G(z*).

    Settings (validated when set, also after construction; a bad value raises ``ValueError``):

    :param projection_steps: gradient steps L of the projection (paper: 200).
    :param restarts: random starts R (paper: 10).
    :param projection_lr: step size of the projection (paper: 10).
    :param projection_momentum: heavy-ball momentum of the projection in [0, 1) (authors: 0.7).
    :param gradient: ``"bpda"`` (identity backward through the projection) or ``"naive"``
        (through the unrolled projection); see the module docstring.
    :param z_init: ``"fixed"``: the R starts are :func:`fixed_starts` ``(R, z_dim)`` drawn from
        ``start_seed`` and shared by every input, so the defended model is a deterministic function
        of each input (repeatable predictions whatever the batch, no EOT needed; the authors'
        ``--same_init``); ``"random"``: fresh N(0, I) starts from torch's global RNG at every
        forward (the authors' online default, a randomised model: attack it with EOT).
    :param start_seed: seed of the ``"fixed"`` starts.

    Training settings, read by the ``defense-gan`` trainer and :meth:`param_groups` (kept on the
    model so that a run's config records them with the projection's):

    :param n_critic: critic steps per generator step (WGAN-GP: 5).
    :param lambda_gp: weight of the gradient penalty (WGAN-GP: 10).
    :param classifier_lr: Adam lr of the classifier C (the authors': 1e-3).
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        classifier: nn.Module,
        *,
        projection_steps: int = 200,
        restarts: int = 10,
        projection_lr: float = 10.0,
        projection_momentum: float = 0.7,
        gradient: str = "bpda",
        z_init: str = "fixed",
        start_seed: int = 0,
        n_critic: int = N_CRITIC,
        lambda_gp: float = LAMBDA_GP,
        classifier_lr: float = CLASSIFIER_LR,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.critic = critic
        self.classifier = classifier
        self.z_dim = int(generator.z_dim)
        # critic steps taken so far: decides when the generator steps. The buffer puts it in the
        # state dict (a resumed run steps the generator where the interrupted one would have);
        # the Python copy decides without reading a CUDA tensor back at every step.
        self.register_buffer("critic_iterations", torch.zeros((), dtype=torch.int64))
        self._critic_count = 0
        self.register_load_state_dict_post_hook(_read_critic_count)
        self.projection_steps = projection_steps
        self.restarts = restarts
        self.projection_lr = projection_lr
        self.projection_momentum = projection_momentum
        self.gradient = gradient
        self.z_init = z_init
        self.start_seed = start_seed
        self.n_critic = n_critic
        self.lambda_gp = lambda_gp
        self.classifier_lr = classifier_lr

    def count_critic_step(self) -> int:
        """Count one critic step; the number of critic steps so far."""
        self._critic_count += 1
        self.critic_iterations.fill_(self._critic_count)
        return self._critic_count

    # -- settings, checked when set
    @property
    def projection_steps(self) -> int:
        return self._projection_steps

    @projection_steps.setter
    def projection_steps(self, value: int) -> None:
        self._projection_steps = _positive_int("projection_steps", value)

    @property
    def restarts(self) -> int:
        return self._restarts

    @restarts.setter
    def restarts(self, value: int) -> None:
        self._restarts = _positive_int("restarts", value)

    @property
    def projection_lr(self) -> float:
        return self._projection_lr

    @projection_lr.setter
    def projection_lr(self, value: float) -> None:
        if not (_is_number(value) and 0 < value < math.inf):
            raise ValueError(f"projection_lr must be a positive number, got {value!r}.")
        self._projection_lr = float(value)

    @property
    def projection_momentum(self) -> float:
        return self._projection_momentum

    @projection_momentum.setter
    def projection_momentum(self, value: float) -> None:
        if not (_is_number(value) and 0 <= value < 1):
            raise ValueError(f"projection_momentum must be in [0, 1), got {value!r}.")
        self._projection_momentum = float(value)

    @property
    def gradient(self) -> str:
        return self._gradient

    @gradient.setter
    def gradient(self, value: str) -> None:
        if value not in GRADIENTS:
            raise ValueError(f"Unknown gradient mode {value!r}; accepted: {', '.join(GRADIENTS)}.")
        self._gradient = value

    @property
    def z_init(self) -> str:
        return self._z_init

    @z_init.setter
    def z_init(self, value: str) -> None:
        if value not in Z_INITS:
            raise ValueError(f"Unknown z_init {value!r}; accepted: {', '.join(Z_INITS)}.")
        self._z_init = value

    @property
    def start_seed(self) -> int:
        return self._start_seed

    @start_seed.setter
    def start_seed(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"start_seed must be an integer, got {value!r}.")
        self._start_seed = int(value)

    @property
    def n_critic(self) -> int:
        return self._n_critic

    @n_critic.setter
    def n_critic(self, value: int) -> None:
        self._n_critic = _positive_int("n_critic", value)

    @property
    def lambda_gp(self) -> float:
        return self._lambda_gp

    @lambda_gp.setter
    def lambda_gp(self, value: float) -> None:
        if not (_is_number(value) and 0 <= value < math.inf):
            raise ValueError(f"lambda_gp must be a finite number >= 0, got {value!r}.")
        self._lambda_gp = float(value)

    @property
    def classifier_lr(self) -> float:
        return self._classifier_lr

    @classifier_lr.setter
    def classifier_lr(self, value: float) -> None:
        if not (_is_number(value) and 0 < value < math.inf):
            raise ValueError(f"classifier_lr must be a positive number, got {value!r}.")
        self._classifier_lr = float(value)

    def settings(self) -> dict[str, Any]:
        """The projection and training settings (not in the state dict: save them with the
        run's config)."""
        return {
            "projection_steps": self.projection_steps,
            "restarts": self.restarts,
            "projection_lr": self.projection_lr,
            "projection_momentum": self.projection_momentum,
            "gradient": self.gradient,
            "z_init": self.z_init,
            "start_seed": self.start_seed,
            "n_critic": self.n_critic,
            "lambda_gp": self.lambda_gp,
            "classifier_lr": self.classifier_lr,
        }

    def param_groups(
        self,
        lr: float = GAN_LR,
        classifier_lr: float | None = None,
        betas: tuple[float, float] = GAN_BETAS,
        classifier_betas: tuple[float, float] = (0.9, 0.999),
    ) -> list[dict[str, Any]]:
        """Parameter groups for ONE ``torch.optim.Adam`` over the three nets (one state dict to
        checkpoint): generator and critic at ``lr`` / ``betas`` (the authors' WGAN-GP: 1e-4,
        (0.5, 0.9)), the classifier at ``classifier_lr`` (default: the model's
        ``classifier_lr``) / ``classifier_betas`` (Adam's default, as the authors' classifier
        training). Each group carries a ``name``. The same as one Adam per net: Adam's state, its
        step count included, is per parameter, and each sub-step only gives its own net a
        gradient."""
        if classifier_lr is None:
            classifier_lr = self.classifier_lr
        return [
            {"name": "generator", "params": list(self.generator.parameters()), "lr": lr,
             "betas": betas},
            {"name": "critic", "params": list(self.critic.parameters()), "lr": lr, "betas": betas},
            {"name": "classifier", "params": list(self.classifier.parameters()),
             "lr": classifier_lr, "betas": classifier_betas},
        ]  # fmt: skip

    # -- the defence
    def starts(self, n: int, device: torch.device) -> torch.Tensor:
        """The projection's starts: ``(R, z_dim)`` (fixed) or ``(n, R, z_dim)`` (random)."""
        if self.z_init == "fixed":
            return fixed_starts(self.restarts, self.z_dim, self.start_seed).to(device)
        return torch.randn(n, self.restarts, self.z_dim, device=device)

    def project(self, x: torch.Tensor, create_graph: bool = False) -> Projection:
        """The projection of ``x`` ``(N, C, H, W)`` on G's range with this model's settings."""
        return project(
            self.generator,
            x,
            self.projection_steps,
            self.restarts,
            self.projection_lr,
            momentum=self.projection_momentum,
            z_init=self.starts(x.shape[0], x.device),
            create_graph=create_graph,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # naive: differentiate through the unrolled steps, only when someone asks for d/dx
        naive = self.gradient == "naive" and torch.is_grad_enabled() and x.requires_grad
        x_hat = self.project(x, create_graph=naive).reconstruction  # (N, C, H, W)
        if not naive:  # BPDA: the value of G(z*), the gradient of the identity
            x_hat = x + (x_hat - x).detach()  # (N, C, H, W)
        return self.classifier(x_hat)  # (N, nb_classes)


def _read_critic_count(module: nn.Module, incompatible_keys: Any) -> None:
    module._critic_count = int(module.critic_iterations)  # type: ignore[union-attr]


def build_defense_gan(
    input_shape: Sequence[int],
    nb_classes: int = 10,
    z_dim: int = 128,
    width: int | None = None,
    classifier: nn.Module | None = None,
    **settings: Any,
) -> DefenseGANModel:
    """A :class:`DefenseGANModel` for ``input_shape`` (1x8x8, 1x28x28 or 3x32x32).

    :param z_dim: latent size (paper: 128).
    :param width: base width of G and D (default 32 for 8x8, the authors' 64 otherwise).
    :param classifier: the classifier C (default :func:`default_classifier`).
    :param settings: :class:`DefenseGANModel` settings (``projection_steps``, ``restarts``, ...).
    """
    shape = _check_shape(input_shape)
    return DefenseGANModel(
        Generator(shape, z_dim, width),
        Critic(shape, width),
        classifier if classifier is not None else default_classifier(shape, nb_classes),
        **settings,
    )


# ---------------------------------------------------------------------------------- training
def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat uniform on real-fake segments.

    The graph is kept (``create_graph=True``) so the penalty trains the critic. A 1e-12 under the
    square root keeps its gradient finite where the critic's gradient is exactly zero."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)  # (B, 1, ..)
    x_hat = (real.detach() + alpha * (fake.detach() - real.detach())).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    slopes = (grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt()  # (B,)
    return (slopes - 1.0).pow(2).mean()


def _descend(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Iterable[nn.Parameter]
) -> None:
    """One optimizer step on ``loss`` for ``params`` only: every gradient is cleared first
    (``set_to_none``), only ``params`` get one, and Adam skips parameters without a gradient."""
    params = [p for p in params if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    optimizer.step()


@dataclass
class WGANStep:
    """The losses of one :func:`wgan_gp_step` (detached tensors)."""

    wasserstein: torch.Tensor  # the critic's estimate E D(x) - E D(G(z)) before its step
    gradient_penalty: torch.Tensor  # the (unweighted) penalty of the critic step
    generator_loss: torch.Tensor | None  # -E D(G(z)) of the generator step; None if none taken


def critic_step(
    model: DefenseGANModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    lambda_gp: float = LAMBDA_GP,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One critic step: descend E D(G(z)) - E D(x) + lambda_gp GP on a real batch ``x``.

    :returns: the Wasserstein estimate E D(x) - E D(G(z)) and the penalty (detached)."""
    z = torch.randn(x.shape[0], model.z_dim, device=x.device)  # (B, z_dim)
    with torch.no_grad():
        fake = model.generator(z)  # (B, C, H, W)
    wasserstein = model.critic(x).mean() - model.critic(fake).mean()
    penalty = gradient_penalty(model.critic, x, fake)
    _descend(optimizer, -wasserstein + lambda_gp * penalty, model.critic.parameters())
    return wasserstein.detach(), penalty.detach()


def generator_step(
    model: DefenseGANModel, optimizer: torch.optim.Optimizer, batch_size: int
) -> torch.Tensor:
    """One generator step: descend -E D(G(z)) (only G's parameters receive a gradient)."""
    device = next(model.generator.parameters()).device
    z = torch.randn(batch_size, model.z_dim, device=device)  # (B, z_dim)
    loss = -model.critic(model.generator(z)).mean()
    _descend(optimizer, loss, model.generator.parameters())
    return loss.detach()


def wgan_gp_step(
    model: DefenseGANModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    n_critic: int = N_CRITIC,
    lambda_gp: float = LAMBDA_GP,
) -> WGANStep:
    """WGAN-GP (Gulrajani et al. 2017, Algorithm 1) fed one real batch at a time.

    The paper's loop is "n_critic critic steps, each on a fresh real batch, then one generator
    step". The run loop hands one batch per call, so each call is one critic step on ``x`` and
    every ``n_critic``-th call adds the generator step (the model's ``critic_iterations`` buffer
    counts, and is checkpointed with the weights): over n_critic calls this is exactly the paper's
    iteration, each critic step sees fresh data, and an epoch shows the critic every example once.
    Deviation: none in the update itself (the authors' code takes the generator step first, from
    the second iteration on; the order of the same steps differs by one critic step at the start).

    :param x: a real batch ``(B, C, H, W)`` in [0, 1] on the model's device.
    """
    n_critic = _positive_int("n_critic", n_critic)
    model.train()
    wasserstein, penalty = critic_step(model, optimizer, x, lambda_gp)
    gen_loss = None
    if model.count_critic_step() % n_critic == 0:
        gen_loss = generator_step(model, optimizer, x.shape[0])
    return WGANStep(wasserstein=wasserstein, gradient_penalty=penalty, generator_loss=gen_loss)


def classifier_step(
    model: DefenseGANModel, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One cross-entropy step of the classifier on the clean batch (not on projections, as the
    paper's classifier). :returns: the loss and the number of correct predictions (detached)."""
    model.train()
    logits = model.classifier(x)  # (B, nb_classes)
    loss = F.cross_entropy(logits, y)
    _descend(optimizer, loss, model.classifier.parameters())
    return loss.detach(), (logits.detach().argmax(1) == y).sum()


def defense_gan_step(
    model: DefenseGANModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_critic: int = N_CRITIC,
    lambda_gp: float = LAMBDA_GP,
) -> StepResult:
    """One batch of Defense-GAN training: :func:`wgan_gp_step` then :func:`classifier_step`.

    G / D and C are independent (the paper trains them separately); one batch trains both so one
    run loop drives them. Nets are left in train mode.

    :returns: ``StepResult(ce, disc, reg, correct)`` with ``disc`` the critic's Wasserstein
        estimate E D(x) - E D(G(z)) and ``reg`` its weighted gradient penalty lambda_gp GP.
    """
    wgan = wgan_gp_step(model, optimizer, x, n_critic=n_critic, lambda_gp=lambda_gp)
    ce, correct = classifier_step(model, optimizer, x, y)
    return StepResult(
        ce=ce, disc=wgan.wasserstein, reg=lambda_gp * wgan.gradient_penalty, correct=correct
    )
