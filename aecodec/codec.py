"""The codec (docs/model-package.md): image → transform → quantize → code → container.

    encode:  pixels ─► g_a ─► y ─► ·gain ─► h_a ─► ẑ ─► exact h_s (core) ─► μ, table index
             s = round(y·gain − μ) ─► rANS per latent-row slice (thread pool) ─► .aec
    decode:  .aec ─► ẑ ─► exact h_s ─► μ, index ─► s (slices in parallel) ─► ŷ = (s+μ)/gain ─► g_s

`Codec` holds what calls share (model packages, onnxruntime sessions, rANS tables, a thread
pool) and nothing of any one call: `encode`/`decode` return their results (results.py), so one
Codec serves many threads. The stages are in images.py, encoder.py, rate_control.py and
decoder.py; engine.py is a loaded model. Only the core's exact kernels choose tables and means,
so symbols decode identically on any machine, thread count or device.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from . import arguments, container, model_package, rate_control
from .arguments import DEFAULT_QUALITY
from .container import Header
from .decoder import decode_image, decode_symbols
from .encoder import STAGES, ImageEncoder, Refiner, encode_image, wants_preview
from .engine import Engine, Latents
from .geometry import PREVIEW_SCALES
from .images import (
    AecSource,
    ImageSource,
    MetadataValue,
    Prepared,
    orient,
    prepare,
    read_input,
    with_metadata,
)
from .rate_control import DEFAULT_EFFORT
from .results import DecodeResult, EncodeResult, Timings
from .transform import TILE, Transforms

__all__ = ["DEFAULT_EFFORT", "DEFAULT_QUALITY", "SLICE_SYMBOLS", "Codec", "orient", "shared"]

# About this many latent symbols per independently coded Y slice: one slice for a Kodak-size
# image (each slice costs ~20 bytes of framing plus its lanes' final states), several for the
# threads on a large one.
SLICE_SYMBOLS = 1 << 20


class Codec:
    """A reusable, thread-safe codec: loads model packages once, keeps their sessions.

    model: package name (default model_package.DEFAULT_MODEL) or a package folder, used to
    encode; decoding uses the model each file names. device: "cpu" or "cuda". threads: worker
    threads for onnxruntime, the exact kernel and entropy coding (0: all cores). model_path:
    extra directories to search for packages (before $AECODEC_MODEL_PATH). tile: latents per
    side of a g_a/g_s tile (memory bound); slice_symbols: about how many latent symbols go in
    each independently coded slice (recorded in the file).

    `encode`/`decode` return each call's timings and figures. `last_timings`, `last_stats` and
    `last_refine` are a deprecated convenience: those of the calling thread's last call."""

    def __init__(self, model: str | None = None, device: str = "cpu", threads: int = 0,
                 model_path=None, tile: int = TILE, slice_symbols: int = SLICE_SYMBOLS):
        from .transform import providers

        self.threads = arguments.threads(threads)
        self.tile = arguments.at_least_one("tile", tile)
        self.slice_symbols = arguments.at_least_one("slice_symbols", slice_symbols)
        providers(device)  # fail now, with what to install, not at the first image
        self.model = model or model_package.DEFAULT_MODEL
        self.device = device
        self.model_path = [model_path] if isinstance(model_path, (str, os.PathLike)) else (
            list(model_path or []))
        if model and model_package.is_folder(model):  # it decodes the files it writes, too
            self.model_path.insert(0, Path(model).parent)
        self._engines: dict = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()  # the deprecated last_* of each thread
        # Deprecated: called as (steps done, steps) while refining when a call gives no
        # `progress`; shared by every thread, so pass progress= instead.
        self.refine_progress: Callable[[int, int], None] | None = None

    # -- resources --
    def _engine(self, name: str | None = None, content_hash: str | None = None) -> Engine:
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
                    eng = Engine(pkg, Transforms(pkg, self.device, self.threads, self.tile))
                self._engines[key] = eng
            return eng

    @property
    def package(self) -> model_package.ModelPackage:
        """The model package used to encode."""
        return self._engine().package

    def _map(self, fn, items) -> list:
        items = list(items)
        workers = self.threads or os.cpu_count() or 1
        if len(items) <= 1 or workers <= 1:
            return [fn(i) for i in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="aecodec")
            pool = self._pool
        return list(pool.map(fn, items))

    def _hyper_synthesis(self, eng: Engine, z_hat: np.ndarray):
        return eng.hyper_synthesis(z_hat, self.threads)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # -- the deprecated per-thread results of the last call --
    @property
    def last_timings(self) -> dict:
        return getattr(self._local, "timings", {})

    @property
    def last_stats(self) -> dict:
        return getattr(self._local, "stats", {})

    @property
    def last_refine(self) -> dict:
        return getattr(self._local, "refine", {})

    def _remember(self, result: EncodeResult | DecodeResult) -> None:
        self._local.timings, self._local.stats = result.timings, result.stats
        if isinstance(result, EncodeResult):
            self._local.refine = result.refine

    # -- encoding --
    def compress(self, img: ImageSource,
                 quality: float | None = None, *, bpp: float | None = None,
                 psnr: float | None = None, metadata: bool = True,
                 icc_profile: MetadataValue = None,
                 exif: MetadataValue = None,
                 xmp: MetadataValue = None,
                 refine: int = 0, effort: int = DEFAULT_EFFORT,
                 progress: Callable[[int, int], None] | None = None,
                 preview: bool | None = None) -> bytes:
        """Encode an image (PIL image, uint8 array or path) to .aec bytes (see `encode`)."""
        return self.encode(img, quality, bpp=bpp, psnr=psnr, metadata=metadata,
                           icc_profile=icc_profile, exif=exif, xmp=xmp, refine=refine,
                           effort=effort, progress=progress, preview=preview).data

    def encode(self, img: ImageSource,
               quality: float | None = None, *, bpp: float | None = None,
               psnr: float | None = None, metadata: bool = True,
               icc_profile: MetadataValue = None,
               exif: MetadataValue = None,
               xmp: MetadataValue = None,
               refine: int = 0, effort: int = DEFAULT_EFFORT,
               progress: Callable[[int, int], None] | None = None,
               preview: bool | None = None) -> EncodeResult:
        """Encode an image (PIL image, uint8 array or path): the file and its figures.

        Give at most one of quality (0–100, higher is better, default 75), bpp (target bits per
        pixel of the whole file: the highest quality that fits) and psnr (target RGB PSNR in dB:
        the lowest quality that reaches it). metadata=False drops ICC/EXIF/XMP; icc_profile,
        exif and xmp (bytes) replace the image's own.

        effort (1–5, default 1) is how hard the encoder searches; the decoder is the same.
        1–3 code 1, 2 or all 8 orientations of the image and keep the best file (each costs
        about one encode and one decode more). 4 and 5 (need torch) then refine the chosen
        file's latents by gradient descent on the model's own rate + λ·distortion
        (aecodec.train.refine): 4 as effort 2 plus 12 steps (fewer above 6.7 MP), 5 as effort 3
        plus 40; the refined file is kept only if it is the better one (and meets the target).
        refine=N (needs torch) refines by N steps at any effort. progress is called as
        (steps done, steps) while refining.

        preview: embed the image at 1/8 of its size, coded at the same quality (~1–3 % of the
        file), so that a thumbnail (decode(scale=8), Pillow's draft) skips the full-size
        decode; None (default): for images of 2048 px or more on their short side
        (encoder.PREVIEW_MIN_SIDE), whose 1/8 serves a 256-px thumbnail."""
        quality, bpp, psnr = arguments.target(quality, bpp, psnr)
        refine, effort = arguments.refine(refine), arguments.effort(effort)
        preview = arguments.preview(preview)
        t0 = time.perf_counter()
        timings = Timings.fromkeys(STAGES, 0.0)
        with timings.stage("prepare"):
            p = with_metadata(prepare(img, metadata), metadata, icc_profile, exif, xmp)
            eng = self._engine()
            h, w = p.rgb.shape[:2]
            container.check_pixels(w, h)
        steps = refine or rate_control.refine_steps(effort, w * h)
        refiner = Refiner(steps, self.threads, self.device,
                          progress or self.refine_progress) if steps else None
        enc = ImageEncoder(eng, p, self.threads, self.slice_symbols, self._map, timings, refiner,
                           wants_preview(preview, w, h))
        q = DEFAULT_QUALITY if quality is None else quality
        data, q, t = encode_image(enc, q, bpp, psnr, effort)
        timings["total"] = time.perf_counter() - t0
        result = EncodeResult(data, q, t, w, h, dict(timings),
                              dict(refiner.stats) if refiner else {})
        self._remember(result)
        return result

    # -- decoding --
    def decompress(self,
                   data_or_path: AecSource,
                   *, scale: int = 1, profile: str = "exact") -> Image.Image:
        """Decode .aec bytes (or a path / binary file) to a PIL image (mode as recorded).
        scale 2, 4 or 8: a preview of ceil(size / scale) (see `decode`).
        profile "fast": the model's lighter synthesis (see `decode`)."""
        return self.decode(data_or_path, scale=scale, profile=profile).image

    def decode(self, data_or_path: AecSource,
               *, scale: int = 1, profile: str = "exact") -> DecodeResult:
        """Decode .aec bytes (or a path / binary file): the image and the call's figures.

        scale 2, 4 or 8 decodes a preview of ceil(width / scale) × ceil(height / scale): the
        same symbols and exact hyper-synthesis, then the model's preview head (a learned
        convolution of the latents, docs/model-package.md) instead of g_s; for a model without
        one, the full image reduced by `scale`. scale 8 of a file that embeds a preview (large
        images, see `encode`) decodes that instead (with the fast profile where the model has
        one): a fraction of the work.

        profile "fast" runs the model's fast decoder profile (a lighter g_s distilled from its
        own, `fast.npz`; the same symbols, slightly different pixels) instead of its g_s; a
        model without one raises ModelPackageError. "exact" (default): the reference."""
        is_int = isinstance(scale, (int, np.integer)) and not isinstance(scale, bool)
        if not is_int or scale not in (1, *PREVIEW_SCALES):
            allowed = ", ".join(map(str, (1, *PREVIEW_SCALES[:-1])))
            raise ValueError(f"scale must be {allowed} or {PREVIEW_SCALES[-1]}, not {scale!r}")
        profile = arguments.profile(profile)
        t0 = time.perf_counter()
        timings = Timings()
        data = read_input(data_or_path)
        with timings.stage("container"):
            f = container.parse(data)
        eng = self._engine(f.header.model_name, f.header.model_hash.hex())
        im = decode_image(eng, f, self.threads, self._map, timings, int(scale), profile)
        timings["total"] = time.perf_counter() - t0
        result = DecodeResult(im, f.header.quality, len(data), dict(timings))
        self._remember(result)
        return result

    def file_latents(self,
                     data_or_path: AecSource
                     ) -> tuple[Header, Engine, Latents]:
        """A file's header, model and latents (symbols, μ and table indexes) from entropy
        decoding and the exact h_s alone, without g_s (aecodec.analysis)."""
        f = container.parse(read_input(data_or_path))
        eng = self._engine(f.header.model_name, f.header.model_hash.hex())
        return f.header, eng, decode_symbols(eng, f, self.threads, self._map, Timings())

    def image_latents(self, p: Prepared, quality: float) -> tuple[Engine, Latents]:
        """The latents the encoder writes for a prepared image at a quality, as it is
        (orientation 0), with the encoding model (aecodec.analysis)."""
        eng = self._engine()
        enc = ImageEncoder(eng, p, self.threads, self.slice_symbols, self._map, Timings())
        return eng, enc.latents(quality, 0)

    def decode_latents(self,
                       data_or_path: AecSource
                       ) -> tuple[Header, np.ndarray, np.ndarray]:
        """Entropy-decode only: (header, ẑ int32 [Nz,h/4,w/4], s int32 [M,h,w])."""
        f = container.parse(read_input(data_or_path))
        eng = self._engine(f.header.model_name, f.header.model_hash.hex())
        lat = decode_symbols(eng, f, self.threads, self._map, Timings())
        return f.header, lat.z_hat, lat.s


_shared: dict = {}
_shared_lock = threading.Lock()


def shared(model: str | None = None, device: str = "cpu", threads: int = 0) -> Codec:
    """One Codec per (model, device, threads), shared by aecodec.compress/decompress and the
    Pillow plugin, so sessions are created once per process."""
    key = (model, device, arguments.threads(threads))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Codec(model, device=device, threads=threads)
        return _shared[key]
