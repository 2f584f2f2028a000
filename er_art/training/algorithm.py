"""Algorithm 1 of the paper: one training step of the ER-Classifier.

Per batch (x, y), with z ~ prior:
  (a) discriminator ascent on  lambda_d * (D(z) - D(Q(x))),  then D's weights clipped to +-c (WGAN);
  (b) encoder + head descent on lambda_ce * CE(C(Q(x)), y);
  (c) encoder ascent on        lambda_reg * D(Q(x)).
Each step zeroes its optimizer's gradients first (the reference code accumulated them across the
three updates, so its step (c) really used grad CE + lambda_reg grad D; NOTES.md). With adversarial
examples (min-max training), the cross-entropy is (1 - r) CE(clean) + r CE(adv) (r = 0.5 as in the
authors' code) and steps (a) and (c) see both the clean and the adversarial embeddings.

Mixed precision (``amp=True``) runs the encoder and the head under bfloat16 autocast and the
critic D in float32: with WGAN clipping at +-0.01 the critic's outputs differ by about 1e-5, below
bfloat16's resolution near log(1/2), and a bfloat16 critic objective reads exactly 0.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from er_art.models.er_model import ERModel
from er_art.models.priors import Prior

# The one home of Algorithm 1's lambdas' defaults: lambda (``lambda_d``, the discriminator
# objective), lambda_0 (``lambda_ce``, the cross-entropy) and lambda_1 (``lambda_reg``, the encoder
# regularisation). An ER architecture's ``defaults`` override any of them
# (:meth:`er_art.models.architectures.Architecture.lambdas`, which build_classifier and
# resolve_config
# read); ERClassifier and algorithm1_step default to these.
DEFAULT_LAMBDAS: dict[str, float] = {"lambda_d": 1.0, "lambda_ce": 1.0, "lambda_reg": 1.0}


@dataclass
class Optimizers:
    """The three Adam optimizers of Algorithm 1."""

    encoder: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer
    classifier: torch.optim.Optimizer

    def state_dict(self) -> dict[str, dict]:
        return {
            name: getattr(self, name).state_dict()
            for name in ("encoder", "discriminator", "classifier")
        }

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for name, opt_state in state.items():
            getattr(self, name).load_state_dict(opt_state)

    def set_lr(self, lr: float, ratios: tuple[float, float, float]) -> None:
        nets = (self.encoder, self.discriminator, self.classifier)
        for opt, ratio in zip(nets, ratios, strict=True):
            for group in opt.param_groups:
                group["lr"] = lr * ratio


def make_optimizers(
    model: ERModel, lr: float, ratios: tuple[float, float, float] = (1.0, 0.5, 0.05)
) -> Optimizers:
    """Adam (default betas) per net; encoder : discriminator : head learning rates = ``ratios``."""
    return Optimizers(
        encoder=torch.optim.Adam(model.encoder.parameters(), lr=lr * ratios[0]),
        discriminator=torch.optim.Adam(model.discriminator.parameters(), lr=lr * ratios[1]),
        classifier=torch.optim.Adam(model.classifier.parameters(), lr=lr * ratios[2]),
    )


@dataclass
class StepResult:
    """Losses of one step (detached tensors: read them with ``float()`` only when needed)."""

    ce: torch.Tensor  # lambda_ce-weighted cross-entropy of step (b)
    disc: torch.Tensor  # step (a)'s objective lambda_d * (D(z) - D(Q(x))); 0 when not regularised
    reg: torch.Tensor  # step (c)'s objective lambda_reg * D(Q(x)); 0 when not regularised
    correct: torch.Tensor  # number of clean examples classified correctly (train-mode logits)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast through ``torch.amp`` (no loss scaling needed; works on CPU and CUDA)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def float32(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off: what runs inside runs in float32 (the critic under ``amp``)."""
    return torch.autocast(device_type=device.type, enabled=False)


def clip_weights(module: nn.Module, c: float) -> None:
    """WGAN clipping of every weight to [-c, c] (one fused kernel per bound where torch has it)."""
    params = [p for p in module.parameters()]
    with torch.no_grad():
        if hasattr(torch, "_foreach_clamp_min_") and hasattr(torch, "_foreach_clamp_max_"):
            torch._foreach_clamp_min_(params, -c)
            torch._foreach_clamp_max_(params, c)
        else:  # pragma: no cover (older torch)
            for p in params:
                p.clamp_(-c, c)


def algorithm1_step(
    model: ERModel,
    optimizers: Optimizers,
    prior: Prior,
    x: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor | None = None,
    *,
    lambda_d: float = DEFAULT_LAMBDAS["lambda_d"],
    lambda_ce: float = DEFAULT_LAMBDAS["lambda_ce"],
    lambda_reg: float = DEFAULT_LAMBDAS["lambda_reg"],
    clip_value: float = 0.01,
    adv_ratio: float = 0.5,
    regularize: bool = True,
    amp: bool = False,
) -> StepResult:
    """One step of Algorithm 1 on a batch; the nets must already be in train mode.

    :param x: clean inputs ``(B, C, H, W)`` on the model's device.
    :param y: integer labels ``(B,)``.
    :param x_adv: adversarial versions of ``x`` (min-max training) or ``None``.
    :param regularize: ``False`` skips steps (a) and (c): plain cross-entropy (the paper's E-CLA).
    """
    n = x.shape[0]
    xs = x if x_adv is None else torch.cat([x, x_adv])  # (B or 2B, C, H, W)
    zero = torch.zeros((), device=x.device)
    disc = reg = zero

    # The encoder does not change in step (a), so one forward serves steps (a) and (b).
    with autocast(x.device, amp):
        z_q = model.encoder(xs)  # (B or 2B, k)
        logits = model.classifier(z_q)  # (B or 2B, nb_classes)

    if regularize:  # (a) discriminator ascent, the critic in float32
        z_p = prior.sample(z_q.shape[0], z_q.shape[1], device=x.device, dtype=torch.float32)
        with float32(x.device):
            disc = lambda_d * (
                model.discriminator(z_p).mean() - model.discriminator(z_q.detach().float()).mean()
            )
        optimizers.discriminator.zero_grad(set_to_none=True)
        (-disc).backward()
        optimizers.discriminator.step()
        clip_weights(model.discriminator, clip_value)

    # (b) encoder + head descent on the cross-entropy
    logits = logits.float()
    ce = F.cross_entropy(logits[:n], y)
    if x_adv is not None:
        ce = (1.0 - adv_ratio) * ce + adv_ratio * F.cross_entropy(logits[n:], y)
    ce = lambda_ce * ce
    optimizers.encoder.zero_grad(set_to_none=True)
    optimizers.classifier.zero_grad(set_to_none=True)
    ce.backward()
    optimizers.classifier.step()
    optimizers.encoder.step()

    if regularize:  # (c) encoder ascent on lambda_reg * D(Q(x)); D is only read, not trained
        model.discriminator.requires_grad_(False)
        try:
            with autocast(x.device, amp):
                z_reg = model.encoder(xs)  # (B or 2B, k)
            with float32(x.device):
                reg = lambda_reg * model.discriminator(z_reg.float()).mean()
            optimizers.encoder.zero_grad(set_to_none=True)
            (-reg).backward()
            optimizers.encoder.step()
        finally:
            model.discriminator.requires_grad_(True)

    correct = (logits[:n].detach().argmax(1) == y).sum()
    return StepResult(
        ce=ce.detach(), disc=disc.detach().float(), reg=reg.detach().float(), correct=correct
    )
