"""Small helpers shared by the tests (imported as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parent / "data"


def psnr(a, b) -> float:
    """PSNR in dB of two 8-bit images (arrays or PIL images); inf when they are equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def kodim23(box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """The test photo (a Kodak image, tests/data/kodim23.webp) as RGB, cropped to box."""
    with Image.open(DATA / "kodim23.webp") as im:
        im = im.convert("RGB")
    return im.crop(box) if box else im
