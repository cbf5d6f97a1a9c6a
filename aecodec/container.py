"""The .aec container: bytes <-> AecFile. Format only, no codec logic (spec: docs/format.md).

    file   = MAGIC (8 bytes) · major u8 · minor u8 · chunk* ending with a DONE chunk
    chunk  = length u32 · type 4×ASCII · payload (length bytes) · crc32(type + payload) u32
    (every integer little-endian)

The header chunk HEAD comes first and alone gives size, mode, model and latent layout; a type
whose first letter is upper-case is critical (a reader that does not know it refuses the file),
lower-case is optional (skipped when unknown). Every chunk's CRC-32 is checked while parsing,
so a damaged file is refused before any entropy decoding starts (HEAD's CRC also covers the
magic and version bytes, so every byte of a valid file is checked).
"""

from __future__ import annotations

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

MAGIC = b"\x89AEC\r\n\x1a\n"
VERSION = (1, 0)  # (major, minor): readers refuse another major, accept any minor
PREFIX_LEN = len(MAGIC) + 2

MODES = ("RGB", "L", "RGBA", "LA")  # HEAD mode byte = index in this tuple
ALPHA_MODES = ("RGBA", "LA")
MAX_SIDE = 1 << 24  # absolute bound on width and height, whatever MAX_IMAGE_PIXELS says
MAX_CHANNELS = 4096
MAX_CHUNK = (1 << 31) - 1
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

T_HEAD, T_ZSTR, T_YSTR, T_ALPH, T_DONE = b"HEAD", b"ZSTR", b"YSTR", b"ALPH", b"DONE"
T_ICC, T_EXIF, T_XMP = b"iccp", b"exif", b"xmpd"
METADATA_TYPES = {T_ICC: "icc_profile", T_EXIF: "exif", T_XMP: "xmp"}
ALPHA_PNG = 0  # ALPH method byte: the alpha plane as a PNG datastream (8-bit greyscale)

_HEAD_FIXED = struct.Struct("<IIBBfHHIIIII32sB")  # see Header.to_bytes


@dataclass
class Header:
    """Everything the HEAD chunk records."""

    width: int
    height: int
    mode: str  # "RGB", "L", "RGBA" or "LA": the mode decoding gives back
    quality: float  # 0..100, selects the gain vector (docs/model-package.md)
    model_name: str
    model_hash: bytes  # SHA-256 content hash of the model package, 32 bytes
    latent_channels: int  # M
    latent_height: int  # h = ceil(height/64)*4
    latent_width: int  # w = ceil(width/64)*4
    hyper_channels: int  # Nz
    hyper_height: int  # h/4
    hyper_width: int  # w/4
    slice_rows: int  # latent rows per YSTR slice (the last one may have fewer)
    version: tuple = VERSION

    @property
    def n_slices(self) -> int:
        return -(-self.latent_height // self.slice_rows)

    def slice_bounds(self) -> list[tuple[int, int]]:
        """(first row, end row) of every Y slice, in file order."""
        r = self.slice_rows
        return [(i * r, min((i + 1) * r, self.latent_height)) for i in range(self.n_slices)]

    @property
    def model_id(self) -> str:
        return f"{self.model_name} (content hash {self.model_hash.hex()[:16]})"

    def to_bytes(self) -> bytes:
        name = self.model_name.encode("utf-8")
        return _HEAD_FIXED.pack(
            self.width, self.height, MODES.index(self.mode), 0, self.quality,
            self.latent_channels, self.hyper_channels, self.latent_height, self.latent_width,
            self.hyper_height, self.hyper_width, self.slice_rows, self.model_hash, len(name),
        ) + name

    @classmethod
    def from_bytes(cls, payload: bytes, version: tuple = VERSION) -> Header:
        if len(payload) < _HEAD_FIXED.size:
            raise CorruptFileError(f"header chunk too short ({len(payload)} bytes)")
        (w, h, mode, _flags, q, m, nz, yh, yw, zh, zw, rows, mhash, nlen) = _HEAD_FIXED.unpack_from(
            payload)
        end = _HEAD_FIXED.size + nlen
        if len(payload) < end:  # bytes after the name are fields of a later minor version
            raise CorruptFileError("header chunk too short for its model name")
        try:
            name = payload[_HEAD_FIXED.size:end].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptFileError("model name in the header is not UTF-8") from None
        if mode >= len(MODES):
            raise CorruptFileError(f"unknown colour mode code {mode}")
        hdr = cls(w, h, MODES[mode], float(q), name, bytes(mhash), m, yh, yw, nz, zh, zw, rows,
                  version)
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
        if not (math.isfinite(self.quality) and 0.0 <= self.quality <= 100.0):
            raise CorruptFileError(f"invalid quality {self.quality} (must be 0..100)")
        if not (1 <= self.latent_channels <= MAX_CHANNELS
                and 1 <= self.hyper_channels <= MAX_CHANNELS):
            raise CorruptFileError("invalid latent channel counts in the header")
        yh, yw = latent_size(self.width, self.height)
        if (self.latent_height, self.latent_width) != (yh, yw) or (
                self.hyper_height, self.hyper_width) != (yh // 4, yw // 4):
            raise CorruptFileError(
                f"latent shapes {self.latent_height}x{self.latent_width} / {self.hyper_height}x"
                f"{self.hyper_width} do not match a {self.width}x{self.height} image")
        if not 1 <= self.slice_rows <= self.latent_height:
            raise CorruptFileError(f"invalid slice height {self.slice_rows}")


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(h, w) of the latent grid: the image is padded to a multiple of 64, then / 16."""
    return -(-height // 64) * 4, -(-width // 64) * 4


def check_pixels(width: int, height: int) -> None:
    """Refuse sizes above PIL.Image.MAX_IMAGE_PIXELS like Pillow refuses decompression bombs."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise DecompressionBombError(
            f"image size {width}x{height} ({width * height} pixels) exceeds the limit of {limit} "
            "pixels (PIL.Image.MAX_IMAGE_PIXELS); raise that limit if you trust this file")


@dataclass
class AecFile:
    """A parsed .aec file: header, entropy-coded streams and optional chunks."""

    header: Header
    z_stream: bytes = b""
    y_streams: list = field(default_factory=list)  # one bytes object per slice
    alpha: bytes | None = None  # PNG datastream of the alpha plane (8-bit greyscale, W×H)
    metadata: dict = field(default_factory=dict)  # "icc_profile" / "exif" / "xmp" -> bytes
    skipped: list = field(default_factory=list)  # types of unknown optional chunks skipped

    def to_bytes(self) -> bytes:
        h = self.header
        h.validate()
        if len(self.y_streams) != h.n_slices:
            raise ValueError(f"{len(self.y_streams)} Y streams for {h.n_slices} slices")
        if (self.alpha is not None) != (h.mode in ALPHA_MODES):
            raise ValueError(f"mode {h.mode} needs {'an' if h.mode in ALPHA_MODES else 'no'} "
                             "alpha plane")
        prefix = MAGIC + bytes(VERSION)
        out = [prefix, _chunk(T_HEAD, h.to_bytes(), prefix)]
        for ctype, key in METADATA_TYPES.items():
            if self.metadata.get(key):
                out.append(_chunk(ctype, bytes(self.metadata[key])))
        if self.alpha is not None:
            out.append(_chunk(T_ALPH, bytes([ALPHA_PNG]) + self.alpha))
        out.append(_chunk(T_ZSTR, self.z_stream))
        for i, s in enumerate(self.y_streams):
            out.append(_chunk(T_YSTR, struct.pack("<I", i) + s))
        out.append(_chunk(T_DONE, b""))
        return b"".join(out)


def _chunk(ctype: bytes, payload: bytes, crc_prefix: bytes = b"") -> bytes:
    """A framed chunk; HEAD's CRC also covers the file prefix (magic and version)."""
    if len(payload) > MAX_CHUNK:
        raise ValueError(f"chunk {ctype.decode()} too large ({len(payload)} bytes)")
    return (struct.pack("<I", len(payload)) + ctype + payload
            + struct.pack("<I", zlib.crc32(crc_prefix + ctype + payload)))


def _check_prefix(prefix: bytes) -> tuple:
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        if not prefix:
            raise NotAecFileError("not an .aec file: it is empty")
        raise NotAecFileError("not an .aec file (wrong magic number)")
    if len(prefix) < PREFIX_LEN:
        raise CorruptFileError("truncated .aec file (ends inside the version)")
    major, minor = prefix[len(MAGIC)], prefix[len(MAGIC) + 1]
    if major != VERSION[0]:
        raise UnsupportedVersionError(
            f"this .aec file has format version {major}.{minor}; this aecodec reads version "
            f"{VERSION[0]}.x: install a newer aecodec (pip install -U aecodec)")
    return (major, minor)


def _check_type(ctype: bytes) -> None:
    if not all(65 <= c <= 90 or 97 <= c <= 122 or 48 <= c <= 57 or c == 95 for c in ctype):
        raise CorruptFileError(f"invalid chunk type {ctype!r}")


def _unknown(ctype: bytes, skipped: list) -> None:
    if 65 <= ctype[0] <= 90:  # upper-case first letter: critical
        raise UnsupportedVersionError(
            f"this .aec file uses a feature this aecodec does not know (chunk "
            f"{ctype.decode('ascii')}): install a newer aecodec (pip install -U aecodec)")
    skipped.append(ctype.decode("ascii"))


def parse(data: bytes) -> AecFile:
    """Parse and integrity-check a whole .aec file; raises a FormatError subclass if invalid."""
    data = memoryview(bytes(data)) if not isinstance(data, (bytes, bytearray)) else data
    prefix = bytes(data[:PREFIX_LEN])
    version = _check_prefix(prefix)
    pos, n = PREFIX_LEN, len(data)
    f: AecFile | None = None
    z_seen = done = False
    while pos < n:
        if done:
            raise CorruptFileError(f"{n - pos} unexpected bytes after the end of the .aec file")
        if n - pos < 12:
            raise CorruptFileError("truncated .aec file (ends inside a chunk header)")
        length, ctype = struct.unpack_from("<I4s", data, pos)
        _check_type(ctype)
        if length > n - pos - 12:
            raise CorruptFileError(
                f"truncated or damaged .aec file (chunk {ctype.decode()} claims {length} bytes, "
                f"{max(n - pos - 12, 0)} remain)")
        body = bytes(data[pos + 4 : pos + 8 + length])
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        if zlib.crc32(body, zlib.crc32(prefix) if f is None else 0) != crc:
            raise CorruptFileError(
                f"damaged .aec file: integrity check (CRC-32) failed in chunk {ctype.decode()}")
        payload = body[4:]
        pos += 12 + length
        if f is None:
            if ctype != T_HEAD:
                raise CorruptFileError("damaged .aec file: the first chunk is not HEAD")
            f = AecFile(Header.from_bytes(payload, version))
            continue
        if ctype == T_HEAD:
            raise CorruptFileError("damaged .aec file: two HEAD chunks")
        elif ctype == T_DONE:
            done = True
        elif ctype == T_ZSTR:
            if z_seen:
                raise CorruptFileError("damaged .aec file: two ZSTR chunks")
            f.z_stream, z_seen = payload, True
        elif ctype == T_YSTR:
            if len(payload) < 4 or struct.unpack_from("<I", payload)[0] != len(f.y_streams):
                raise CorruptFileError("damaged .aec file: Y slices out of order")
            if len(f.y_streams) >= f.header.n_slices:
                raise CorruptFileError("damaged .aec file: more Y slices than the header says")
            f.y_streams.append(payload[4:])
        elif ctype == T_ALPH:
            if f.alpha is not None or f.header.mode not in ALPHA_MODES:
                raise CorruptFileError("damaged .aec file: unexpected ALPH chunk")
            if not payload or payload[0] != ALPHA_PNG:
                raise UnsupportedVersionError(
                    "this .aec file codes its alpha plane with an unknown method: install a "
                    "newer aecodec (pip install -U aecodec)")
            f.alpha = payload[1:]
        elif ctype in METADATA_TYPES:
            f.metadata[METADATA_TYPES[ctype]] = payload
        else:
            _unknown(ctype, f.skipped)
    if f is None:
        raise CorruptFileError("truncated .aec file (no header)")
    if not done:
        raise CorruptFileError("truncated .aec file (the end chunk is missing)")
    if not z_seen or len(f.y_streams) != f.header.n_slices:
        raise CorruptFileError(
            f"damaged .aec file: {len(f.y_streams)} of {f.header.n_slices} Y slices"
            + ("" if z_seen else ", no Z stream"))
    if f.header.mode in ALPHA_MODES and f.alpha is None:
        raise CorruptFileError(f"damaged .aec file: mode {f.header.mode} without its alpha plane")
    return f


def read_header(fp: BinaryIO) -> AecFile:
    """Read only the header and the metadata chunks before the first stream (for Image.open).

    Returns an AecFile without streams. The streams are checked later by parse()."""
    prefix = fp.read(PREFIX_LEN)
    version = _check_prefix(prefix)
    remaining = _remaining(fp)
    f: AecFile | None = None
    while True:
        head = fp.read(8)
        if len(head) < 8:
            if f is None:
                raise CorruptFileError("truncated .aec file (no header)")
            return f
        length, ctype = struct.unpack("<I4s", head)
        _check_type(ctype)
        if f is not None and ctype in (T_ZSTR, T_YSTR, T_ALPH, T_DONE):
            return f  # the header part ends at the first stream
        if remaining is not None and length + 12 > remaining:
            raise CorruptFileError(
                f"truncated or damaged .aec file (chunk {ctype.decode()} claims {length} bytes)")
        if remaining is None and length > (1 << 26):
            raise CorruptFileError(f"chunk {ctype.decode()} too large to be a header chunk")
        payload = fp.read(length)
        crc = fp.read(4)
        if len(payload) < length or len(crc) < 4:
            raise CorruptFileError("truncated .aec file")
        if zlib.crc32(ctype + payload, zlib.crc32(prefix) if f is None else 0) != struct.unpack(
                "<I", crc)[0]:
            raise CorruptFileError(
                f"damaged .aec file: integrity check (CRC-32) failed in chunk {ctype.decode()}")
        if remaining is not None:
            remaining -= length + 12
        if f is None:
            if ctype != T_HEAD:
                raise CorruptFileError("damaged .aec file: the first chunk is not HEAD")
            f = AecFile(Header.from_bytes(payload, version))
        elif ctype in METADATA_TYPES:
            f.metadata[METADATA_TYPES[ctype]] = payload
        elif ctype == T_HEAD:
            raise CorruptFileError("damaged .aec file: two HEAD chunks")
        else:
            _unknown(ctype, f.skipped)


def _remaining(fp: BinaryIO) -> int | None:
    """Bytes left in a seekable file (to bound chunk lengths before reading), else None."""
    try:
        here = fp.tell()
        end = fp.seek(0, 2)
        fp.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None
