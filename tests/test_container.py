"""The .aec container on its own (docs/format.md): round trips of synthetic streams, chunk rules,
integrity checks and every kind of damaged input. Needs neither a model nor the core."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from aecodec import container
from aecodec.container import AecFile, Header
from aecodec.errors import (
    CorruptFileError,
    DecompressionBombError,
    FormatError,
    NotAecFileError,
    UnsupportedVersionError,
)


def make_header(width=100, height=70, mode="RGB", rows=2, name="test-model",
                orientation=0) -> Header:
    return Header(width=width, height=height, mode=mode, quality=62.5, model_name=name,
                  model_hash=bytes(range(container.HASH_LEN)), slice_rows=rows,
                  orientation=orientation)


def make_file(mode="RGB", **kw) -> AecFile:
    h = make_header(mode=mode, **kw)
    streams = [bytes([i]) * (10 + i) for i in range(h.n_slices)]
    alpha = b"\x89PNG fake alpha" if mode in container.ALPHA_MODES else None
    meta = {"icc_profile": b"icc" * 50, "exif": b"Exif\x00\x00MM", "xmp": b"<x:xmpmeta/>"}
    return AecFile(h, b"zzz" * 7, streams, alpha, meta)


def chunks(data: bytes):
    """(offset, payload offset, payload length, type) of every chunk (version-2 framing)."""
    pos, out = container.PREFIX_LEN, []
    while pos < len(data):
        length, p = container._get_varint(data, pos)
        out.append((pos, p + 4, length, data[p : p + 4]))
        pos = p + 4 + length
    return out


def split(data: bytes) -> list:
    """[(type, payload)] of a version-2 file, HEAD's and DONE's CRCs removed."""
    return [(t, data[p : p + n - 4 * (t in (b"HEAD", b"DONE"))]) for _, p, n, t in chunks(data)]


def join(parts: list, version=container.VERSION) -> bytes:
    """A version-2 file of these chunks, with valid CRCs (to forge files that only lie)."""
    out = bytearray(container.MAGIC + bytes(version))
    for t, payload in parts:
        container._append_chunk(out, t, payload, checked=t in (b"HEAD", b"DONE"))
    return bytes(out)


def insert_chunk(data: bytes, ctype: bytes, payload: bytes, before: bytes = b"ZSTR") -> bytes:
    parts = split(data)
    i = next(i for i, (t, _) in enumerate(parts) if t == before)
    return join(parts[:i] + [(ctype, payload)] + parts[i:])


def with_header(data: bytes, header: Header) -> bytes:
    """Replace the HEAD chunk (CRCs valid), e.g. to forge dimensions."""
    return join([(b"HEAD", header.to_bytes())] + split(data)[1:])


@pytest.mark.parametrize("mode", container.MODES)
def test_round_trip(mode):
    f = make_file(mode)
    data = f.to_bytes()
    assert data.startswith(container.MAGIC)
    g = container.parse(data)
    assert g.header == f.header
    assert g.z_stream == f.z_stream and g.y_streams == f.y_streams
    assert g.alpha == f.alpha and g.metadata == f.metadata and g.skipped == []


def test_slice_layout():
    h = make_header(width=64, height=64 * 5, rows=3)  # 20 latent rows → 3,3,…,2
    assert h.n_slices == 7
    assert h.slice_bounds()[0] == (0, 3) and h.slice_bounds()[-1] == (18, 20)


def test_header_only_read_stops_before_the_streams():
    data = make_file("RGBA").to_bytes()
    first_stream = next(p for _, p, _, t in chunks(data) if t == b"ALPH")
    # Only the bytes up to the first stream chunk's payload are needed.
    f = container.read_header(io.BytesIO(data[:first_stream]))
    assert (f.header.width, f.header.height, f.header.mode) == (100, 70, "RGBA")
    assert f.metadata["icc_profile"] == b"icc" * 50 and f.metadata["xmp"] == b"<x:xmpmeta/>"


def test_unknown_optional_chunk_is_skipped():
    data = insert_chunk(make_file().to_bytes(), b"frob", b"future stuff")
    f = container.parse(data)
    assert f.skipped == ["frob"] and f.y_streams == make_file().y_streams
    assert container.read_header(io.BytesIO(data)).skipped == ["frob"]


def test_unknown_critical_chunk_is_refused():
    data = insert_chunk(make_file().to_bytes(), b"FROB", b"must understand")
    with pytest.raises(UnsupportedVersionError, match="newer aecodec"):
        container.parse(data)


def test_unknown_major_version_is_refused_newer_minor_accepted():
    data = bytearray(make_file().to_bytes())
    data[len(container.MAGIC)] = 4
    with pytest.raises(UnsupportedVersionError, match="version 4.0"):
        container.parse(bytes(data))
    # A later minor version is readable, fields appended to HEAD included.
    parts = split(make_file().to_bytes())
    parts[0] = (b"HEAD", parts[0][1] + b"future field")
    newer = container.parse(join(parts, version=(3, 7)))
    assert newer.header.version == (3, 7) and newer.y_streams == make_file().y_streams


def test_version_2_framing_is_small():
    """Version 2 exists to cut the fixed cost of a file (docs/format.md, "Overhead")."""
    f = make_file()
    f.metadata = {}
    data = f.to_bytes()
    streams = len(f.z_stream) + sum(map(len, f.y_streams))
    assert data[len(container.MAGIC):container.PREFIX_LEN] == bytes(container.VERSION) == b"\3\0"
    # prefix 10, HEAD 5 + 28 fields + 4 CRC, ZSTR 5, 4 × YSTR 5, DONE 5 + 4 CRC.
    assert len(data) - streams == 10 + 37 + 5 + 5 * f.header.n_slices + 9


def test_metadata_is_optional_and_empty_values_are_not_written():
    f = make_file()
    f.metadata = {"exif": b""}
    assert container.parse(f.to_bytes()).metadata == {}


@pytest.mark.parametrize("data", [b"", b"\x00", os.urandom(2000), b"AEC\n" * 10])
def test_not_an_aec_file(data):
    with pytest.raises(NotAecFileError):
        container.parse(data)


def test_png_renamed_is_not_an_aec_file():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    with pytest.raises(NotAecFileError, match="magic"):
        container.parse(buf.getvalue())


def test_every_truncation_is_detected():
    data = make_file("LA").to_bytes()
    for n in list(range(0, len(data), 7)) + [len(data) - 1]:
        with pytest.raises(FormatError):
            container.parse(data[:n])


def test_every_single_bit_flip_is_detected():
    data = make_file("RGBA").to_bytes()
    for bit in range(len(data) * 8):
        b = bytearray(data)
        b[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            container.parse(bytes(b))


def test_header_only_read_detects_a_damaged_header():
    data = bytearray(make_file().to_bytes())
    data[container.PREFIX_LEN + 9] ^= 4  # inside HEAD's payload (its quality)
    with pytest.raises(CorruptFileError, match="CRC"):
        container.read_header(io.BytesIO(bytes(data)))


def test_trailing_garbage_is_refused():
    with pytest.raises(CorruptFileError, match="after the end"):
        container.parse(make_file().to_bytes() + b"x")


def test_decompression_bomb_header_is_refused(monkeypatch):
    data = make_file().to_bytes()
    bomb = with_header(data, make_header(width=100000, height=100000, rows=4))
    with pytest.raises(DecompressionBombError, match="100000x100000"):
        container.parse(bomb)
    with pytest.raises(Image.DecompressionBombError):  # also Pillow's own exception type
        container.read_header(io.BytesIO(bomb))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the user's explicit choice
    assert container.read_header(io.BytesIO(bomb)).header.width == 100000


def test_inconsistent_headers_are_refused():
    data = make_file().to_bytes()
    h = make_header()
    h.slice_rows = h.latent_height + 1
    with pytest.raises(CorruptFileError, match="slice height"):
        container.parse(with_header(data, h))
    for bad_name in ("../../etc", "a/b", ".hidden", ""):
        h = make_header(name=bad_name)
        with pytest.raises(CorruptFileError, match="model name"):
            container.parse(with_header(data, h))
    h = make_header()
    h.quality = float("nan")
    with pytest.raises(CorruptFileError, match="quality"):
        container.parse(with_header(data, h))
    parts = split(data)
    parts[0] = (b"HEAD", parts[0][1][:20])  # cut inside the model hash
    with pytest.raises(CorruptFileError, match="too short"):
        container.parse(join(parts))


def test_huge_chunk_length_is_refused_before_allocation():
    huge = container._varint(0x7FFFFFF0)
    for ctype, read in ((b"ZSTR", container.parse),
                        (b"iccp", lambda d: container.read_header(io.BytesIO(d)))):
        data = make_file().to_bytes()
        pos, p, _, _ = next(c for c in chunks(data) if c[3] == ctype)
        with pytest.raises(CorruptFileError, match="claims"):
            read(data[:pos] + huge + data[p - 4 :])


@pytest.mark.parametrize("raw", [b"\x80\x00", b"\xff\xff\xff\xff\x7f", b"\x80" * 5])
def test_overlong_or_oversized_varints_are_refused(raw):
    with pytest.raises(CorruptFileError, match="variable-length"):
        container._get_varint(raw, 0)


def test_varint_round_trip():
    for n in (0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1):
        raw = container._varint(n)
        assert container._get_varint(raw + b"x", 0) == (n, len(raw))
    with pytest.raises(ValueError, match="out of range"):
        container._varint(2**31)


def test_missing_or_extra_slices_are_refused():
    f = make_file()
    parts = split(f.to_bytes())
    last = max(i for i, (t, _) in enumerate(parts) if t == b"YSTR")
    with pytest.raises(CorruptFileError, match="slices"):
        container.parse(join(parts[:last] + parts[last + 1 :]))
    with pytest.raises(CorruptFileError, match="more Y slices"):
        container.parse(join(parts[:-1] + [(b"YSTR", b"extra")] + parts[-1:]))


def test_alpha_modes_need_their_alpha_plane():
    parts = [c for c in split(make_file("RGBA").to_bytes()) if c[0] != b"ALPH"]
    with pytest.raises(CorruptFileError, match="alpha"):
        container.parse(join(parts))


def test_crcs_are_standard_crc32_of_all_bytes_before_them():
    data = make_file().to_bytes()
    for _, p, n, t in chunks(data):
        if t in (b"HEAD", b"DONE"):
            (crc,) = struct.unpack_from("<I", data, p + n - 4)
            assert crc == zlib.crc32(data[: p + n - 4])
    assert data.endswith(struct.pack("<I", zlib.crc32(data[:-4])))


# ---- version 1 (written until aecodec 0.x; still read) ----------------------------------------

GOLDEN_V1 = Path(__file__).resolve().parent / "data" / "golden.aec"


def test_version_1_file_is_read():
    f = container.parse(GOLDEN_V1.read_bytes())
    h = f.header
    assert h.version == (1, 0) and (h.width, h.height, h.mode) == (200, 120, "RGB")
    assert (h.latent_channels, h.hyper_channels) == (8, 4) and len(h.model_hash) == 32
    assert len(f.y_streams) == h.n_slices == 4
    assert container.read_header(io.BytesIO(GOLDEN_V1.read_bytes())).header == h


def test_version_1_file_rewritten_as_version_2_keeps_its_streams():
    v1 = container.parse(GOLDEN_V1.read_bytes())
    data = v1.to_bytes()
    v2 = container.parse(data)
    assert v2.header.version == container.VERSION and len(data) < len(GOLDEN_V1.read_bytes())
    assert v2.header.model_hash == v1.header.model_hash[: container.HASH_LEN]
    assert (v2.z_stream, v2.y_streams) == (v1.z_stream, v1.y_streams)


def test_version_1_damage_is_detected():
    data = GOLDEN_V1.read_bytes()
    for pos in range(0, len(data), 13):
        b = bytearray(data)
        b[pos] ^= 0x20
        with pytest.raises(FormatError):
            container.parse(bytes(b))
    for n in range(0, len(data), 97):
        with pytest.raises(FormatError):
            container.parse(data[:n])


@pytest.mark.parametrize("orientation", range(container.ORIENTATIONS))
def test_orientation_round_trips_and_sets_the_coded_size(orientation):
    f = make_file(width=200, height=70, orientation=orientation)
    h = container.parse(f.to_bytes()).header
    assert (h.orientation, h.width, h.height) == (orientation, 200, 70)
    # a quarter turn codes a 70 × 200 image: the 8 × 16 latent grid becomes 16 × 8
    assert (h.latent_height, h.latent_width) == ((16, 8) if orientation % 2 else (8, 16))


def test_unknown_flags_are_refused_in_version_3_and_ignored_in_version_2():
    data = make_file(orientation=5).to_bytes()
    head = split(data)[0][1]
    flags_at = head.index(bytes([container.MODES.index("RGB"), 5]))  # mode u8 · flags u8
    forged = bytearray(head)
    forged[flags_at + 1] = 0x0D  # bit 3 set
    with pytest.raises(CorruptFileError, match="flags"):
        container.parse(join([(b"HEAD", bytes(forged))] + split(data)[1:]))
    # version 2 wrote 0 and ignored the byte: a v2 reader never saw an orientation
    f = container.parse(join([(b"HEAD", bytes(forged))] + split(data)[1:], version=(2, 0)))
    assert f.header.orientation == 0 and f.header.version == (2, 0)
