"""The autoencoder's other uses: surprise maps (where an image is unusual) and latent features.

    s = aecodec.surprise("photo.png")     # s.bits, s.error: H×W float32; s.score; s.to_image()
    f = aecodec.features("photo.aec")     # ŷ, float32 [M, ceil(H/16), ceil(W/16)]
    v = aecodec.embedding("photo.aec")    # float32 [2M], L2-normalised, any image size

Every input is either pixels (a PIL image, a uint8 array, an image path: encoded at `quality`
exactly as `compress` would, without writing the file) or an .aec file (bytes, a path or a
binary file: read from its stream alone). From an .aec file the bits, the features and the
embedding come from entropy decoding and the exact hyper-synthesis (design §1): no g_s runs,
so an archive of .aec files is searched by content without decoding any pixels.

bits:  each coded symbol costs −log2 p bits under the integer CDF table that codes it (the
       model package's tables; an escaped symbol also pays its bypass bits), i.e. exactly what
       the entropy coder spends, up to the rANS stream's few bytes of framing. A ŷ symbol covers
       a 16×16 pixel block, a ẑ symbol 64×64; each symbol's bits are spread evenly over the
       image pixels its block covers (a block of the edge padding is folded into the image's
       last row/column of blocks), so `bits` is in bits per pixel and sums to the file's
       entropy-coded bits.
error: the squared error (0–255 scale, mean over the colour channels) of what `decompress`
       gives back for this file: only when pixels are given (from an .aec there is no original).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import arguments, container
from .arguments import DEFAULT_QUALITY
from .decoder import dequantize, synthesize
from .engine import Engine, Latents, z_index
from .geometry import HYPER_STRIDE, STRIDE
from .images import AecSource, ImageSource, Prepared, prepare
from .model_package import ModelPackage

if TYPE_CHECKING:
    from .codec import Codec

TOP_FRACTION = 0.01  # the score averages the most surprising 1 % of the 16×16 blocks

__all__ = ["Surprise", "embedding", "features", "surprise"]


# ---- inputs --------------------------------------------------------------------------------

def _codec(codec, model, device, threads):
    if codec is not None:
        return codec
    from .codec import shared

    return shared(model, device, threads)


def _classify(src):
    """("aec", bytes) or ("pixels", an image compress() takes)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "aec", bytes(src)  # like decompress: bytes are an .aec file
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            head = f.read(len(container.MAGIC))
        if head == container.MAGIC or str(src).lower().endswith(".aec"):
            with open(src, "rb") as f:
                return "aec", f.read()
        return "pixels", src
    if hasattr(src, "read"):
        data = src.read()
        if data[: len(container.MAGIC)] == container.MAGIC:
            return "aec", data
        return "pixels", io.BytesIO(data)
    if isinstance(src, (np.ndarray, Image.Image)):
        return "pixels", src
    raise TypeError(f"cannot analyse a {type(src).__name__}: give a PIL image, a uint8 numpy "
                    "array, an image or .aec path, .aec bytes or a binary file")


@dataclass
class _Latents:
    """The coded symbols of one image and what the exact hyper-synthesis gives for them."""

    width: int  # the image's size (not the coded, possibly turned, one)
    height: int
    coded_size: tuple[int, int]  # (width, height) as coded (a quarter turn swaps them)
    orientation: int
    quality: float
    codes: Latents  # ẑ, s, μ and the table indexes, as the file holds them
    engine: Engine
    prepared: Prepared | None = None  # pixels given
    data: bytes | None = None  # the .aec file (one was given)

    def y_hat(self) -> np.ndarray:
        """ŷ = (s + μ) / gain, float32 [M, h, w], as the decoder forms it."""
        return dequantize(self.engine, self.codes)


def _latents(codec, src, quality: float) -> _Latents:
    kind, obj = _classify(src)
    if kind == "aec":
        header, eng, lat = codec.file_latents(obj)
        return _Latents(header.width, header.height, header.coded_size, header.orientation,
                        float(header.quality), lat, eng, data=obj)
    p = prepare(obj, metadata=False)
    h, w = p.rgb.shape[:2]
    container.check_pixels(w, h)
    eng, lat = codec.image_latents(p, quality)
    return _Latents(w, h, (w, h), 0, quality, lat, eng, prepared=p)


# ---- bits ----------------------------------------------------------------------------------

def symbol_bits(package: ModelPackage, prefix: str, symbols: np.ndarray,
                index: np.ndarray) -> np.ndarray:
    """−log2 p of every symbol under the integer CDF row `index` of the package's
    `<prefix>_cdf` table, float64, the shape of `symbols`: what rANS spends on it, escape
    bypass bits included."""
    tables, precision = package.tables, package.precision
    cdf = tables[f"{prefix}_cdf"]
    length = tables[f"{prefix}_cdf_len"].astype(np.int64)[index]
    offset = tables[f"{prefix}_offset"].astype(np.int64)[index]
    support = length - 2
    b = symbols.astype(np.int64) - offset
    escape = (b < 0) | (b >= support)
    bin_ = np.where(escape, support, b)
    freq = (cdf[index, bin_ + 1].astype(np.int64) - cdf[index, bin_]).astype(np.float64)
    bits = precision - np.log2(freq)
    if escape.any():  # csrc/rans.hpp: 7 bits of length and side, then mb mantissa bits
        d = np.where(b < 0, -1 - b, b - support)[escape]
        _, nb = np.frexp((d + 1).astype(np.float64))  # bit length of d + 1 (<= 2^32: exact)
        bits[escape] += 7 + (nb - 1)
    return bits


def _block_bits(lat: _Latents) -> np.ndarray:
    """Bits of every ŷ latent position (all channels) plus its share of its ẑ cell's bits,
    float64 [h, w] over the coded (padded) latent grid."""
    pkg, codes = lat.engine.package, lat.codes
    y_bits = symbol_bits(pkg, "y", codes.s, codes.index).sum(axis=0)
    z_bits = (symbol_bits(pkg, "z", codes.z_hat, z_index(codes.z_hat.shape)).sum(axis=0)
              / (HYPER_STRIDE * HYPER_STRIDE))
    return y_bits + np.repeat(np.repeat(z_bits, HYPER_STRIDE, axis=0), HYPER_STRIDE, axis=1)


def _fold(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Sum the blocks outside the image (the edge padding) into its last row/column of blocks."""
    out = a[:rows, :cols].copy()
    out[rows - 1, :] += a[rows:, :cols].sum(axis=0)
    out[:, cols - 1] += a[:rows, cols:].sum(axis=1)
    out[rows - 1, cols - 1] += a[rows:, cols:].sum()
    return out


def _block_extents(n: int) -> np.ndarray:
    """Pixels of each 16-pixel block along a side of n pixels (the last may be shorter)."""
    k = -(-n // STRIDE)
    ext = np.full(k, STRIDE, dtype=np.int64)
    ext[-1] = n - STRIDE * (k - 1)
    return ext


def _orient_back(a: np.ndarray, orientation: int) -> np.ndarray:
    """A map of the coded (possibly turned) image in the image's own orientation."""
    if not orientation:
        return a
    from .images import orient

    return np.ascontiguousarray(orient(a, orientation, inverse=True))


def _to_pixels(blocks: np.ndarray, width: int, height: int) -> np.ndarray:
    """A per-block density (blocks of the coded image) → height×width, each block repeated."""
    return np.repeat(np.repeat(blocks, _block_extents(height), axis=0),
                     _block_extents(width), axis=1)


# ---- surprise ------------------------------------------------------------------------------

@dataclass
class Surprise:
    """Where the model found an image unusual (aecodec.surprise).

    bits:  H×W float32, bits per pixel the model spends there (−log2 p of the ŷ and ẑ
           symbols covering it); sums to `total_bits`, the file's entropy-coded bits.
    error: H×W float32, squared reconstruction error (0–255 scale, mean over colour channels)
           of the decoded file; None when computed from an .aec file.
    score: one float for the image: the bits per pixel of its most surprising 1 % of 16×16
           blocks (README, "Surprise maps and features"): the same from the image and from its
           .aec file; compare scores made at one quality with one model.
    """

    bits: np.ndarray = field(repr=False)
    error: np.ndarray | None = field(repr=False)
    score: float
    quality: float
    total_bits: float
    bpp: float  # total_bits / pixels
    mse: float | None  # mean of `error`
    _base: np.ndarray | None = field(default=None, repr=False)  # the image, for the overlay
    _data: bytes | None = field(default=None, repr=False)  # the .aec file
    _codec: object = field(default=None, repr=False, compare=False)

    @property
    def psnr(self) -> float | None:
        if self.mse is None:
            return None
        return 10 * math.log10(255.0 ** 2 / self.mse) if self.mse > 0 else math.inf

    @property
    def combined(self) -> np.ndarray:
        """H×W float32: bits and reconstruction error together: per 16×16 block, the
        geometric mean of its bits per pixel and mean squared error; `bits` when there is no
        error map."""
        return combine(self.bits, self.error)

    def to_image(self, which: str = "auto", alpha: float = 0.6) -> Image.Image:
        """A heat-map overlay (RGB PIL image of the image's size): the image in grey, the
        surprise from dark (usual) through red to yellow (the most surprising blocks).

        which: "bits", "error", "combined" or "auto" (combined when there is an error map).
        From an .aec file the background is the decoded image (runs g_s, only for this)."""
        if which == "auto":
            which = "combined" if self.error is not None else "bits"
        if which not in ("bits", "error", "combined"):
            raise ValueError(f"which must be 'bits', 'error', 'combined' or 'auto', got {which!r}")
        if which == "error" and self.error is None:
            raise ValueError("no error map: this Surprise was computed from an .aec file")
        m = {"bits": self.bits, "error": self.error, "combined": None}[which]
        if m is None:
            m = self.combined
        base = self._base
        if base is None and self._data is not None and self._codec is not None:
            base = np.asarray(self._codec.decompress(self._data).convert("RGB"))
        return overlay(base, m, alpha)


def block_mean(a: np.ndarray, size: int = STRIDE) -> np.ndarray:
    """The mean of every size×size block of an H×W map (edge blocks may be smaller)."""
    h, w = a.shape
    rows, cols = -(-h // size), -(-w // size)
    p = np.zeros((rows * size, cols * size), np.float64)
    p[:h, :w] = a
    counts = np.zeros_like(p)
    counts[:h, :w] = 1
    s = p.reshape(rows, size, cols, size).sum(axis=(1, 3))
    n = counts.reshape(rows, size, cols, size).sum(axis=(1, 3))
    return s / n


def combine(bits: np.ndarray, error: np.ndarray | None) -> np.ndarray:
    """The combined surprise map (Surprise.combined): per 16×16 block, the geometric mean of
    the block's bits per pixel and its mean squared error, √(bpp · MSE); the bits alone when
    there is no error map."""
    if error is None:
        return bits
    blocks = np.sqrt(block_mean(bits) * block_mean(error)).astype(np.float32)
    h, w = bits.shape
    return _to_pixels(blocks, w, h)


def image_score(m: np.ndarray, top: float = TOP_FRACTION) -> float:
    """The mean of a map over the top fraction (at least one) of its 16×16 blocks."""
    blocks = np.sort(block_mean(m).ravel())
    k = max(1, int(round(top * blocks.size)))
    return float(blocks[-k:].mean())


def surprise(img_or_aec: ImageSource | AecSource,
             quality: float = DEFAULT_QUALITY, *, device: str = "cpu",
             model: str | None = None, threads: int = 0,
             codec: Codec | None = None) -> Surprise:
    """Where the model finds an image unusual: a Surprise with `.bits` (bits per pixel spent
    there), `.error` (squared reconstruction error; None from an .aec), `.score`, `.to_image()`.

    img_or_aec: a PIL image, uint8 array or image path (encoded at `quality` as compress()
    would), or an .aec file (bytes, path or binary file: its own quality; no g_s runs)."""
    codec = _codec(codec, model, device, threads)
    quality = arguments.quality(quality)
    lat = _latents(codec, img_or_aec, quality)
    cw, ch = lat.coded_size
    blocks = _block_bits(lat)
    total = float(blocks.sum())
    k_rows, k_cols = -(-ch // STRIDE), -(-cw // STRIDE)
    blocks = _fold(blocks, k_rows, k_cols)
    density = blocks / np.outer(_block_extents(ch), _block_extents(cw))
    bits = _orient_back(_to_pixels(density.astype(np.float32), cw, ch), lat.orientation)
    error = base = None
    if lat.prepared is not None:
        p = lat.prepared
        rgb = synthesize(lat.engine, lat.codes, ch, cw)  # orientation 0: as coded
        if p.mode in ("L", "LA"):  # the decoder gives back grey: compare grey
            x = p.rgb[:, :, 0].astype(np.float32)
            d = x - np.asarray(Image.fromarray(rgb, "RGB").convert("L"), np.float32)
            error = d * d
        else:
            d = p.rgb.astype(np.float32) - rgb
            error = (d * d).mean(axis=2)
        base = p.rgb
    mse = None if error is None else float(error.mean(dtype=np.float64))
    score = image_score(bits)
    return Surprise(bits=bits, error=error, score=score, quality=lat.quality, total_bits=total,
                    bpp=total / (lat.width * lat.height), mse=mse, _base=base, _data=lat.data,
                    _codec=codec)


# ---- heat map ------------------------------------------------------------------------------

# A dark-red-yellow-white ramp (like matplotlib's "inferno" at a few stops): value in [0, 1].
_RAMP = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                  (245, 125, 21), (250, 193, 39), (252, 255, 164)], np.float32)


def colourize(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB float32 (…, 3) on the ramp."""
    t = np.clip(v, 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return _RAMP[i] * (1 - f) + _RAMP[i + 1] * f


def overlay(base: np.ndarray | None, m: np.ndarray, alpha: float = 0.6) -> Image.Image:
    """Heat-map overlay of map m (H×W) on an image (H×W×3 uint8, shown in grey; None: the
    heat map alone). The map is block-averaged, smoothed, and scaled from its median (dark) to
    its 99.5th percentile (yellow), so every image uses the whole ramp."""
    h, w = m.shape
    blocks = block_mean(m).astype(np.float32)
    smooth = np.asarray(Image.fromarray(blocks, "F").resize((w, h), Image.BILINEAR), np.float32)
    lo, hi = np.percentile(blocks, 50), np.percentile(blocks, 99.5)
    v = np.clip((smooth - lo) / max(hi - lo, 1e-12), 0, 1)
    heat = colourize(v)
    if base is None:
        return Image.fromarray(np.rint(heat).astype(np.uint8), "RGB")
    grey = np.asarray(Image.fromarray(base, "RGB").convert("L"), np.float32)[..., None]
    a = (alpha * np.sqrt(v))[..., None]
    out = grey * 0.8 * (1 - a) + heat * a
    return Image.fromarray(np.rint(np.clip(out, 0, 255)).astype(np.uint8), "RGB")


# ---- features ------------------------------------------------------------------------------

def _features(lat: _Latents) -> np.ndarray:
    cw, ch = lat.coded_size
    y = lat.y_hat()[:, : -(-ch // STRIDE), : -(-cw // STRIDE)]
    if lat.orientation:
        y = _orient_back(y.transpose(1, 2, 0), lat.orientation).transpose(2, 0, 1)
    return np.ascontiguousarray(y)


def features(img_or_aec: ImageSource | AecSource,
             quality: float = DEFAULT_QUALITY, *, device: str = "cpu",
             model: str | None = None, threads: int = 0,
             codec: Codec | None = None) -> np.ndarray:
    """The dequantized latent ŷ = (s + μ)/gain of an image: float32 [M, ceil(H/16), ceil(W/16)],
    latent (i, j) describing pixels [16i, 16i+16) × [16j, 16j+16).

    From pixels (encoded at `quality`, g_a + h_a + exact h_s) or from an .aec file (entropy
    decoding + exact h_s, no g_s): the same file gives the same array, bit for bit."""
    codec = _codec(codec, model, device, threads)
    return _features(_latents(codec, img_or_aec, arguments.quality(quality)))


def pool(y: np.ndarray) -> np.ndarray:
    """The embedding of a feature array ŷ [M, h, w] (aecodec.embedding): float32 [2M].

    Per channel, the standard deviation of ŷ over the image and the mean of |ŷ|; each of the
    two M-vectors centred (its mean over the channels removed) and L2-normalised, then both
    together L2-normalised. Spatial pooling makes it independent of size, position, crop and
    mirroring; centring each half makes it independent of a common gain (brightness, contrast
    and scale change the latents' overall magnitude more than their profile over the
    channels). Chosen on benchmarks/duplicates.py (README, "Surprise maps and features")."""
    f = y.astype(np.float64).reshape(y.shape[0], -1)
    std, mag = f.std(axis=1), np.abs(f).mean(axis=1)
    v = _unit(np.concatenate([_unit(std - std.mean()), _unit(mag - mag.mean())]))
    if not np.any(v):  # no variation at all (a constant latent): any fixed unit vector
        v = np.full(v.shape, 1 / math.sqrt(v.size))
    return v.astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def embedding(img_or_aec: ImageSource | AecSource,
              quality: float = DEFAULT_QUALITY, *, device: str = "cpu",
              model: str | None = None, threads: int = 0,
              codec: Codec | None = None) -> np.ndarray:
    """One float32 vector per image, L2-normalised, of a fixed length whatever the image size
    (README, "Surprise maps and features"): compare two images by the dot product (cosine
    similarity) of their embeddings. Inputs as for features()."""
    return pool(features(img_or_aec, quality, device=device, model=model, threads=threads,
                         codec=codec))

