"""Building blocks of the transforms: GDN/IGDN and a lower-bounded reparametrisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_PEDESTAL = 2.0**-18


class NonNegative(nn.Module):
    """Stores a non-negative tensor as sqrt(v + pedestal), bounded below (Ballé et al. 2016)."""

    def __init__(self, init: torch.Tensor, minimum: float = 0.0) -> None:
        super().__init__()
        self.bound = (minimum + _PEDESTAL) ** 0.5
        self.raw = nn.Parameter(torch.sqrt(torch.clamp(init, min=minimum) + _PEDESTAL))

    def forward(self) -> torch.Tensor:
        # Straight-through lower bound: the value is clamped, gradients still flow upward.
        raw = self.raw
        bounded = raw + (torch.clamp(raw, min=self.bound) - raw).detach()
        return bounded * bounded - _PEDESTAL


class GDN(nn.Module):
    """Generalized divisive normalization: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)."""

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = NonNegative(torch.ones(channels), minimum=1e-6)
        self.gamma = NonNegative(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        gamma = self.gamma().view(c, c, 1, 1)
        norm = torch.sqrt(F.conv2d(x * x, gamma, self.beta()))
        return x * norm if self.inverse else x / norm


def conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    """k×k convolution that divides the size by `stride` ("same" padding)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """k×k transposed convolution that multiplies the size by `stride`."""
    return nn.ConvTranspose2d(
        cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1
    )
