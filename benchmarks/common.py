"""Shared pieces of the benchmarks: codec adapters, image loading, run metadata.

Every codec is wrapped in a small adapter with the same interface, so that the rate–distortion and
speed benchmarks treat aecodec and its peers identically:

    adapter.unavailable() -> None, or a one-line reason (the codec is then skipped, not a crash)
    adapter.encode(rgb_uint8_array, setting) -> bytes     (the whole file, as it would be stored)
    adapter.decode(bytes) -> rgb_uint8_array
    adapter.last_timings -> dict of stage times (aecodec only)

Settings are each codec's own knob (quality 0–100, or distance for JPEG XL); ``settings`` holds the
default list used by the RD benchmark: for the peers six points near 0.1, 0.2, 0.4, 0.75, 1.3 and
2 bpp on Kodak (enough for BD-rates, and what fits the time budget), for aecodec eight qualities
spread over 0–100.  ``speed_setting`` is the one used by the speed benchmark (near 0.75 bpp).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "kodak"
DEFAULT_OUT = REPO / "benchmarks" / "results"
DEFAULT_ANCHORS = REPO / ".." / "shared" / "anchors" / "kodak_published.json"


# ---------------------------------------------------------------------------------------------
# images


def list_images(folder: Path, n: Optional[int] = None) -> List[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"error: image folder {folder} does not exist (use --data)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise SystemExit(f"error: no .png images in {folder}")
    return paths if n is None else paths[:n]


def load_rgb(path) -> np.ndarray:
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def make_mosaic(paths: List[Path], width: int = 4032, height: int = 3024,
                tile: Tuple[int, int] = (672, 504)) -> np.ndarray:
    """A deterministic 12-megapixel photo (4032×3024, the size of a 12 MP phone camera): a 6×6
    mosaic of centre crops of the given images in sorted order, portrait ones turned to landscape.
    Real pixels at their native scale (upscaling would make the photo unrealistically smooth)."""
    tw, th = tile
    cols, rows = width // tw, height // th
    out = np.zeros((height, width, 3), np.uint8)
    for i in range(rows * cols):
        a = load_rgb(paths[i % len(paths)])
        if a.shape[0] > a.shape[1]:
            a = np.rot90(a)
        y0, x0 = (a.shape[0] - th) // 2, (a.shape[1] - tw) // 2
        r, c = divmod(i, cols)
        out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = a[y0:y0 + th, x0:x0 + tw]
    return out


# ---------------------------------------------------------------------------------------------
# codec adapters


class Adapter:
    name = "?"
    label = "?"
    knob = "quality"
    settings: List = []
    speed_setting = None
    threaded = False  # whether `threads` changes anything

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.last_timings: Dict[str, float] = {}

    def unavailable(self) -> Optional[str]:
        return None

    def version(self) -> str:
        return ""

    def describe(self) -> str:
        return ""

    def origin(self) -> dict:
        return {}

    def encode(self, rgb: np.ndarray, setting) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


def _pil_save(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def _pil_load(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


class Jpeg(Adapter):
    name, label = "jpeg", "JPEG"
    settings = [3, 7, 17, 36, 68, 87]
    speed_setting = 50

    def version(self):
        from PIL import features
        turbo = features.version("libjpeg_turbo")
        lib = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
        return f"Pillow {Image.__version__}, {lib}"

    def describe(self):
        return "Pillow, 4:2:0, optimize=True"

    def encode(self, rgb, setting):
        return _pil_save(rgb, "JPEG", quality=int(setting), optimize=True)

    def decode(self, data):
        return _pil_load(data)


class Webp(Adapter):
    name, label = "webp", "WebP"
    # WebP is the bar for the default model, so it is sampled densely (12 points, ~0.1–1.9 bpp on
    # Kodak): with the earlier 6 its piecewise-linear curve sagged below the real one between
    # points and the BD-rate against it read ~0.7 points too high (4.1 % vs 3.4 %, 2026-12-01).
    settings = [0, 2, 5, 10, 15, 25, 40, 60, 72, 82, 86, 90]
    speed_setting = 70

    def unavailable(self):
        from PIL import features
        return None if features.check("webp") else "Pillow was built without WebP"

    def version(self):
        from PIL import features
        return f"Pillow {Image.__version__}, libwebp {features.version('webp')}"

    def describe(self):
        return "Pillow, method=6 (4:2:0, lossy)"

    def encode(self, rgb, setting):
        return _pil_save(rgb, "WEBP", quality=int(setting), method=6)

    def decode(self, data):
        return _pil_load(data)


class Avif(Adapter):
    name, label = "avif", "AVIF"
    settings = [8, 24, 40, 56, 70, 82]
    speed_setting = 60
    threaded = True

    def unavailable(self):
        from PIL import features
        return None if features.check("avif") else "Pillow was built without AVIF (Pillow >= 11.2)"

    def version(self):
        from PIL import features
        return f"Pillow {Image.__version__}, libavif {features.version('avif')}"

    def describe(self):
        return "Pillow, speed=6, 4:4:4, full range"

    def encode(self, rgb, setting):
        return _pil_save(rgb, "AVIF", quality=int(setting), speed=6, subsampling="4:4:4",
                         max_threads=self.threads)

    def decode(self, data):
        from PIL import AvifImagePlugin
        AvifImagePlugin.DEFAULT_MAX_THREADS = self.threads  # read by the decoder on open
        return _pil_load(data)


class Jxl(Adapter):
    name, label = "jxl", "JPEG XL"
    knob = "distance"
    settings = [25.0, 12.0, 6.5, 3.5, 1.9, 1.15]
    speed_setting = 2.5
    threaded = True

    def unavailable(self):
        try:
            import imagecodecs
        except ImportError:
            return "imagecodecs is not installed (pip install imagecodecs)"
        if not imagecodecs.JPEGXL.available:
            return "this imagecodecs build has no JPEG XL"
        return None

    def version(self):
        import imagecodecs
        return f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}"

    def describe(self):
        return "imagecodecs, effort=7, bare codestream"

    def encode(self, rgb, setting):
        import imagecodecs
        return bytes(imagecodecs.jpegxl_encode(rgb, distance=float(setting), effort=7,
                                               numthreads=self.threads))

    def decode(self, data):
        import imagecodecs
        return np.asarray(imagecodecs.jpegxl_decode(data, numthreads=self.threads))


class Aec(Adapter):
    name, label = "aecodec", "aecodec"
    settings = [0, 14, 29, 43, 57, 71, 86, 100]
    speed_setting = 50
    threaded = True
    model = None  # model package name; None = the runtime's default
    effort = None  # encoder effort 1-3 (orientations tried); None = the runtime's default

    def __init__(self, threads: int = 1):
        super().__init__(threads)
        self._codec = None

    def unavailable(self):
        try:
            import aecodec
        except ImportError as e:
            return f"aecodec is not importable ({e}); run `pip install .` in the repository"
        if not hasattr(aecodec, "Codec"):
            return "this aecodec has no Codec API yet"
        try:  # the model loads lazily: a tiny round trip proves it is there and works
            self.codec.decompress(self.codec.compress(np.zeros((64, 64, 3), np.uint8), quality=50))
        except Exception as e:  # a missing/broken model package must not crash the run
            return f"aecodec cannot encode: {type(e).__name__}: {e}"
        return None

    @property
    def codec(self):
        if self._codec is None:
            import aecodec
            self._codec = aecodec.Codec(model=self.model, device="cpu", threads=self.threads)
        return self._codec

    def version(self):
        import aecodec
        return f"aecodec {getattr(aecodec, '__version__', '?')}, model {self.model_info()}"

    def origin(self) -> dict:
        import aecodec
        m = model_manifest(self.model)
        arch, prov = m.get("architecture", {}), m.get("provenance", {})
        return {"module": str(Path(aecodec.__file__).parent), "model": self.model_info(),
                "model_path_env": os.environ.get("AECODEC_MODEL_PATH", ""),
                "content_hash": m.get("content_hash"),
                "kmac_per_pixel": arch.get("kmac_per_pixel"),
                "training_steps": prov.get("steps"),
                "effort": self.effective_effort(),
                "manifest_measured": {k: v for k, v in m.items()
                                      if "kodak" in k.lower() or "measured" in k.lower()}}

    def effective_effort(self) -> int:
        import aecodec
        return self.effort if self.effort is not None else aecodec.DEFAULT_EFFORT

    def model_info(self) -> str:
        m = model_manifest(self.model)
        if not m:
            return self.model or "default"
        h = m.get("content_hash") or m.get("hash") or ""
        return f"{m.get('name', self.model or 'default')}" + (f" ({str(h)[:12]})" if h else "")

    def describe(self):
        try:
            import onnxruntime
            ort = f" {onnxruntime.__version__}"
        except ImportError:
            ort = ""
        return f"CPU, onnxruntime{ort}, effort {self.effective_effort()}"

    def encode(self, rgb, setting):
        kw = {} if self.effort is None else {"effort": self.effort}
        result = self.codec.encode(rgb, quality=setting, **kw)
        self.last_timings = dict(result.timings)
        return bytes(result.data)

    def decode(self, data):
        result = self.codec.decode(data)
        self.last_timings = dict(result.timings)
        return np.asarray(result.image.convert("RGB"))


ADAPTERS = {a.name: a for a in (Aec, Jpeg, Webp, Avif, Jxl)}


def make_adapter(name: str, threads: int = 1, model: Optional[str] = None,
                 effort: Optional[int] = None) -> Adapter:
    a = ADAPTERS[name](threads)
    if name == "aecodec" and model:
        a.model = model
    if name == "aecodec" and effort is not None:
        a.effort = effort
    return a


def model_manifest(model: Optional[str]) -> dict:
    """The manifest of the package the runtime would encode with ({} where there is none)."""
    try:
        from aecodec import AecError, model_package
    except ImportError:
        return {}
    try:
        return model_package.read_manifest(model_package.find(model))
    except (AecError, LookupError, ValueError):
        return {}


def stale_model_note(model: Optional[str], repo: Path = REPO) -> Optional[str]:
    """A warning when the runtime would load a different version of `model` than this checkout has.

    Benchmark workers import the *installed* aecodec, whose packages are copies: after `aecodec
    export` into the repo they measure the old model until the project is reinstalled."""
    try:
        from aecodec import AecError, model_package

        name = model or model_package.DEFAULT_MODEL
        used = model_package.find(name)
        m_used = model_package.read_manifest(used)
        # an explicit folder is what gets loaded: models/<relative path> is missing, and an
        # absolute path joins to the folder itself (same hash): no note either way
        m_repo = model_package.read_manifest(repo / "models" / used.name)
    except (ImportError, OSError, ValueError, LookupError, AecError):
        return None
    if m_used.get("content_hash") == m_repo.get("content_hash"):
        return None
    h_used, h_repo = str(m_used.get("content_hash"))[:12], str(m_repo.get("content_hash"))[:12]
    return (f"warning: the runtime loads {name} {h_used} from {used}, "
            f"but this checkout's models/{used.name} is {h_repo}: "
            "reinstall (pip install --no-deps --no-build-isolation .) to measure the checkout's")


def parse_codecs(spec: str) -> List[str]:
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    aliases = {"aec": "aecodec", "jpg": "jpeg", "jpegxl": "jxl", "jpeg-xl": "jxl"}
    names = [aliases.get(n, n) for n in names]
    bad = [n for n in names if n not in ADAPTERS]
    if bad:
        raise SystemExit(f"error: unknown codec(s) {bad}; known: {', '.join(ADAPTERS)}")
    return names


def available_adapters(names: List[str], threads: int, model: Optional[str] = None,
                       effort: Optional[int] = None):
    """Adapters that can run, plus {name: reason} for those skipped (printed to stderr)."""
    ok, skipped = [], {}
    for n in names:
        a = make_adapter(n, threads, model, effort)
        why = a.unavailable()
        if why:
            skipped[n] = why
            print(f"skipping {a.label}: {why}", file=sys.stderr)
        else:
            ok.append(a)
    return ok, skipped


# ---------------------------------------------------------------------------------------------
# run metadata


def git_info() -> dict:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = run("rev-parse", "HEAD")
    # only tracked files that can change the numbers count (not the results, docs or training)
    paths = ["aecodec", "csrc", "models", "setup.py", "pyproject.toml", "benchmarks/common.py",
             "benchmarks/metrics.py", "benchmarks/rd.py", "benchmarks/speed.py"]
    changed = run("diff", "HEAD", "--name-only", "--", *paths, ":(exclude)aecodec/train")
    return {"commit": commit, "short": commit[:8], "dirty": bool(changed),
            "changed": changed.splitlines()}


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    flags = ""
    try:
        txt = Path("/proc/cpuinfo").read_text()
        words = set(txt.split())
        flags = ",".join(f for f in ("avx2", "avx512f", "fma") if f in words)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_flags": flags,
        "memory_gib": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_at_start": loadavg(),
    }


def loadavg():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_line(m: dict) -> str:
    s = f"{m['cpu']}, {m['cores']} cores"
    if m.get("cpu_flags"):
        s += f" ({m['cpu_flags']})"
    if m.get("memory_gib"):
        s += f", {m['memory_gib']:g} GiB RAM"
    s += f", {m['os']}, Python {m['python']}"
    return s


def run_header(command: str, started: datetime.datetime, git: dict, machine: dict,
               elapsed_s: float) -> str:
    commit = git["short"] + (" (+ uncommitted changes)" if git["dirty"] else "")
    load = machine.get("loadavg_at_start")
    load_s = f"; load average at start {load[0]:.1f}" if load else ""
    return (
        f"Measured {started:%Y-%m-%d %H:%M} UTC at commit `{commit}` on {machine_line(machine)}"
        f"{load_s}. Command: `{command}` ({elapsed_s / 60:.1f} min)."
    )


def run_json_child(cmd: List[str], timeout: float) -> dict:
    """Run a benchmark's child process; its result is the last line of stdout that starts
    with "{" (a JSON object), or {"error": why} if it timed out, failed or printed none."""
    import json
    import subprocess

    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"child failed (exit {p.returncode}): {err}"}
    return json.loads(lines[-1])


def save_report(out: Path, stem: str, res: dict, markdown) -> str:
    """Write res to OUT/STEM.json and markdown(res) to OUT/STEM.md; return the markdown."""
    write_json(out / f"{stem}.json", res)
    text = markdown(res)
    write_text(out / f"{stem}.md", text)
    return text


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
