"""atheris fuzz target for the model package loader (aecodec/model_package.py) and what uses a
loaded package: the rANS tables, the exact h_s weights and the ONNX graphs.

Each input is read (FuzzedDataProvider) as a list of edits to a copy of the tiny test package
tests/data/models/golden-tiny in a scratch folder: manifest.json (fields, types, `files` digests,
format 1/2, broken JSON), tables.npz, hyper_synthesis.npz and an added fast.npz (keys dropped or
added, dtypes, shapes, NaN/inf/negative/huge values, the precision, broken zip/npy bytes, pickled
object arrays), the ONNX graphs (byte damage, one stage's graph in another's place, small forged
graphs with wrong shapes or dtypes). Most inputs then rewrite the manifest's digests and content
hash over the edited files (compute_hash / file_digest), so the edits get past the SHA-256
verification to the npz/ONNX parsing and `_validate`. Then:

- `model_package.load(folder)` must return a package or raise ModelPackageError /
  ModelNotFoundError;
- a loaded package decodes a small file (its streams re-labelled with the package's name and
  hash) through the public API, with the exact and the fast profile, and encodes a 16×24
  image: either works or raises an AecError.

Anything else (another exception, a crash, a hang) is a finding.

    PYTHONPATH=. python3 fuzz/fuzz_model_package.py -timeout=5 -max_total_time=300 /tmp/pkg-corpus
    PYTHONPATH=. python3 fuzz/fuzz_model_package.py --iterations 2000   # plain loop, no atheris
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

warnings.simplefilter("ignore")

try:
    import atheris
except ImportError:
    atheris = None

import numpy as np  # noqa: E402

if atheris is not None:
    with atheris.instrument_imports(include=["aecodec"]):
        import aecodec
else:
    import aecodec
from aecodec import container, model_package  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "tests" / "data" / "models" / "golden-tiny"
SEED_FILE = REPO / "fuzz" / "corpus" / "decoder" / "rgb-16x24-slices.aec"
FILES = ("manifest.json", "tables.npz", "hyper_synthesis.npz", "g_s.onnx", "g_a.onnx",
         "h_a.onnx")
SCRATCH = Path(tempfile.mkdtemp(prefix="aec-pkg-fuzz-"))
PKG = SCRATCH / "golden-tiny"
ORIGINAL = {name: (BASE / name).read_bytes() for name in FILES}


def npz_arrays(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz_bytes(arrays: dict, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


ORIGINAL_NPZ = {n: npz_arrays(ORIGINAL[n]) for n in ("tables.npz", "hyper_synthesis.npz")}


def forged_onnx() -> list[bytes]:
    """Small valid graphs that are not a g_s: wrong output shape, dtype, rank, two inputs."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return []
    f32, out = TensorProto.FLOAT, []

    def graph(nodes, inputs, outputs, inits=()):
        g = helper.make_graph(nodes, "forged", inputs, outputs, list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()

    y = helper.make_tensor_value_info("y_hat", f32, [1, 8, "h", "w"])
    out.append(graph([helper.make_node("Identity", ["y_hat"], ["x_hat"])], [y],
                     [helper.make_tensor_value_info("x_hat", f32, [1, 8, "h", "w"])]))
    out.append(graph([helper.make_node("Cast", ["y_hat"], ["x_hat"], to=TensorProto.DOUBLE)], [y],
                     [helper.make_tensor_value_info("x_hat", TensorProto.DOUBLE, None)]))
    out.append(graph([helper.make_node("Cast", ["y_hat"], ["x_hat"], to=TensorProto.INT64)], [y],
                     [helper.make_tensor_value_info("x_hat", TensorProto.INT64, None)]))
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])
    out.append(graph([helper.make_node("Reshape", ["y_hat", "shape"], ["x_hat"])], [y],
                     [helper.make_tensor_value_info("x_hat", f32, None)], [shape]))
    sl = helper.make_tensor_value_info("scales", f32, [1, 3, 8])
    out.append(graph([helper.make_node("Identity", ["y_hat"], ["x_hat"])], [y, sl],
                     [helper.make_tensor_value_info("x_hat", f32, None)]))
    y4 = helper.make_tensor_value_info("y_hat", f32, [1, 4, "h", "w"])  # wrong channel count
    out.append(graph([helper.make_node("Identity", ["y_hat"], ["x_hat"])], [y4],
                     [helper.make_tensor_value_info("x_hat", f32, None)]))
    x3 = helper.make_tensor_value_info("x", f32, [1, 3, "h", "w"])  # as a g_a: 3 -> 3 channels
    out.append(graph([helper.make_node("Identity", ["x"], ["y"])], [x3],
                     [helper.make_tensor_value_info("y", f32, None)]))
    onnx.checker.check_model(onnx.load_from_string(out[0]))
    return out


FORGED = forged_onnx()


class Pkg:
    """The files of the package being built, as bytes; manifest as a dict (or raw bytes)."""

    def __init__(self):
        self.files = dict(ORIGINAL)
        self.manifest = json.loads(ORIGINAL["manifest.json"])
        self.raw_manifest: bytes | None = None
        self.removed: set = set()


def edit_manifest(p: Pkg, fdp) -> None:
    k = fdp.ConsumeIntInRange(0, 11)
    m = p.manifest
    if k == 0:
        m["format"] = [1, 2, 3, 0, -1, "2", None, 2.5, True, 10**400, [2]][
            fdp.ConsumeIntInRange(0, 10)]
    elif k == 1:
        h = str(m.get("content_hash", ""))
        m["content_hash"] = ["", "0" * 64, "zz", 5, None, h[:16], h.upper(), "\u00e9" * 64][
            fdp.ConsumeIntInRange(0, 7)]
    elif k == 2:
        m["name"] = ["golden-tiny", "", 7, None, "../x", "a/b", "x" * 300, ["n"]][
            fdp.ConsumeIntInRange(0, 7)]
    elif k == 3:
        m["format"] = 2
        m["files"] = {}
    elif k == 4:
        files = m.setdefault("files", {}) if isinstance(m.get("files"), dict) else {}
        m["files"] = files
        files[["../tables.npz", "sub/x", "manifest.json", "nonexistent", "", ".", "g_s.onnx",
               "tables.npz\0", "C:x"][fdp.ConsumeIntInRange(0, 8)]] = [
            "0" * 64, 5, None, "", "x"][fdp.ConsumeIntInRange(0, 4)]
    elif k == 5:
        m["files"] = [[], "x", None, 3, {"g_s.onnx": []}][fdp.ConsumeIntInRange(0, 4)]
    elif k == 6:
        m["identity"] = ["format-1", "other", None, ["g_s.onnx"], 1][fdp.ConsumeIntInRange(0, 4)]
    elif k == 7:
        p.raw_manifest = [b"", b"{", b"[]", b"null", b"\xff\xfe{}", b'{"content_hash": 1}',
                          b"[" * 100000 + b"]" * 100000, b'{"content_hash": "' + b"a" * 64
                          + b'", "format": 1e999}', b"\xef\xbb\xbf{}", b'"x"'][
            fdp.ConsumeIntInRange(0, 9)]
    elif k == 8:
        m["architecture"] = [None, [], {"M": -1}, "x"][fdp.ConsumeIntInRange(0, 3)]
    elif k == 9:
        m.pop(fdp.PickValueInList(sorted(m)) if m else "x", None)
    elif k == 10:
        m["format"] = 2
        m["identity"] = list(model_package.IDENTITY_FILES)
    else:
        m["lambdas"] = [[], None, "x"][fdp.ConsumeIntInRange(0, 2)]


def edit_array(a: np.ndarray, fdp) -> object:
    k = fdp.ConsumeIntInRange(0, 13)
    if k == 0:
        return a.astype([np.float64, np.int8, np.uint8, np.int64, np.float16, np.complex64,
                         np.bool_, np.uint32, np.int32][fdp.ConsumeIntInRange(0, 8)])
    if k == 1:
        return a.reshape(-1)
    if k == 2:
        return a[None]
    if k == 3 and a.ndim:
        return a[tuple(slice(0, fdp.ConsumeIntInRange(0, s)) for s in a.shape)]
    if k == 4 and a.ndim >= 2:
        return a.T.copy()
    if k == 5 and a.size:
        b = a.astype(np.float64).copy()
        b.reshape(-1)[fdp.ConsumeIntInRange(0, a.size - 1)] = [
            np.nan, np.inf, -np.inf, -1.0, 0.0, 1e30, -1e30, 2.0**31, 2.0**32][
            fdp.ConsumeIntInRange(0, 8)]
        return b.astype(a.dtype) if a.dtype.kind == "f" else b
    if k == 6 and a.size:
        b = a.copy()
        i = fdp.ConsumeIntInRange(0, a.size - 1)
        if a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            b.reshape(-1)[i] = fdp.ConsumeIntInRange(int(info.min), int(info.max))
        elif a.dtype.kind == "f":
            with np.errstate(all="ignore"):
                b.reshape(-1)[i] = fdp.ConsumeRegularFloat()
        return b
    if k == 7:
        return np.zeros((0,) + a.shape[1:], a.dtype)
    if k == 8:
        return np.array([fdp.ConsumeIntInRange(-5, 40)], np.int32)
    if k == 9:
        return np.array(fdp.ConsumeIntInRange(-5, 40), np.int32)
    if k == 10:
        return np.array(["text"])
    if k == 11:
        return np.concatenate([a, a]) if a.ndim else a
    if k == 12 and a.dtype.kind in "biuf":
        return np.full(a.shape, fdp.ConsumeIntInRange(0, 3), a.dtype)
    return np.array([{"pickled": 1}], dtype=object)  # savez pickles it: must be refused


def edit_npz(p: Pkg, fdp) -> None:
    name = ["tables.npz", "hyper_synthesis.npz"][fdp.ConsumeIntInRange(0, 1)]
    k = fdp.ConsumeIntInRange(0, 7)
    if k <= 3:
        try:  # the arrays as edited so far, or the original ones
            arrays = npz_arrays(p.files[name])
        except Exception:  # noqa: BLE001 - damaged by an earlier edit
            arrays = dict(ORIGINAL_NPZ[name])
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            key = fdp.PickValueInList(sorted(arrays) + ["new", "decoder_scales",
                                                        "encoder_scales"])
            if key not in arrays:
                arrays[key] = edit_array(np.ones((7, 3, 8), np.float32), fdp)
            elif fdp.ConsumeIntInRange(0, 5) == 0:
                del arrays[key]
            else:
                arrays[key] = edit_array(arrays[key], fdp)
        try:
            p.files[name] = npz_bytes(arrays, compressed=fdp.ConsumeBool())
        except (ValueError, TypeError):
            pass
    elif k == 4:  # byte damage of the zip (CRCs left as they are, or the whole thing cut)
        b = bytearray(p.files[name])
        if b:
            for _ in range(fdp.ConsumeIntInRange(1, 4)):
                b[fdp.ConsumeIntInRange(0, len(b) - 1)] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        p.files[name] = bytes(b[: fdp.ConsumeIntInRange(0, len(b))] if fdp.ConsumeBool() else b)
    elif k == 5:  # an .npy, not an .npz; or a pickle; or nothing
        buf = io.BytesIO()
        np.save(buf, np.zeros(3, np.float32))
        p.files[name] = [buf.getvalue(), b"\x80\x04K\x01.", b"", b"PK\x03\x04", b"PK\x05\x06"
                         + bytes(18)][fdp.ConsumeIntInRange(0, 4)]
    elif k == 6:  # a zip whose member is damaged inside a valid zip (CRC of the member wrong)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("gains.npy", b"\x93NUMPY\x01\x00" + bytes(fdp.ConsumeBytes(40)))
        p.files[name] = buf.getvalue()
    else:
        p.removed.add(name)


def tiny_head(fdp) -> dict:
    """A fast.npz for golden-tiny's g_s (N = 8): w channels, perhaps a trained second layer of
    v channels, perhaps level-scale maps (which this g_s, without level scales, must refuse)."""
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 1000))
    n, w = 8, fdp.ConsumeIntInRange(1, 8)
    v = fdp.ConsumeIntInRange(1, 8) if fdp.ConsumeBool() else None

    def f(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    h = {"up_w": f(v or n, w, 5, 5), "up_b": f(w), "gamma": np.abs(f(w, w)),
         "beta": np.abs(f(w)) + 0.1, "last_w": f(w, 3, 5, 5), "last_b": f(3)}
    if v:
        h |= {"mid_w": f(n, v, 5, 5), "mid_b": f(v), "mid_gamma": np.abs(f(v, v)),
              "mid_beta": np.abs(f(v)) + 0.1}
    if fdp.ConsumeBool():
        h |= {"up_scale_a": f(w, n), "up_scale_c": f(w)}
    if v and fdp.ConsumeBool():
        h |= {"mid_scale_a": f(v, n), "mid_scale_c": f(v)}
    return h


def edit_fast(p: Pkg, fdp) -> None:
    """Add (or edit) a fast.npz, the fast profile's decoder-side extra."""
    try:
        arrays = npz_arrays(p.files["fast.npz"]) if "fast.npz" in p.files else tiny_head(fdp)
    except Exception:  # noqa: BLE001 - damaged by an earlier edit
        arrays = tiny_head(fdp)
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        key = fdp.PickValueInList(sorted(arrays))
        if fdp.ConsumeIntInRange(0, 5) == 0:
            del arrays[key]
        else:
            arrays[key] = edit_array(arrays[key], fdp)
    try:
        p.files["fast.npz"] = npz_bytes(arrays, compressed=fdp.ConsumeBool())
    except (ValueError, TypeError):
        pass


def edit_onnx(p: Pkg, fdp) -> None:
    name = ["g_s.onnx", "g_a.onnx", "h_a.onnx"][fdp.ConsumeIntInRange(0, 2)]
    k = fdp.ConsumeIntInRange(0, 5)
    if k == 0:
        b = bytearray(p.files[name])
        for _ in range(fdp.ConsumeIntInRange(1, 8)):
            b[fdp.ConsumeIntInRange(0, len(b) - 1)] = fdp.ConsumeIntInRange(0, 255)
        p.files[name] = bytes(b)
    elif k == 1:
        p.files[name] = p.files[name][: fdp.ConsumeIntInRange(0, len(p.files[name]))]
    elif k == 2:
        p.files[name] = ORIGINAL[["g_s.onnx", "g_a.onnx", "h_a.onnx"][fdp.ConsumeIntInRange(0, 2)]]
    elif k == 3 and FORGED:
        p.files[name] = FORGED[fdp.ConsumeIntInRange(0, len(FORGED) - 1)]
    elif k == 4:
        p.files[name] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    else:
        p.removed.add(name)


def fix_hashes(p: Pkg, fdp) -> None:
    """Write the edited files, then make the manifest vouch for them (format 1 or 2)."""
    m = p.manifest
    fmt = m.get("format", 1)
    write(p, with_manifest=False)
    try:
        if isinstance(fmt, (int, float)) and fmt < 2:
            m["content_hash"] = model_package.compute_hash(PKG, model_package.LEGACY_HASH_FILES)
        else:
            files = m.get("files") if isinstance(m.get("files"), dict) else {}
            for name in (*model_package.IDENTITY_FILES, *model_package.ENCODER_FILES,
                         "fast.npz"):
                if (PKG / name).is_file() and fdp.ConsumeIntInRange(0, 7):
                    files[name] = model_package.file_digest(PKG / name)
            m["files"] = files
            m["content_hash"] = model_package.compute_hash(PKG, model_package.IDENTITY_FILES)
    except (aecodec.ModelPackageError, OSError):
        pass


def write(p: Pkg, with_manifest: bool = True) -> None:
    shutil.rmtree(PKG, ignore_errors=True)
    PKG.mkdir(parents=True)
    for name, data in p.files.items():
        if name == "manifest.json" or name in p.removed:
            continue
        (PKG / name).write_bytes(data)
    if with_manifest:
        raw = p.raw_manifest if p.raw_manifest is not None else json.dumps(p.manifest).encode()
        (PKG / "manifest.json").write_bytes(raw)


def build(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    p = Pkg()
    if fdp.ConsumeBool():
        p.manifest["format"] = 2
        p.manifest.pop("provenance", None)
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        try:
            [edit_manifest, edit_npz, edit_onnx, edit_fast][fdp.ConsumeIntInRange(0, 3)](p, fdp)
        except Exception:  # noqa: BLE001 - an edit this package cannot take (the harness's)
            pass
    if fdp.ConsumeIntInRange(0, 7):
        fix_hashes(p, fdp)
    write(p)


_file = container.parse(SEED_FILE.read_bytes())
IMAGE = np.random.default_rng(0).integers(0, 256, (24, 16, 3), dtype=np.uint8)
OK = (aecodec.ModelPackageError, aecodec.ModelNotFoundError)


def test_one_input(data: bytes) -> None:
    build(data)
    model_package._cache.clear()
    try:
        pkg = model_package.load(str(PKG))
    except OK:
        return
    # decode a file that names this package (name and hash as its manifest gives them)
    h = _file.header
    h.model_name = pkg.name if container.MODEL_NAME_RE.match(pkg.name) else h.model_name
    h.model_hash = pkg.hash_bytes[: container.HASH_LEN].ljust(container.HASH_LEN, b"\0")
    codec = aecodec.Codec(str(PKG), threads=1)
    for profile in ("exact", "fast"):
        try:
            codec.decompress(_file.to_bytes(), profile=profile)
        except aecodec.AecError:
            pass
    try:
        codec.compress(IMAGE, 50)
    except aecodec.AecError:
        pass
    codec.close()


def plain_loop(iterations: int, seed: int, keep_going: bool) -> None:
    import hashlib
    import traceback

    rng, seen = random.Random(seed), set()
    for i in range(iterations):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        try:
            test_one_input(data)
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)[-1]
            sig = f"{type(e).__name__} {tb.filename}:{tb.lineno}"
            if sig not in seen:
                seen.add(sig)
                Path("findings").mkdir(exist_ok=True)
                name = Path("findings") / ("pkg-" + hashlib.sha1(sig.encode()).hexdigest()[:12])
                name.write_bytes(data)
                print(f"finding at iteration {i}: {sig}: {e!s:.300} ({name})", file=sys.stderr)
            if not keep_going:
                raise
        if i % 500 == 0:
            print(f"#{i}", file=sys.stderr)
    print(f"{iterations} iterations, {len(seen)} distinct findings", file=sys.stderr)


def main() -> None:
    if atheris is None:
        sys.exit("atheris is not installed (its FuzzedDataProvider reads the inputs): "
                 "pip install atheris")
    try:
        if "--iterations" in sys.argv:
            i = sys.argv.index("--iterations")
            plain_loop(int(sys.argv[i + 1]), 0, "--keep-going" in sys.argv)
            return
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop(model_package.ENV_VAR, None)  # only the scratch package is found
    main()
