"""Entropy models: a learned factorized density for ẑ and a Gaussian conditional for ŷ."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_MIN = 1e-9
SCALE_MIN, SCALE_MAX = 0.11, 256.0


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def sga_round(x: torch.Tensor, tau: float) -> torch.Tensor:
    """A relaxed, stochastic rounding of x: floor or ceil, Gumbel-softmax weighted (Yang 2020).

    As tau → 0 it becomes hard rounding; its gradient, unlike the straight-through one, sees
    which integer each value would go to."""
    lo = torch.floor(x)
    frac = (x - lo).clamp(1e-4, 1 - 1e-4)
    logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)]) / tau
    gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-12)))
    return lo + torch.softmax(logits + gumbel, dim=0)[1]


class FactorizedDensity(nn.Module):
    """Per-channel non-parametric density of Ballé et al. 2018 (appendix 6.1), via its CDF."""

    def __init__(self, channels: int, filters: tuple = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """Logit of the CDF at x, x of shape [C, 1, n]."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around each element of z [B, C, H, W]."""
        b, c, h, w = z.shape
        x = z.transpose(0, 1).reshape(c, 1, -1)
        lower = self.logits_cdf(x - 0.5)
        upper = self.logits_cdf(x + 0.5)
        # Evaluate in the tail where the sigmoid is not saturated (numerical stability).
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.reshape(c, b, h, w).transpose(0, 1)
        return torch.clamp(lik, min=LIKELIHOOD_MIN)

    @torch.no_grad()
    def pmf_table(self, radius: int = 64) -> tuple[np.ndarray, int]:
        """Float64 pmf of each channel over integers [-radius, radius]; returns (pmf, -radius)."""
        c = self.matrices[0].shape[0]
        v = torch.arange(-radius, radius + 2, dtype=torch.float64) - 0.5
        x = v.view(1, 1, -1).repeat(c, 1, 1)
        mod = self.double()
        cdf = torch.sigmoid(mod.logits_cdf(x)).view(c, -1)
        self.float()
        pmf = (cdf[:, 1:] - cdf[:, :-1]).clamp(min=0).numpy()
        return pmf, -radius


class GaussianConditional(nn.Module):
    """Discretized Gaussian likelihood of y given the predicted mean and log-scale."""

    @staticmethod
    def scale(log_scale: torch.Tensor) -> torch.Tensor:
        """σ = exp(log σ), bounded to the range covered by the exported tables."""
        lo, hi = math.log(SCALE_MIN), math.log(SCALE_MAX)
        bounded = log_scale + (torch.clamp(log_scale, lo, hi) - log_scale).detach()
        return torch.exp(bounded)

    @staticmethod
    def likelihood(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Mass of [r-0.5, r+0.5] under N(0, σ²), computed on |r| for numerical stability."""
        r = torch.abs(residual)
        k = 1.0 / (scale * math.sqrt(2.0))
        upper = 0.5 * torch.erfc((r - 0.5) * k)
        lower = 0.5 * torch.erfc((r + 0.5) * k)
        return torch.clamp(upper - lower, min=LIKELIHOOD_MIN)
