"""A lighter g_s for a fast decoder profile (issue 39), distilled on a model's frozen latents.

~70 % of g_s's multiply–accumulates are its third layer (N → N channels at half resolution),
~15 % its second and ~13 % the last one. The student keeps the teacher's first layers as they are
(frozen, with their level scales, so it takes the same ŷ and the same `scales` input) and
replaces the rest by narrower layers: a third layer of `width` channels with its IGDN and a last
layer (width → 3), and, with `front_width`, a second layer of that many channels too:

    ŷ ─► [ConvT N, IGDN, ×s₀] ─► [ConvT N, IGDN, ×s₁] ─► ConvT width, IGDN, ×s₂' ─► ConvT 3
          teacher's, frozen       (or trained: front_width)   trained

With `level_scales`, each trained layer's channels are scaled per level (s' from LevelScaleMap,
computed from the teacher's own scales): a coarse ŷ (low rates) and a fine one want different
decoders, which matters most at the top rates, where a narrow layer loses most.

It starts as the teacher pruned to the channels that carry the most signal (mean square
activation × the squared norm of the next layer's weights reading them); then it trains on the
mean squared error against the original crops (not the teacher's output: the image is what the
viewer compares). Only the trained layers see gradients. The latents come from the frozen teacher
itself (g_a, h_a, h_s, rounding), as the codec writes them, at random continuous levels.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import GDN, NonNegative, deconv
from .networks import HyperpriorCodec, Synthesis

FRONT = 4  # teacher modules kept by default: ConvT, IGDN, ConvT, IGDN


class LevelScaleMap(nn.Module):
    """Per-level channel scales for a student layer, computed from the teacher's own level
    scales of one layer (`scales[:, k]`, [B, N]): s = exp(A · log scales[:, k] + c).

    The package's scales are a geometric interpolation between levels (linear in log), so a
    linear map of their logs interpolates A·table + c the same way: with as many levels as
    independent rows, A and c can express any per-level table of the student's own, while the
    decoder keeps feeding the one `scales` input it already feeds g_s. A = 0, c = 0: scale 1.
    """

    def __init__(self, n: int, out: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.a = nn.Parameter(torch.zeros(out, n))
        self.c = nn.Parameter(torch.zeros(out))

    def forward(self, x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        s = torch.exp(torch.log(scales[:, self.k]) @ self.a.t() + self.c)
        return x * s[:, :, None, None]


class FastSynthesis(nn.Module):
    """Student g_s: the teacher's first layers (frozen) and a narrower rest.

    width: the third layer's channels. front_width: None keeps the teacher's second layer
    (frozen); a number replaces it by a trained one of that many channels (N → front_width).
    level_scales: each trained layer's channels get per-level scales (LevelScaleMap)."""

    def __init__(self, teacher: Synthesis, width: int, front_width: int | None = None,
                 level_scales: bool = False) -> None:
        super().__init__()
        n = teacher[2].out_channels
        if not 1 <= width <= n:
            raise ValueError(f"width must be from 1 to the teacher's {n} channels, not {width}")
        if front_width is not None and not 1 <= front_width <= n:
            raise ValueError(f"front_width must be from 1 to the teacher's {n} channels, "
                             f"not {front_width}")
        if level_scales and not hasattr(teacher, "log_scales"):
            raise ValueError("level_scales needs a teacher g_s with level scales")
        self.width, self.front_width, self.level_scales = width, front_width, level_scales
        keep = FRONT if front_width is None else FRONT - 2
        self.front = nn.ModuleList([_frozen_copy(m) for m in list(teacher)[:keep]])
        if front_width is not None:
            self.mid = deconv(n, front_width)
            self.mid_igdn = GDN(front_width, inverse=True)
            self.mid_scale = LevelScaleMap(n, front_width, 1) if level_scales else None
        self.up = deconv(front_width or n, width)
        self.igdn = GDN(width, inverse=True)
        self.up_scale = LevelScaleMap(n, width, 2) if level_scales else None
        self.last = deconv(width, 3)

    def features(self, y_hat: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        """The frozen front: ŷ → the teacher's features after its kept layers."""
        x = y_hat
        for i, layer in enumerate(self.front):
            x = layer(x)
            if scales is not None and i in (1, 3):
                x = x * scales[:, i // 2, :, None, None]
        return x

    def head(self, f: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        """The trained layers on the front's features."""
        if self.front_width is not None:
            f = self.mid_igdn(self.mid(f))
            if self.mid_scale is not None:
                f = self.mid_scale(f, scales)
        x = self.igdn(self.up(f))
        if self.up_scale is not None:
            x = self.up_scale(x, scales)
        return self.last(x)

    def forward(self, y_hat: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(y_hat, scales), scales)

    def trained(self) -> list[nn.Module]:
        mods = [self.up, self.igdn, self.up_scale, self.last]
        if self.front_width is not None:
            mods += [self.mid, self.mid_igdn, self.mid_scale]
        return [m for m in mods if m is not None]

    def trained_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.trained() for p in m.parameters()]


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
def from_teacher(model: HyperpriorCodec, width: int, x: torch.Tensor, t: torch.Tensor,
                 front_width: int | None = None, level_scales: bool = False) -> FastSynthesis:
    """The student of `model` pruned to `width` (and `front_width`) channels, chosen on sample
    crops x at levels t: each layer keeps the channels with the largest mean square activation ×
    squared norm of the next layer's weights reading them. With level_scales, a kept channel
    keeps its own level scale (the map selects it: the full-width student is the teacher);
    without, its geometric-mean level scale is folded into the next layer."""
    g_s = model.g_s
    student = FastSynthesis(g_s, width, front_width, level_scales)
    scales = model.decoder_scales(t)
    f = student.features(latents(model, x, t), scales)

    def layer_scale(k: int, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the activation as the next layer sees it, the per-channel factor to fold)."""
        if scales is None:
            return a, torch.ones(a.shape[1])
        return a * scales[:, k, :, None, None], torch.exp(g_s.log_scales[:, k].mean(0))

    def strongest(a: torch.Tensor, w_next: torch.Tensor, k: int) -> torch.Tensor:
        score = a.pow(2).mean((0, 2, 3)) * w_next.pow(2).sum((1, 2, 3))
        return torch.sort(torch.topk(score, k).indices).values

    n = g_s[2].out_channels
    rows = torch.arange(n)  # the third layer's inputs the student keeps
    fold_in = torch.ones(n)
    if front_width is not None:
        a2, s2 = layer_scale(1, g_s[3](g_s[2](f)))
        rows = strongest(a2, g_s[4].weight, front_width)
        student.mid.weight.copy_(g_s[2].weight[:, rows])
        student.mid.bias.copy_(g_s[2].bias[rows])
        _copy_gdn(student.mid_igdn, g_s[3], rows)
        if level_scales:
            _select(student.mid_scale, rows)
        else:
            fold_in = s2
        f = a2  # the third layer's channels are chosen on the teacher's own second layer
    a3, s3 = layer_scale(2, g_s[5](g_s[4](f)))
    keep = strongest(a3, g_s[6].weight, width)
    student.up.weight.copy_(g_s[4].weight[rows][:, keep] * fold_in[rows, None, None, None])
    student.up.bias.copy_(g_s[4].bias[keep])
    _copy_gdn(student.igdn, g_s[5], keep)
    if level_scales:
        _select(student.up_scale, keep)
        s3 = torch.ones_like(s3)
    student.last.weight.copy_(g_s[6].weight[keep] * s3[keep, None, None, None])
    student.last.bias.copy_(g_s[6].bias)
    return student


def _copy_gdn(dst: GDN, src: GDN, keep: torch.Tensor) -> None:
    dst.gamma = NonNegative(src.gamma()[keep][:, keep].clone())
    dst.beta = NonNegative(src.beta()[keep].clone(), minimum=1e-6)


def _select(m: LevelScaleMap, keep: torch.Tensor) -> None:
    """The map that picks the teacher's own level scales of channels `keep`."""
    m.a.zero_()
    m.a[torch.arange(len(keep)), keep] = 1.0
    m.c.zero_()


def kmac_per_pixel(n: int, m: int, width: int, front_width: int | None = None) -> float:
    """Multiply–accumulates per output pixel of the student, as transposed convolutions (the
    IGDNs' 1×1 convolutions included)."""
    v = front_width or n
    front = 25 * m * n / 256 + n * n / 64 + 25 * n * v / 64 + v * v / 16
    rest = 25 * v * width / 16 + width * width / 4 + 25 * width * 3 / 4
    return (front + rest) / 1000


def distill_step(model: HyperpriorCodec, student: FastSynthesis, opt: torch.optim.Optimizer,
                 x: torch.Tensor) -> float:
    """One optimiser step on crops x at random levels; returns the batch MSE (in [0, 1]²)."""
    t = torch.rand(x.shape[0]) * (model.levels - 1)
    with torch.no_grad():
        scales = model.decoder_scales(t)
        f = student.features(latents(model, x, t), scales)
    loss = F.mse_loss(student.head(f, scales), x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


@torch.no_grad()
def validate(model: HyperpriorCodec, student: FastSynthesis, x: torch.Tensor,
             t: torch.Tensor) -> dict:
    """PSNR (8-bit rounding, dB) of the teacher's g_s and the student's on crops x at levels t,
    and the student's loss over the top quarter of the levels alone (where it loses most)."""
    y_hat = latents(model, x, t)
    scales = model.decoder_scales(t)
    out, per = {}, {}
    for name, fn in (("teacher", lambda: model.g_s(y_hat, scales)),
                     ("student", lambda: student(y_hat, scales))):
        r = torch.round(fn().clamp(0, 1) * 255) / 255
        mse = (r - x).pow(2).mean((1, 2, 3))
        per[name] = -10 * torch.log10(mse.clamp_min(1e-12))
        out[name] = float(per[name].mean())
    out["delta_db"] = out["student"] - out["teacher"]
    top = t >= 0.75 * (model.levels - 1)
    if top.any():
        out["delta_top_db"] = float((per["student"] - per["teacher"])[top].mean())
    return out


def learning_rate(step: int, steps: int, lr: float, final: float) -> float:
    """Cosine from lr to final over `steps`."""
    c = min(step / max(steps, 1), 1.0)
    return final + 0.5 * (lr - final) * (1 + math.cos(math.pi * c))


@torch.no_grad()
def head_arrays(student: FastSynthesis) -> dict:
    """The trained layers as a package's `fast.npz` holds them (float32, the IGDNs' effective
    gamma and beta; docs/model-package.md)."""
    def f32(t: torch.Tensor):
        return t.detach().cpu().float().numpy()

    out = {"up_w": f32(student.up.weight), "up_b": f32(student.up.bias),
           "gamma": f32(student.igdn.gamma()), "beta": f32(student.igdn.beta()),
           "last_w": f32(student.last.weight), "last_b": f32(student.last.bias)}
    if student.up_scale is not None:
        out |= {"up_scale_a": f32(student.up_scale.a), "up_scale_c": f32(student.up_scale.c)}
    if student.front_width is not None:
        out |= {"mid_w": f32(student.mid.weight), "mid_b": f32(student.mid.bias),
                "mid_gamma": f32(student.mid_igdn.gamma()),
                "mid_beta": f32(student.mid_igdn.beta())}
        if student.mid_scale is not None:
            out |= {"mid_scale_a": f32(student.mid_scale.a),
                    "mid_scale_c": f32(student.mid_scale.c)}
    return out
