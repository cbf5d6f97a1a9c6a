"""The codec pipeline (docs/model-package.md): image → transform → quantize → code → container.

    encode:  pixels ─► g_a ─► y ─► ·gain ─► h_a ─► ẑ ─► exact h_s (core) ─► μ, table index
             s = round(y·gain − μ) ─► rANS per latent-row slice (thread pool) ─► .aec
    decode:  .aec ─► ẑ ─► exact h_s ─► μ, index ─► s (slices in parallel) ─► ŷ = (s+μ)/gain ─► g_s

Only the core's exact kernels choose tables and means, so symbols decode identically on any
machine, thread count or device; onnxruntime's g_a/g_s only move pixels by rounding noise.
"""

from __future__ import annotations

import io
import math
import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import container, model_package
from .container import AecFile, Header
from .errors import AecError, CorruptFileError, ModelPackageError, UnsupportedImageError
from .transform import TILE, Transforms

DEFAULT_QUALITY = 75.0
# About this many latent symbols per independently coded Y slice: one slice for a Kodak-size
# image (each slice costs ~20 bytes of framing plus its lanes' final states), several for the
# threads on a large one.
SLICE_SYMBOLS = 1 << 20
# rANS lanes per stream: every lane ends with a 4-byte state (~3 bytes of it overhead). On a Kodak
# image 8 lanes decoded Y in 1.0 ms, 2 lanes in 1.3–1.9 ms (of a ~500 ms decode), and 2 lanes
# saved 20 bytes (0.5 % of a q0 file); ẑ (~12 k symbols) on one lane saved 22 bytes more.
Y_LANES = 2
Z_LANES = 1
SEARCH_STEPS = 10  # bisection steps of the quality search for a target bpp (cheap: no g_s)
PSNR_SEARCH_STEPS = 7  # for a target PSNR (each step runs g_s): quality within 100/2^7
# Orientations (orient()) the encoder tries per effort level, keeping the best file. Trained on
# all eight orientations, the transforms are still not equivariant to them (the stride-2 grids
# have a phase; no trained filter is exactly symmetric), so another orientation codes some images
# better: on 8 Kodak images the half turn saved ~1.4 % of the bits at equal PSNR, all eight ~2 %
# (README, "Encoder effort"). Each one tried costs a g_a and a g_s.
EFFORT_ORIENTATIONS = {1: (0,), 2: (0, 2), 3: tuple(range(container.ORIENTATIONS))}
DEFAULT_EFFORT = 1  # 2 and 3 encode ~6× and ~20× slower (README, "Encoder effort")


def orient(a: np.ndarray, orientation: int, inverse: bool = False) -> np.ndarray:
    """An image array (H × W × …) in one of the 8 orientations of a rectangle (a view).

    orientation k: mirror left-right if k >= 4, then turn counter-clockwise by k % 4 quarter
    turns (numpy.rot90); inverse=True undoes it. Odd k swap width and height."""
    if not (isinstance(orientation, (int, np.integer))
            and 0 <= orientation < container.ORIENTATIONS):
        raise ValueError(f"orientation must be an integer from 0 to 7, got {orientation!r}")
    if inverse:
        a = np.rot90(a, -(orientation % 4))
        return a[:, ::-1] if orientation >= 4 else a
    return np.rot90(a[:, ::-1] if orientation >= 4 else a, orientation % 4)


def _core():
    try:
        from . import _core
    except ImportError as e:  # pragma: no cover - a broken install
        raise AecError(
            f"aecodec's native core is missing ({e}): reinstall aecodec "
            "(pip install --force-reinstall aecodec, or pip install . in a checkout)") from e
    return _core


# ---- images in and out --------------------------------------------------------------------

@dataclass
class Prepared:
    """An input image reduced to what the codec stores."""

    rgb: np.ndarray  # H×W×3 uint8, C-contiguous
    mode: str  # "RGB", "L", "RGBA" or "LA": what decoding gives back
    alpha: np.ndarray | None  # H×W uint8
    metadata: dict  # "icc_profile" / "exif" / "xmp" -> bytes


_MODE_OF_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def prepare(img, metadata: bool = True) -> Prepared:
    """A PIL image, a uint8 array (H×W, H×W×1..4) or a path/file → Prepared (modes: README)."""
    if isinstance(img, np.ndarray):
        return _prepare_array(img)
    if isinstance(img, (str, os.PathLike)) or hasattr(img, "read"):
        with Image.open(img) as im:
            im.load()
            return _prepare_pil(im, metadata)
    if isinstance(img, Image.Image):
        return _prepare_pil(img, metadata)
    raise TypeError(f"cannot compress a {type(img).__name__}: give a PIL image, a uint8 numpy "
                    "array or a path")


def _prepare_array(a: np.ndarray) -> Prepared:
    if a.dtype != np.uint8:
        raise UnsupportedImageError(
            f"arrays must be uint8 (8 bits per channel), got {a.dtype}: scale and convert first")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _MODE_OF_CHANNELS or 0 in a.shape:
        raise UnsupportedImageError(
            f"array shape {a.shape} is not an image: use H×W (grey), H×W×2 (grey+alpha), "
            "H×W×3 (RGB) or H×W×4 (RGBA)")
    mode = _MODE_OF_CHANNELS[a.shape[2]]
    colour = a[:, :, :3] if a.shape[2] >= 3 else np.repeat(a[:, :, :1], 3, axis=2)
    alpha = np.ascontiguousarray(a[:, :, -1]) if mode in container.ALPHA_MODES else None
    return Prepared(np.ascontiguousarray(colour), mode, alpha, {})


def _metadata_of(im: Image.Image) -> dict:
    meta = {}
    if im.info.get("icc_profile"):
        meta["icc_profile"] = bytes(im.info["icc_profile"])
    exif = im.info.get("exif")
    if not exif:
        ex = im.getexif()
        exif = ex.tobytes() if len(ex) else None
    if exif:
        meta["exif"] = bytes(exif)
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp:
        meta["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return meta


def _prepare_pil(im: Image.Image, metadata: bool = True) -> Prepared:
    meta = _metadata_of(im) if metadata else {}
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        raise UnsupportedImageError(
            f"{mode} images (16/32 bits per pixel) are not supported: aecodec codes 8 bits per "
            "channel; reduce to 8 bits first (e.g. Image.fromarray((np.asarray(im) >> 8)"
            ".astype('uint8')) for 16-bit)")
    if mode == "CMYK":
        warnings.warn("CMYK image converted to RGB without colour management (its ICC profile, "
                      "if any, is dropped); convert with PIL.ImageCms first for accurate colour",
                      stacklevel=3)
        meta.pop("icc_profile", None)
        im = im.convert("RGB")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("RGBa", "RGBX"):
        im = im.convert("RGBA" if mode == "RGBa" else "RGB")
    elif mode not in ("RGB", "L", "LA", "RGBA"):
        try:
            im = im.convert("RGB")
        except ValueError as e:
            raise UnsupportedImageError(f"cannot code {mode} images: convert to RGB first") from e
    if im.width < 1 or im.height < 1:
        raise UnsupportedImageError("the image is empty (0 pixels)")
    a = np.asarray(im)
    p = _prepare_array(a)
    p.metadata = meta
    return p


def _to_image(rgb: np.ndarray, mode: str, alpha: Image.Image | None, meta: dict) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA"):
        im = im.convert("L")
    if alpha is not None:
        im.putalpha(alpha)
    for key, value in meta.items():
        im.info[key] = value
    return im


def encode_alpha(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def decode_alpha(png: bytes, width: int, height: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
            if im.size != (width, height) or im.mode != "L":
                raise CorruptFileError("damaged .aec file: the alpha plane does not match")
            im.load()
            return im.copy()
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, AecError):
            raise
        raise CorruptFileError(f"damaged .aec file: cannot decode the alpha plane ({e})") from e


def read_input(data_or_path) -> bytes:
    """bytes-like, a path or a binary file object → the file's bytes."""
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return bytes(data_or_path)
    if isinstance(data_or_path, (str, os.PathLike)):
        return Path(data_or_path).read_bytes()
    if hasattr(data_or_path, "read"):
        return data_or_path.read()
    raise TypeError(f"cannot decompress a {type(data_or_path).__name__}: give bytes, a path or "
                    "a binary file")


# ---- the codec ----------------------------------------------------------------------------

class _Engine:
    """A loaded package with its onnxruntime sessions and prepared rANS tables."""

    def __init__(self, package: model_package.ModelPackage, transforms: Transforms):
        self.package = package
        self.transforms = transforms
        tb, core = package.tables, _core()
        try:
            self.z_tables = core.RansTables(tb["z_cdf"], tb["z_cdf_len"], tb["z_offset"],
                                            package.precision)
            self.y_tables = core.RansTables(tb["y_cdf"], tb["y_cdf_len"], tb["y_offset"],
                                            package.precision)
        except ValueError as e:
            raise ModelPackageError(f"model package {package.path} has invalid tables: {e}") from e


@dataclass
class _Latents:
    """One quantization of y at one quality."""

    quality: float
    gain: np.ndarray
    z_hat: np.ndarray  # int32 [Nz, h/4, w/4]
    s: np.ndarray  # int32 [M, h, w]
    mu: np.ndarray  # float32 [M, h, w]
    index: np.ndarray  # int32 [M, h, w]


class Codec:
    """A reusable codec: loads model packages once, keeps their onnxruntime sessions.

    model: package name (default model_package.DEFAULT_MODEL) or a package folder, used to
    encode; decoding uses the model each file names. device: "cpu" or "cuda". threads: worker
    threads for onnxruntime, the exact kernel and entropy coding (0: all cores). model_path:
    extra directories to search for packages (before $AECODEC_MODEL_PATH). tile: latents per
    side of a g_a/g_s tile (memory bound); slice_symbols: about how many latent symbols go in
    each independently coded slice (recorded in the file). After each call,
    `last_timings` holds the wall time of every stage in seconds and `last_stats` the quality,
    size and bits per pixel of the last encoded or decoded file."""

    def __init__(self, model: str | None = None, device: str = "cpu", threads: int = 0,
                 model_path=None, tile: int = TILE, slice_symbols: int = SLICE_SYMBOLS):
        from .transform import providers

        providers(device)  # fail now, with what to install, not at the first image
        self.model = model or model_package.DEFAULT_MODEL
        self.device = device
        self.threads = int(threads or 0)
        self.model_path = [model_path] if isinstance(model_path, (str, os.PathLike)) else (
            list(model_path or []))
        if model and model_package.is_folder(model):  # it decodes the files it writes, too
            self.model_path.insert(0, Path(model).parent)
        self.tile = tile
        self.slice_symbols = max(1, int(slice_symbols))
        self._engines: dict = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.last_timings: dict = {}
        self.last_stats: dict = {}
        self.last_refine: dict = {}  # cost estimates of the last refinement (refine=N)
        self.refine_progress = None  # called as (steps done, steps) while refining (CLI bar)

    # -- resources --
    def _engine(self, name: str | None = None, content_hash: str | None = None) -> _Engine:
        key = (name or self.model, content_hash)
        with self._lock:
            eng = self._engines.get(key)
            if eng is None:
                pkg = model_package.load(key[0], content_hash, self.model_path)
                for e in self._engines.values():  # share sessions of the same package
                    if e.package is pkg:
                        eng = e
                        break
                else:
                    eng = _Engine(pkg, Transforms(pkg, self.device, self.threads, self.tile))
                self._engines[key] = eng
            return eng

    @property
    def package(self) -> model_package.ModelPackage:
        """The model package used to encode."""
        return self._engine().package

    def _map(self, fn, items):
        items = list(items)
        workers = self.threads or os.cpu_count() or 1
        if len(items) <= 1 or workers <= 1:
            return [fn(i) for i in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="aecodec")
            pool = self._pool
        return list(pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # -- encoding --
    def compress(self, img, quality: float | None = None, *, bpp: float | None = None,
                 psnr: float | None = None, metadata: bool = True, icc_profile=None,
                 exif=None, xmp=None, refine: int = 0, effort: int = DEFAULT_EFFORT) -> bytes:
        """Encode an image (PIL image, uint8 array or path) to .aec bytes.

        Give at most one of quality (0–100, higher is better, default 75), bpp (target bits per
        pixel of the whole file: the highest quality that fits) and psnr (target RGB PSNR in dB:
        the lowest quality that reaches it). metadata=False drops ICC/EXIF/XMP; icc_profile,
        exif and xmp (bytes) replace the image's own. refine=N (needs torch) spends N gradient
        steps per encoded quality fitting the latents to this image (aecodec.train.refine):
        much slower encoding, a better file for the same decoder. effort (1–3, default 1) is how
        many orientations of the image the encoder codes and compares (1, 2 or all 8), keeping
        the best file: each costs about one encode and one decode more."""
        if sum(v is not None for v in (quality, bpp, psnr)) > 1:
            raise ValueError("give only one of quality, bpp and psnr")
        if quality is not None and not (isinstance(quality, (int, float))
                                        and 0 <= quality <= 100):
            raise ValueError(f"quality must be a number from 0 to 100, got {quality!r}")
        if not (isinstance(refine, int) and 0 <= refine <= 10000):
            raise ValueError(f"refine must be an integer from 0 to 10000, got {refine!r}")
        if (isinstance(effort, bool) or not isinstance(effort, (int, np.integer))
                or effort not in EFFORT_ORIENTATIONS):
            raise ValueError(f"effort must be 1, 2 or 3, got {effort!r}")
        for label, v in (("bpp", bpp), ("psnr", psnr)):
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{label} must be a positive number, got {v!r}")
        t0 = time.perf_counter()
        timings = dict.fromkeys(("analysis", "hyper_analysis", "hyper_synthesis", "quantize",
                                 "entropy_encode", "synthesis", "container"), 0.0)
        p = prepare(img, metadata)
        if not metadata:
            p.metadata = {}
        for key, value in (("icc_profile", icc_profile), ("exif", exif), ("xmp", xmp)):
            if value is not None:
                if isinstance(value, Image.Exif):
                    value = value.tobytes()
                p.metadata[key] = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        eng = self._engine()
        h, w = p.rgb.shape[:2]
        container.check_pixels(w, h)
        timings["prepare"] = time.perf_counter() - t0

        alpha = encode_alpha(p.alpha) if p.alpha is not None else None
        views: dict = {}  # orientation -> the image as coded in it
        level_conditioned = eng.package.encoder_scales(0) is not None
        analysed: dict = {}  # g_a's output per orientation, when g_a does not depend on quality
        last: dict = {}  # the latents of the last (quality, orientation) tried

        def view(t: int) -> np.ndarray:
            if t not in views:  # one turned copy at a time: orientations are tried in turn
                views.clear()
                views[t] = p.rgb if t == 0 else np.ascontiguousarray(orient(p.rgb, t))
            return views[t]

        def quantize(q: float, t: int = 0) -> _Latents:
            if (q, t) not in last:
                last.clear()
                if level_conditioned:  # then g_a runs once per quality tried
                    y = self._analysis(eng, view(t), eng.package.encoder_scales(q), timings)
                else:
                    if t not in analysed:
                        analysed[t] = self._analysis(eng, view(t), None, timings)
                    y = analysed[t]
                last[(q, t)] = self._quantize(eng, y, q, timings, view(t) if refine else None,
                                              refine)
            return last[(q, t)]

        def encode_at(q: float, t: int = 0) -> bytes:
            return self._write(eng, quantize(q, t), p, alpha, timings, t)

        def sse_at(q: float, t: int = 0) -> float:
            """Sum of squared errors (0–255) of the reconstruction at (q, t)."""
            x = view(t)
            tt = time.perf_counter()
            rgb = self._synthesize(eng, quantize(q, t), x.shape[0], x.shape[1])
            timings["synthesis"] += time.perf_counter() - tt
            return _sse(rgb, x)

        budget = None if bpp is None else bpp * w * h / 8  # bytes
        limit = None if psnr is None else _sse_of_psnr(psnr, p.rgb.size)
        if budget is not None:
            data, q = self._search_bpp(encode_at, budget)
        elif limit is not None:
            data, q = self._search_psnr(limit, sse_at, encode_at)
        else:
            q = DEFAULT_QUALITY if quality is None else float(quality)
            data = encode_at(q)
        orientations = EFFORT_ORIENTATIONS[effort]
        if len(orientations) > 1:
            data = self._best_orientation(eng, q, orientations, data, encode_at, sse_at,
                                          budget, limit, w * h)
        timings["total"] = time.perf_counter() - t0
        self.last_timings = timings
        self.last_stats = {"quality": q, "bytes": len(data), "bpp": len(data) * 8 / (w * h),
                           "width": w, "height": h}
        return data

    def _analysis(self, eng: _Engine, rgb: np.ndarray, scales, timings: dict) -> np.ndarray:
        t = time.perf_counter()
        y = eng.transforms.analysis(rgb, scales)
        timings["analysis"] += time.perf_counter() - t
        return y

    def _quantize(self, eng: _Engine, y: np.ndarray, quality: float, timings: dict,
                  rgb: np.ndarray | None = None, refine: int = 0) -> _Latents:
        core, pkg = _core(), eng.package
        gain = pkg.gain(quality)
        yg = y * gain[:, None, None]
        t = time.perf_counter()
        z = eng.transforms.hyper_analysis(yg)
        timings["hyper_analysis"] += time.perf_counter() - t
        if refine:
            t = time.perf_counter()
            yg, z = self._refine(eng, rgb, yg, z, quality, refine)
            timings["refine"] = timings.get("refine", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        z_hat = np.rint(np.clip(np.nan_to_num(z), -(2.0 ** 30), 2.0 ** 30)).astype(np.int32)
        mu, index = self._hyper_synthesis(eng, z_hat)
        timings["hyper_synthesis"] += time.perf_counter() - t
        t = time.perf_counter()
        s = core.quantize_residual(np.ascontiguousarray(yg), mu)
        timings["quantize"] += time.perf_counter() - t
        return _Latents(quality, gain, z_hat, s, mu, index)

    def _refine(self, eng: _Engine, rgb, yg, z, quality: float, steps: int):
        """Latents fitted to this image by gradient descent (torch; the decoder is unchanged)."""
        try:
            from .train.refine import refine_latents
        except ImportError as e:
            raise AecError("refine needs PyTorch: pip install 'aecodec[train]' "
                           f"({e})") from None
        pkg = eng.package
        yg, z, stats = refine_latents(pkg.path, pkg.content_hash, rgb, yg, z, quality, steps,
                                      self.threads, self.device, self.refine_progress)
        self.last_refine = stats
        return yg, z

    def _hyper_synthesis(self, eng: _Engine, z_hat: np.ndarray):
        hs = eng.package.hyper
        return _core().hyper_synthesis(
            np.ascontiguousarray(z_hat), hs["w1"], hs["b1"], hs["w2"], hs["b2"], hs["w3"],
            hs["b3"], eng.package.tables["scale_log_thresholds"], self.threads)

    def _write(self, eng: _Engine, lat: _Latents, p: Prepared, alpha, timings,
               orientation: int = 0) -> bytes:
        pkg = eng.package
        t = time.perf_counter()
        m, h, w = lat.s.shape
        n_slices = max(1, -(-(m * h * w) // self.slice_symbols))
        rows = -(-h // n_slices)
        header = Header(
            width=p.rgb.shape[1], height=p.rgb.shape[0], mode=p.mode, quality=float(lat.quality),
            model_name=pkg.name, model_hash=pkg.hash_bytes[:container.HASH_LEN], slice_rows=rows,
            orientation=orientation)
        z_stream = eng.z_tables.encode(lat.z_hat, _z_index(lat.z_hat.shape), lanes=Z_LANES)

        def code_slice(bounds):
            a, b = bounds
            return eng.y_tables.encode(np.ascontiguousarray(lat.s[:, a:b]),
                                       np.ascontiguousarray(lat.index[:, a:b]), lanes=Y_LANES)

        y_streams = self._map(code_slice, header.slice_bounds())
        timings["entropy_encode"] += time.perf_counter() - t
        t = time.perf_counter()
        data = AecFile(header, z_stream, y_streams, alpha, dict(p.metadata)).to_bytes()
        timings["container"] += time.perf_counter() - t
        return data

    def _search_bpp(self, encode_at, target_bytes: float):
        """Highest quality whose file fits target_bytes (bisection; size grows with quality)."""
        best = encode_at(100.0)
        if len(best) <= target_bytes:
            return best, 100.0
        lo, lo_data = 0.0, encode_at(0.0)
        if len(lo_data) > target_bytes:
            return lo_data, 0.0
        hi = 100.0
        for _ in range(SEARCH_STEPS):
            mid = (lo + hi) / 2
            data = encode_at(mid)
            if len(data) <= target_bytes:
                lo, lo_data = mid, data
            else:
                hi = mid
        return lo_data, lo

    def _search_psnr(self, limit: float, sse_at, encode_at):
        """Lowest quality whose reconstruction is within limit SSE, i.e. reaches the target
        PSNR (bisection on quality)."""

        def reaches(q):
            return sse_at(q) <= limit

        if reaches(0.0):
            return encode_at(0.0), 0.0
        lo, hi = 0.0, 100.0
        if reaches(hi):
            for _ in range(PSNR_SEARCH_STEPS):
                mid = (lo + hi) / 2
                if reaches(mid):
                    hi = mid
                else:
                    lo = mid
        return encode_at(hi), hi

    def _best_orientation(self, eng: _Engine, q: float, orientations, data: bytes, encode_at,
                          sse_at, budget: float | None, limit: float | None,
                          pixels: int) -> bytes:
        """The best of the files coding the image at quality q in each orientation.

        With a byte budget: the least SSE among files within it; with an SSE limit (a PSNR
        target): the fewest bytes among files within it; where no file fits, the one nearest.
        Otherwise the least bits + λ(q)·MSE, the loss the model was trained for."""
        cands = [(data, sse_at(q, 0))] + [(encode_at(q, t), sse_at(q, t))
                                          for t in orientations if t != 0]
        if budget is not None:
            fit = [c for c in cands if len(c[0]) <= budget]
            return (min(fit, key=lambda c: (c[1], len(c[0]))) if fit else
                    min(cands, key=lambda c: len(c[0])))[0]
        if limit is None:
            lam = eng.package.lmbda(q)
            return min(cands, key=lambda c: len(c[0]) * 8 / pixels + lam * c[1] / (3 * pixels))[0]
        fit = [c for c in cands if c[1] <= limit]
        return (min(fit, key=lambda c: (len(c[0]), c[1])) if fit else
                min(cands, key=lambda c: c[1]))[0]

    # -- decoding --
    def decompress(self, data_or_path) -> Image.Image:
        """Decode .aec bytes (or a path / binary file) to a PIL image (mode as recorded)."""
        t0 = time.perf_counter()
        timings = {}
        data = read_input(data_or_path)
        t = time.perf_counter()
        f = container.parse(data)
        timings["container"] = time.perf_counter() - t
        eng = self._engine(f.header.model_name, f.header.model_hash.hex())
        _, s, mu = self._decode_symbols(eng, f, timings)
        gain = eng.package.gain(f.header.quality)
        t = time.perf_counter()
        y_hat = _core().dequantize(s, mu)
        del s, mu  # keep only what g_s needs: memory stays bounded for large images
        y_hat /= gain[:, None, None]
        cw, ch = f.header.coded_size
        rgb = eng.transforms.synthesis(y_hat, ch, cw, eng.package.decoder_scales(f.header.quality))
        if f.header.orientation:
            rgb = np.ascontiguousarray(orient(rgb, f.header.orientation, inverse=True))
        timings["synthesis"] = time.perf_counter() - t
        alpha = decode_alpha(f.alpha, f.header.width, f.header.height) if f.alpha else None
        im = _to_image(rgb, f.header.mode, alpha, f.metadata)
        timings["total"] = time.perf_counter() - t0
        self.last_timings = timings
        self.last_stats = {"quality": f.header.quality, "bytes": len(data),
                           "bpp": len(data) * 8 / (f.header.width * f.header.height),
                           "width": f.header.width, "height": f.header.height}
        return im

    def decode_latents(self, data_or_path) -> tuple[Header, np.ndarray, np.ndarray]:
        """Entropy-decode only: (header, ẑ int32 [Nz,h/4,w/4], s int32 [M,h,w])."""
        f = container.parse(read_input(data_or_path))
        eng = self._engine(f.header.model_name, f.header.model_hash.hex())
        z_hat, s, _ = self._decode_symbols(eng, f, {})
        return f.header, z_hat, s

    def _decode_symbols(self, eng: _Engine, f: AecFile, timings: dict):
        pkg, hd = eng.package, f.header
        if hd.latent_channels is not None and (hd.latent_channels, hd.hyper_channels) != (
                pkg.latent_channels, pkg.hyper_channels):  # recorded by version-1 files
            raise CorruptFileError(
                f"damaged .aec file: its latent channels ({hd.latent_channels}, "
                f"{hd.hyper_channels}) do not match model {pkg.name}")
        t = time.perf_counter()
        zshape = (pkg.hyper_channels, hd.hyper_height, hd.hyper_width)
        try:
            z_hat = eng.z_tables.decode(f.z_stream, _z_index(zshape))
        except ValueError as e:
            raise CorruptFileError(f"damaged .aec file: cannot decode the Z stream ({e})") from e
        timings["entropy_decode"] = time.perf_counter() - t
        t = time.perf_counter()
        mu, index = self._hyper_synthesis(eng, z_hat)
        timings["hyper_synthesis"] = time.perf_counter() - t
        t = time.perf_counter()
        s = np.empty(mu.shape, dtype=np.int32)

        def decode_slice(i_bounds):
            i, (a, b) = i_bounds
            try:
                s[:, a:b] = eng.y_tables.decode(f.y_streams[i],
                                                np.ascontiguousarray(index[:, a:b]))
            except ValueError as e:
                raise CorruptFileError(
                    f"damaged .aec file: cannot decode Y slice {i} ({e})") from e

        self._map(decode_slice, enumerate(hd.slice_bounds()))
        timings["entropy_decode"] += time.perf_counter() - t
        return z_hat, s, mu

    def _synthesize(self, eng: _Engine, lat: _Latents, height: int, width: int) -> np.ndarray:
        y_hat = _core().dequantize(lat.s, lat.mu)
        y_hat /= lat.gain[:, None, None]
        return eng.transforms.synthesis(y_hat, height, width,
                                        eng.package.decoder_scales(lat.quality))


_shared: dict = {}
_shared_lock = threading.Lock()


def shared(model: str | None = None, device: str = "cpu", threads: int = 0) -> Codec:
    """One Codec per (model, device, threads), shared by aecodec.compress/decompress and the
    Pillow plugin, so sessions are created once per process."""
    key = (model, device, int(threads or 0))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Codec(model, device=device, threads=threads)
        return _shared[key]


def _sse(a: np.ndarray, b: np.ndarray, rows: int = 256) -> float:
    """Sum of squared differences of two uint8 images, exact (float64 sums of integers below
    2**53), a band of rows at a time so a large image needs no full-size float copy."""
    total = 0.0
    for r in range(0, a.shape[0], rows):
        d = a[r : r + rows].astype(np.float64) - b[r : r + rows]
        total += float(np.dot(d.ravel(), d.ravel()))
    return total


def _sse_of_psnr(psnr: float, n: int) -> float:
    """The sum of squared errors (0–255) of n samples at which their PSNR is psnr dB."""
    return n * 255.0 ** 2 / 10 ** (psnr / 10)


def _z_index(shape) -> np.ndarray:
    """Table index of every ẑ symbol: its channel, int32 of the given [Nz, h, w] shape."""
    nz, zh, zw = shape
    return np.ascontiguousarray(np.broadcast_to(
        np.arange(nz, dtype=np.int32)[:, None, None], (nz, zh, zw)))
