"""The .aec container: bytes <-> AecFile. Format only, no codec logic (spec: docs/format.md).

    file   = MAGIC (8 bytes) · major u8 · minor u8 · chunk* ending with a DONE chunk
    chunk  = length (LEB128) · type 4×ASCII · payload              (versions 2 and 3; 3 written)
    chunk  = length u32 · type 4×ASCII · payload · crc32 u32       (version 1, still read)
    (every fixed-size integer little-endian)

The header chunk HEAD comes first and alone gives size, mode and model; a type whose first letter
is upper-case is critical (a reader that does not know it refuses the file), lower-case is optional
(skipped when unknown). Version 2 keeps the framing small, because at 0.1 bpp a Kodak file is
~4 KB and version 1's ~150 bytes of framing were 4 % of it: HEAD and DONE each end in the CRC-32
of every byte of the file before that CRC, so a header-only read checks the header and a full
parse checks every byte before any entropy decoding starts.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image

from .errors import (
    CorruptFileError,
    DecompressionBombError,
    NotAecFileError,
    UnsupportedVersionError,
)
from .geometry import PAD, hyper_size, latent_size, padded

MAGIC = b"\x89AEC\r\n\x1a\n"
VERSION = (3, 0)  # (major, minor) written; readers refuse an unknown major, accept any minor
READ_MAJORS = (1, 2, 3)
PREFIX_LEN = len(MAGIC) + 2
HASH_LEN = 8  # bytes of the model's SHA-256 content hash a version-2/3 header keeps (v1: 32)

MODES = ("RGB", "L", "RGBA", "LA")  # HEAD mode byte = index in this tuple
ORIENTATIONS = 8  # HEAD flags bits 0-2 (version 3): the dihedral transform the image was coded in
ALPHA_MODES = ("RGBA", "LA")
MAX_SIDE = 1 << 24  # absolute bound on width and height, whatever MAX_IMAGE_PIXELS says
MAX_CHANNELS = 4096
MAX_CHUNK = (1 << 31) - 1
MAX_UNSIZED_CHUNK = 1 << 26  # header chunks read from a stream whose size is unknown
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

T_HEAD, T_ZSTR, T_YSTR, T_ALPH, T_DONE = b"HEAD", b"ZSTR", b"YSTR", b"ALPH", b"DONE"
T_ICC, T_EXIF, T_XMP = b"iccp", b"exif", b"xmpd"
T_PREVIEW = b"prvw"  # optional: an embedded preview, itself a whole .aec file (docs/format.md)
METADATA_TYPES = {T_ICC: "icc_profile", T_EXIF: "exif", T_XMP: "xmp"}
STREAM_TYPES = (T_ZSTR, T_YSTR, T_ALPH, T_DONE)  # a header-only read stops at the first
ALPHA_PNG = 0  # ALPH method byte: the alpha plane as a PNG datastream (8-bit greyscale)

_HEAD_V1 = struct.Struct("<IIBBfHHIIIII32sB")  # version 1's fixed HEAD fields
_MODE_Q = struct.Struct("<BBf")  # mode, flags, quality


@dataclass
class Header:
    """Everything the HEAD chunk records (latent shapes follow from the image size)."""

    width: int
    height: int
    mode: str  # "RGB", "L", "RGBA" or "LA": the mode decoding gives back
    quality: float  # 0..100, selects the gain vector (docs/model-package.md)
    model_name: str
    model_hash: bytes  # leading bytes of the package's SHA-256 content hash (8; 32 in v1 files)
    slice_rows: int  # latent rows per YSTR slice (the last one may have fewer)
    version: tuple = VERSION
    orientation: int = 0  # 0..7: the dihedral transform the image was coded in (images.orient)
    latent_channels: int | None = None  # M and Nz: recorded by version-1 files only
    hyper_channels: int | None = None

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) of the coded image: the image's, swapped by a quarter turn."""
        return (self.height, self.width) if self.orientation % 2 else (self.width, self.height)

    @property
    def latent_height(self) -> int:
        return latent_size(*self.coded_size)[0]

    @property
    def latent_width(self) -> int:
        return latent_size(*self.coded_size)[1]

    @property
    def hyper_height(self) -> int:
        return hyper_size(self.latent_height, self.latent_width)[0]

    @property
    def hyper_width(self) -> int:
        return hyper_size(self.latent_height, self.latent_width)[1]

    @property
    def n_slices(self) -> int:
        return -(-self.latent_height // self.slice_rows)

    def slice_bounds(self) -> list[tuple[int, int]]:
        """(first row, end row) of every Y slice, in file order."""
        r = self.slice_rows
        return [(i * r, min((i + 1) * r, self.latent_height)) for i in range(self.n_slices)]

    @property
    def model_id(self) -> str:
        return f"{self.model_name} (content hash {self.model_hash.hex()[: 2 * HASH_LEN]})"

    def to_bytes(self) -> bytes:
        """HEAD's fields as the current version writes them (the CRC is added by the framing)."""
        name = self.model_name.encode("utf-8")
        return (_varint(self.width) + _varint(self.height)
                + _MODE_Q.pack(MODES.index(self.mode), self.orientation, self.quality)
                + _varint(self.slice_rows) + self.model_hash[:HASH_LEN] + bytes([len(name)]) + name)

    @classmethod
    def from_bytes(cls, payload: bytes, version: tuple = VERSION) -> Header:
        """Parse HEAD's fields; bytes after the model name belong to a later minor version."""
        if version[0] == 1:
            return cls._from_v1(payload, version)
        try:
            w, pos = _get_varint(payload, 0)
            h, pos = _get_varint(payload, pos)
            mode, flags, q = _MODE_Q.unpack_from(payload, pos)
            rows, pos = _get_varint(payload, pos + _MODE_Q.size)
            mhash, nlen = payload[pos : pos + HASH_LEN], payload[pos + HASH_LEN]
        except (struct.error, IndexError):
            raise CorruptFileError(f"header chunk too short ({len(payload)} bytes)") from None
        if version[0] == 2:  # version 2 wrote 0 and ignored the flags
            flags = 0
        elif flags >= ORIENTATIONS:
            raise CorruptFileError(f"invalid header flags 0x{flags:02x} (bits 3-7 must be 0)")
        pos += HASH_LEN + 1
        return cls._build(w, h, mode, q, payload[pos : pos + nlen], nlen, mhash, rows, version,
                          flags)

    @classmethod
    def _from_v1(cls, payload: bytes, version: tuple) -> Header:
        if len(payload) < _HEAD_V1.size:
            raise CorruptFileError(f"header chunk too short ({len(payload)} bytes)")
        (w, h, mode, _flags, q, m, nz, yh, yw, zh, zw, rows, mhash, nlen) = _HEAD_V1.unpack_from(
            payload)
        name = payload[_HEAD_V1.size : _HEAD_V1.size + nlen]
        hdr = cls._build(w, h, mode, q, name, nlen, mhash, rows, version)
        if (yh, yw, zh, zw) != (hdr.latent_height, hdr.latent_width, hdr.hyper_height,
                                hdr.hyper_width):
            raise CorruptFileError(
                f"latent shapes {yh}x{yw} / {zh}x{zw} do not match a {w}x{h} image")
        if not (1 <= m <= MAX_CHANNELS and 1 <= nz <= MAX_CHANNELS):
            raise CorruptFileError("invalid latent channel counts in the header")
        hdr.latent_channels, hdr.hyper_channels = m, nz
        return hdr

    @classmethod
    def _build(cls, w, h, mode, q, name, nlen, mhash, rows, version, orientation=0) -> Header:
        if len(name) < nlen:
            raise CorruptFileError("header chunk too short for its model name")
        try:
            text = bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptFileError("model name in the header is not UTF-8") from None
        if mode >= len(MODES):
            raise CorruptFileError(f"unknown colour mode code {mode}")
        hdr = cls(w, h, MODES[mode], float(q), text, bytes(mhash), rows, version, orientation)
        hdr.validate()
        return hdr

    def validate(self) -> None:
        """Bounds and consistency; refuses decompression bombs before anything is allocated."""
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise CorruptFileError(
                f"invalid image size {self.width}x{self.height} (each side must be 1..{MAX_SIDE})")
        check_pixels(self.width, self.height)
        if not MODEL_NAME_RE.match(self.model_name):
            raise CorruptFileError(f"invalid model name {self.model_name!r} in the header")
        if len(self.model_hash) < HASH_LEN:
            raise CorruptFileError(f"model hash of {len(self.model_hash)} bytes (needs {HASH_LEN})")
        if not (isinstance(self.orientation, int) and 0 <= self.orientation < ORIENTATIONS):
            raise CorruptFileError(f"invalid orientation {self.orientation!r} (must be 0..7)")
        if not (math.isfinite(self.quality) and 0.0 <= self.quality <= 100.0):
            raise CorruptFileError(f"invalid quality {self.quality} (must be 0..100)")
        if not 1 <= self.slice_rows <= self.latent_height:
            raise CorruptFileError(
                f"invalid slice height {self.slice_rows} (must be 1..{self.latent_height})")


def check_pixels(width: int, height: int) -> None:
    """Refuse sizes above PIL.Image.MAX_IMAGE_PIXELS like Pillow refuses decompression bombs.

    The codec works on the image padded to multiples of PAD (64) pixels, so a thin image costs
    up to 64 times its own pixels (1 × 80 M pixels is coded as 64 × 80 M): the padded grid is
    bounded too, by twice the limit plus one padded block, which only such slivers exceed."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        return
    if width * height > limit:
        raise DecompressionBombError(
            f"image size {width}x{height} ({width * height} pixels) exceeds the limit of {limit} "
            "pixels (PIL.Image.MAX_IMAGE_PIXELS); raise that limit if you trust this file")
    grid = padded(width) * padded(height)
    if grid > 2 * limit + PAD * PAD:
        raise DecompressionBombError(
            f"image size {width}x{height} is coded as {padded(width)}x{padded(height)} pixels "
            f"(padded to multiples of {PAD}), more than twice the limit of {limit} pixels "
            "(PIL.Image.MAX_IMAGE_PIXELS); raise that limit if you trust this file")


def _varint(n: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low group first, high bit set on all but the last."""
    if not 0 <= n <= MAX_CHUNK:
        raise ValueError(f"value {n} out of range for a varint (0..{MAX_CHUNK})")
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at buf[pos]; at most 5 bytes, shortest form only."""
    value = 0
    for i in range(5):
        b = buf[pos + i]  # IndexError on a truncated buffer: the caller names what was cut
        value |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            if (b == 0 and i > 0) or value > MAX_CHUNK:
                raise CorruptFileError("damaged .aec file: invalid variable-length integer")
            return value, pos + i + 1
    raise CorruptFileError("damaged .aec file: invalid variable-length integer")


@dataclass
class AecFile:
    """A parsed .aec file: header, entropy-coded streams and optional chunks."""

    header: Header
    z_stream: bytes = b""
    y_streams: list = field(default_factory=list)  # one bytes object per slice
    alpha: bytes | None = None  # PNG datastream of the alpha plane (8-bit greyscale, W×H)
    metadata: dict = field(default_factory=dict)  # "icc_profile" / "exif" / "xmp" -> bytes
    preview: bytes | None = None  # an embedded .aec file of the image at 1/8 of its size
    skipped: list = field(default_factory=list)  # types of unknown optional chunks skipped

    def to_bytes(self) -> bytes:
        """The file in the current format version (whatever version it was read from)."""
        h = self.header
        h.validate()
        if len(self.y_streams) != h.n_slices:
            raise ValueError(f"{len(self.y_streams)} Y streams for {h.n_slices} slices")
        if (self.alpha is not None) != (h.mode in ALPHA_MODES):
            raise ValueError(f"mode {h.mode} needs {'an' if h.mode in ALPHA_MODES else 'no'} "
                             "alpha plane")
        out = bytearray(MAGIC + bytes(VERSION))
        _append_chunk(out, T_HEAD, h.to_bytes(), checked=True)
        for ctype, key in METADATA_TYPES.items():
            if self.metadata.get(key):
                _append_chunk(out, ctype, bytes(self.metadata[key]))
        if self.alpha is not None:
            _append_chunk(out, T_ALPH, bytes([ALPHA_PNG]) + self.alpha)
        _append_chunk(out, T_ZSTR, self.z_stream)
        for s in self.y_streams:
            _append_chunk(out, T_YSTR, s)
        if self.preview is not None:  # last: a reader of the header never reads past it
            _append_chunk(out, T_PREVIEW, self.preview)
        _append_chunk(out, T_DONE, b"", checked=True)
        return bytes(out)


def _append_chunk(out: bytearray, ctype: bytes, payload: bytes, checked: bool = False) -> None:
    """Append a chunk; a checked one (HEAD, DONE) ends in the CRC-32 of all bytes before it."""
    if len(payload) + 4 * checked > MAX_CHUNK:
        raise ValueError(f"chunk {ctype.decode()} too large ({len(payload)} bytes)")
    out += _varint(len(payload) + 4 * checked) + ctype + payload
    if checked:
        out += struct.pack("<I", zlib.crc32(out))


def _check_prefix(prefix: bytes) -> tuple:
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        if not prefix:
            raise NotAecFileError("not an .aec file: it is empty")
        raise NotAecFileError("not an .aec file (wrong magic number)")
    if len(prefix) < PREFIX_LEN:
        raise CorruptFileError("truncated .aec file (ends inside the version)")
    major, minor = prefix[len(MAGIC)], prefix[len(MAGIC) + 1]
    if major not in READ_MAJORS:
        raise UnsupportedVersionError(
            f"this .aec file has format version {major}.{minor}; this aecodec reads versions "
            f"{', '.join(f'{v}.x' for v in READ_MAJORS)}: install a newer aecodec "
            "(pip install -U aecodec)")
    return (major, minor)


def _check_type(ctype: bytes) -> None:
    if not all(65 <= c <= 90 or 97 <= c <= 122 or 48 <= c <= 57 or c == 95 for c in ctype):
        raise CorruptFileError(f"damaged .aec file: invalid chunk type {ctype!r}")


def _unknown(ctype: bytes, skipped: list) -> None:
    if 65 <= ctype[0] <= 90:  # upper-case first letter: critical
        raise UnsupportedVersionError(
            f"this .aec file uses a feature this aecodec does not know (chunk "
            f"{ctype.decode('ascii')}): install a newer aecodec (pip install -U aecodec)")
    skipped.append(ctype.decode("ascii"))


class _ChunkReader:
    """The chunks of one file, read in order from a binary stream, framing and CRCs checked.

    `remaining` bounds every claimed length before anything is read or allocated (None for a
    stream of unknown size: header chunks are then capped at MAX_UNSIZED_CHUNK bytes)."""

    def __init__(self, fp: BinaryIO, prefix: bytes, version: tuple, remaining: int | None):
        self.fp, self.version, self.major, self.remaining = fp, version, version[0], remaining
        self.prefix = prefix
        self.crc = zlib.crc32(prefix)  # version 2+: CRC-32 of every byte read so far
        self.first = True

    def _read(self, n: int) -> bytes:
        b = self.fp.read(n)
        if len(b) < n:
            raise CorruptFileError("truncated .aec file")
        self._account(b)
        return b

    def _account(self, b: bytes) -> None:
        if self.remaining is not None:
            self.remaining -= len(b)
        if self.major >= 2:
            self.crc = zlib.crc32(b, self.crc)

    def next_head(self) -> tuple[bytes, int] | None:
        """(type, payload length) of the next chunk, or None at the end of the file."""
        raw = self.fp.read(1)
        if not raw:
            return None
        self._account(raw)
        if self.major == 1:
            length, ctype = struct.unpack("<I4s", raw + self._read(7))
        else:
            while raw[-1] >= 0x80 and len(raw) < 5:
                raw += self._read(1)
            length = _get_varint(raw, 0)[0]
            ctype = self._read(4)
        _check_type(ctype)
        return ctype, length

    def payload(self, ctype: bytes, length: int) -> bytes:
        """Read the payload of the chunk whose head was just read, checking its CRC."""
        overhead = 4 if self.major == 1 else 0  # version 1: the CRC after the payload
        if self.remaining is not None and length + overhead > self.remaining:
            raise CorruptFileError(
                f"truncated or damaged .aec file (chunk {ctype.decode()} claims {length} bytes, "
                f"{max(self.remaining - overhead, 0)} remain)")
        if self.remaining is None and length > MAX_UNSIZED_CHUNK:
            raise CorruptFileError(f"chunk {ctype.decode()} too large to be a header chunk")
        if self.major == 1:
            body = self._read(length)
            (crc,) = struct.unpack("<I", self._read(4))
            check = zlib.crc32(ctype + body, zlib.crc32(self.prefix) if self.first else 0)
            self.first = False
            _check_crc(check == crc, ctype)
            return body
        before = self.crc
        body = self._read(length)
        if ctype not in (T_HEAD, T_DONE):
            return body
        _check_crc(length >= 4 and zlib.crc32(body[:-4], before) == struct.unpack(
            "<I", body[-4:])[0], ctype)
        return body[:-4]


def _check_crc(ok: bool, ctype: bytes) -> None:
    if not ok:
        raise CorruptFileError(
            f"damaged .aec file: integrity check (CRC-32) failed in chunk {ctype.decode()}")


def _open(fp: BinaryIO, remaining: int | None) -> _ChunkReader:
    prefix = fp.read(PREFIX_LEN)
    version = _check_prefix(prefix)
    return _ChunkReader(fp, prefix, version,
                        None if remaining is None else remaining - len(prefix))


def _read_header_chunk(rd: _ChunkReader) -> AecFile:
    head = rd.next_head()
    if head is None:
        raise CorruptFileError("truncated .aec file (no header)")
    payload = rd.payload(*head)
    if head[0] != T_HEAD:
        raise CorruptFileError("damaged .aec file: the first chunk is not HEAD")
    return AecFile(Header.from_bytes(payload, rd.version))


def parse(data: bytes) -> AecFile:
    """Parse and integrity-check a whole .aec file; raises a FormatError subclass if invalid."""
    data = bytes(data)
    rd = _open(io.BytesIO(data), len(data))
    f = _read_header_chunk(rd)
    z_seen = done = False
    while not done and (head := rd.next_head()) is not None:
        ctype, length = head
        payload = rd.payload(ctype, length)
        if ctype == T_HEAD:
            raise CorruptFileError("damaged .aec file: two HEAD chunks")
        elif ctype == T_DONE:
            done = True
        elif ctype == T_ZSTR:
            if z_seen:
                raise CorruptFileError("damaged .aec file: two ZSTR chunks")
            f.z_stream, z_seen = payload, True
        elif ctype == T_YSTR:
            _add_slice(f, payload, rd.major)
        elif ctype == T_ALPH:
            _set_alpha(f, payload)
        elif ctype in METADATA_TYPES:
            f.metadata[METADATA_TYPES[ctype]] = payload
        elif ctype == T_PREVIEW:
            if f.preview is not None:
                raise CorruptFileError("damaged .aec file: two prvw (preview) chunks")
            f.preview = payload
        else:
            _unknown(ctype, f.skipped)
    if not done:
        raise CorruptFileError("truncated .aec file (the end chunk is missing)")
    if rd.remaining:
        raise CorruptFileError(f"{rd.remaining} unexpected bytes after the end of the .aec file")
    if not z_seen or len(f.y_streams) != f.header.n_slices:
        raise CorruptFileError(
            f"damaged .aec file: {len(f.y_streams)} of {f.header.n_slices} Y slices"
            + ("" if z_seen else ", no Z stream"))
    if f.header.mode in ALPHA_MODES and f.alpha is None:
        raise CorruptFileError(f"damaged .aec file: mode {f.header.mode} without its alpha plane")
    return f


def _add_slice(f: AecFile, payload: bytes, major: int) -> None:
    if major == 1:  # version 1 numbers its slices
        if len(payload) < 4 or struct.unpack_from("<I", payload)[0] != len(f.y_streams):
            raise CorruptFileError("damaged .aec file: Y slices out of order")
        payload = payload[4:]
    if len(f.y_streams) >= f.header.n_slices:
        raise CorruptFileError("damaged .aec file: more Y slices than the header says")
    f.y_streams.append(payload)


def _set_alpha(f: AecFile, payload: bytes) -> None:
    if f.alpha is not None or f.header.mode not in ALPHA_MODES:
        raise CorruptFileError("damaged .aec file: unexpected ALPH chunk")
    if not payload or payload[0] != ALPHA_PNG:
        raise UnsupportedVersionError(
            "this .aec file codes its alpha plane with an unknown method: install a "
            "newer aecodec (pip install -U aecodec)")
    f.alpha = payload[1:]


def read_header(fp: BinaryIO) -> AecFile:
    """Read only the header and the metadata chunks before the first stream (for Image.open).

    Returns an AecFile without streams. HEAD's CRC is checked here; in a version-2/3 file the
    metadata chunks are checked with the rest of the file by parse(), when the image is loaded."""
    rd = _open(fp, _remaining(fp))
    f = _read_header_chunk(rd)
    while (head := rd.next_head()) is not None:
        ctype, length = head
        if ctype in STREAM_TYPES:
            return f  # the header part ends at the first stream
        payload = rd.payload(ctype, length)
        if ctype in METADATA_TYPES:
            f.metadata[METADATA_TYPES[ctype]] = payload
        elif ctype == T_HEAD:
            raise CorruptFileError("damaged .aec file: two HEAD chunks")
        else:
            _unknown(ctype, f.skipped)
    return f


def _remaining(fp: BinaryIO) -> int | None:
    """Bytes left in a seekable file (to bound chunk lengths before reading), else None."""
    try:
        here = fp.tell()
        end = fp.seek(0, 2)
        fp.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None
