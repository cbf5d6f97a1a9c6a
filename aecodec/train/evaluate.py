"""Evaluation: the model's own rate–distortion estimate, and parity of an exported package."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import PAD
from ..model_package import level_position
from .networks import HyperpriorCodec, psnr


def pad64(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad [B, C, H, W] to multiples of geometry.PAD (64), as the runtime does."""
    h, w = x.shape[2:]
    ph, pw = (-h) % PAD, (-w) % PAD
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


@torch.no_grad()
def estimate_one(model: HyperpriorCodec, img: np.ndarray, quality: float,
                 device: str = "cpu") -> tuple[float, float]:
    """(estimated bpp, RGB PSNR of the 8-bit reconstruction) of one HWC uint8 image."""
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div(255).to(device)
    h, w = x.shape[2:]
    xp = pad64(x)
    t = torch.full((1,), level_position(quality, model.levels), device=device)
    r = model(xp, t, noisy=False)
    x_hat = torch.round(r["x_hat"][:, :, :h, :w].clamp(0, 1) * 255) / 255
    bpp = float(r["bpp"]) * xp.shape[2] * xp.shape[3] / (h * w)
    return bpp, psnr(float(F.mse_loss(x_hat, x)))


def estimate(model: HyperpriorCodec, images: list[np.ndarray], qualities=(0, 50, 100),
             device: str = "cpu") -> list[dict]:
    """Model-estimated bpp and RGB PSNR at each quality, averaged over the images."""
    was_training = model.training
    model.eval()
    out = []
    for q in qualities:
        res = [estimate_one(model, img, q, device) for img in images]
        out.append({"quality": q, "bpp": float(np.mean([r[0] for r in res])),
                    "psnr": float(np.mean([r[1] for r in res]))})
    model.train(was_training)
    return out
