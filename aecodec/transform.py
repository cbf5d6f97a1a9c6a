"""The learned transforms g_a, h_a, g_s: onnxruntime sessions, padding, tiled execution.

g_a and g_s run on tiles of the latent grid with a halo, so memory stays bounded for any image
size. Both are four stride-2 5×5 (transposed) convolutions with pointwise (I)GDN: a latent depends
on pixels within ±30 of its 16×16 block, and a pixel block on latents i-1..i+2, so a halo of
HALO = 2 latents makes every kept value equal to the untiled one (up to float rounding).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from .errors import DeviceError, ModelPackageError
from .geometry import STRIDE, padded, reduced_size
from .model_package import short_hash

if TYPE_CHECKING:
    import onnxruntime as ort

# Latents per tile side (512 pixels) of g_a. onnxruntime's (transposed) convolutions use im2col
# buffers of ~kernel_taps × channels × tile area: at 32 (+ halo) the reference g_s peaks near
# 0.5 GB, at 48 above 1.2 GB.
TILE = 32
# Latents per tile side (1024 pixels) of the phase-form g_s (synthesis_fast): no column buffer, one
# N-channel phase tensor at a time, so a larger tile (less halo recomputed) stays within bounds.
SYNTHESIS_TILE = 64
HALO = 2  # latents of context on each side of a tile
GRAPHS = ("phase", "reference")  # g_s graphs: generated phase form (default), the package's own


def providers(device: str) -> list:
    """onnxruntime execution providers for device "cpu" or "cuda"."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(
                'device="cuda" needs onnxruntime with the CUDA provider: pip uninstall '
                'onnxruntime && pip install "aecodec[gpu]" (onnxruntime-gpu, with CUDA and '
                'cuDNN installed); or use device="cpu"')
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise DeviceError(f'unknown device {device!r}: use "cpu" or "cuda"')


def split(n: int, tile: int) -> list[tuple[int, int]]:
    """[0, n) cut into ceil(n/tile) near-equal ranges."""
    k = max(1, -(-n // tile))
    cuts = [round(i * n / k) for i in range(k + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(k)]


def pad(img: np.ndarray) -> np.ndarray:
    """H×W×C uint8 → edge-replicated to multiples of geometry.PAD."""
    h, w = img.shape[:2]
    ph, pw = padded(h) - h, padded(w) - w
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return img


class Transforms:
    """onnxruntime sessions of one model package, created on first use and kept."""

    def __init__(self, package, device: str = "cpu", threads: int = 0, tile: int = TILE,
                 synthesis_graph: str = "phase", synthesis_tile: int | None = None):
        if synthesis_graph not in GRAPHS:
            raise ValueError(f"synthesis_graph must be one of {GRAPHS}, not {synthesis_graph!r}")
        self.package = package
        self.device = device
        self.threads = threads
        self.tile = max(1, int(tile))
        self.synthesis_graph = synthesis_graph
        # g_s tiles: as given; else the phase graph's SYNTHESIS_TILE unless a tile other than the
        # default was asked for (it then bounds both transforms); the reference graph: `tile`.
        if synthesis_tile is None:
            synthesis_tile = (SYNTHESIS_TILE if synthesis_graph == "phase" and self.tile == TILE
                              else self.tile)
        self.synthesis_tile = max(1, int(synthesis_tile))
        self._providers = providers(device)
        self._sessions: dict = {}
        self._lock = threading.Lock()

    def session(self, stage: str) -> ort.InferenceSession | None:
        """The onnxruntime session of "g_a", "h_a", "g_s", "g_s_fast" (the fast profile) or
        "preview<k>" (None if the package has no fast profile, or no preview head for 1/k)."""
        with self._lock:
            if stage not in self._sessions:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self.threads or 0
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                # One input shape per image (see _tiled): the arena is reused as is; a memory
                # pattern would add a second, equally large, block.
                opts.enable_mem_pattern = False
                if stage.startswith("preview") or stage == "g_s_fast":
                    from .synthesis_fast import FAST_FILE, PREVIEW_FILE, fast_graph, preview_graph

                    fast = stage == "g_s_fast"
                    model = (fast_graph(self.package) if fast
                             else preview_graph(self.package, int(stage[7:])))
                    if model is None:
                        self._sessions[stage] = None
                        return None
                    path = self.package.path / (FAST_FILE if fast else PREVIEW_FILE)
                    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                else:
                    path = self.package.onnx_path(stage)  # decode-only: g_a refused here
                    model = str(path)
                if stage == "g_s" and self.synthesis_graph == "phase":
                    from .synthesis_fast import build

                    model = build(path) or model  # None: a g_s of another structure, run as is
                    # Workers sleep rather than spin between operators: on a machine shared
                    # with other work, spinning takes the cores the next operator needs.
                    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                try:
                    self._sessions[stage] = ort.InferenceSession(
                        model, sess_options=opts, providers=self._providers)
                except Exception as e:  # onnxruntime raises its own exception types
                    raise ModelPackageError(f"cannot load {path}: {e}") from e
            return self._sessions[stage]

    def _out_shape(self, stage: str, shape: tuple) -> tuple:
        """The output shape a stage must give for an input [C, h, w] (docs/model-package.md)."""
        pkg, (_, h, w) = self.package, shape
        if stage == "g_a":
            return (pkg.latent_channels, h // STRIDE, w // STRIDE)
        if stage == "h_a":
            return (pkg.hyper_channels, h // 4, w // 4)
        return (3, h * STRIDE, w * STRIDE)

    def _run(self, stage: str, x: np.ndarray, extra: dict | None = None) -> np.ndarray:
        """One run of a stage's graph on x [C, h, w]. A graph that fails, or gives anything but
        float32 of the stage's shape, is a damaged package (ModelPackageError)."""
        sess = self.session(stage)
        want = self._out_shape(stage, x.shape)
        try:
            name = sess.get_inputs()[0].name
            y = sess.run(None, {name: x[None], **(extra or {})})[0]
        except MemoryError:
            raise
        except Exception as e:  # onnxruntime's own types, its wrapper's ValueErrors, IndexError
            raise ModelPackageError(f"cannot run {stage} of model package {self.package.path} "
                                    f"on a {list(x.shape)} input: {e}") from e
        if not (isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (1, *want)):
            raise ModelPackageError(
                f"{stage} of model package {self.package.path} gave "
                f"{getattr(y, 'dtype', type(y).__name__)} {list(getattr(y, 'shape', ()))} for a "
                f"{list(x.shape)} input, not float32 [1, {', '.join(map(str, want))}]")
        return y[0]

    def analysis(self, img: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
        """g_a: H×W×3 uint8 → y float32 [M, h, w] (h, w = padded size / 16), tiled.

        scales: float32 [3, N], the level's channel scales of a level-conditioned g_a (the
        package's encoder_scales(quality)); None for a g_a without them."""
        extra = self._scales_input("g_a", scales)
        px = pad(img)
        h, w = px.shape[0] // STRIDE, px.shape[1] // STRIDE

        def run(r0, r1, c0, c1):
            t = px[r0 * STRIDE : r1 * STRIDE, c0 * STRIDE : c1 * STRIDE]
            x = np.ascontiguousarray(t.transpose(2, 0, 1), dtype=np.float32)
            x *= np.float32(1 / 255)
            return self._run("g_a", x, extra)

        return self._tiled(h, w, 1, run)

    def _scales_input(self, stage: str, scales: np.ndarray | None) -> dict:
        """The extra input of a level-conditioned graph, checked against what the graph takes."""
        wants = len(self.session(stage).get_inputs()) > 1
        if wants != (scales is not None):
            raise ModelPackageError(
                f"{stage} of {self.package.path} {'needs' if wants else 'takes no'} level scales")
        return {} if scales is None else {"scales": np.ascontiguousarray(
            scales[None], dtype=np.float32)}

    def hyper_analysis(self, yg: np.ndarray) -> np.ndarray:
        """h_a: gained latent [M, h, w] → z float32 [Nz, h/4, w/4] (small: not tiled)."""
        return self._run("h_a", np.ascontiguousarray(yg, dtype=np.float32))

    def has_profile(self, profile: str) -> bool:
        """Whether the package has this decoder profile ("exact": always; "fast": fast.npz)."""
        return profile == "exact" or self.session("g_s_fast") is not None

    def synthesis(self, y_hat: np.ndarray, height: int, width: int,
                  scales: np.ndarray | None = None, profile: str = "exact") -> np.ndarray:
        """g_s: ŷ [M, h, w] → height×width×3 uint8 (rounded, clipped, cropped), tiled.

        scales: float32 [3, N], the level's channel scales of a level-conditioned g_s (the
        package's decoder_scales(quality)); None for a g_s without them. profile "fast": the
        package's lighter g_s (`fast.npz`, synthesis_fast.fast_graph) instead."""
        stage = "g_s" if profile == "exact" else "g_s_fast"
        if self.session(stage) is None:
            raise ModelPackageError(
                f"model {self.package.name} ({short_hash(self.package.content_hash)}) has no fast "
                f"decoder profile (no fast.npz in {self.package.path}): decode with "
                f'profile="exact"')
        extra = self._scales_input(stage, scales)
        h, w = y_hat.shape[1:]
        out = np.empty((h * STRIDE, w * STRIDE, 3), dtype=np.uint8)

        def run(r0, r1, c0, c1):
            return self._run(stage, np.ascontiguousarray(y_hat[:, r0:r1, c0:c1]), extra)

        def store(r0, r1, c0, c1, x):  # x: float32 [3, rows, cols] in [0, 1] nominally
            x = np.clip(x * np.float32(255), 0, 255)
            np.rint(x, out=x)
            out[r0 * STRIDE : r1 * STRIDE, c0 * STRIDE : c1 * STRIDE] = x.transpose(1, 2, 0)

        self._tiled(h, w, STRIDE, run, store, self.synthesis_tile)
        return out[:height, :width]

    def preview(self, y_hat: np.ndarray, k: int, height: int, width: int,
                scales: np.ndarray | None = None) -> np.ndarray | None:
        """A 1/k-size image (ceil(height/k) × ceil(width/k) × 3 uint8) of ŷ from the package's
        preview head (synthesis_fast.preview_graph: no g_s), or None if it has none for k."""
        sess = self.session(f"preview{k}")
        if sess is None:
            return None
        feeds = {sess.get_inputs()[0].name: np.ascontiguousarray(y_hat[None])}
        if len(sess.get_inputs()) > 1 and scales is not None:
            feeds[sess.get_inputs()[1].name] = np.ascontiguousarray(scales[None], np.float32)
        x = sess.run(None, feeds)[0][0]
        x = np.clip(x * np.float32(255), 0, 255)
        np.rint(x, out=x)
        out_w, out_h = reduced_size(width, height, k)
        return x.transpose(1, 2, 0).astype(np.uint8)[:out_h, :out_w]

    def _tiled(self, h, w, scale, run, store=None, tile=None):
        """Run `run(r0, r1, c0, c1)` (latent coordinates) on halo'd windows covering h×w; the
        output of a window is scale× its latent extent. Every window has the same shape (edge
        windows are shifted inwards rather than cut), so onnxruntime reuses one memory plan.
        Kept parts go to `store(r0, r1, c0, c1, out)` or are assembled into one array."""
        result = None
        rows, cols = split(h, tile or self.tile), split(w, tile or self.tile)
        whole = len(rows) == 1 and len(cols) == 1
        for r0, r1 in rows:
            wr0, wr1 = (0, h) if whole else _window(r0, r1, h, rows)
            for c0, c1 in cols:
                wc0, wc1 = (0, w) if whole else _window(c0, c1, w, cols)
                y = run(wr0, wr1, wc0, wc1)
                if whole and store is None:
                    return y
                y = y[:, (r0 - wr0) * scale : (r1 - wr0) * scale,
                      (c0 - wc0) * scale : (c1 - wc0) * scale]
                if store is not None:
                    store(r0, r1, c0, c1, y)
                    continue
                if result is None:
                    result = np.empty((y.shape[0], h * scale, w * scale), dtype=y.dtype)
                result[:, r0 * scale : r1 * scale, c0 * scale : c1 * scale] = y
        return result


def _window(a: int, b: int, n: int, parts) -> tuple[int, int]:
    """The fixed-length window around [a, b) with HALO latents of context on each side that has
    neighbours (a window at the border needs none there), shifted to stay inside [0, n)."""
    length = max(q - p for p, q in parts) + 2 * HALO
    if len(parts) == 1 or length >= n:
        return 0, n
    start = min(max(a - HALO, 0), n - length)
    return start, start + length
