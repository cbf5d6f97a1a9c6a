"""Image-quality metrics and Bjøntegaard deltas for the benchmarks (pure numpy).

* ``psnr_rgb``: PSNR over all RGB samples of a uint8 image (peak 255).
* ``ms_ssim_rgb``: MS-SSIM (Wang, Simoncelli & Bovik 2003) computed on each RGB channel and averaged
  over the three channels, the convention of ``pytorch_msssim``/CompressAI, so our numbers are
  comparable to the ``ms-ssim-rgb`` values of the published Kodak curves: 5 scales, weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), an 11×11 Gaussian window with σ = 1.5 applied
  separably and without padding ("valid"), K1 = 0.01, K2 = 0.03, data range 255, 2×2 average
  pooling between scales (zero padding of odd sizes, as ``avg_pool2d(padding=size % 2)``),
  negative contrast-structure terms clamped to 0.
* ``bd_rate``: Bjøntegaard-delta rate in percent (negative = the test codec needs fewer bits for the
  same quality), rate interpolation over the overlapping distortion range.  It uses the maintained
  ``bjontegaard`` package (Herglotz et al.) when it is installed, with its Akima interpolation,
  and otherwise a numpy implementation of the same integral with piecewise-linear interpolation
  of log-rate.  Returns ``None`` ("n/a") when the curves overlap too little.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import numpy as np

MS_SSIM_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
_WIN = 11
_SIGMA = 1.5


def _as_rgb_float(img) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {a.dtype}")
    return a.astype(np.float64)


def psnr_rgb(ref, test, peak: float = 255.0) -> float:
    """PSNR in dB over all samples of two uint8 images of the same shape (capped at 100 dB)."""
    a, b = _as_rgb_float(ref), _as_rgb_float(test)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    if mse <= peak**2 * 1e-10:
        return 100.0
    return 10.0 * math.log10(peak**2 / mse)


def _gaussian_window(size: int = _WIN, sigma: float = _SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a [..., H, W, C] stack with a symmetric window g."""
    n, c = len(g), len(g) // 2
    ho, wo = a.shape[-3] - n + 1, a.shape[-2] - n + 1
    out = np.multiply(a[..., c : c + ho, :, :], g[c])
    tmp = np.empty_like(out)
    for k in range(c):  # pair the taps k and n-1-k (g is symmetric): half the multiplies
        np.add(a[..., k : k + ho, :, :], a[..., n - 1 - k : n - 1 - k + ho, :, :], out=tmp)
        tmp *= g[k]
        out += tmp
    res = np.multiply(out[..., :, c : c + wo, :], g[c])
    tmp = np.empty_like(res)
    for k in range(c):
        np.add(out[..., :, k : k + wo, :], out[..., :, n - 1 - k : n - 1 - k + wo, :], out=tmp)
        tmp *= g[k]
        res += tmp
    return res


def _avg_pool2(a: np.ndarray) -> np.ndarray:
    """2×2 average pooling of [H, W, C], like torch avg_pool2d(2, padding=size % 2)."""
    h, w = a.shape[0], a.shape[1]
    if h % 2:
        a = np.concatenate([np.zeros_like(a[:1]), a, np.zeros_like(a[:1])], axis=0)
        a = a[: a.shape[0] - 1]
    if w % 2:
        a = np.concatenate([np.zeros_like(a[:, :1]), a, np.zeros_like(a[:, :1])], axis=1)
        a = a[:, : a.shape[1] - 1]
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def _ssim_cs(x: np.ndarray, y: np.ndarray, g: np.ndarray, c1: float, c2: float, centre: float):
    # float32 on values centred on `centre`: the window sums to 1, so the local means shift back
    # exactly, the variances keep their precision, and the luminance term is written as
    # 1 - (mu1 - mu2)^2 / (mu1^2 + mu2^2 + c1), which needs no cancellation.  Agrees with an
    # all-float64 computation (and with pytorch_msssim) to ~1e-6.
    xc = (x - centre).astype(np.float32)
    yc = (y - centre).astype(np.float32)
    stack = np.stack([xc, yc, xc * xc, yc * yc, xc * yc])
    m1, m2, sxx, syy, sxy = _filter_valid(stack, g.astype(np.float32))
    cs_map = (2 * (sxy - m1 * m2) + c2) / (sxx - m1 * m1 + syy - m2 * m2 + c2)
    d = m1 - m2
    mu1, mu2 = m1 + centre, m2 + centre
    lum = 1 - d * d / (mu1 * mu1 + mu2 * mu2 + c1)
    ssim = (lum * cs_map).mean(axis=(0, 1), dtype=np.float64)
    return ssim, cs_map.mean(axis=(0, 1), dtype=np.float64)


def ms_ssim_rgb(ref, test, data_range: float = 255.0, weights: Sequence[float] = None) -> float:
    """MS-SSIM of two uint8 images ([H, W] or [H, W, C]), per channel then averaged over channels.

    The smaller side must exceed 160 pixels (5 scales of an 11-tap window).
    """
    w = MS_SSIM_WEIGHTS if weights is None else np.asarray(weights, dtype=np.float64)
    x, y = _as_rgb_float(ref), _as_rgb_float(test)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    levels = len(w)
    if min(x.shape[:2]) <= (_WIN - 1) * 2 ** (levels - 1):
        raise ValueError(
            f"image {x.shape[1]}x{x.shape[0]} too small for {levels}-scale MS-SSIM "
            f"(smaller side must exceed {(_WIN - 1) * 2 ** (levels - 1)})"
        )
    g = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mcs = []
    ssim = None
    for i in range(levels):
        ssim, cs = _ssim_cs(x, y, g, c1, c2, data_range / 2)
        if i < levels - 1:
            mcs.append(np.maximum(cs, 0.0))
            x, y = _avg_pool2(x), _avg_pool2(y)
    vals = np.stack(mcs + [np.maximum(ssim, 0.0)])  # [levels, C]
    per_channel = np.prod(vals ** w[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_db(v: float) -> float:
    """MS-SSIM expressed in dB, -10·log10(1 - v), the usual axis for MS-SSIM curves and BD-rates."""
    return -10.0 * math.log10(max(1.0 - v, 1e-10))


# ---------------------------------------------------------------------------------------------
# Bjøntegaard delta rate


def monotone_curve(rates: Sequence[float], dists: Sequence[float]):
    """Sort an RD curve by rate and keep only points whose quality strictly increases.

    Bjøntegaard interpolation needs distortion as a strictly increasing function of rate; a point
    that costs more bits for no better quality (it happens at the ends of JPEG's range) is dropped.
    """
    pts = sorted(
        (float(r), float(d))
        for r, d in zip(rates, dists)
        if r is not None and d is not None and r > 0 and math.isfinite(d)
    )
    out = []
    for r, d in pts:
        if not out or d > out[-1][1]:
            out.append((r, d))
    return [p[0] for p in out], [p[1] for p in out]


def _bd_rate_numpy(r_a, d_a, r_t, d_t, lo, hi, samples: int = 2001) -> float:
    """Average log-rate difference over [lo, hi] with log-rate linearly interpolated in quality."""
    q = np.linspace(lo, hi, samples)
    la = np.interp(q, d_a, np.log(r_a))
    lt = np.interp(q, d_t, np.log(r_t))
    diff = np.trapezoid(lt - la, q) if hasattr(np, "trapezoid") else np.trapz(lt - la, q)
    return (math.exp(diff / (hi - lo)) - 1.0) * 100.0


def bd_rate(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    min_overlap: float = 1.0,
    method: str = "akima",
    use_package: Optional[bool] = None,
) -> dict:
    """BD-rate of *test* against *anchor*, in percent.

    Returns a dict ``{"bd_rate": float or None, "overlap": [lo, hi], "points": [n_anchor, n_test],
    "coverage": fraction of the test curve's quality range that the overlap covers,
    "method": ..., "reason": why it is None}``.  ``bd_rate`` is None when either curve has fewer
    than 2 usable points or the overlapping quality range is shorter than ``min_overlap`` (in the
    quality unit, e.g. dB).  ``use_package``: True = require ``bjontegaard``, False = numpy only,
    None = package if installed.
    """
    r_a, d_a = monotone_curve(rate_anchor, dist_anchor)
    r_t, d_t = monotone_curve(rate_test, dist_test)
    res = {"bd_rate": None, "overlap": None, "points": [len(r_a), len(r_t)], "coverage": 0.0}
    if len(r_a) < 2 or len(r_t) < 2:
        res["reason"] = "fewer than 2 points"
        return res
    lo, hi = max(d_a[0], d_t[0]), min(d_a[-1], d_t[-1])
    res["overlap"] = [lo, hi] if hi > lo else None
    if hi - lo < min_overlap:
        res["reason"] = f"overlap {max(hi - lo, 0.0):.2f} < {min_overlap}"
        return res
    res["coverage"] = (hi - lo) / (d_t[-1] - d_t[0])
    pkg = None
    if use_package is not False:
        try:
            import bjontegaard as pkg  # noqa: F811
        except ImportError:
            if use_package:
                raise
    if pkg is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(
                pkg.bd_rate(r_a, d_a, r_t, d_t, method=method, require_matching_points=False,
                            min_overlap=0)
            )
        res["method"] = f"bjontegaard {getattr(pkg, '__version__', '?')} ({method})"
    else:
        v = _bd_rate_numpy(r_a, d_a, r_t, d_t, lo, hi)
        res["method"] = "numpy (piecewise-linear log-rate)"
    res["bd_rate"] = v if math.isfinite(v) else None
    if res["bd_rate"] is None:
        res["reason"] = "not finite"
    return res
