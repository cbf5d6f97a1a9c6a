"""Encoder-side latent refinement: per-image gradient descent on the latents, decoder unchanged.

The amortised encoder g_a gives latents that are good on average over images and rates; for one
image at one rate, latents that cost less under the model's own objective R + λ·255²·MSE exist
(the "amortisation gap": Campos et al. 2019, "Content adaptive optimization for neural image
compression"; Yang et al. 2020, "Improving inference for neural image compression"). This
optimises the gained latent y·gain and the hyper-latent z of one image through the model's own
h_s, entropy models and g_s, with stochastic Gumbel annealing (SGA, Yang et al. 2020) standing in
for rounding, then hands them back to the codec, which quantizes and codes them as usual: the
file format and the decoder do not change. Needs torch (the `train` extra).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..model_package import level_position
from .entropy_models import GaussianConditional, sga_round, ste_round
from .export import load_model
from .networks import HyperpriorCodec

MAX_PIXELS = 1 << 22  # g_s's backward pass holds ~1 KB of activations per pixel
LR = 0.01  # Adam step on latents (whose quantization bin is 1)
TAU_START, TAU_END = 0.5, 0.05  # SGA temperature, annealed exponentially over the steps

_models: dict[tuple[str, str, str], HyperpriorCodec] = {}
_lock = threading.Lock()


def _model(package: Path, content_hash: str, device: str) -> HyperpriorCodec:
    """The package's torch model (from its fp16 training state), loaded once per device."""
    key = (str(package), content_hash, device)
    with _lock:
        if key not in _models:
            model, _ = load_model(package)
            for prm in model.parameters():
                prm.requires_grad_(False)
            _models[key] = model.eval().to(device)
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


def refine_latents(package: Path, content_hash: str, rgb: np.ndarray, yg: np.ndarray,
                   z: np.ndarray, quality: float, steps: int, threads: int = 0,
                   device: str = "cpu",
                   progress: Callable[[int, int], None] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Refined (y·gain float32 [M,h,w], z float32 [Nz,h/4,w/4]) of one H×W×3 uint8 image, and
    the model's cost estimate before and after. Never returns latents the model rates worse
    than the ones it was given. device: "cpu" or "cuda" (a CUDA build of torch); progress is
    called as (steps done, steps) after each step."""
    if not (isinstance(steps, int) and 1 <= steps <= 10000):
        raise ValueError(f"refine steps must be an integer from 1 to 10000, got {steps!r}")
    if rgb.shape[0] * rgb.shape[1] > MAX_PIXELS:
        raise ValueError(f"refine works on images of at most {MAX_PIXELS} pixels, this one has "
                         f"{rgb.shape[0] * rgb.shape[1]}: encode it without refine")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("refine on cuda needs a CUDA build of torch and a GPU; use cpu")
    model = _model(package, content_hash, device)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _descend(model, rgb, yg, z, quality, steps, device, progress)
    finally:
        torch.set_num_threads(old_threads)


def _descend(model, rgb, yg, z, quality, steps, device, progress):
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    x = x.float() / 255
    t = torch.full((1,), level_position(quality, model.levels), device=device)
    lam = float(model.lmbda(t)) * 255**2
    y0 = torch.from_numpy(np.array(yg, dtype=np.float32))[None].to(device)
    z0 = torch.from_numpy(np.array(z, dtype=np.float32))[None].to(device)
    y_var, z_var = y0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([y_var, z_var], lr=LR)
    with torch.random.fork_rng(devices=[] if device == "cpu" else None):
        torch.manual_seed(0)  # the same image, quality and steps give the same file
        for i in range(steps):
            tau = TAU_START * (TAU_END / TAU_START) ** (i / max(steps - 1, 1))
            opt.zero_grad(set_to_none=True)
            _cost(model, x, y_var, z_var, t, lam, tau).backward()
            opt.step()
            if progress is not None:
                progress(i + 1, steps)
    with torch.no_grad():
        before = float(_cost(model, x, y0, z0, t, lam, None))
        after = float(_cost(model, x, y_var, z_var, t, lam, None))
    stats = {"cost_before": before, "cost_after": after, "steps": steps}
    if not (math.isfinite(after) and after < before):
        return np.asarray(yg, np.float32), np.asarray(z, np.float32), stats
    return y_var.detach()[0].cpu().numpy(), z_var.detach()[0].cpu().numpy(), stats
