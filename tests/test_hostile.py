"""Hostile input (issue 35): the fuzzers' findings as regression tests, and the resource limits.

Every input either decodes or raises an `aecodec.AecError` subclass; sizes and counts that would
make decoding allocate beyond what the image needs are refused before anything is allocated
(docs/format.md, "Limits"). The files are forged from small valid ones coded with the tiny test
model tests/data/models/golden-tiny, with valid framing and CRCs, so that each reaches the check
it is about. fuzz/README.md says how the fuzzers that found them are run.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import container
from aecodec.errors import AecError, CorruptFileError, DecompressionBombError

DATA = Path(__file__).resolve().parent / "data"
MODELS = DATA / "models"


@pytest.fixture(autouse=True)
def model_path(monkeypatch):
    """Image.open decodes with the shared codec: it finds golden-tiny through the path."""
    monkeypatch.setenv("AECODEC_MODEL_PATH", str(MODELS))


@pytest.fixture(scope="module")
def codec():
    c = aecodec.Codec("golden-tiny", model_path=[MODELS], threads=1, slice_symbols=16)
    yield c
    c.close()


def image(h, w, channels):
    rng = np.random.default_rng(h * 1000 + w + channels)
    a = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return a[:, :, 0] if channels == 1 else a


@pytest.fixture(scope="module")
def la_file(codec):
    return codec.compress(image(24, 16, 2), 50)


@pytest.fixture(scope="module")
def rgb_file(codec):
    return codec.compress(image(24, 16, 3), 50)


def forge(data: bytes, **header) -> bytes:
    """The file with HEAD fields replaced, rewritten with valid framing and CRCs (no checks)."""
    f = container.parse(data)
    for k, v in header.items():
        setattr(f.header, k, v)
    out = bytearray(container.MAGIC + bytes(container.VERSION))
    container._append_chunk(out, b"HEAD", f.header.to_bytes(), checked=True)
    if f.alpha is not None:
        container._append_chunk(out, b"ALPH", b"\0" + f.alpha)
    container._append_chunk(out, b"ZSTR", f.z_stream)
    for s in f.y_streams:
        container._append_chunk(out, b"YSTR", s)
    container._append_chunk(out, b"DONE", b"", checked=True)
    return bytes(out)


def with_alpha(data: bytes, png: bytes) -> bytes:
    f = container.parse(data)
    f.alpha = png
    return f.to_bytes()


def png(width: int, height: int, body: bytes = b"") -> bytes:
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body))
            + chunk(b"IEND", b""))


def refuses(data: bytes, error=AecError):
    """Both decoders refuse the data with `error` (an AecError subclass)."""
    with pytest.raises(error):
        aecodec.Codec("golden-tiny", model_path=[MODELS], threads=1).decompress(data)
    with pytest.raises(error):
        with Image.open(io.BytesIO(data), formats=["AEC"]) as im:
            im.load()


# ------------------------------------------------------------------- fuzzer findings
def test_alpha_png_claiming_a_huge_size_is_a_corrupt_file(la_file):
    """fuzz_decoder finding 1: an ALPH PNG whose IHDR claimed 2³¹−1 × 100000 pixels reached
    Pillow's own bomb check and escaped as PIL.Image.DecompressionBombError, not an AecError."""
    for size in ((2**31 - 1, 100000), (100000, 100000), (17, 24), (16, 23)):
        refuses(with_alpha(la_file, png(*size)), CorruptFileError)


def test_an_empty_alpha_plane_is_a_corrupt_file_not_an_image_without_alpha(la_file):
    """fuzz_decoder finding 2: an ALPH chunk holding only its method byte (an empty PNG) was
    taken for no alpha plane: a file whose header says LA decoded to an L image."""
    refuses(with_alpha(la_file, b""), CorruptFileError)


def test_alpha_png_of_the_right_size_still_decodes(la_file):
    f = container.parse(la_file)
    im = Image.open(io.BytesIO(f.alpha))
    assert im.size == (16, 24)
    ok = with_alpha(la_file, png(16, 24, b"".join(b"\0" + bytes(range(16)) for _ in range(24))))
    out = aecodec.Codec("golden-tiny", model_path=[MODELS]).decompress(ok)
    assert out.mode == "LA" and out.getchannel("A").getpixel((5, 3)) == 5


# ------------------------------------------------------------------- resource limits
@pytest.mark.parametrize("w, h", [(100000, 100000), (2**24, 2**24), (2**24, 1)])
def test_huge_dimensions_are_refused_before_allocating(rgb_file, w, h):
    data = forge(rgb_file, width=w, height=h, slice_rows=1)
    tracemalloc.start()
    try:
        refuses(data, DecompressionBombError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_a_sliver_whose_padded_grid_is_a_bomb_is_refused(rgb_file, monkeypatch):
    """1 × N pixels is coded as 64 × N: within MAX_IMAGE_PIXELS, 64 times over it once padded."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 20)
    refuses(forge(rgb_file, width=1, height=1 << 20, slice_rows=1 << 14), DecompressionBombError)
    refuses(forge(rgb_file, width=(1 << 20) - 1, height=1, slice_rows=1), DecompressionBombError)
    with pytest.raises(DecompressionBombError):
        aecodec.Codec("golden-tiny", model_path=[MODELS]).compress(np.zeros((1 << 20, 1), np.uint8))
    # square-ish images up to the limit are not affected: only the area is checked for them
    container.check_pixels(1024, 1024)
    container.check_pixels(1000, 1048)
    container.check_pixels(30, 30)


def test_max_image_pixels_is_honoured_and_none_disables_it(rgb_file, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16 * 24 - 1)
    refuses(rgb_file, DecompressionBombError)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16 * 24)
    assert aecodec.Codec("golden-tiny", model_path=[MODELS]).decompress(rgb_file).size == (16, 24)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    container.check_pixels(1, container.MAX_SIDE)  # only MAX_SIDE then
    refuses(forge(rgb_file, width=container.MAX_SIDE + 1), CorruptFileError)


def test_many_slices_without_their_chunks_are_refused_before_decoding(rgb_file):
    """A header may claim up to one slice per latent row: each needs its own YSTR chunk, so the
    count is bounded by the file's size, checked by the parser before any stream is decoded."""
    data = forge(rgb_file, width=64, height=1 << 20, slice_rows=1)  # 65536 slices
    with pytest.raises(CorruptFileError, match="Y slices"):
        container.parse(data)
    refuses(data, CorruptFileError)


@pytest.mark.parametrize("ctype", [b"iccp", b"exif", b"xmpd", b"abcd", b"YSTR"])
def test_huge_metadata_chunks_are_refused_before_reading(rgb_file, ctype):
    """A chunk claiming more bytes than the file has is refused before its payload is read."""
    f = container.parse(rgb_file)
    out = bytearray(container.MAGIC + bytes(container.VERSION))
    container._append_chunk(out, b"HEAD", f.header.to_bytes(), checked=True)
    out += container._varint(container.MAX_CHUNK) + ctype + b"\0" * 64
    tracemalloc.start()
    try:
        refuses(bytes(out), CorruptFileError)
        if ctype != b"YSTR":  # a stream of unknown size: header chunks are capped
            with pytest.raises(CorruptFileError):
                container.read_header(_Unseekable(bytes(out)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


class _Unseekable(io.RawIOBase):
    def __init__(self, data):
        self._b = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, n=-1):
        return self._b.read(n)

    def tell(self):
        raise OSError("unseekable")


# ------------------------------------------------------------------- model packages (item 5)
def _unsafe_loads(tree) -> list:
    import ast

    bad = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        kw = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
        attr = node.func.attr
        if (owner in ("np", "numpy") and attr == "load" and kw.get("allow_pickle") is not False
                or owner == "torch" and attr == "load" and kw.get("weights_only") is not True
                or owner in ("pickle", "cPickle", "dill", "joblib") and "load" in attr):
            bad.append(f"line {node.lineno}: {owner}.{attr}")
    return bad


def test_nothing_is_unpickled():
    """Every np.load passes allow_pickle=False, every torch.load weights_only=True, and nothing
    calls pickle: a file of a model package (or a checkpoint) never runs code."""
    import ast

    root = Path(aecodec.__file__).resolve().parent
    found = {str(p.relative_to(root)): _unsafe_loads(ast.parse(p.read_text(encoding="utf-8")))
             for p in root.rglob("*.py")}
    assert {k: v for k, v in found.items() if v} == {}
    assert _unsafe_loads(ast.parse("np.load(p)\ntorch.load(p)\npickle.loads(b)")) != []


def _package(tmp_path, fmt: int, listed=None):
    """A copy of golden-tiny as a format-1 package or a format-2 one listing `listed`."""
    import json
    import shutil

    from aecodec import model_package as mp

    folder = tmp_path / "golden-tiny"
    shutil.copytree(MODELS / "golden-tiny", folder)
    m = json.loads((folder / "manifest.json").read_text())
    if fmt == 2:
        m["format"] = 2
        m["identity"] = list(mp.IDENTITY_FILES)
        m["files"] = {n: mp.file_digest(folder / n) for n in listed}
        m["content_hash"] = mp.compute_hash(folder, mp.IDENTITY_FILES)
    (folder / "manifest.json").write_text(json.dumps(m))
    mp._cache.clear()
    return folder


def test_every_file_a_package_reads_is_verified(tmp_path):
    from aecodec import model_package as mp
    from aecodec.errors import ModelPackageError

    everything = (*mp.IDENTITY_FILES, *mp.ENCODER_FILES)
    assert mp.load(str(_package(tmp_path / "a", 1))).content_hash.startswith("174a81ac")
    b = _package(tmp_path / "b", 2, everything)
    assert mp.load(str(b)).content_hash == json.loads((b / "manifest.json").read_text())[
        "content_hash"]
    # format 1: its hash covers the five runtime files, nothing else: an extra training.npz
    # (read by aecodec.train) would be unverified
    folder = _package(tmp_path / "c", 1)
    (folder / mp.TRAINING_FILE).write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ModelPackageError, match="training.npz, not covered"):
        mp.load(str(folder))
    # format 2: g_a.onnx / h_a.onnx present but without a digest in `files` would be run by
    # onnxruntime unverified when encoding
    folder = _package(tmp_path / "d", 2, mp.IDENTITY_FILES)
    with pytest.raises(ModelPackageError, match="g_a.onnx, h_a.onnx, not covered"):
        mp.load(str(folder))
    (folder / "g_a.onnx").unlink()
    (folder / "h_a.onnx").unlink()
    assert not mp.load(str(folder)).can_encode  # a decode-only package: fine


def _rehash(folder):
    """Make a format-2 manifest vouch for the package's files as they are now."""
    import json

    from aecodec import model_package as mp

    m = json.loads((folder / "manifest.json").read_text())
    m["files"] = {n: mp.file_digest(folder / n) for n in (*mp.IDENTITY_FILES, *mp.ENCODER_FILES)
                  if (folder / n).is_file()}
    m["content_hash"] = mp.compute_hash(folder, mp.IDENTITY_FILES)
    (folder / "manifest.json").write_text(json.dumps(m))
    mp._cache.clear()
    return m["content_hash"]


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _edit_npz(name, **changes):
    def edit(folder):
        with np.load(folder / name) as z:
            arrays = {k: z[k] for k in z.files}
        for k, v in changes.items():
            if v is None:
                del arrays[k]
            else:
                arrays[k] = v(arrays[k]) if callable(v) else v
        (folder / name).write_bytes(_npz(arrays))
    return edit


def _write(name, data):
    def edit(folder):
        (folder / name).write_bytes(data(folder) if callable(data) else data)
    return edit


def _npy(folder):
    buf = io.BytesIO()
    np.save(buf, np.zeros(3, np.float32))
    return buf.getvalue()


def _flip_inside_zip(folder):  # a member's bytes damaged, its zip CRC now wrong
    b = bytearray((folder / "hyper_synthesis.npz").read_bytes())
    b[b.find(b"\x93NUMPY", b.find(b"w1.npy")) + 128 + 50] ^= 0x10  # inside w1's array data
    return bytes(b)


def _onnx_identity(channels_in, out_shape=None, scales=False):
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info("y_hat", TensorProto.FLOAT, [1, channels_in, "h", "w"])]
    if scales:
        ins.append(helper.make_tensor_value_info("scales", TensorProto.FLOAT, [1, 3, 8]))
    g = helper.make_graph([helper.make_node("Identity", ["y_hat"], ["x_hat"])], "g", ins,
                          [helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, out_shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


PACKAGE_DAMAGE = {
    # fuzz_model_package findings: each escaped as the exception named
    "npz not a zip (BadZipFile)": _write("hyper_synthesis.npz", b"PK\x05\x06" + bytes(18)),
    "npz member damaged (BadZipFile: bad CRC-32)": _write("hyper_synthesis.npz",
                                                          _flip_inside_zip),
    "npz truncated (EOFError)": _write("tables.npz", lambda f: (f / "tables.npz").read_bytes()[
        :60]),
    "an .npy for an .npz (TypeError)": _write("tables.npz", _npy),
    "w2 of the wrong rank (ValueError from the core at decode)": _edit_npz(
        "hyper_synthesis.npz", w2=np.ones(1, np.float16)),
    "b3 of the wrong length (ValueError from the core at decode)": _edit_npz(
        "hyper_synthesis.npz", b3=lambda a: a[:-1]),
    "gains of another M than g_a's (ValueError: broadcast in the encoder)": _edit_npz(
        "tables.npz", gains=lambda a: a[:, :4]),
    "g_s giving [1, 8, h, w] (ValueError: broadcast into the image)": _write(
        "g_s.onnx", lambda f: _onnx_identity(8)),
    "g_s wanting 4 channels (onnxruntime InvalidArgument)": _write(
        "g_s.onnx", lambda f: _onnx_identity(4)),
    "g_s wanting scales the package has not (ValueError: missing input)": _write(
        "g_s.onnx", lambda f: _onnx_identity(8, scales=True)),
    "h_a wanting a second input (onnxruntime's ValueError)": _write(
        "h_a.onnx", lambda f: _onnx_identity(8, scales=True)),
    "g_a in g_s's place": _write("g_s.onnx", lambda f: (f / "g_a.onnx").read_bytes()),
    # 2026-12-05: a graph holding a varint where a node belongs (TypeError in the phase-form
    # reader, synthesis_fast, before onnxruntime could refuse it)
    "g_s with a varint for a node (TypeError)": _write("g_s.onnx", lambda f: b"\x3a\x02\x08\x05"),
    # found on the way to those: arrays the runtime would have choked on later
    "gains with a zero": _edit_npz("tables.npz", gains=lambda a: a * 0),
    "gains of text": _edit_npz("tables.npz", gains=np.array(["x"])),
    "precision empty": _edit_npz("tables.npz", precision=np.zeros(0, np.int32)),
    "thresholds longer than the y tables": _edit_npz(
        "tables.npz", scale_log_thresholds=np.arange(40, dtype=np.float32)),
    "thresholds with NaN": _edit_npz("tables.npz", scale_log_thresholds=lambda a: a * np.nan),
    "w1 with inf": _edit_npz("hyper_synthesis.npz", w1=lambda a: a * np.inf),
    "lambdas of the wrong length": _edit_npz("tables.npz", lambdas=np.ones(3)),
}


@pytest.mark.parametrize("damage", sorted(PACKAGE_DAMAGE))
def test_a_damaged_package_that_hashes_right_is_a_model_package_error(tmp_path, rgb_file, damage):
    """The digests and the content hash rewritten over the damage (as fuzz_model_package does),
    so it reaches the npz/ONNX parsing: loading, decoding or encoding raises ModelPackageError."""
    from aecodec import model_package as mp
    from aecodec.errors import ModelPackageError

    folder = _package(tmp_path, 2, ())
    PACKAGE_DAMAGE[damage](folder)
    content_hash = _rehash(folder)
    f = container.parse(rgb_file)
    f.header.model_hash = bytes.fromhex(content_hash)[: container.HASH_LEN]
    codec = aecodec.Codec(str(folder), threads=1)
    refused = 0
    for op in (lambda: mp.load(str(folder)), lambda: codec.decompress(f.to_bytes()),
               lambda: codec.compress(image(24, 16, 3), 50)):
        try:  # each works or raises ModelPackageError (any other error fails the test) ...
            op()
        except ModelPackageError:
            refused += 1
    codec.close()
    assert refused >= 1  # ... and the damage is found


@pytest.mark.parametrize("manifest", [
    b'{"content_hash": "' + b"0" * 64 + b'", "format": null}',  # fuzz finding: TypeError
    b'{"content_hash": "' + b"0" * 64 + b'", "format": "2"}',
    b'{"content_hash": "' + b"0" * 64 + b'", "format": 2, "files": ["g_s.onnx"]}',
    b'{"content_hash": "' + b"0" * 64 + b'", "format": 2, "files": {"g_s.onnx": 1}}',
    b"[" * 100000 + b"]" * 100000,  # RecursionError in json
    b"\xff\xfe{}",
    b" " * (5 << 20) + b"{}",
])
def test_a_malformed_manifest_is_refused(tmp_path, manifest):
    from aecodec import model_package as mp
    from aecodec.errors import ModelNotFoundError, ModelPackageError

    folder = _package(tmp_path, 1)
    (folder / "manifest.json").write_bytes(manifest)
    with pytest.raises(ModelPackageError):
        mp.read_manifest(folder)
    with pytest.raises(ModelNotFoundError):
        mp.load(str(folder))
