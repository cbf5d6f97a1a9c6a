"""Function-preserving widening of a trained model's latent y (M channels → more).

At the top rates every one of M = 192 channels carries bits (kodim01 at q100: 185 channels above
1 bit an element) and the autoencoder's own ceiling hardly rises with the rate: the latent is
out of dimensions. CompressAI's hyperpriors use M = 320 for λ ≥ 0.0483 for this reason. Rather
than train a wider model from scratch, `widen_latent` adds channels to a trained one so that it
still computes exactly what it did:

- g_a's new output channels get small random weights, so that y·gain − μ stays inside (−½, ½)
  and every new symbol rounds to 0 at every level;
- g_s's new input channels get random weights of the trained ones' size: they multiply zeros, so
  the image is unchanged, but the straight-through gradient reaches g_a through them (with zero
  weights on both sides neither side would ever get a gradient);
- h_a's new input channels get zero weights (z is unchanged);
- h_s's new μ and log σ outputs get zero weights, μ = 0 and σ at the tables' smallest scale, so
  the new symbols cost ~0 bits;
- the new gains are each level's median gain.

Train it with a straight-through rounding first (no --sga): SGA's gradient lives near the
half-integers, which the new latents, all near 0, never reach. Measured (training.md, "A wider
latent"): 2,150 such steps from the SGA-trained model cost +4.1 % before the new channels paid.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from .entropy_models import SCALE_MIN
from .networks import Config

G_A_OUT, G_S_IN, H_A_IN, H_S_OUT = "g_a.6", "g_s.0", "h_a.0", "h_s.4"


def widen_latent(cfg: Config, state: dict, m: int, seed: int = 0,
                 encoder_scale: float = 0.02) -> tuple[Config, dict]:
    """(config, state) with M = m latent channels; the model's output is unchanged."""
    old = cfg.M
    if m <= old:
        raise ValueError(f"latent channels must grow: the model has M = {old}, asked for {m}")
    gen = torch.Generator().manual_seed(seed)
    extra = m - old
    s = dict(state)

    def noise(like: torch.Tensor, rows: int, scale: float) -> torch.Tensor:
        shape = (rows, *like.shape[1:])
        return torch.randn(shape, generator=gen, dtype=like.dtype) * like.std() * scale

    w = s[f"{G_A_OUT}.weight"]  # [M, N, 5, 5]
    s[f"{G_A_OUT}.weight"] = torch.cat([w, noise(w, extra, encoder_scale)])
    s[f"{G_A_OUT}.bias"] = torch.cat([s[f"{G_A_OUT}.bias"], w.new_zeros(extra)])
    w = s[f"{G_S_IN}.weight"]  # transposed conv: [M (in), N, 5, 5]
    s[f"{G_S_IN}.weight"] = torch.cat([w, noise(w, extra, 1.0)])
    w = s[f"{H_A_IN}.weight"]  # [N, M, 3, 3]
    s[f"{H_A_IN}.weight"] = torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], 1)
    w, b = s[f"{H_S_OUT}.weight"], s[f"{H_S_OUT}.bias"]  # [2M, C2, 3, 3]: μ then log σ
    zeros_w = w.new_zeros(extra, *w.shape[1:])
    log_min = w.new_full((extra,), math.log(SCALE_MIN))
    s[f"{H_S_OUT}.weight"] = torch.cat([w[:old], zeros_w, w[old:], zeros_w])
    s[f"{H_S_OUT}.bias"] = torch.cat([b[:old], b.new_zeros(extra), b[old:], log_min])
    g = s["log_gains"]  # [levels, M]
    s["log_gains"] = torch.cat([g, g.median(1, keepdim=True).values.repeat(1, extra)], 1)
    return replace(cfg, M=m), s
