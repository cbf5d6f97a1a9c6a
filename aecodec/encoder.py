"""Encoding one image: image → g_a → y·gain → h_a → ẑ → exact h_s → s → rANS → container.

`ImageEncoder` holds one image's encode: the latents and the file at any (quality, orientation)
the rate control asks for, and the reconstruction error there, through the decoder's own
synthesis. `encode_image` is the driver: rate control (rate_control.py) picks the quality, then
the orientation, then (effort ≥ 4 or refine=N) whether the refined latents' file is better.
Each stage adds its wall time to a `Timings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import rate_control
from .container import HASH_LEN, AecFile, Header
from .decoder import MapFn, synthesize
from .engine import Engine, Latents, core, z_index
from .errors import AecError
from .geometry import PREVIEW_SCALE
from .images import Prepared, encode_alpha, orient, reduced
from .results import Timings

# rANS lanes per stream: every lane ends with a 4-byte state (~3 bytes of it overhead). On a Kodak
# image 8 lanes decoded Y in 1.0 ms, 2 lanes in 1.3–1.9 ms (of a ~500 ms decode), and 2 lanes
# saved 20 bytes (0.5 % of a q0 file); ẑ (~12 k symbols) on one lane saved 22 bytes more.
Y_LANES = 2
Z_LANES = 1
# Stages an encode reports even when they took no time (benchmarks/speed.py reads them).
STAGES = ("analysis", "hyper_analysis", "hyper_synthesis", "quantize", "entropy_encode",
          "synthesis", "container", "preview")
# Images at least this many pixels on their short side embed a preview by default (preview=None):
# its 1/8 is then ≥ 256 px a side, so a 256-px draft or thumbnail is served from it. The draft
# decode of the full latents (exact h_s, then the preview head) takes 0.7 s at 12 MP, most of it
# h_s; the embedded preview decodes in ~0.1 s, for 1–3 % more bytes (docs/format.md, "prvw").
PREVIEW_MIN_SIDE = 2048


@dataclass
class Refiner:
    """Refinement of one image's latents by `steps` gradient steps (aecodec.train.refine, which
    needs torch: importing it here, not at module level, keeps torch out of the runtime unless
    effort ≥ 4 or refine=N asks for it). `stats` holds the model's cost estimates."""

    steps: int
    threads: int
    device: str
    progress: Callable[[int, int], None] | None = None
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            from .train.refine import refine_latents
        except ImportError as e:
            raise AecError("effort 4 and 5 and refine=N need PyTorch: pip install "
                           f"'aecodec[train]' ({e})") from None
        self._refine_latents = refine_latents

    def __call__(self, eng: Engine, rgb: np.ndarray, yg: np.ndarray, z: np.ndarray,
                 quality: float) -> tuple[np.ndarray, np.ndarray]:
        pkg = eng.package
        yg, z, self.stats = self._refine_latents(pkg.path, pkg.content_hash, rgb, yg, z,
                                                 quality, self.steps, self.threads,
                                                 self.device, self.progress)
        return yg, z


def quantize(eng: Engine, y: np.ndarray, quality: float, threads: int, timings: Timings,
             refine: Callable | None = None, rgb: np.ndarray | None = None) -> Latents:
    """g_a's output y → the quantized latents at a quality (refined first with `refine`)."""
    yg = y * eng.package.gain(quality)[:, None, None]
    with timings.stage("hyper_analysis"):
        z = eng.transforms.hyper_analysis(yg)
    if refine is not None:
        with timings.stage("refine"):
            yg, z = refine(eng, rgb, yg, z, quality)
    with timings.stage("hyper_synthesis"):
        z_hat = np.rint(np.clip(np.nan_to_num(z), -(2.0 ** 30), 2.0 ** 30)).astype(np.int32)
        mu, index = eng.hyper_synthesis(z_hat, threads)
    with timings.stage("quantize"):
        s = core().quantize_residual(np.ascontiguousarray(yg), mu)
    return Latents(quality, z_hat, s, mu, index)


def write(eng: Engine, lat: Latents, p: Prepared, alpha: bytes | None, orientation: int,
          slice_symbols: int, map_fn: MapFn, timings: Timings,
          preview: bytes | None = None) -> bytes:
    """The .aec file of quantized latents: ẑ on one stream, s in slices of latent rows (coded
    in parallel through map_fn), then the container (with an embedded preview file)."""
    pkg = eng.package
    with timings.stage("entropy_encode"):
        m, h, w = lat.s.shape
        n_slices = max(1, -(-(m * h * w) // slice_symbols))
        header = Header(
            width=p.rgb.shape[1], height=p.rgb.shape[0], mode=p.mode, quality=float(lat.quality),
            model_name=pkg.name, model_hash=pkg.hash_bytes[:HASH_LEN],
            slice_rows=-(-h // n_slices), orientation=orientation)
        z_stream = eng.z_tables.encode(lat.z_hat, z_index(lat.z_hat.shape), lanes=Z_LANES)

        def code_slice(bounds):
            a, b = bounds
            return eng.y_tables.encode(np.ascontiguousarray(lat.s[:, a:b]),
                                       np.ascontiguousarray(lat.index[:, a:b]), lanes=Y_LANES)

        y_streams = map_fn(code_slice, header.slice_bounds())
    with timings.stage("container"):
        return AecFile(header, z_stream, y_streams, alpha, dict(p.metadata),
                       preview).to_bytes()


class ImageEncoder:
    """One image's encode: its latents, file and reconstruction error at any (quality q,
    orientation t). Rate control tries one orientation at a time and revisits the last (q, t)
    (file, then error), so one turned copy and the last latents are kept; g_a's output is kept
    per orientation when g_a does not depend on the quality."""

    def __init__(self, eng: Engine, p: Prepared, threads: int, slice_symbols: int,
                 map_fn: MapFn, timings: Timings, refine: Refiner | None = None,
                 preview: bool = False):
        self.eng, self.p, self.threads = eng, p, threads
        self.slice_symbols, self.map_fn, self.timings = slice_symbols, map_fn, timings
        self.refine = refine
        # The embedded preview's own encoder (the image reduced by PREVIEW_SCALE, coded at the
        # same quality as the image, orientation 0) and its last file, by quality.
        self._preview = ImageEncoder(eng, reduced(p, PREVIEW_SCALE), threads, slice_symbols,
                                     map_fn, Timings()) if preview else None
        self._preview_file: dict = {}
        self.alpha = encode_alpha(p.alpha) if p.alpha is not None else None
        self._level_conditioned = eng.package.encoder_scales(0) is not None
        self._views: dict = {}
        self._analysed: dict = {}
        self._last: dict = {}

    def view(self, t: int) -> np.ndarray:
        """The image in orientation t, C-contiguous."""
        if t not in self._views:
            self._views.clear()
            self._views[t] = self.p.rgb if t == 0 else np.ascontiguousarray(orient(self.p.rgb, t))
        return self._views[t]

    def analysis(self, q: float, t: int) -> np.ndarray:
        """g_a's output y at (q, t): once per quality tried if g_a is level-conditioned, else
        once per t. With a refiner, every orientation's at the last quality is kept: the
        refinement then starts from the chosen one without running g_a again."""
        key = (q, t) if self._level_conditioned else t
        if key not in self._analysed:
            if self._level_conditioned:
                keep = self.refine is not None
                self._analysed = {k: v for k, v in self._analysed.items() if keep and k[0] == q}
            scales = self.eng.package.encoder_scales(q) if self._level_conditioned else None
            with self.timings.stage("analysis"):
                self._analysed[key] = self.eng.transforms.analysis(self.view(t), scales)
        return self._analysed[key]

    def latents(self, q: float, t: int = 0, refined: bool = False) -> Latents:
        """The latents at (q, t), refined by the encoder's Refiner if `refined`."""
        key = (q, t, refined)
        if key not in self._last:
            self._last.clear()
            y = self.analysis(q, t)
            refine = self.refine if refined else None
            self._last[key] = quantize(self.eng, y, q, self.threads, self.timings, refine,
                                       self.view(t) if refine else None)
        return self._last[key]

    def file(self, q: float, t: int = 0, refined: bool = False) -> bytes:
        return write(self.eng, self.latents(q, t, refined), self.p, self.alpha, t,
                     self.slice_symbols, self.map_fn, self.timings, self.preview_file(q))

    def preview_file(self, q: float) -> bytes | None:
        """The embedded preview's .aec file at quality q (None without a preview): part of
        every candidate file, so a bpp target counts its bytes."""
        if self._preview is None:
            return None
        if q not in self._preview_file:
            with self.timings.stage("preview"):
                self._preview_file = {q: self._preview.file(q)}
        return self._preview_file[q]

    def sse(self, q: float, t: int = 0, refined: bool = False) -> float:
        """Sum of squared errors (0–255) of the decoder's reconstruction at (q, t)."""
        x, lat = self.view(t), self.latents(q, t, refined)
        with self.timings.stage("synthesis"):
            rgb = synthesize(self.eng, lat, x.shape[0], x.shape[1])
        return rate_control.sse(rgb, x)


def wants_preview(preview: bool | None, width: int, height: int) -> bool:
    """Whether a file embeds a preview: as asked, or (None) for images of PREVIEW_MIN_SIDE
    pixels or more on their short side."""
    return preview if preview is not None else min(width, height) >= PREVIEW_MIN_SIDE


def encode_image(enc: ImageEncoder, quality: float, bpp: float | None, psnr: float | None,
                 effort: int) -> tuple[bytes, float, int]:
    """(file, quality, orientation): the quality from the target (a bpp or PSNR search, or
    `quality` as given), then, with effort > 1, the best orientation at that quality."""
    w, h = enc.p.rgb.shape[1], enc.p.rgb.shape[0]
    budget = None if bpp is None else bpp * w * h / 8  # bytes
    limit = None if psnr is None else rate_control.sse_of_psnr(psnr, enc.p.rgb.size)
    if budget is not None:
        data, q = rate_control.search_bpp(enc.file, budget)
    elif limit is not None:
        q = rate_control.search_psnr(lambda q: enc.sse(q) <= limit)
        data = enc.file(q)
    else:
        q = quality
        data = enc.file(q)
    turns = [t for t in rate_control.EFFORT_ORIENTATIONS[effort] if t != 0]
    if not turns and enc.refine is None:
        return data, q, 0
    # Candidates (orientation, file, SSE): the file, then its error, per orientation (both
    # from the same latents: one g_a per orientation); then the best one's refined latents.
    # Refining only the chosen file keeps the search's cost to one refinement, and comparing the
    # two real files keeps a refinement that does not pay (or misses a target) out of the result.
    cands = [(0, data, enc.sse(q, 0))] + [(t, enc.file(q, t), enc.sse(q, t)) for t in turns]

    def best() -> tuple:
        i = rate_control.choose_file([(len(f), e) for _, f, e in cands], budget, limit,
                                     enc.eng.package.lmbda(q), w * h)
        return cands[i]

    pick = best()
    if enc.refine is not None:
        t = pick[0]
        cands = [pick, (t, enc.file(q, t, True), enc.sse(q, t, True))]
        pick = best()
    return pick[1], q, pick[0]
