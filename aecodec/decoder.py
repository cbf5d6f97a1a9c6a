"""Decoding: container → ẑ → exact h_s → slices of s → ŷ → g_s → image.

`synthesize` is the one path from quantized latents to pixels: the decoder runs it, and the
encoder runs the same function to measure a candidate's distortion (rate control), so what the
encoder optimises is exactly what the decoder shows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from . import container, images
from .container import AecFile
from .engine import Engine, Latents, core, z_index
from .errors import CorruptFileError, DecompressionBombError, FormatError
from .geometry import PREVIEW_SCALE, reduced_size
from .results import Timings

# fn, items -> [fn(item) for item in items], possibly on a thread pool (Codec._map)
MapFn = Callable[[Callable, list], list]


def dequantize(eng: Engine, lat: Latents) -> np.ndarray:
    """ŷ = (s + μ) / gain(q), float32 [M, h, w]: what g_s and the preview heads read.
    float32(s) + μ is rounded once (core().dequantize), then divided by the gain."""
    y_hat = core().dequantize(lat.s, lat.mu)
    y_hat /= eng.package.gain(lat.quality)[:, None, None]
    return y_hat


def synthesize(eng: Engine, lat: Latents, height: int, width: int,
               release: bool = False, profile: str = "exact") -> np.ndarray:
    """Pixels height×width×3 uint8 (in the coded orientation) of quantized latents:
    ŷ = (s + μ) / gain(q), then g_s (profile "fast": the package's lighter g_s). release=True
    drops lat.s and lat.mu once ŷ is formed, so a large image's decoder holds only what g_s
    needs."""
    pkg = eng.package
    if release:
        # ŷ in μ's buffer, a channel at a time: a large image's decoder never holds s, μ and ŷ
        # at once. float32(s) + μ in float32, as core().dequantize, so it is equal bit for bit.
        y_hat, s = lat.mu, lat.s
        lat.s = lat.mu = lat.index = None
        for c in range(y_hat.shape[0]):
            y_hat[c] += s[c].astype(np.float32)
        del s
        y_hat /= pkg.gain(lat.quality)[:, None, None]
    else:
        y_hat = dequantize(eng, lat)
    return eng.transforms.synthesis(y_hat, height, width, pkg.decoder_scales(lat.quality),
                                    profile)


def check_model(eng: Engine, f: AecFile) -> None:
    """A version-1 file records its latent channels: they must be the model's."""
    pkg, hd = eng.package, f.header
    if hd.latent_channels is not None and (hd.latent_channels, hd.hyper_channels) != (
            pkg.latent_channels, pkg.hyper_channels):
        raise CorruptFileError(
            f"damaged .aec file: its latent channels ({hd.latent_channels}, "
            f"{hd.hyper_channels}) do not match model {pkg.name}")


def decode_symbols(eng: Engine, f: AecFile, threads: int, map_fn: MapFn,
                   timings: Timings) -> Latents:
    """Entropy-decode a parsed file: ẑ, then h_s's means and indexes, then the Y slices (in
    parallel through map_fn)."""
    check_model(eng, f)
    hd = f.header
    with timings.stage("entropy_decode"):
        z_hat = _decode_z(eng, f)
    with timings.stage("hyper_synthesis"):
        mu, index = eng.hyper_synthesis(z_hat, threads)
    with timings.stage("entropy_decode"):
        s = np.empty(mu.shape, dtype=np.int32)

        def decode_slice(i_bounds):
            i, (a, b) = i_bounds
            try:
                s[:, a:b] = eng.y_tables.decode(f.y_streams[i],
                                                np.ascontiguousarray(index[:, a:b]))
            except ValueError as e:
                raise CorruptFileError(
                    f"damaged .aec file: cannot decode Y slice {i} ({e})") from e

        map_fn(decode_slice, list(enumerate(hd.slice_bounds())))
    return Latents(hd.quality, z_hat, s, mu, index)


def _decode_z(eng: Engine, f: AecFile) -> np.ndarray:
    hd = f.header
    zshape = (eng.package.hyper_channels, hd.hyper_height, hd.hyper_width)
    try:
        return eng.z_tables.decode(f.z_stream, z_index(zshape))
    except ValueError as e:
        raise CorruptFileError(f"damaged .aec file: cannot decode the Z stream ({e})") from e


def preview(eng: Engine, lat: Latents, height: int, width: int, k: int) -> np.ndarray:
    """Pixels ceil(height/k) × ceil(width/k) × 3 uint8 (coded orientation) of quantized latents
    at 1/k of the size: the package's preview head on ŷ (no g_s), or, for a package without one,
    the full synthesis reduced by k (a box filter, as Image.reduce)."""
    rgb = eng.transforms.preview(dequantize(eng, lat), k, height, width,
                                 eng.package.decoder_scales(lat.quality))
    if rgb is None:
        rgb = np.asarray(Image.fromarray(synthesize(eng, lat, height, width)).reduce(k))
    return rgb


def decode_image(eng: Engine, f: AecFile, threads: int, map_fn: MapFn,
                 timings: Timings, scale: int = 1, profile: str = "exact") -> Image.Image:
    """The image of a parsed file, in its recorded mode, orientation undone, metadata in info;
    scale k > 1: a preview at ceil(size / k) (see `preview`; at PREVIEW_SCALE the file's
    embedded preview when it has one); profile: of the full synthesis."""
    hd = f.header
    if scale == PREVIEW_SCALE and f.preview is not None:
        return embedded_preview(eng, f, threads, map_fn, timings)
    lat = decode_symbols(eng, f, threads, map_fn, timings)
    with timings.stage("synthesis"):
        cw, ch = hd.coded_size
        if scale > 1:
            rgb = preview(eng, lat, ch, cw, scale)
        else:
            rgb = synthesize(eng, lat, ch, cw, release=True, profile=profile)
        if hd.orientation:
            rgb = np.ascontiguousarray(images.orient(rgb, hd.orientation, inverse=True))
    alpha = None if f.alpha is None else images.decode_alpha(f.alpha, hd.width, hd.height)
    if alpha is not None and scale > 1:
        alpha = alpha.reduce(scale)
    return images.to_image(rgb, hd.mode, alpha, f.metadata)


def embedded_preview(eng: Engine, f: AecFile, threads: int, map_fn: MapFn,
                     timings: Timings) -> Image.Image:
    """The image of a file's prvw chunk: a whole .aec file of the image at 1/PREVIEW_SCALE, with
    the same mode and model and no preview of its own (docs/format.md), decoded with the fast
    profile where the model has one (a preview is approximate by nature); the metadata are the
    file's."""
    hd = f.header
    try:
        with timings.stage("container"):
            p = container.parse(f.preview)
    except (FormatError, DecompressionBombError) as e:  # a preview larger than its image, too
        raise CorruptFileError(f"damaged .aec file: its embedded preview is not valid ({e})") from e
    ph = p.header
    if (p.preview is not None or (ph.width, ph.height) != reduced_size(
            hd.width, hd.height, PREVIEW_SCALE) or ph.mode != hd.mode
            or (ph.model_name, ph.model_hash) != (hd.model_name, hd.model_hash)):
        raise CorruptFileError(
            "damaged .aec file: its embedded preview does not fit the image (a preview is "
            f"{'x'.join(map(str, reduced_size(hd.width, hd.height, PREVIEW_SCALE)))} "
            f"{hd.mode}, coded with the image's model, without a preview of its own)")
    profile = "fast" if eng.transforms.has_profile("fast") else "exact"
    im = decode_image(eng, p, threads, map_fn, timings, 1, profile)
    im.info.update(f.metadata)
    return im
