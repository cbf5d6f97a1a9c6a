"""A lighter g_s for a fast decoder profile (issue 39), distilled on a model's frozen latents.

~70 % of g_s's multiply–accumulates are its third layer (N → N channels at half resolution), and
~13 % the last one reading those N channels. The student keeps the teacher's first two layers as
they are (frozen, with their level scales, so it takes the same ŷ and the same `scales` input)
and replaces the rest by a narrower third layer (N → width) with its IGDN and a last layer
(width → 3), without a level scale after that IGDN:

    ŷ ─► [ConvT N, IGDN, ×s₀] ─► [ConvT N, IGDN, ×s₁] ─► ConvT width, IGDN ─► ConvT 3 ─► image
          teacher's, frozen                              trained

It starts as the teacher pruned to the `width` third-layer channels that carry the most signal
(mean square activation × the squared norm of their last-layer weights), each channel's mean
level scale folded into the last layer; then it trains on the mean squared error against the
original crops (not the teacher's output: the image is what the viewer compares). Only the
trained layers see gradients, so a step costs little more than the narrow layers' forward and
backward. The latents come from the frozen teacher itself (g_a, h_a, h_s, rounding), as the codec
writes them, at random continuous levels.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import GDN, NonNegative, deconv
from .networks import HyperpriorCodec, Synthesis

FRONT = 4  # teacher modules kept: ConvT, IGDN, ConvT, IGDN


class FastSynthesis(nn.Module):
    """Student g_s: the teacher's first two layers (frozen) and a narrower rest."""

    def __init__(self, teacher: Synthesis, width: int) -> None:
        super().__init__()
        n = teacher[2].out_channels
        if not 1 <= width <= n:
            raise ValueError(f"width must be from 1 to the teacher's {n} channels, not {width}")
        self.width = width
        self.front = nn.ModuleList([_frozen_copy(m) for m in list(teacher)[:FRONT]])
        self.up = deconv(n, width)
        self.igdn = GDN(width, inverse=True)
        self.last = deconv(width, 3)

    def features(self, y_hat: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        """The frozen front: ŷ → the teacher's quarter-resolution features."""
        x = y_hat
        for i, layer in enumerate(self.front):
            x = layer(x)
            if scales is not None and i in (1, 3):
                x = x * scales[:, i // 2, :, None, None]
        return x

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.last(self.igdn(self.up(f)))

    def forward(self, y_hat: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(y_hat, scales))

    def trained_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.up, self.igdn, self.last) for p in m.parameters()]


def _frozen_copy(m: nn.Module) -> nn.Module:
    c = copy.deepcopy(m)
    for p in c.parameters():
        p.requires_grad_(False)
    return c


def latents(model: HyperpriorCodec, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ŷ of crops x [B, 3, H, W] in [0, 1] at level positions t [B], as the codec quantizes:
    ẑ = round(h_a(y·gain)), μ from h_s(ẑ), ŷ = (round(y·gain − μ) + μ) / gain."""
    gain = model.gain(t)[:, :, None, None]
    y = model.g_a(x, model.encoder_scales(t)) * gain
    z_hat = torch.round(model.h_a(y))
    mu, _ = model.h_s(z_hat).chunk(2, dim=1)
    return (torch.round(y - mu) + mu) / gain


@torch.no_grad()
def from_teacher(model: HyperpriorCodec, width: int, x: torch.Tensor,
                 t: torch.Tensor) -> FastSynthesis:
    """The student of `model` pruned to `width` channels, chosen on sample crops x at levels t."""
    g_s = model.g_s
    student = FastSynthesis(g_s, width)
    scales = model.decoder_scales(t)
    f = student.features(latents(model, x, t), scales)
    a = g_s[5](g_s[4](f))  # the teacher's third layer and IGDN, before its level scale
    s = torch.ones(a.shape[1]) if scales is None else torch.exp(
        g_s.log_scales[:, 2].mean(0))  # geometric mean of the level scales
    a = a * s[None, :, None, None]
    w_last = g_s[6].weight  # [N, 3, 5, 5]
    score = a.pow(2).mean((0, 2, 3)) * w_last.pow(2).sum((1, 2, 3))
    keep = torch.sort(torch.topk(score, width).indices).values
    student.up.weight.copy_(g_s[4].weight[:, keep])
    student.up.bias.copy_(g_s[4].bias[keep])
    gamma, beta = g_s[5].gamma(), g_s[5].beta()
    student.igdn.gamma = NonNegative(gamma[keep][:, keep].clone())
    student.igdn.beta = NonNegative(beta[keep].clone(), minimum=1e-6)
    student.last.weight.copy_(w_last[keep] * s[keep, None, None, None])
    student.last.bias.copy_(g_s[6].bias)
    return student


def kmac_per_pixel(n: int, m: int, width: int) -> float:
    """Multiply–accumulates per output pixel of the student, as transposed convolutions (the
    IGDNs' 1×1 convolutions included)."""
    front = 25 * m * n / 256 + n * n / 64 + 25 * n * n / 64 + n * n / 16
    rest = 25 * n * width / 16 + width * width / 4 + 25 * width * 3 / 4
    return (front + rest) / 1000


def distill_step(model: HyperpriorCodec, student: FastSynthesis, opt: torch.optim.Optimizer,
                 x: torch.Tensor) -> float:
    """One optimiser step on crops x at random levels; returns the batch MSE (in [0, 1]²)."""
    t = torch.rand(x.shape[0]) * (model.levels - 1)
    with torch.no_grad():
        f = student.features(latents(model, x, t), model.decoder_scales(t))
    loss = F.mse_loss(student.head(f), x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


@torch.no_grad()
def validate(model: HyperpriorCodec, student: FastSynthesis, x: torch.Tensor,
             t: torch.Tensor) -> dict:
    """PSNR (8-bit rounding, dB) of the teacher's g_s and the student's on crops x at levels t."""
    y_hat = latents(model, x, t)
    scales = model.decoder_scales(t)
    out = {}
    for name, fn in (("teacher", lambda: model.g_s(y_hat, scales)),
                     ("student", lambda: student(y_hat, scales))):
        r = torch.round(fn().clamp(0, 1) * 255) / 255
        mse = (r - x).pow(2).mean((1, 2, 3))
        out[name] = float(torch.mean(-10 * torch.log10(mse.clamp_min(1e-12))))
    out["delta_db"] = out["student"] - out["teacher"]
    return out


def learning_rate(step: int, steps: int, lr: float, final: float) -> float:
    """Cosine from lr to final over `steps`."""
    c = min(step / max(steps, 1), 1.0)
    return final + 0.5 * (lr - final) * (1 + math.cos(math.pi * c))


@torch.no_grad()
def head_arrays(student: FastSynthesis) -> dict:
    """The trained layers as a package's `fast.npz` holds them (float32, the IGDN's effective
    gamma and beta; docs/model-package.md)."""
    def f32(t: torch.Tensor):
        return t.detach().cpu().float().numpy()

    return {"up_w": f32(student.up.weight), "up_b": f32(student.up.bias),
            "gamma": f32(student.igdn.gamma()), "beta": f32(student.igdn.beta()),
            "last_w": f32(student.last.weight), "last_b": f32(student.last.bias)}
