"""Integer CDF tables for the rANS coder (export time only; pure numpy + math, no scipy).

A table over a support of S symbols has S + 2 entries 0 = cdf[0] < ... < cdf[S+1] = 2**precision:
bin i < S is symbol offset + i and bin S is the escape bin (docs/model-package.md). Every bin
gets a frequency of at least 1, so every int32 value stays codable.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["pmf_to_cdf", "gaussian_family", "gaussian_radius"]


def _check_precision(precision: int) -> int:
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)):
        raise ValueError(f"precision must be an integer in [1, 16], got {precision!r}")
    if not 1 <= int(precision) <= 16:
        raise ValueError(f"precision must be an integer in [1, 16], got {precision}")
    return int(precision)


def pmf_to_cdf(pmf: np.ndarray, precision: int = 16) -> np.ndarray:
    """Quantize a pmf over S bins + the escape bin (its last entry) to a uint32 CDF, S + 2 entries.

    The pmf is normalised (it need not sum to 1). Frequencies sum to ``2**precision`` and are all
    >= 1. Method: largest remainder on ``pmf * 2**precision`` (ties to the lower bin), then every
    zero bin is raised to 1, each unit taken from the bin where removing it costs the least
    cross-entropy, ``p_i * log(f_i / (f_i - 1))`` (ties to the lower bin). Deterministic.
    """
    precision = _check_precision(precision)
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"pmf must be a 1-D array with S + 1 >= 1 entries, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("pmf must be finite and non-negative")
    total_mass = float(p.sum())
    if total_mass <= 0:
        raise ValueError("pmf must have a positive sum")
    total = 1 << precision
    nbins = p.size
    if nbins > total:
        raise ValueError(
            f"pmf has {nbins} bins but precision {precision} gives only {total} slots "
            "(every bin needs a frequency >= 1): raise precision or trim the support"
        )
    p = p / total_mass
    exact = p * total
    freq = np.floor(exact).astype(np.int64)
    short = total - int(freq.sum())
    if short > 0:
        # largest remainders first; a stable sort keeps the lower index first among ties
        order = np.argsort(-(exact - freq), kind="stable")
        freq[order[:short]] += 1
    elif short < 0:  # cannot happen for a normalised pmf, kept for float safety
        order = np.argsort(exact - freq, kind="stable")
        for i in order:
            if short == 0:
                break
            if freq[i] > 0:
                freq[i] -= 1
                short += 1
    zero = freq == 0
    need = int(zero.sum())
    if need:
        freq[zero] = 1
        heap = [(p[i] * math.log(freq[i] / (freq[i] - 1)), i) for i in np.flatnonzero(freq > 1)]
        heapq.heapify(heap)
        for _ in range(need):
            _cost, i = heapq.heappop(heap)
            freq[i] -= 1
            if freq[i] > 1:
                heapq.heappush(heap, (p[i] * math.log(freq[i] / (freq[i] - 1)), i))
    cdf = np.zeros(nbins + 1, dtype=np.uint32)
    cdf[1:] = np.cumsum(freq)
    assert int(cdf[-1]) == total and np.all(np.diff(cdf.astype(np.int64)) >= 1)
    return cdf


def _upper_tail(x: float) -> float:
    """P(N(0,1) > x) from erfc, accurate in the far tail."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def gaussian_radius(scale: float, tail: float) -> int:
    """Smallest R >= 0 with P(|v| > R) <= tail for the discretized N(0, scale²)."""
    r = max(
        0, int(math.floor(scale * math.sqrt(-2.0 * math.log(tail)))) - 2
    )  # Chernoff bound start
    while 2.0 * _upper_tail((r + 0.5) / scale) > tail:
        r += 1
    while r > 0 and 2.0 * _upper_tail((r - 0.5) / scale) <= tail:
        r -= 1
    return r


def _gaussian_pmf(scale: float, radius: int) -> np.ndarray:
    """Masses of v = -R..R, then the two-sided tail beyond ±(R + 1/2)."""
    v = np.arange(0, radius + 1, dtype=np.float64)
    upper = np.array([_upper_tail((x - 0.5) / scale) for x in v])  # P(X > v - 1/2)
    upper_next = np.array([_upper_tail((x + 0.5) / scale) for x in v])  # P(X > v + 1/2)
    half = upper - upper_next  # mass of v >= 0 (for v = 0: P(-1/2 < X < 1/2) needs the fix below)
    half[0] = 1.0 - 2.0 * upper_next[0]
    core = np.concatenate([half[:0:-1], half])
    tail = 2.0 * upper_next[-1]
    return np.append(core, tail)


def gaussian_family(scales: ArrayLike, precision: int = 16, tail: float = 1e-9) -> dict:
    """Discretized zero-mean Gaussian CDF tables, one row per scale, padded to one array.

    Bin v has mass Φ((v + 1/2)/σ) − Φ((v − 1/2)/σ) for v in [−R, R], R the smallest radius with a
    two-sided tail <= ``tail``; the tail mass goes to the escape bin. Returns ``cdf`` uint32
    [T, Lmax] (rows padded with 2**precision), ``cdf_len`` int32 [T] (= 2R + 3) and ``offset``
    int32 [T] (= −R).
    """
    precision = _check_precision(precision)
    s = np.asarray(scales, dtype=np.float64)
    if s.ndim != 1 or s.size < 1:
        raise ValueError(f"scales must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("scales must be finite and > 0")
    if not (isinstance(tail, (float, int)) and 0.0 < float(tail) < 1.0):
        raise ValueError(f"tail must be a probability in (0, 1), got {tail!r}")
    rows = []
    for sigma in s:
        radius = gaussian_radius(float(sigma), float(tail))
        if 2 * radius + 2 > (1 << precision):
            raise ValueError(
                f"scale {sigma} needs {2 * radius + 2} bins, more than "
                f"2**precision = {1 << precision}: raise precision or tail"
            )
        rows.append((radius, pmf_to_cdf(_gaussian_pmf(float(sigma), radius), precision)))
    width = max(len(c) for _r, c in rows)
    cdf = np.full((len(rows), width), 1 << precision, dtype=np.uint32)
    for t, (_r, c) in enumerate(rows):
        cdf[t, : len(c)] = c
    return {
        "cdf": cdf,
        "cdf_len": np.array([len(c) for _r, c in rows], dtype=np.int32),
        "offset": np.array([-r for r, _c in rows], dtype=np.int32),
    }
