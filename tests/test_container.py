"""The .aec container on its own (docs/format.md): round trips of synthetic streams, chunk rules,
integrity checks and every kind of damaged input. Needs neither a model nor the core."""

from __future__ import annotations

import io
import os
import struct
import zlib

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


def make_header(width=100, height=70, mode="RGB", rows=2, name="test-model") -> Header:
    yh, yw = container.latent_size(width, height)
    return Header(width=width, height=height, mode=mode, quality=62.5, model_name=name,
                  model_hash=bytes(range(32)), latent_channels=192, latent_height=yh,
                  latent_width=yw, hyper_channels=128, hyper_height=yh // 4,
                  hyper_width=yw // 4, slice_rows=rows)


def make_file(mode="RGB", **kw) -> AecFile:
    h = make_header(mode=mode, **kw)
    streams = [bytes([i]) * (10 + i) for i in range(h.n_slices)]
    alpha = b"\x89PNG fake alpha" if mode in container.ALPHA_MODES else None
    meta = {"icc_profile": b"icc" * 50, "exif": b"Exif\x00\x00MM", "xmp": b"<x:xmpmeta/>"}
    return AecFile(h, b"zzz" * 7, streams, alpha, meta)


def chunks(data: bytes):
    """(offset, length, type) of every chunk."""
    pos, out = container.PREFIX_LEN, []
    while pos < len(data):
        length, ctype = struct.unpack_from("<I4s", data, pos)
        out.append((pos, length, ctype))
        pos += 12 + length
    return out


def insert_chunk(data: bytes, ctype: bytes, payload: bytes, before: bytes = b"ZSTR") -> bytes:
    pos = next(p for p, _, t in chunks(data) if t == before)
    return data[:pos] + container._chunk(ctype, payload) + data[pos:]


def with_header(data: bytes, header: Header) -> bytes:
    """Replace the HEAD chunk (with a valid CRC), e.g. to forge dimensions."""
    pos, length, _ = chunks(data)[0]
    prefix = data[: container.PREFIX_LEN]
    return prefix + container._chunk(b"HEAD", header.to_bytes(), prefix) + data[
        pos + 12 + length:]


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
    first_stream = next(p for p, _, t in chunks(data) if t == b"ALPH")
    # Only the bytes up to the first stream chunk (+ its 8-byte header) are needed.
    f = container.read_header(io.BytesIO(data[: first_stream + 8]))
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
    data[len(container.MAGIC)] = 2
    with pytest.raises(UnsupportedVersionError, match="version 2.0"):
        container.parse(bytes(data))
    # A later minor version is readable (its HEAD CRC covers the new version bytes).
    f = make_file()
    prefix = container.MAGIC + bytes([1, 7])
    newer = with_header(prefix + f.to_bytes()[container.PREFIX_LEN:], f.header)
    assert container.parse(newer).header.version == (1, 7)


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
    data[container.PREFIX_LEN + 9] ^= 4  # inside HEAD's payload
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
    h.latent_height += 4
    with pytest.raises(CorruptFileError, match="latent shapes"):
        container.parse(with_header(data, h))
    for bad_name in ("../../etc", "a/b", ".hidden", ""):
        h = make_header(name=bad_name)
        with pytest.raises(CorruptFileError, match="model name"):
            container.parse(with_header(data, h))
    h = make_header()
    h.quality = float("nan")
    with pytest.raises(CorruptFileError, match="quality"):
        container.parse(with_header(data, h))


def test_huge_chunk_length_is_refused_before_allocation():
    data = bytearray(make_file().to_bytes())
    pos = next(p for p, _, t in chunks(bytes(data)) if t == b"ZSTR")
    struct.pack_into("<I", data, pos, 0x7FFFFFF0)
    with pytest.raises(CorruptFileError, match="claims"):
        container.parse(bytes(data))
    data = bytearray(make_file().to_bytes())
    pos = next(p for p, _, t in chunks(bytes(data)) if t == b"iccp")
    struct.pack_into("<I", data, pos, 0x7FFFFFF0)
    with pytest.raises(CorruptFileError, match="claims"):
        container.read_header(io.BytesIO(bytes(data)))


def test_missing_or_extra_slices_are_refused():
    f = make_file()
    data = f.to_bytes()
    last = [p for p, _, t in chunks(data) if t == b"YSTR"][-1]
    end = next(p for p, _, t in chunks(data) if t == b"DONE")
    with pytest.raises(CorruptFileError, match="slices"):
        container.parse(data[:last] + data[end:])
    extra = data[:end] + container._chunk(b"YSTR", struct.pack("<I", f.header.n_slices)) + data[
        end:]
    with pytest.raises(CorruptFileError, match="more Y slices"):
        container.parse(extra)


def test_alpha_modes_need_their_alpha_plane():
    data = make_file("RGBA").to_bytes()
    pos, length, _ = next(c for c in chunks(data) if c[2] == b"ALPH")
    with pytest.raises(CorruptFileError, match="alpha"):
        container.parse(data[:pos] + data[pos + 12 + length:])


def test_crc_is_standard_crc32():
    data = make_file().to_bytes()
    pos, length, ctype = chunks(data)[1]
    (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
    assert crc == zlib.crc32(data[pos + 4 : pos + 8 + length])
