"""The mean-scale hyperprior (Minnen et al. 2018, no context model) with per-level gain units."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .entropy_models import FactorizedDensity, GaussianConditional, sga_round, ste_round
from .layers import GDN, conv, deconv

# λ of CompressAI's quality levels 1–7 and three levels below them: an undertrained model spends
# more bits at a given λ than a converged one; the lowest level takes q0 to ~0.09 bpp on Kodak.
DEFAULT_LAMBDAS = (0.0002, 0.00045, 0.0009, 0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932)


@dataclass
class Config:
    """Architecture hyper-parameters; stored in every model package's manifest."""

    N: int = 128
    M: int = 192
    Nz: int = 128
    C1: int = 128
    C2: int = 192
    lambdas: tuple = field(default_factory=lambda: DEFAULT_LAMBDAS)
    encoder_scales: bool = False  # g_a conditioned on the level (Analysis)
    decoder_scales: bool = False  # g_s conditioned on the level (Synthesis)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        keys = {"N", "M", "Nz", "C1", "C2", "lambdas", "encoder_scales", "decoder_scales"}
        d = {k: v for k, v in d.items() if k in keys}
        if "lambdas" in d:
            d["lambdas"] = tuple(d["lambdas"])
        return cls(**d)


class _LevelScaled(nn.Sequential):
    """Layers whose channels after each (I)GDN (layers 1, 3, 5) may be scaled per level."""

    def forward(self, x: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        """The layers applied to x [B, C, H, W]; scales [B, 3, N] (level-conditioned only)."""
        for i, layer in enumerate(self):
            x = layer(x)
            if scales is not None and i in (1, 3, 5):
                x = x * scales[:, i // 2, :, None, None]
        return x


class Analysis(_LevelScaled):
    """g_a: image → latent y, four stride-2 convs with GDN (×1/16).

    With cfg.encoder_scales, the channels after each GDN are multiplied by per-level scales
    (`log_scales` [levels, 3, N], interpolated like the gains): one decoder serves every rate,
    but the best latents for 0.1 bpp and for 1.3 bpp differ by more than a gain vector can say.
    They start at 1, so a model gains them without changing what it computes.
    """

    def __init__(self, cfg: Config) -> None:
        n, m = cfg.N, cfg.M
        super().__init__(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))
        if cfg.encoder_scales:
            self.log_scales = nn.Parameter(torch.zeros(len(cfg.lambdas), 3, n))


class Synthesis(_LevelScaled):
    """g_s: latent ŷ → image, four stride-2 transposed convs with IGDN (×16).

    With cfg.decoder_scales, the channels after each IGDN are multiplied by per-level scales
    (`log_scales` [levels, 3, N], as in Analysis): a coarsely quantized ŷ (low rates) and a
    finely quantized one want different decoders, which one shared g_s must otherwise average.
    They start at 1, so a model gains them without changing what it computes.
    """

    def __init__(self, cfg: Config) -> None:
        n, m = cfg.N, cfg.M
        super().__init__(
            deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
        )
        if cfg.decoder_scales:
            self.log_scales = nn.Parameter(torch.zeros(len(cfg.lambdas), 3, n))


def hyper_analysis(cfg: Config) -> nn.Sequential:
    """h_a: gained latent → hyper-latent z (×1/4)."""
    return nn.Sequential(
        conv(cfg.M, cfg.N, 3, 1), nn.ReLU(),
        conv(cfg.N, cfg.N), nn.ReLU(),
        conv(cfg.N, cfg.Nz),
    )


def hyper_synthesis(cfg: Config) -> nn.Sequential:
    """h_s: ẑ → (μ, log σ) of the gained latent (×4); mirrored exactly by the core's kernel."""
    return nn.Sequential(
        deconv(cfg.Nz, cfg.C1), nn.ReLU(),
        deconv(cfg.C1, cfg.C2), nn.ReLU(),
        conv(cfg.C2, 2 * cfg.M, 3, 1),
    )


def level_split(t: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Level positions t → (lower level k, fraction f towards k+1), with k in [0, levels-2]."""
    k = t.floor().long().clamp(0, levels - 2)
    return k, t - k


def interpolate_levels(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a per-level table (levels first) at level positions t."""
    k, f = level_split(t, table.shape[0])
    f = f.view(-1, *([1] * (table.dim() - 1)))
    return table[k] * (1 - f) + table[k + 1] * f


def regrid_log_gains(log_gains: torch.Tensor, old: tuple, new: tuple) -> torch.Tensor:
    """Per-level log-gains [L, M] at lambdas `old` → at lambdas `new`.

    Piecewise linear in log λ, extended linearly past the end levels: the gains started as
    λ^1/2 and stay close to a power law, so a new level just beyond the trained range starts
    near where training would have put it.
    """
    x_old = torch.tensor(old, dtype=torch.float64).log()
    x_new = torch.tensor(new, dtype=torch.float64).log()
    if len(old) < 2 or not bool((x_old[1:] > x_old[:-1]).all()):
        raise ValueError(f"old lambdas must be increasing, at least two: {old}")
    # Each new λ as a position on the old levels; interpolate_levels extrapolates past the ends.
    k = (torch.searchsorted(x_old, x_new) - 1).clamp(0, len(old) - 2)
    t = k + (x_new - x_old[k]) / (x_old[k + 1] - x_old[k])
    return interpolate_levels(log_gains.double(), t).to(log_gains.dtype)


class HyperpriorCodec(nn.Module):
    """Mean-scale hyperprior with gain units (Cui et al. 2021) for one network at every rate."""

    def __init__(self, cfg: Config | None = None) -> None:
        super().__init__()
        self.cfg = cfg or Config()
        c = self.cfg
        self.g_a = Analysis(c)
        self.g_s = Synthesis(c)
        self.h_a = hyper_analysis(c)
        self.h_s = hyper_synthesis(c)
        self.z_density = FactorizedDensity(c.Nz)
        lam = torch.tensor(c.lambdas, dtype=torch.float64)
        # Quantizer step ∝ λ^-1/2 is the MSE-optimal spacing: start the gains there.
        init = 0.5 * torch.log(lam / lam.log().mean().exp())
        self.log_gains = nn.Parameter(init.float().view(-1, 1).repeat(1, c.M))
        with torch.no_grad():  # start σ near 1 rather than wherever the init puts it
            self.h_s[-1].bias.zero_()

    @property
    def levels(self) -> int:
        return len(self.cfg.lambdas)

    def gain(self, t: torch.Tensor) -> torch.Tensor:
        """Gain vectors [B, M] at continuous level positions t [B] (log-linear interpolation)."""
        return torch.exp(interpolate_levels(self.log_gains, t))

    def encoder_scales(self, t: torch.Tensor) -> torch.Tensor | None:
        """g_a's channel scales [B, 3, N] at level positions t, or None without them."""
        if not self.cfg.encoder_scales:
            return None
        return torch.exp(interpolate_levels(self.g_a.log_scales, t))

    def decoder_scales(self, t: torch.Tensor) -> torch.Tensor | None:
        """g_s's channel scales [B, 3, N] at level positions t, or None without them."""
        if not self.cfg.decoder_scales:
            return None
        return torch.exp(interpolate_levels(self.g_s.log_scales, t))

    def lmbda(self, t: torch.Tensor) -> torch.Tensor:
        """λ at continuous level positions t (log-linear interpolation between levels)."""
        lam = torch.tensor(self.cfg.lambdas, dtype=torch.float32, device=t.device).log()
        return torch.exp(interpolate_levels(lam, t))

    def forward(self, x: torch.Tensor, t: torch.Tensor, noisy: bool = True,
                rate_quant: str = "noise", sga_tau: float | None = None,
                amp_dtype: torch.dtype | None = None) -> dict:
        """Reconstruction and bits of x at level positions t.

        When training (noisy), the rate sees either additive uniform noise (rate_quant="noise",
        Ballé 2017) or the rounded values with a straight-through gradient ("ste"): the noise
        proxy over-counts the coded rate (measured 1.7× at level 0, 1.1× at level 6), so "ste"
        fine-tunes on the rate that is actually written. With sga_tau (training only), rate and
        reconstruction both see one stochastic Gumbel-annealed rounding of the residual at that
        temperature (sga_round): unlike the straight-through gradient, it tells the encoder which
        integer each latent goes to. With amp_dtype (e.g. torch.bfloat16, a GPU run) g_a and g_s
        run under autocast in that type; h_a, h_s and every likelihood stay in float32, since
        the rate depends on μ and σ to far more bits than bf16 holds.
        """
        if rate_quant not in ("noise", "ste"):
            raise ValueError(f"rate_quant must be 'noise' or 'ste', not {rate_quant!r}")
        noisy = noisy and rate_quant == "noise"
        gain = self.gain(t)[:, :, None, None]
        y = self._transform(self.g_a, x, self.encoder_scales(t), amp_dtype) * gain
        z = self.h_a(y)
        z_hat = ste_round(z)
        z_rate_in = z + torch.empty_like(z).uniform_(-0.5, 0.5) if noisy else z_hat
        z_lik = self.z_density.likelihood(z_rate_in)
        params = self.h_s(z_hat)
        mu, log_scale = params.chunk(2, dim=1)
        residual = y - mu
        if sga_tau is not None and self.training:
            r_hat = r_rate_in = sga_round(residual, sga_tau)
        else:
            r_hat = ste_round(residual)
            r_rate_in = residual + torch.empty_like(y).uniform_(-0.5, 0.5) if noisy else r_hat
        y_lik = GaussianConditional.likelihood(r_rate_in, GaussianConditional.scale(log_scale))
        y_hat = (r_hat + mu) / gain
        x_hat = self._transform(self.g_s, y_hat, self.decoder_scales(t), amp_dtype)
        n_pix = x.shape[2] * x.shape[3]
        bits = -(torch.log2(y_lik).sum((1, 2, 3)) + torch.log2(z_lik).sum((1, 2, 3)))
        return {"x_hat": x_hat, "bpp": bits / n_pix}


    @staticmethod
    def _transform(module: nn.Module, x: torch.Tensor, scales, amp_dtype) -> torch.Tensor:
        """module(x, scales) in float32, or computed under autocast to amp_dtype."""
        if amp_dtype is None:
            return module(x, scales)
        with torch.autocast(device_type=x.device.type, dtype=amp_dtype):
            return module(x, scales).float()


def model_kmac_per_pixel(cfg: Config) -> dict:
    """Multiply–accumulates per input pixel of g_a, g_s, h_a and h_s."""
    n, m = cfg.N, cfg.M
    ga = (3 * n * 25) / 4 + (n * n * 25) / 16 + (n * n * 25) / 64 + (n * m * 25) / 256
    gs = ga  # transposed convs mirror the analysis cost
    ha = (m * n * 9) / 256 + (n * n * 25) / 1024 + (n * cfg.Nz * 25) / 4096
    hs = (cfg.Nz * cfg.C1 * 25) / 1024 + (cfg.C1 * cfg.C2 * 25) / 256 + (cfg.C2 * 2 * m * 9) / 256
    return {k: round(v / 1000, 2) for k, v in {"g_a": ga, "g_s": gs, "h_a": ha, "h_s": hs}.items()}


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))
