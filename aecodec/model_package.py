"""Model packages: find them, verify their content hash, load manifest, tables and h_s weights.

A package is a folder `<name>/` holding the files of docs/model-package.md. Folders are searched in
this order: the directories in $AECODEC_MODEL_PATH (os.pathsep-separated), then the installed
package data `aecodec.models` or, when aecodec runs from a source checkout, that checkout's
`<repo>/models` (so the tree's code always meets the tree's models).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .container import HASH_LEN
from .errors import ModelNotFoundError, ModelPackageError

if TYPE_CHECKING:
    from collections.abc import Iterable

DEFAULT_MODEL = "hyperprior-mse"
# The model that encodes by default: name + content hash (whole or a prefix of 16+ digits).
# Changing it is how a new model lands; the one it replaces stays installed as decode-only.
DEFAULT_HASH = "de40e52c05b1beaf2ef24ce7c12af85eb889cf2f32ddaaaad4c1799cb63551ab"
ENV_VAR = "AECODEC_MODEL_PATH"
# How much of a content hash messages show and a lookup needs: a file's header keeps HASH_LEN
# bytes of it (container), so a hash is matched by a prefix of at least that many hex digits.
HASH_HEX = 2 * HASH_LEN
# A model id (`<name>@<hash12>`) and its package folder (`<name>-<hash12>`) use 12 hex digits.
ID_HEX = 12

# A model's identity (docs/model-package.md, "Identity"): the files that define the bitstream
# and the reference reconstruction. Only these are hashed into the id that files record, so
# decoder-side extras and encoder files can be added or dropped without orphaning a file.
MANIFEST_FILE = "manifest.json"
G_S_FILE, HYPER_FILE, TABLES_FILE = "g_s.onnx", "hyper_synthesis.npz", "tables.npz"
G_A_FILE, H_A_FILE = "g_a.onnx", "h_a.onnx"
IDENTITY_FILES = (G_S_FILE, HYPER_FILE, TABLES_FILE)
ENCODER_FILES = (G_A_FILE, H_A_FILE)
# Package format 1 hashed the encoder's graphs too: those ids stay as they are (files record
# them), so a format-1 model is verified over these five files while it has them all ...
LEGACY_HASH_FILES = (G_A_FILE, H_A_FILE, G_S_FILE, HYPER_FILE, TABLES_FILE)
# ... and, retired to decode-only, by the hash of its identity files recorded here, in the
# code, so that a manifest cannot vouch for itself.
RETIRED_LEGACY = {
    "e541f20ff70a7916f040f1b254de3d83ea18a5c8ebbf53567d910a38262cf3c5":
        "01605e4dd24de8a04d511b63a713509e755a75261a8b5bf463d57861ba0d1fc1",
}
MAX_MANIFEST = 4 << 20  # bytes: a manifest is a few kB of JSON (the shipped ones ~20 kB)
# What training reads beyond the runtime files (aecodec.train.export writes it).
TRAINING_FILE = "training.npz"
# Every file aecodec reads from a package besides manifest.json: each must be covered by the
# package's content hash (format 1) or by its digest in the manifest's `files` (format 2), or the
# package is refused (verify), so nothing unverified is ever parsed or run.
READ_FILES = (*IDENTITY_FILES, *ENCODER_FILES, TRAINING_FILE)
TABLE_DTYPES = {
    "z_cdf": np.uint32, "z_cdf_len": np.int32, "z_offset": np.int32,
    "y_cdf": np.uint32, "y_cdf_len": np.int32, "y_offset": np.int32,
    "scale_log_thresholds": np.float32, "gains": np.float32,
}
# Level-conditioned g_a and g_s (docs/model-package.md, "level scales").
OPTIONAL_TABLES = {"encoder_scales": np.float32, "decoder_scales": np.float32}
HYPER_KEYS = ("w1", "b1", "w2", "b2", "w3", "b3")


def search_path(extra: Iterable[str | os.PathLike] | None = None) -> list[Path]:
    """Directories that may hold model packages, in search order."""
    dirs: list[Path] = [Path(p) for p in (extra or [])]
    dirs += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "setup.py").is_file():
        # Run from a source checkout: its own <repo>/models. `aecodec.models` could resolve to
        # another install's (an editable install of a different checkout maps that name).
        dirs.append(checkout / "models")
    else:
        try:
            from importlib.resources import files

            dirs.append(Path(str(files("aecodec.models"))))
        except (ImportError, TypeError, ValueError):
            pass
    seen, out = set(), []
    for d in dirs:
        key = os.path.normcase(os.path.abspath(d))
        if key not in seen and d.is_dir():
            seen.add(key)
            out.append(d)
    return out


def compute_hash(folder: Path, names: tuple[str, ...] = IDENTITY_FILES) -> str:
    """SHA-256 over the named files' names, lengths and bytes, in the given order: a model's
    content hash (the one definition, used by `aecodec export` too)."""
    h = hashlib.sha256()
    for name in names:
        try:
            data = (folder / name).read_bytes()
        except OSError as e:
            raise ModelPackageError(
                f"model package {folder} is incomplete ({name}: {e.strerror}): reinstall it") from e
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(folder: Path, manifest: dict) -> str:
    """Check every file of a package against its manifest; return the content hash.

    Raises ModelPackageError naming the damaged or missing file. A format-2 package lists the
    SHA-256 of each of its files (`files`); its content hash covers IDENTITY_FILES."""
    claimed = manifest["content_hash"]
    if manifest.get("format", 1) < 2:  # format 1: one hash over all five runtime files
        _refuse_uncovered(folder, LEGACY_HASH_FILES, "its content hash (package format 1)")
        actual = compute_hash(folder, LEGACY_HASH_FILES)
        if actual != claimed:
            raise ModelPackageError(
                f"model package {folder} is damaged: its files hash to {short_hash(actual)}, its "
                f"manifest says {short_hash(claimed)}; reinstall it")
        return actual
    files = manifest.get("files")
    if not isinstance(files, dict) or not set(IDENTITY_FILES) <= set(files):
        raise ModelPackageError(f"model package {folder}: manifest.json lists no digests of "
                                f"{', '.join(IDENTITY_FILES)}; reinstall it")
    _refuse_uncovered(folder, files, "a digest in manifest.json's files")
    for name, digest in sorted(files.items()):
        path = folder / name
        if os.sep in name or "/" in name or not path.is_file():
            raise ModelPackageError(f"model package {folder} is incomplete: {name} is missing; "
                                    f"reinstall it")
        if file_digest(path) != digest:
            raise ModelPackageError(f"model package {folder} is damaged: {path} does not match "
                                    f"its SHA-256 in manifest.json; reinstall it")
    identity = compute_hash(folder, IDENTITY_FILES)
    if manifest.get("identity") == "format-1":  # a retired format-1 model (RETIRED_LEGACY)
        if RETIRED_LEGACY.get(claimed) != identity:
            raise ModelPackageError(f"model package {folder} claims the format-1 model "
                                    f"{short_hash(claimed)}, but its files are not that model's")
    elif identity != claimed:
        raise ModelPackageError(
            f"model package {folder} is damaged: its files hash to {short_hash(identity)}, its "
            f"manifest says {short_hash(claimed)}; reinstall it")
    return claimed


def _refuse_uncovered(folder: Path, covered, what: str) -> None:
    """Refuse a package holding a file aecodec would read that nothing verifies."""
    loose = [n for n in READ_FILES if n not in covered and (folder / n).exists()]
    if loose:
        raise ModelPackageError(
            f"model package {folder} holds {', '.join(loose)}, not covered by {what}: aecodec "
            f"does not read unverified files; remove {'them' if len(loose) > 1 else 'it'} or "
            "reinstall the package")


def read_manifest(folder: Path) -> dict:
    """A package's manifest.json: a JSON object with a content hash (the one reader of it).
    Raises ModelPackageError if it is missing or not one."""
    path = Path(folder) / MANIFEST_FILE
    try:
        if path.stat().st_size > MAX_MANIFEST:
            raise ModelPackageError(f"{path} is not a model manifest (over {MAX_MANIFEST} bytes)")
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested too deep
        raise ModelPackageError(f"cannot read {path}: {e}") from e
    if not (isinstance(m, dict) and isinstance(m.get("content_hash"), str)):
        raise ModelPackageError(f"{path} is not a model manifest (no content_hash)")
    fmt, files = m.get("format", 1), m.get("files")
    if not (type(fmt) is int and fmt >= 1 and isinstance(m.get("name", ""), str)
            and (files is None or isinstance(files, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()))):
        raise ModelPackageError(f"{path} is not a model manifest (format must be an integer "
                                ">= 1, name a string, files an object of digests)")
    return m


def _read_manifest(folder: Path) -> dict | None:
    """read_manifest, or None where a folder is not a package (searching)."""
    try:
        return read_manifest(folder)
    except ModelPackageError:
        return None


def can_encode(folder: Path) -> bool:
    """Whether a package carries the encoder (a decode-only package keeps IDENTITY_FILES)."""
    return all((folder / f).is_file() for f in ENCODER_FILES)


def short_hash(content_hash: str) -> str:
    """The prefix of a hex content hash that messages show and a file's header records."""
    return content_hash[:HASH_HEX]


def model_id(name: str, content_hash: str) -> str:
    """`<name>@<hash12>`: how `aecodec models` and the docs name a model."""
    return f"{name}@{content_hash[:ID_HEX]}"


def folder_name(name: str, content_hash: str) -> str:
    """`<name>-<hash12>`: the folder a model's package lives in."""
    return f"{name}-{content_hash[:ID_HEX]}"


def is_default(name: str, content_hash: str) -> bool:
    return name == DEFAULT_MODEL and content_hash.startswith(short_hash(DEFAULT_HASH))


def available(extra: Iterable[str | os.PathLike] | None = None) -> list[tuple[str, str, Path]]:
    """(name, content hash, folder) of every package found on the search path."""
    out = []
    for d in search_path(extra):
        for sub in sorted(d.iterdir()):
            m = _read_manifest(sub) if sub.is_dir() else None
            if m is not None:
                out.append((str(m.get("name", sub.name)), m["content_hash"], sub))
    return out


def is_folder(name: str) -> bool:
    """Whether a model argument names a package folder rather than a model name."""
    return os.sep in name or bool(os.altsep and os.altsep in name) or Path(name).is_absolute()


def find(name: str | None = None, content_hash: str | None = None,
         extra: Iterable[str | os.PathLike] | None = None) -> Path:
    """The folder of model `name` (default DEFAULT_MODEL), with that content hash if given.

    `content_hash` is hex, whole or its first HASH_HEX (16) digits or more (an .aec file records
    the first HASH_LEN bytes). Without one, the default model if `name` is its name, else the
    first package of that name that can encode."""
    name = name or DEFAULT_MODEL
    if is_folder(name):
        folder = Path(name)  # an explicit package folder
        if _read_manifest(folder) is None:
            raise ModelNotFoundError(f"{folder} is not a model package (no valid manifest.json)")
        return folder
    if content_hash is not None and not (HASH_HEX <= len(content_hash) <= 64):
        raise ValueError(f"content_hash must be {HASH_HEX}..64 hex digits, got "
                         f"{len(content_hash)}")
    wanted = content_hash or (short_hash(DEFAULT_HASH) if name == DEFAULT_MODEL else None)
    found, encoders = [], []
    for pkg_name, h, folder in available(extra):
        if pkg_name != name:
            continue
        if wanted is not None and h.startswith(wanted):
            return folder
        found.append(h)
        if can_encode(folder):
            encoders.append(folder)
    if content_hash is None and name != DEFAULT_MODEL and encoders:
        return encoders[0]
    where = ", ".join(str(d) for d in search_path(extra)) or "(no model folders found)"
    if content_hash is None:
        raise ModelNotFoundError(
            f"model {name!r} is not installed (searched {where}): install an aecodec that ships "
            f"it or put its package folder in a directory listed in ${ENV_VAR}")
    have = ", ".join(short_hash(h) for h in found)
    raise ModelNotFoundError(
        f"this file was encoded with model {name!r} (content hash {short_hash(content_hash)}), "
        f"which is not installed" + (f" (installed {name!r}: content hash {have})" if have else "")
        + f": install an aecodec that ships it (`aecodec models` lists what is installed), or "
        f"put that model package in a directory listed in ${ENV_VAR}")


@dataclass
class ModelPackage:
    """A loaded, verified model package."""

    path: Path
    manifest: dict
    content_hash: str
    tables: dict = field(repr=False)
    hyper: dict = field(repr=False)  # w1..b3, float32 C-contiguous

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def hash_bytes(self) -> bytes:
        return bytes.fromhex(self.content_hash)

    @property
    def latent_channels(self) -> int:
        return int(self.tables["gains"].shape[1])

    @property
    def hyper_channels(self) -> int:
        return int(self.tables["z_cdf"].shape[0])

    @property
    def precision(self) -> int:
        return int(np.asarray(self.tables["precision"]).reshape(-1)[0])  # stored 0-d or [1]

    def onnx_path(self, stage: str) -> Path:
        """The ONNX graph of a stage; g_a and h_a refused clearly in a decode-only package."""
        path = self.path / f"{stage}.onnx"
        if f"{stage}.onnx" in ENCODER_FILES and not path.is_file():
            raise ModelNotFoundError(
                f"model {self.name} ({short_hash(self.content_hash)}) is installed decode-only (it "
                f"decodes the files it wrote but no longer encodes): encode with the default "
                f"model {DEFAULT_MODEL} ({short_hash(DEFAULT_HASH)}) instead")
        return path

    def extra(self, filename: str) -> Path | None:
        """A decoder-side extra (fast.npz, preview.npz), or None if the package has none: only
        one its manifest's `files` lists, which `verify` checked (format 2; a format-1 package's
        `files`, if any, are not checked, so its extras are not used)."""
        files = self.manifest.get("files")
        if self.manifest.get("format", 1) < 2 or not isinstance(files, dict) or (
                filename not in files):
            return None
        return self.path / filename

    @property
    def can_encode(self) -> bool:
        return can_encode(self.path)

    @property
    def is_default(self) -> bool:
        return is_default(self.name, self.content_hash)

    def gain(self, quality: float) -> np.ndarray:
        """Gain vector float32 [M] for a quality in [0, 100] (docs/model-package.md)."""
        return _per_level(self.tables["gains"], quality)

    def lmbda(self, quality: float) -> float:
        """λ of the rate–distortion trade-off the model was trained for at a quality (loss =
        bits per pixel + λ · MSE on 0–255), interpolated like the gains."""
        if "lambdas" not in self.tables:
            raise ModelPackageError(f"model package {self.path} has no lambdas: it cannot "
                                    "compare orientations (encode with effort=1)")
        return float(_per_level(np.asarray(self.tables["lambdas"], np.float64), quality))

    def encoder_scales(self, quality: float) -> np.ndarray | None:
        """g_a's channel scales float32 [3, N] at a quality, or None: g_a not level-conditioned."""
        table = self.tables.get("encoder_scales")
        return None if table is None else _per_level(table, quality)

    def decoder_scales(self, quality: float) -> np.ndarray | None:
        """g_s's channel scales float32 [3, N] at a quality, or None: g_s not level-conditioned."""
        table = self.tables.get("decoder_scales")
        return None if table is None else _per_level(table, quality)


def level_position(quality: float, levels: int) -> float:
    """Quality (0–100, clamped) → continuous level position t = q/100·(levels−1): the one
    mapping, used by the codec's tables and by the torch model (training, refinement)."""
    return min(max(float(quality), 0.0), 100.0) / 100.0 * (levels - 1)


def _per_level(table: np.ndarray, quality: float) -> np.ndarray:
    """A per-level table [levels, ...] at a quality: geometric interpolation between levels."""
    table = table.astype(np.float64)
    k_max = table.shape[0] - 1
    if k_max == 0:
        return table[0].astype(np.float32)
    t = level_position(quality, table.shape[0])
    k = min(int(np.floor(t)), k_max - 1)
    f = t - k
    return (table[k] ** (1.0 - f) * table[k + 1] ** f).astype(np.float32)


def load_npz(path: Path) -> dict:
    """The arrays of an .npz file (never unpickled). Whatever np.load or zipfile raises on a
    damaged file (BadZipFile, zlib.error, EOFError, ... and an .npy or a pickle in its place)
    is a ModelPackageError."""
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any failure to parse these bytes means damaged
        raise ModelPackageError(f"cannot read {path}: {e}; reinstall the model package") from e


def _validate(pkg_path: Path, tables: dict, hyper: dict) -> None:
    """Every array the runtime reads: present, numeric, of consistent shapes and finite where it
    is arithmetic, so that a damaged package is a ModelPackageError here, not an error (or a
    wrong image) later. h_s's weights are checked by running the core's kernel once."""
    missing = [k for k in (*TABLE_DTYPES, "precision") if k not in tables]
    missing += [k for k in HYPER_KEYS if k not in hyper]
    if missing:
        raise ModelPackageError(f"model package {pkg_path} lacks {', '.join(missing)}")

    def bad(what: str) -> ModelPackageError:
        return ModelPackageError(f"model package {pkg_path} has invalid {what}")

    arrays = {**tables, **hyper}
    for k in (*TABLE_DTYPES, *OPTIONAL_TABLES, "precision", "lambdas", *HYPER_KEYS):
        if k in arrays and not (isinstance(arrays[k], np.ndarray)
                                and arrays[k].dtype.kind in "iuf"):
            raise bad(f"{k} (not a numeric array)")
    gains = tables["gains"]
    m = gains.shape[1] if gains.ndim == 2 and gains.shape[0] >= 1 else -1
    nz = tables["z_cdf"].shape[0] if tables["z_cdf"].ndim == 2 else -1
    w1, w3 = hyper["w1"], hyper["w3"]
    if m < 1 or w1.ndim != 4 or w1.shape[0] != nz or w3.ndim != 4 or w3.shape[0] != 2 * m:
        raise ModelPackageError(f"model package {pkg_path} has inconsistent shapes")
    if not (np.all(np.isfinite(gains)) and np.all(gains > 0)):
        raise bad("gains (need finite, positive)")
    if tables["precision"].size != 1 or tables["precision"].dtype.kind not in "iu":
        raise bad("precision (need one integer)")
    n_y = tables["y_cdf"].shape[0] if tables["y_cdf"].ndim == 2 else -1
    if tables["scale_log_thresholds"].shape != (n_y - 1,):
        raise bad(f"scale_log_thresholds (need [{n_y - 1}]: one less than y_cdf's tables)")
    lambdas = tables.get("lambdas")
    if lambdas is not None and (lambdas.shape != (gains.shape[0],)
                                or not np.all(np.isfinite(lambdas))):
        raise bad(f"lambdas (need finite [{gains.shape[0]}], one per level)")
    for key in OPTIONAL_TABLES:
        sc = tables.get(key)
        if sc is not None and (sc.ndim != 3 or sc.shape[:2] != (tables["gains"].shape[0], 3)
                               or not np.all(np.isfinite(sc)) or not np.all(sc > 0)):
            raise ModelPackageError(f"model package {pkg_path} has invalid {key} "
                                    f"(need positive [levels, 3, N], got shape {sc.shape})")
    from .engine import core  # imported here: engine imports this module

    try:
        core().hyper_synthesis(np.zeros((nz, 1, 1), np.int32),
                        *[np.ascontiguousarray(hyper[k], dtype=np.float32) for k in HYPER_KEYS],
                        np.ascontiguousarray(tables["scale_log_thresholds"], dtype=np.float32), 1)
    except ValueError as e:
        raise bad(f"h_s weights or thresholds ({e})") from e


_cache: dict[tuple[str, str], ModelPackage] = {}
_lock = threading.Lock()


def load(name: str | None = None, content_hash: str | None = None,
         extra: Iterable[str | os.PathLike] | None = None) -> ModelPackage:
    """Find, verify and load a package (cached per folder and content hash)."""
    folder = find(name, content_hash, extra).resolve()
    manifest = _read_manifest(folder)
    assert manifest is not None
    key = (str(folder), manifest["content_hash"])
    with _lock:
        if key in _cache:
            return _cache[key]
        actual = verify(folder, manifest)
        tables = load_npz(folder / TABLES_FILE)
        hyper = load_npz(folder / HYPER_FILE)
        _validate(folder, tables, hyper)
        dtypes = {**TABLE_DTYPES, **OPTIONAL_TABLES}
        tables = {k: (np.ascontiguousarray(v, dtype=dtypes[k]) if k in dtypes else v)
                  for k, v in tables.items()}
        hyper = {k: np.ascontiguousarray(hyper[k], dtype=np.float32) for k in HYPER_KEYS}
        pkg = ModelPackage(folder, manifest, actual, tables, hyper)
        _cache[key] = pkg
        return pkg
