"""A loaded model: its package, onnxruntime sessions and rANS tables, and the exact h_s.

Encoder and decoder both reach the core through here, so the table index and mean of every
symbol come from one call (`Engine.hyper_synthesis`) on both sides (design §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import model_package
from .errors import AecError, ModelPackageError
from .transform import Transforms

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType


def core() -> ModuleType:
    """The native core `aecodec._core`, imported on first use (a clear error if it is missing)."""
    try:
        from . import _core
    except ImportError as e:  # pragma: no cover - a broken install
        raise AecError(
            f"aecodec's native core is missing ({e}): reinstall aecodec "
            "(pip install --force-reinstall aecodec, or pip install . in a checkout)") from e
    return _core


@dataclass
class Latents:
    """The quantized latents of one image at one quality, as the encoder writes them and the
    decoder reads them back."""

    quality: float
    z_hat: np.ndarray  # int32 [Nz, h/4, w/4]
    s: np.ndarray | None  # int32 [M, h, w], the residual symbols (None once synthesized)
    mu: np.ndarray | None  # float32 [M, h, w], h_s's means
    index: np.ndarray | None  # int32 [M, h, w], h_s's table indexes


class Engine:
    """A loaded package with its onnxruntime sessions and prepared rANS tables."""

    def __init__(self, package: model_package.ModelPackage, transforms: Transforms):
        self.package = package
        self.transforms = transforms
        tb, c = package.tables, core()
        try:
            self.z_tables = c.RansTables(tb["z_cdf"], tb["z_cdf_len"], tb["z_offset"],
                                         package.precision)
            self.y_tables = c.RansTables(tb["y_cdf"], tb["y_cdf_len"], tb["y_offset"],
                                         package.precision)
        except ValueError as e:
            raise ModelPackageError(f"model package {package.path} has invalid tables: {e}") from e

    def hyper_synthesis(self, z_hat: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact h_s (core): ẑ int32 [Nz, h/4, w/4] → (μ float32, table index int32) [M, h, w]."""
        hs = self.package.hyper
        return core().hyper_synthesis(
            np.ascontiguousarray(z_hat), hs["w1"], hs["b1"], hs["w2"], hs["b2"], hs["w3"],
            hs["b3"], self.package.tables["scale_log_thresholds"], threads)


def z_index(shape: Sequence[int]) -> np.ndarray:
    """Table index of every ẑ symbol: its channel, int32 of the given [Nz, h, w] shape."""
    nz, zh, zw = shape
    return np.ascontiguousarray(np.broadcast_to(
        np.arange(nz, dtype=np.int32)[:, None, None], (nz, zh, zw)))
