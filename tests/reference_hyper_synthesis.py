"""Plain numpy reference of the exact hyper-synthesis kernel (docs/model-package.md).

Same arithmetic, in the same order, as csrc/hyper_synthesis.cpp: every output starts at
``bias + 0.0`` (float32) and adds ``w * x`` (one float32 rounding for the product, one for the sum)
for each tap (ky, kx) in ascending order and, inside a tap, each input channel in ascending
order. Inputs outside the image read as zero (equivalent to skipping the tap: see the .cpp).
Only elementwise float32 ufuncs are used: no matmul/BLAS/einsum, which would reorder the sums.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def _pad1(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    out = np.zeros((c, h + 2, w + 2), dtype=F32)
    out[:, 1:-1, 1:-1] = x
    return out


def _start(bias: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    b = (bias.astype(F32) + F32(0.0)).astype(F32)  # -0.0 becomes +0.0
    return np.repeat(np.repeat(b[:, None, None], shape[0], axis=1), shape[1], axis=2)


def relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > F32(0), x, F32(0)).astype(F32)


def conv_transpose5_s2(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ConvTranspose2d(k=5, stride=2, padding=2, output_padding=1); w is [Cin, Cout, 5, 5]."""
    cin, h, wd = x.shape
    cout = w.shape[1]
    xp = _pad1(x)
    out = np.empty((cout, 2 * h, 2 * wd), dtype=F32)
    for py in (0, 1):
        for px in (0, 1):
            acc = _start(b, (h, wd))
            for ky in range(py, 5, 2):
                for kx in range(px, 5, 2):
                    # output (2a+py, 2b+px) reads input (a + (py+2-ky)/2, b + (px+2-kx)/2)
                    dy, dx = (py + 2 - ky) // 2 + 1, (px + 2 - kx) // 2 + 1
                    for i in range(cin):
                        prod = (
                            w[i, :, ky, kx][:, None, None] * xp[i, dy : dy + h, dx : dx + wd][None]
                        )
                        acc = acc + prod
            out[:, py::2, px::2] = acc
    return out


def conv3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Conv2d(k=3, stride=1, padding=1); w is [Cout, Cin, 3, 3]."""
    cin, h, wd = x.shape
    xp = _pad1(x)
    acc = _start(b, (h, wd))
    for ky in range(3):
        for kx in range(3):
            for i in range(cin):
                acc = acc + w[:, i, ky, kx][:, None, None] * xp[i, ky : ky + h, kx : kx + wd][None]
    return acc


def table_index(log_scale: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of thresholds <= log σ (a comparison per threshold; NaN gives 0)."""
    count = np.zeros(log_scale.shape, dtype=np.int32)
    for t in thresholds.astype(F32):
        count += (t <= log_scale).astype(np.int32)
    return count


def hyper_synthesis(z_hat, w1, b1, w2, b2, w3, b3, log_thresholds):
    """(mu float32 [M, 4h, 4w], index int32 [M, 4h, 4w]) exactly as aecodec._core computes them."""
    x = np.asarray(z_hat).astype(F32)
    x = relu(conv_transpose5_s2(x, w1.astype(F32), b1.astype(F32)))
    x = relu(conv_transpose5_s2(x, w2.astype(F32), b2.astype(F32)))
    out = conv3(x, w3.astype(F32), b3.astype(F32))
    m = out.shape[0] // 2
    return out[:m], table_index(out[m:], np.asarray(log_thresholds))
