"""Encoder-side latent refinement: per-image gradient descent on the latents, decoder unchanged.

The amortised encoder g_a gives latents that are good on average over images and rates; for one
image at one rate, latents that cost less under the model's own objective R + λ·255²·MSE exist
(the "amortisation gap": Campos et al. 2019, "Content adaptive optimization for neural image
compression"; Yang et al. 2020, "Improving inference for neural image compression"). This
optimises the gained latent y·gain and the hyper-latent z of one image through the model's own
h_s, entropy models and g_s, with stochastic Gumbel annealing (SGA, Yang et al. 2020) standing in
for rounding, then hands them back to the codec, which quantizes and codes them as usual: the
file format and the decoder do not change. Needs torch (the `train` extra).

Images of any size are refined by tiles of the hyper-latent grid (`tiles`): each tile's latents
are optimised with a halo of their neighbours around them, starting from the encoder's latents,
and only the tile's own latents are kept. Tiles are independent of each other (none sees another's
result), so the result depends neither on the order they run in nor on the thread count, and the
memory of the backward pass (~1 KB a pixel) is bounded by the tile size.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..arguments import MAX_REFINE
from ..geometry import HYPER_STRIDE, PAD
from ..model_package import level_position
from .entropy_models import GaussianConditional, sga_round, ste_round
from .export import load_model
from .networks import HyperpriorCodec

# A tile is at most TILE hyper-latents (TILE·64 pixels) on a side, plus HALO on each side. g_s
# reaches ~2 latents (32 px) around a latent and h_s ~1.5 hyper-latents around one, so a
# halo of one hyper-latent (64 px) lets a tile's border latents see the neighbours that shape
# their cost. 16 (1024 px): ~1.4 GB for the backward pass of a tile with its halo.
TILE = 16
HALO = 1
MAX_STEPS = MAX_REFINE  # the API's bound on refine= (arguments), checked here for schedules


@dataclass(frozen=True)
class Schedule:
    """How one image is refined: Adam steps on the latents (quantization bin 1) at learning
    rate `lr`, the SGA temperature annealed exponentially from tau_start to tau_end
    (`schedule_for` gives the tuned one for a number of steps)."""

    steps: int
    lr: float = 0.01
    tau_start: float = 0.5
    tau_end: float = 0.05

    def tau(self, i: int) -> float:
        return self.tau_start * (self.tau_end / self.tau_start) ** (i / max(self.steps - 1, 1))


def schedule_for(steps: int) -> Schedule:
    """The schedule used for a number of steps (efforts 4 and 5, refine=N).

    Tuned on 256² training crops at q10/50/90 (benchmarks/refine_tune.py, 2026-12-04, model
    de40e52c05b1; mean change of the model's cost): Adam moves each latent by ~lr a step
    whatever its gradient, so what matters is lr × steps ≈ 0.12 (12 steps: lr 0.01 −5.2 %,
    0.02 −4.0 %; 24: 0.005 −6.4 %, 0.01 −3.3 %; 40: 0.003 −6.9 %, 0.005 −6.1 %, 0.01 −2.2 %),
    and a cool start: τ 0.2 → 0.02 (−5.2 %) or 0.3 → 0.05 (−4.9 %) against 0.5 → 0.05 (−2.9 %)."""
    return Schedule(steps, lr=min(0.01, 0.12 / steps), tau_start=0.2, tau_end=0.02)


_models: dict[tuple[str, str, str], HyperpriorCodec] = {}
_lock = threading.Lock()


def _model(package: Path, content_hash: str, device: str) -> HyperpriorCodec:
    """The package's torch model, loaded once per device, frozen, in channels-last layout
    (its convolutions run ~1.4× faster so on a CPU)."""
    key = (str(package), content_hash, device)
    with _lock:
        if key not in _models:
            model, _ = load_model(package)
            for prm in model.parameters():
                prm.requires_grad_(False)
            model = model.eval().to(device)
            _models[key] = model.to(memory_format=torch.channels_last)
        return _models[key]


def _cost(model: HyperpriorCodec, x: torch.Tensor, yg: torch.Tensor, z: torch.Tensor,
          t: torch.Tensor, lam: float, tau: float | None) -> torch.Tensor:
    """R + λ·255²·MSE per pixel of x (cropped from the padded reconstruction); tau=None: hard."""
    z_hat = ste_round(z)
    z_bits = -torch.log2(model.z_density.likelihood(z_hat)).sum()
    mu, log_scale = model.h_s(z_hat).chunk(2, dim=1)
    r = ste_round(yg - mu) if tau is None else sga_round(yg - mu, tau)
    y_lik = GaussianConditional.likelihood(r, GaussianConditional.scale(log_scale))
    gain = model.gain(t)[:, :, None, None]
    x_hat = model.g_s((r + mu) / gain, model.decoder_scales(t))
    x_hat = x_hat[:, :, : x.shape[2], : x.shape[3]].clamp(0, 1)
    n = x.shape[2] * x.shape[3]
    return (z_bits - torch.log2(y_lik).sum()) / n + lam * torch.mean((x_hat - x) ** 2)


def tiles(hz: int, wz: int, tile: int | None = None,
          halo: int | None = None) -> list[tuple[tuple, tuple]]:
    """The hyper-latent grid hz×wz cut into near-equal tiles of at most `tile` (TILE) on a
    side, with `halo` (HALO) around each: for each, its own rows and columns and those with the
    halo, clipped, as [((r0, r1, c0, c1), (e0, e1, f0, f1)), ...] in row-major order."""
    tile = TILE if tile is None else tile
    halo = HALO if halo is None else halo

    def cuts(n: int) -> list[tuple[int, int, int, int]]:
        k = -(-n // tile)
        b = [i * n // k for i in range(k + 1)]
        return [(b[i], b[i + 1], max(0, b[i] - halo), min(n, b[i + 1] + halo)) for i in range(k)]

    return [((r0, r1, c0, c1), (e0, e1, f0, f1))
            for r0, r1, e0, e1 in cuts(hz) for c0, c1, f0, f1 in cuts(wz)]


def refine_latents(package: Path, content_hash: str, rgb: np.ndarray, yg: np.ndarray,
                   z: np.ndarray, quality: float, schedule: Schedule | int, threads: int = 0,
                   device: str = "cpu",
                   progress: Callable[[int, int], None] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Refined (y·gain float32 [M,h,w], z float32 [Nz,h/4,w/4]) of one H×W×3 uint8 image, and
    the model's cost estimates before and after (summed over tiles). A tile whose refined
    latents the model rates no better than the ones it was given keeps those. schedule: a
    Schedule, or a number of steps (`schedule_for`). device: "cpu" or "cuda" (a CUDA
    build of torch); progress is called as (steps done, steps) after each step, over all tiles."""
    if isinstance(schedule, int) and not isinstance(schedule, bool) and 1 <= schedule <= MAX_STEPS:
        schedule = schedule_for(schedule)
    if not (isinstance(schedule, Schedule) and isinstance(schedule.steps, int)
            and 1 <= schedule.steps <= MAX_STEPS):
        raise ValueError(f"refine steps must be an integer from 1 to {MAX_STEPS}, "
                         f"got {schedule!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("refine on cuda needs a CUDA build of torch and a GPU; use cpu")
    _check_shapes(rgb, yg, z)
    model = _model(package, content_hash, device)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _refine_tiles(model, rgb, yg, z, quality, schedule, device, progress)
    finally:
        torch.set_num_threads(old_threads)


def _check_shapes(rgb: np.ndarray, yg: np.ndarray, z: np.ndarray) -> None:
    h, w = -(-rgb.shape[0] // PAD), -(-rgb.shape[1] // PAD)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or z.shape[1:] != (h, w) or \
            yg.shape[1:] != (h * HYPER_STRIDE, w * HYPER_STRIDE):
        raise ValueError(f"latents y {yg.shape} and z {z.shape} do not fit an image of "
                         f"{rgb.shape}")


def _refine_tiles(model, rgb, yg, z, quality, schedule, device, progress):
    y_out, z_out = np.array(yg, np.float32), np.array(z, np.float32)
    parts = tiles(z.shape[1], z.shape[2])
    total = schedule.steps * len(parts)
    before = after = 0.0
    kept = 0
    for i, ((r0, r1, c0, c1), (e0, e1, f0, f1)) in enumerate(parts):
        s = HYPER_STRIDE
        x = rgb[e0 * PAD : e1 * PAD, f0 * PAD : f1 * PAD]
        tick = None if progress is None else \
            (lambda k, i=i: progress(i * schedule.steps + k, total))
        y_t, z_t, b, a = _descend(model, x, yg[:, e0 * s : e1 * s, f0 * s : f1 * s],
                                  z[:, e0:e1, f0:f1], quality, schedule, device, tick)
        before, after = before + b, after + min(a, b)
        if a < b:  # keep only the tile's own latents: its halo belongs to its neighbours
            kept += 1
            y_out[:, r0 * s : r1 * s, c0 * s : c1 * s] = \
                y_t[:, (r0 - e0) * s : (r1 - e0) * s, (c0 - f0) * s : (c1 - f0) * s]
            z_out[:, r0:r1, c0:c1] = z_t[:, r0 - e0 : r1 - e0, c0 - f0 : c1 - f0]
    stats = {"cost_before": before, "cost_after": after, "steps": schedule.steps,
             "tiles": len(parts), "tiles_refined": kept}
    return y_out, z_out, stats


def _descend(model, rgb, yg, z, quality, schedule: Schedule, device, progress):
    """One tile: (y, z, cost before, cost after) of Adam with SGA from the given latents."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    x = x.float().div(255).contiguous(memory_format=torch.channels_last)
    t = torch.full((1,), level_position(quality, model.levels), device=device)
    lam = float(model.lmbda(t)) * 255**2
    y0 = torch.from_numpy(np.array(yg, dtype=np.float32))[None].to(device)
    z0 = torch.from_numpy(np.array(z, dtype=np.float32))[None].to(device)
    y0 = y0.contiguous(memory_format=torch.channels_last)
    y_var, z_var = y0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([y_var, z_var], lr=schedule.lr)
    with torch.random.fork_rng(devices=[] if device == "cpu" else None):
        torch.manual_seed(0)  # the same image, quality and schedule give the same file
        for i in range(schedule.steps):
            opt.zero_grad(set_to_none=True)
            _cost(model, x, y_var, z_var, t, lam, schedule.tau(i)).backward()
            opt.step()
            if progress is not None:
                progress(i + 1)
    with torch.no_grad():
        before = float(_cost(model, x, y0, z0, t, lam, None))
        after = float(_cost(model, x, y_var, z_var, t, lam, None))
    if not math.isfinite(after):
        after = math.inf
    return (y_var.detach()[0].cpu().numpy(), z_var.detach()[0].cpu().numpy(), before, after)
