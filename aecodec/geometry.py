"""The latent geometry: how an image's size becomes its latent grids. The writer and the reader
of a file, and training and run time, must agree on it, so it is defined here alone.

g_a has four stride-2 layers (a latent per 16×16 pixels) and h_a two more (a hyper-latent per
4×4 latents), so an image padded to a multiple of 64 pixels maps to whole grids on both.
"""

from __future__ import annotations

STRIDE = 16  # pixels per latent (g_a, g_s: four stride-2 (transposed) convolutions)
HYPER_STRIDE = 4  # latents per hyper-latent (h_a, h_s: two stride-2 (transposed) convolutions)
PAD = STRIDE * HYPER_STRIDE  # images are padded (edge replication) to a multiple of this


# Reduced-size decoding (Pillow's draft and reduce, `decompress(scale=k)`) is offered at 1/k for
# these k, as JPEG's DCT scaling.
PREVIEW_SCALES = (2, 4, 8)
# An embedded preview (the file's prvw chunk) is the image at 1/PREVIEW_SCALE of its size: the
# smallest of the draft scales, the one a thumbnail asks for.
PREVIEW_SCALE = max(PREVIEW_SCALES)


def reduced_size(width: int, height: int, k: int) -> tuple[int, int]:
    """(width, height) of an image reduced by k: ceil(width / k) × ceil(height / k)."""
    return -(-width // k), -(-height // k)


def padded(n: int) -> int:
    """A side of n pixels padded to a multiple of PAD."""
    return -(-n // PAD) * PAD


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(h, w) of the latent grid y of a width×height image (padded to PAD, then / STRIDE)."""
    return padded(height) // STRIDE, padded(width) // STRIDE


def hyper_size(latent_height: int, latent_width: int) -> tuple[int, int]:
    """(h, w) of the hyper-latent grid ẑ of a latent grid."""
    return latent_height // HYPER_STRIDE, latent_width // HYPER_STRIDE
