"""atheris fuzz target for the whole decode path: container, model lookup, rANS streams, exact
hyper-synthesis, ONNX synthesis, alpha PNG, metadata and the Pillow plugin.

Each input is decoded by `aecodec.decompress` and by `Image.open(..., formats=["AEC"]).load()`.
Either it decodes to an image of the size and mode its header gives, or it raises an
`aecodec.AecError` subclass (Image.open: that or `PIL.UnidentifiedImageError`); anything else
(another exception, a crash, a hang, memory beyond -rss_limit_mb) is a finding.

The custom mutator is structure-aware (`mutate`): it parses the container (any version's
framing), mutates HEAD's fields, the chunks (order, count, types, payloads: rANS stream headers,
the alpha PNG with its own CRCs fixed), the format version, or re-codes the Z and Y streams with
hostile symbols for the header's (possibly mutated) latent shapes, then writes the file back with
valid framing and CRCs, so that mutations get past the integrity checks to the streams, the
latent shapes and the synthesis. A fraction of mutations are libFuzzer's own byte-level ones.

Seeds: fuzz/corpus/decoder (fuzz/make_corpus.py). The files name the tiny test model
tests/data/models/golden-tiny, found through $AECODEC_MODEL_PATH (set here).

    PYTHONPATH=. python3 fuzz/fuzz_decoder.py -timeout=2 -rss_limit_mb=3072 \\
        -max_total_time=300 /tmp/dec-corpus fuzz/corpus/decoder
    PYTHONPATH=. python3 fuzz/fuzz_decoder.py --iterations 10000   # plain loop, no atheris
"""

from __future__ import annotations

import io
import os
import random
import struct
import sys
import warnings
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AECODEC_MODEL_PATH", str(REPO / "tests" / "data" / "models"))
warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning and the like are not findings

try:
    import atheris
except ImportError:  # the plain driver (--iterations N) works without it
    atheris = None

import numpy as np  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

if atheris is not None:
    with atheris.instrument_imports(include=["aecodec"]):
        import aecodec
else:
    import aecodec
from aecodec import container  # noqa: E402

# The Pillow plugin decodes with the shared codec of all cores; on inputs this small the worker
# threads only cost (and two fuzzers on two cores would fight over them): one thread, as
# decompress(threads=1) below. The decoded symbols and pixels do not depend on it.
aecodec.pillow_plugin.shared_codec = lambda *args, **kw: aecodec.codec.shared(threads=1)
from aecodec.engine import z_index  # noqa: E402

MAGIC = container.MAGIC
CHECKED = (b"HEAD", b"DONE")
HEAD_V1 = struct.Struct("<IIBBfHHIIIII32sB")
TINY = "golden-tiny"
TINY_HASH = bytes.fromhex("174a81ac7aa0d85c5846db3475a8b22b564799c3d3b8ffabfe9dbe2f4036bfd1")
DEFAULT_HASH = bytes.fromhex(aecodec.model_package.DEFAULT_HASH)
CORPUS = REPO / "fuzz" / "corpus" / "decoder"


# ---------------------------------------------------------------- container, tolerant
class Doc:
    """A file as (major, minor, [[type, payload]]), payloads without CRCs; HEAD parsed too."""

    def __init__(self, major, minor, chunks):
        self.major, self.minor, self.chunks = major, minor, chunks

    def head(self):
        for c in self.chunks:
            if c[0] == b"HEAD":
                return c
        return None


def parse_doc(data: bytes) -> Doc | None:
    if len(data) < 10 or data[:8] != MAGIC:
        return None
    major, minor, pos, chunks = data[8], data[9], 10, []
    while pos < len(data):
        if major == 1:
            if pos + 8 > len(data):
                break
            n, t = struct.unpack_from("<I4s", data, pos)
            body = data[pos + 8 : pos + 8 + n]
            pos += 12 + n
        else:
            n = shift = 0
            while pos < len(data) and shift < 35:
                b = data[pos]
                n |= (b & 0x7F) << shift
                pos, shift = pos + 1, shift + 7
                if b < 0x80:
                    break
            t, body = data[pos : pos + 4], data[pos + 4 : pos + 4 + n]
            pos += 4 + n
            if t in CHECKED:
                body = body[:-4]
        if len(t) < 4:
            break
        chunks.append([bytes(t), bytes(body)])
    return Doc(major, minor, chunks) if chunks else None


def varint(n: int) -> bytes:
    out = bytearray()
    n = max(0, min(n, 2**35 - 1))
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def write_doc(d: Doc) -> bytes:
    out = bytearray(MAGIC + bytes([d.major & 255, d.minor & 255]))
    first = True
    for t, body in d.chunks:
        if d.major == 1:
            crc = zlib.crc32(t + body, zlib.crc32(bytes(out[:10])) if first else 0)
            out += struct.pack("<I", len(body)) + t + body + struct.pack("<I", crc)
            first = False
        elif t in CHECKED:
            out += varint(len(body) + 4) + t + body
            out += struct.pack("<I", zlib.crc32(out))
        else:
            out += varint(len(body)) + t + body
    return bytes(out)


# HEAD as a dict of fields, for both layouts
def parse_head(body: bytes, major: int) -> dict | None:
    try:
        if major == 1:
            f = HEAD_V1.unpack_from(body)
            nlen = f[13]
            return dict(w=f[0], h=f[1], mode=f[2], flags=f[3], q=f[4], m=f[5], nz=f[6],
                        rows=f[11], hash=f[12], name=body[HEAD_V1.size : HEAD_V1.size + nlen],
                        extra=body[HEAD_V1.size + nlen :], shapes=f[7:11])
        w, p = container._get_varint(body, 0)
        h, p = container._get_varint(body, p)
        mode, flags, q = struct.unpack_from("<BBf", body, p)
        rows, p = container._get_varint(body, p + 6)
        mh, nlen = body[p : p + 8], body[p + 8]
        name = body[p + 9 : p + 9 + nlen]
        return dict(w=w, h=h, mode=mode, flags=flags, q=q, m=8, nz=4, rows=rows, hash=mh,
                    name=name, extra=body[p + 9 + nlen :], shapes=None)
    except (struct.error, IndexError, container.CorruptFileError):
        return None


def latent_shapes(w, h, flags, major):
    cw, ch = (h, w) if (major >= 3 and flags % 2) else (w, h)
    lh, lw = container.latent_size(max(cw, 1), max(ch, 1))
    return lh, lw, lh // 4, lw // 4


def write_head(f: dict, major: int, fix_shapes: bool = True) -> bytes:
    name = bytes(f["name"])
    q = struct.pack("<f", f["q"]) if isinstance(f["q"], float) else f["q"]
    if major == 1:
        shapes = latent_shapes(f["w"], f["h"], 0, 1) if fix_shapes or not f["shapes"] else f[
            "shapes"]
        mh = bytes(f["hash"])[:32].ljust(32, b"\0")
        return (struct.pack("<IIBB", f["w"] & 0xFFFFFFFF, f["h"] & 0xFFFFFFFF, f["mode"] & 255,
                            f["flags"] & 255) + q
                + struct.pack("<HHIIIII", f["m"] & 0xFFFF, f["nz"] & 0xFFFF,
                              *[s & 0xFFFFFFFF for s in shapes], f["rows"] & 0xFFFFFFFF)
                + mh + bytes([len(name) & 255]) + name + f["extra"])
    return (varint(f["w"]) + varint(f["h"]) + bytes([f["mode"] & 255, f["flags"] & 255]) + q
            + varint(f["rows"]) + bytes(f["hash"])[:8] + bytes([len(name) & 255]) + name
            + f["extra"])


# ---------------------------------------------------------------- streams
_engine = None


def engine():
    """The golden-tiny engine, to re-code streams with hostile symbols."""
    global _engine
    if _engine is None:
        _engine = aecodec.Codec(TINY, threads=1)._engine(TINY, TINY_HASH.hex())
    return _engine


ESCAPES = np.array([0, 1, -1, 200, -5000, 2**20, -(2**31), 2**31 - 1], np.int64)
NUDGES = np.array([0, 0, 0, 1, -1, 1000], np.int64)


def symbols(rng: random.Random, shape, around=None) -> np.ndarray:
    """Hostile symbols for a latent of `shape` (drawn with numpy, seeded from rng: a Python
    loop per symbol was a third of the fuzzer's time)."""
    n = int(np.prod(shape))
    g = np.random.default_rng(rng.getrandbits(64))
    kind = rng.randrange(6)
    if kind == 0:
        a = np.zeros(n, np.int64)
    elif kind == 1:
        a = g.integers(-3, 4, n)
    elif kind == 2:  # escapes
        a = ESCAPES[g.integers(0, len(ESCAPES), n)]
    elif kind == 3:
        a = np.full(n, rng.choice([2**31 - 1, -(2**31), 10**6, -(10**6), 65535]), np.int64)
    elif kind == 4 and around is not None and around.size == n:
        a = around.reshape(-1).astype(np.int64) + NUDGES[g.integers(0, len(NUDGES), n)]
    else:
        a = np.where(g.random(n) < 0.1, g.integers(-(2**31), 2**31, n), g.integers(-40, 41, n))
    return np.clip(a, -(2**31), 2**31 - 1).astype(np.int32).reshape(shape)


def recode_streams(d: Doc, rng: random.Random) -> bool:
    """Replace ZSTR and every YSTR by valid streams of hostile symbols for HEAD's shapes."""
    hc = d.head()
    f = parse_head(hc[1], d.major) if hc else None
    if f is None:
        return False
    lh, lw, zh, zw = latent_shapes(f["w"], f["h"], f["flags"], d.major)
    if lh * lw > 4096 or f["rows"] < 1:  # keep inputs small
        return False
    eng = engine()
    nz = eng.package.hyper_channels
    old_z = None
    for t, body in d.chunks:
        if t == b"ZSTR":
            try:
                old_z = eng.z_tables.decode(body, z_index((nz, zh, zw)))
            except ValueError:
                pass
    z = symbols(rng, (nz, zh, zw), old_z)
    lanes = rng.choice([1, 1, 2, 4, 32])
    zs = eng.z_tables.encode(z, z_index(z.shape), lanes=lanes)
    try:
        _, index = eng.hyper_synthesis(z, 1)
    except ValueError:
        return False
    rows = f["rows"]
    ys = []
    for a in range(0, lh, rows):
        b = min(a + rows, lh)
        idx = np.ascontiguousarray(index[:, a:b])
        s = symbols(rng, idx.shape)
        y = eng.y_tables.encode(s, idx, lanes=rng.choice([1, 2, 2, 8]))
        ys.append(struct.pack("<I", len(ys)) + y if d.major == 1 else y)
    rest = [c for c in d.chunks if c[0] not in (b"ZSTR", b"YSTR", b"DONE")]
    done = [c for c in d.chunks if c[0] == b"DONE"] or [[b"DONE", b""]]
    d.chunks = rest + [[b"ZSTR", zs]] + [[b"YSTR", y] for y in ys] + done
    return True


# ---------------------------------------------------------------- PNG (the alpha plane)
def png_chunk(t: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))


def make_png(w, h, depth=8, ctype=0, data=None, extra=b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", w & 0xFFFFFFFF, h & 0xFFFFFFFF, depth, ctype, 0, 0, 0)
    if data is None:
        bpp = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype, 1) * max(depth // 8, 1)
        row = (b"\0" + bytes(range(256)) * (min(w, 4096) * bpp // 256 + 1))[: min(w, 4096) * bpp
                                                                            + 1]
        data = zlib.compress(row * min(h, 256))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def mutate_png(png: bytes, rng: random.Random, w: int, h: int) -> bytes:
    k = rng.randrange(8)
    if k == 0:
        return make_png(rng.choice([w, h, 1, 100000, 2**31 - 1]), rng.choice([h, w, 1, 100000]))
    if k == 1:
        return make_png(w, h, depth=rng.choice([1, 2, 4, 8, 16]), ctype=rng.choice([0, 2, 3, 4, 6]))
    if k == 2 and 0 < w * h <= 1 << 22:  # the size right, IDAT inflating to 4× the image
        return make_png(w, h, data=zlib.compress(bytes((w + 1) * h * 4), 9))
    if k == 3:  # an oversized ancillary chunk (zTXt / iCCP bomb)
        bomb = zlib.compress(bytes(rng.choice([1 << 16, 1 << 20, 1 << 23])), 9)
        extra = png_chunk(rng.choice([b"zTXt", b"iCCP"]), b"k\0\0" + bomb)
        return make_png(w, h, extra=extra)
    if k == 4:  # damage inside the datastream but keep its chunk CRCs valid
        pos, out = 8, bytearray(png[:8])
        while pos + 8 <= len(png):
            n, t = struct.unpack_from(">I4s", png, pos)
            body = bytearray(png[pos + 8 : pos + 8 + n])
            if body and rng.random() < 0.5:
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
            out += png_chunk(t, bytes(body))
            pos += 12 + n
        return bytes(out)
    if k == 5:
        return png[: rng.randrange(len(png) + 1)]
    if k == 6:
        return make_png(w, h, data=zlib.compress(bytes(3)))  # too little data
    return png + bytes(rng.randrange(1, 40))


# ---------------------------------------------------------------- the mutator
SIZES = [0, 1, 2, 3, 15, 16, 17, 63, 64, 65, 127, 128, 129, 256, 1000, 4096, 65535, 100000,
         2**24 - 1, 2**24, 2**24 + 1, 2**31 - 1, 2**32 - 1]
QUALITIES = [0.0, -0.0, 100.0, 100.00001, -1e-9, 50.5, float("nan"), float("inf"), -float("inf"),
             1e38, 5e-324]
NAMES = [b"golden-tiny", b"hyperprior-mse", b"", b"../golden-tiny", b"golden-tiny/", b"x" * 128,
         b"x" * 129, b"\xff\xfe", b"golden-tin\xc3\xa9", b".hidden", b"golden-tiny\0"]
TYPES = [b"HEAD", b"ZSTR", b"YSTR", b"ALPH", b"DONE", b"iccp", b"exif", b"xmpd", b"abcd",
         b"ABCD", b"a b\0", b"zstr", b"prvw"]


def mutate_head(d: Doc, rng: random.Random) -> None:
    hc = d.head()
    f = parse_head(hc[1], d.major) if hc else None
    if f is None:
        return
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(10)
        if k == 0:
            f["w"] = rng.choice(SIZES + [f["w"] + rng.randint(-70, 70)])
        elif k == 1:
            f["h"] = rng.choice(SIZES + [f["h"] + rng.randint(-70, 70)])
        elif k == 2:
            f["w"], f["h"] = f["h"], f["w"]
        elif k == 3:
            f["mode"] = rng.randrange(6)
        elif k == 4:
            f["flags"] = rng.choice([rng.randrange(8), rng.randrange(256)])
        elif k == 5:
            f["q"] = rng.choice(QUALITIES + [rng.uniform(0, 100)])
        elif k == 6:
            lh = latent_shapes(f["w"], f["h"], f["flags"], d.major)[0]
            f["rows"] = rng.choice([0, 1, 2, lh, lh + 1, lh - 1, 2**31 - 1, rng.randrange(64)])
        elif k == 7:
            mh = bytearray(rng.choice([TINY_HASH, DEFAULT_HASH, bytes(f["hash"])]))
            if rng.random() < 0.3 and mh:
                mh[rng.randrange(len(mh))] ^= 1 << rng.randrange(8)
            f["hash"] = bytes(mh[: rng.choice([len(mh), 8, 7, 32])])
        elif k == 8:
            f["name"] = rng.choice(NAMES)
        else:
            f["extra"] = rng.choice([b"", b"\0" * rng.randrange(1, 9), os.urandom(3)])
            if d.major == 1:
                f["m"], f["nz"] = rng.choice([(8, 4), (0, 4), (8, 0), (4096, 4096), (4097, 1),
                                              (rng.randrange(65536), rng.randrange(65536))])
    hc[1] = write_head(f, d.major, fix_shapes=rng.random() < 0.9)
    if rng.random() < 0.5:
        recode_streams(d, rng)


def mutate_bytes(b: bytes, rng: random.Random) -> bytes:
    b = bytearray(b)
    k = rng.randrange(7)
    if k == 0 and b:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif k == 1 and b:
        b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif k == 2:
        del b[rng.randrange(len(b) + 1):]
    elif k == 3:
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = os.urandom(rng.choice([1, 2, 4, 16]))
    elif k == 4 and b:  # the rANS header byte: lanes
        b[0] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 0x10, 0x20, 0x85, 0xFF])
    elif k == 5 and len(b) >= 5:  # a lane's state
        pos = 1 + 4 * rng.randrange(max((len(b) - 1) // 4, 1))
        b[pos : pos + 4] = struct.pack("<I", rng.choice([0, 1, 1 << 16, 1 << 23, 2**32 - 1]))
    else:
        b = bytearray()
    return bytes(b)


def mutate_doc(d: Doc, rng: random.Random, pool: list, depth: int = 0) -> None:
    k = rng.randrange(13)
    cs = d.chunks
    if k == 12:  # the embedded preview: a whole file, mutated as one (or given one)
        prvw = [c for c in cs if c[0] == b"prvw"]
        inner = parse_doc(prvw[0][1]) if prvw else None
        if inner is not None and depth < 2:
            mutate_doc(inner, rng, pool, depth + 1)
            prvw[0][1] = write_doc(inner)
        elif pool:
            cs.insert(max(len(cs) - 1, 1), [b"prvw", rng.choice(pool)])
    elif k <= 1:
        mutate_head(d, rng)
    elif k == 2:
        recode_streams(d, rng)
    elif k == 3 and cs:  # payload bytes
        c = rng.choice(cs)
        c[1] = mutate_bytes(c[1], rng)
    elif k == 4 and cs:
        del cs[rng.randrange(len(cs))]
    elif k == 5 and cs:
        c = rng.choice(cs)
        cs.insert(rng.randrange(len(cs) + 1), [c[0], c[1]])
    elif k == 6 and len(cs) >= 2:
        i, j = rng.randrange(len(cs)), rng.randrange(len(cs))
        cs[i], cs[j] = cs[j], cs[i]
    elif k == 7:  # a new chunk: metadata (sometimes large), unknown, or odd types
        t = rng.choice(TYPES)
        size = rng.choice([0, 1, 10, 1000, 1 << 16, 1 << 20])
        cs.insert(rng.randint(min(1, len(cs)), len(cs)), [t, os.urandom(min(size, 64)) * (
            size // 64 + 1)])
    elif k == 8 and cs:
        rng.choice(cs)[0] = rng.choice(TYPES)
    elif k == 9:  # the alpha plane's PNG
        hc = d.head()
        f = parse_head(hc[1], d.major) if hc else None
        w, h = (f["w"], f["h"]) if f else (16, 24)
        alph = [c for c in cs if c[0] == b"ALPH"]
        if alph:
            c = alph[0]
            c[1] = (c[1][:1] if rng.random() < 0.9 else bytes([rng.randrange(4)])) + mutate_png(
                c[1][1:], rng, w, h)
        elif f is not None:
            f["mode"] = rng.choice([2, 3])
            hc[1] = write_head(f, d.major)
            cs.insert(1, [b"ALPH", b"\0" + make_png(min(w, 4096), min(h, 4096))])
    elif k == 10:  # version and framing
        new = rng.choice([1, 2, 3, 3, 4, 0])
        hc = d.head()
        f = parse_head(hc[1], d.major) if hc else None
        if f is not None and new in (1, 2, 3) and (d.major == 1) != (new == 1):
            hc[1] = write_head(f, new)
            for c in cs:
                if c[0] == b"YSTR":
                    c[1] = c[1][4:] if d.major == 1 else struct.pack("<I", 0) + c[1]
            if new == 1:  # number the slices
                n = 0
                for c in cs:
                    if c[0] == b"YSTR":
                        c[1] = struct.pack("<I", n) + c[1][4:]
                        n += 1
        d.major = new
        d.minor = rng.choice([0, 0, 1, 255])
    elif pool:  # splice a chunk of another seed
        other = parse_doc(rng.choice(pool))
        if other and other.chunks and cs:
            c = rng.choice(other.chunks)
            same = [x for x in cs if x[0] == c[0]]
            if same:
                same[0][1] = c[1]
            else:
                cs.insert(rng.randint(1, len(cs)), [c[0], c[1]])


_pool: list = []
_fuzzing = False  # atheris.Fuzz() is running: its own mutations are available


def load_pool() -> list:
    if not _pool and CORPUS.is_dir():
        _pool.extend(p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.is_file())
    return _pool


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """One structure-aware mutation of `data` (libFuzzer's own byte mutations when it is not a
    parsable .aec file, and for about one mutation in eight)."""
    rng = random.Random(seed)
    pool = load_pool()
    d = parse_doc(data)
    if d is None and pool and rng.random() < 0.5:
        d = parse_doc(rng.choice(pool))
    if d is None or rng.random() < 0.12:
        if _fuzzing:  # libFuzzer's length limit can be below the input's length: cut first
            return atheris.Mutate(data[:max_size], max_size)
        return mutate_bytes(data, rng)[:max_size]
    try:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutate_doc(d, rng, pool)
        out = write_doc(d)
    except Exception as e:  # a bug of the mutator, not of aecodec: say so, mutate bytes instead
        print(f"mutator error (ignored): {type(e).__name__}: {e}", file=sys.stderr)
        return mutate_bytes(data, rng)[:max_size]
    return out if len(out) <= max_size else out[:max_size]


# ---------------------------------------------------------------- the target
class Finding(Exception):
    pass


def expect_image(im, data: bytes) -> None:
    hd = container.parse(data).header
    if im.size != (hd.width, hd.height) or im.mode != hd.mode:
        raise Finding(f"decoded {im.size} {im.mode}, header says {hd.width}x{hd.height} {hd.mode}")


def expect_preview(data: bytes) -> None:
    """A file with a prvw chunk: its scale-8 decode is the preview's size and mode, or an
    AecError."""
    try:
        im = aecodec.decompress(data, threads=1, scale=8)
    except aecodec.AecError:
        return
    hd = container.parse(data).header
    if im.size != (-(-hd.width // 8), -(-hd.height // 8)) or im.mode != hd.mode:
        raise Finding(f"preview decoded {im.size} {im.mode}, header says "
                      f"{hd.width}x{hd.height} {hd.mode}")


def test_one_input(data: bytes) -> None:
    if b"prvw" in data:
        expect_preview(data)
    try:
        im = aecodec.decompress(data, threads=1)
    except aecodec.AecError:
        ok = False
    else:
        expect_image(im, data)
        ok = True
    try:
        with Image.open(io.BytesIO(data), formats=["AEC"]) as im:
            im.load()
    except (aecodec.AecError, UnidentifiedImageError):
        if ok:
            raise Finding("decompress decoded the file, Image.open/load refused it") from None
        return
    expect_image(im, data)
    if not ok:
        raise Finding("Image.open/load decoded a file decompress refused")


def plain_loop(iterations: int, seed: int, dirs: list, keep_going: bool = False) -> None:
    """A mutation loop without coverage feedback (when atheris is not installed). Inputs that
    fail are written to ./findings/ (one per distinct exception and place with --keep-going)."""
    import hashlib
    import time
    import traceback

    rng = random.Random(seed)
    seeds = [p.read_bytes() for d in dirs for p in sorted(Path(d).iterdir()) if p.is_file()]
    seeds = seeds or load_pool()
    slowest, seen = 0.0, set()
    out = Path("findings")
    for i in range(iterations):
        data = rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, 1 << 20, rng.getrandbits(32))
        Path("current-input").write_bytes(data)  # what was running if the process dies
        t0 = time.perf_counter()
        try:
            test_one_input(data)
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)[-1]
            sig = f"{type(e).__name__} {tb.filename}:{tb.lineno}"
            out.mkdir(exist_ok=True)
            name = out / hashlib.sha1(sig.encode()).hexdigest()[:12]
            if sig not in seen:
                seen.add(sig)
                name.write_bytes(data)
                print(f"finding at iteration {i}: {sig}: {e!s:.200} ({name})", file=sys.stderr)
            if not keep_going:
                raise
        dt = time.perf_counter() - t0
        slowest = max(slowest, dt)
        if dt > 2.0:
            out.mkdir(exist_ok=True)
            (out / f"slow-{i}").write_bytes(data)
            print(f"finding: input {i} took {dt:.1f} s ({out}/slow-{i})", file=sys.stderr)
        if i % 1000 == 0:
            print(f"#{i} slowest {slowest * 1000:.0f} ms", file=sys.stderr)
    print(f"{iterations} iterations, slowest {slowest * 1000:.0f} ms, {len(seen)} distinct "
          "findings", file=sys.stderr)


def main() -> None:
    if "--iterations" in sys.argv:
        i = sys.argv.index("--iterations")
        args = sys.argv[1:i] + sys.argv[i + 2:]
        plain_loop(int(sys.argv[i + 1]), 0, [a for a in args if not a.startswith("-")],
                   "--keep-going" in args)
        return
    if atheris is None:
        sys.exit("atheris is not installed: pip install atheris, or run with --iterations N")
    global _fuzzing
    _fuzzing = True
    atheris.Setup(sys.argv, test_one_input, custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
