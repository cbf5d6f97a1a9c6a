"""Rate control: which quality and orientation to code an image at. Pure functions of the sizes
and distortions the encoder reports; they run no transform themselves.

    bpp=B    highest quality whose file fits B·pixels/8 bytes (bisection; size grows with q)
    psnr=P   lowest quality whose reconstruction reaches P dB (bisection; error falls with q)
    effort   of the files coding the image in each orientation tried, the best (choose_file);
             at effort 4 and 5, then of that file and its refined latents' file, the best
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import container

SEARCH_STEPS = 10  # bisection steps of the quality search for a target bpp (cheap: no g_s)
PSNR_SEARCH_STEPS = 7  # for a target PSNR (each step runs g_s): quality within 100/2^7
# Orientations (images.orient) the encoder tries per effort level, keeping the best file.
# Trained on all eight orientations, the transforms are still not equivariant to them (the
# stride-2 grids have a phase; no trained filter is exactly symmetric), so another orientation
# codes some images better: on 8 Kodak images the half turn saved ~1.4 % of the bits at equal
# PSNR, all eight ~2 % (README, "Encoder effort"). Each one tried costs a g_a and a g_s.
EFFORT_ORIENTATIONS = {1: (0,), 2: (0, 2), 3: tuple(range(container.ORIENTATIONS)),
                       4: (0, 2), 5: tuple(range(container.ORIENTATIONS))}
DEFAULT_EFFORT = 1  # 2 and 3 encode ~6× and ~20× slower (README, "Encoder effort")
# Efforts 4 and 5 then refine the chosen file's latents (aecodec.train.refine, torch) by this
# many gradient steps. Each step costs about a g_s forward and backward pass (~2 s a megapixel
# on 2 cores, ~3 s with the tiles' halos), so at effort 4 an image above REFINE_BUDGET / steps
# megapixels gets fewer steps, down to a third: a 12 MP photo gets 6 and stays within 5 minutes
# (7 steps took 305 s). Effort 5 has no time limit.
EFFORT_REFINE_STEPS = {4: 12, 5: 40}
REFINE_BUDGET = {4: 80.0}  # megapixel-steps


def refine_steps(effort: int, pixels: int) -> int:
    """Refinement steps at an effort for an image of `pixels` (0: no refinement)."""
    steps = EFFORT_REFINE_STEPS.get(effort, 0)
    budget = REFINE_BUDGET.get(effort)
    if steps and budget is not None:
        steps = min(steps, max(steps // 3, int(budget * 1e6 / max(pixels, 1))))
    return steps


def search_bpp(encode_at: Callable[[float], bytes], budget: float) -> tuple[bytes, float]:
    """(file, quality): the highest quality whose file fits `budget` bytes, or quality 0's file
    if none does. encode_at(q) gives the file at quality q."""
    best = encode_at(100.0)
    if len(best) <= budget:
        return best, 100.0
    lo, lo_data = 0.0, encode_at(0.0)
    if len(lo_data) > budget:
        return lo_data, 0.0
    hi = 100.0
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) / 2
        data = encode_at(mid)
        if len(data) <= budget:
            lo, lo_data = mid, data
        else:
            hi = mid
    return lo_data, lo


def search_psnr(reaches: Callable[[float], bool]) -> float:
    """The lowest quality q for which reaches(q) (the reconstruction is within the error
    limit), to within 100/2^PSNR_SEARCH_STEPS; 100 if even that does not reach it."""
    if reaches(0.0):
        return 0.0
    lo, hi = 0.0, 100.0
    if reaches(hi):
        for _ in range(PSNR_SEARCH_STEPS):
            mid = (lo + hi) / 2
            if reaches(mid):
                hi = mid
            else:
                lo = mid
    return hi


def choose_file(candidates: Sequence[tuple[int, float]], budget: float | None,
                limit: float | None, lmbda: float, pixels: int) -> int:
    """Index of the best of several files coding one image, each given as (bytes, SSE).

    With a byte budget: the least SSE among files within it; with an SSE limit (a PSNR
    target): the fewest bytes among files within it; where no file fits, the one nearest.
    Otherwise the least bits + λ(q)·MSE, the loss the model was trained for."""
    idx = range(len(candidates))
    size = [c[0] for c in candidates]
    err = [c[1] for c in candidates]
    if budget is not None:
        fit = [i for i in idx if size[i] <= budget]
        return (min(fit, key=lambda i: (err[i], size[i])) if fit else
                min(idx, key=lambda i: size[i]))
    if limit is not None:
        fit = [i for i in idx if err[i] <= limit]
        return (min(fit, key=lambda i: (size[i], err[i])) if fit else
                min(idx, key=lambda i: err[i]))
    return min(idx, key=lambda i: size[i] * 8 / pixels + lmbda * err[i] / (3 * pixels))


def sse(a: np.ndarray, b: np.ndarray, rows: int = 256) -> float:
    """Sum of squared differences of two uint8 images, exact (float64 sums of integers below
    2**53), a band of rows at a time so a large image needs no full-size float copy."""
    total = 0.0
    for r in range(0, a.shape[0], rows):
        d = a[r : r + rows].astype(np.float64) - b[r : r + rows]
        total += float(np.dot(d.ravel(), d.ravel()))
    return total


def sse_of_psnr(psnr: float, n: int) -> float:
    """The sum of squared errors (0–255) of n samples at which their PSNR is psnr dB."""
    return n * 255.0 ** 2 / 10 ** (psnr / 10)
