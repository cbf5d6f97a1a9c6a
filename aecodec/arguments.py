"""Checks of the public arguments at the API edge, shared by `Codec`, `aecodec.compress`, the
Pillow plugin and the CLI, so each bad value gets one message wherever it is given.

Each check returns the value as a plain Python number: numpy scalars are accepted (an image's
figures often come out of numpy), bool is refused (True is an int, but never meant as 1).
A bad value raises ValueError naming the argument and what it may be.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .rate_control import EFFORT_ORIENTATIONS

DEFAULT_QUALITY = 75.0  # what compress() codes at without a target
MAX_REFINE = 10000


def _real(v) -> bool:  # numpy's float and int scalars are Real; numpy.bool_ is not
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and _real(v)


def quality(v: object) -> float:
    if not (_real(v) and 0 <= v <= 100):
        raise ValueError(f"quality must be a number from 0 to 100, got {v!r}")
    return float(v)


def positive(name: str, v: object) -> float:
    """bpp or psnr: a finite number > 0."""
    if not (_real(v) and v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive number, got {v!r}")
    return float(v)


def effort(v: object) -> int:
    if not (_integer(v) and int(v) in EFFORT_ORIENTATIONS):
        raise ValueError(f"effort must be an integer from 1 to {max(EFFORT_ORIENTATIONS)}, "
                         f"got {v!r}")
    return int(v)


def refine(v: object) -> int:
    if not (_integer(v) and 0 <= v <= MAX_REFINE):
        raise ValueError(f"refine must be an integer from 0 to {MAX_REFINE}, got {v!r}")
    return int(v)


def threads(v: object) -> int:
    """Worker threads: 0 (or None) for all cores."""
    if v is None:
        return 0
    if not (_integer(v) and v >= 0):
        raise ValueError(f"threads must be an integer ≥ 0 (0: all cores), got {v!r}")
    return int(v)


def at_least_one(name: str, v: object) -> int:
    """tile, slice_symbols: an integer ≥ 1."""
    if not (_integer(v) and v >= 1):
        raise ValueError(f"{name} must be an integer ≥ 1, got {v!r}")
    return int(v)


def target(quality_: float | None, bpp: float | None,
           psnr: float | None) -> tuple[float | None, float | None, float | None]:
    """At most one of quality, bpp and psnr, each checked."""
    if sum(v is not None for v in (quality_, bpp, psnr)) > 1:
        raise ValueError("give only one of quality, bpp and psnr")
    return (None if quality_ is None else quality(quality_),
            None if bpp is None else positive("bpp", bpp),
            None if psnr is None else positive("psnr", psnr))


def preview(v: object) -> bool | None:
    """Embed a preview: True, False or None (automatic: large images only)."""
    if v is not None and not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"preview must be True, False or None (automatic), got {v!r}")
    return None if v is None else bool(v)


PROFILES = ("exact", "fast")


def profile(v: object) -> str:
    """The decoder profile: "exact" (the model's own g_s) or "fast" (its lighter g_s)."""
    if v not in PROFILES:
        raise ValueError(f'profile must be "exact" or "fast", not {v!r}')
    return v
