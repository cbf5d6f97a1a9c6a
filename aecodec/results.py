"""What one encode or decode returns to its caller: the output, its figures and stage timings.

Per-call results live here, not on the shared `Codec`, so concurrent calls cannot see each
other's (issue 35).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image


class Timings(dict):
    """Wall time in seconds per stage name; a stage run several times adds up."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - t


def _stats(quality: float, size: int, width: int, height: int) -> dict:
    return {"quality": quality, "bytes": size, "bpp": size * 8 / (width * height),
            "width": width, "height": height}


@dataclass(frozen=True)
class EncodeResult:
    """One encoded image: the .aec bytes, the quality and orientation chosen, the stage times
    (`timings`, seconds) and, with refine=N, the model's cost estimates (`refine`)."""

    data: bytes
    quality: float
    orientation: int
    width: int
    height: int
    timings: dict = field(default_factory=dict)
    refine: dict = field(default_factory=dict)

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height)

    @property
    def stats(self) -> dict:
        """quality, bytes, bpp, width, height (the keys of the old `Codec.last_stats`)."""
        return _stats(self.quality, len(self.data), self.width, self.height)


@dataclass(frozen=True)
class DecodeResult:
    """One decoded file: the image, the quality it was coded at, the file's size and the stage
    times (`timings`, seconds)."""

    image: Image.Image
    quality: float
    size: int  # bytes of the .aec file
    timings: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def bpp(self) -> float:
        return self.size * 8 / (self.width * self.height)

    @property
    def stats(self) -> dict:
        return _stats(self.quality, self.size, self.width, self.height)
