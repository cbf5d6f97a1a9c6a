"""The Pillow plugin: registered on `import aecodec`, header-only open, load() decodes, save()."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import aecodec
from aecodec import container
from aecodec.errors import CorruptFileError, DecompressionBombError, ModelNotFoundError

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def photo():
    with Image.open(DATA / "kodim23.webp") as im:
        return im.convert("RGB").crop((200, 150, 296, 214))


@pytest.fixture(scope="module")
def aec_bytes(photo):
    im = photo.copy()
    im.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8
    im.info["exif"] = exif.tobytes()
    return aecodec.compress(im, quality=50)


def test_registered():
    assert Image.registered_extensions()[".aec"] == "AEC"
    assert Image.MIME["AEC"] == "image/x-aec"
    assert "AEC" in Image.OPEN and "AEC" in Image.SAVE


def test_open_reads_the_header_only(aec_bytes, tmp_path):
    # Damage a Y stream: open() must still work (it never reads that far), load() must not.
    f = container.parse(aec_bytes)
    f.y_streams[-1] = bytes(len(f.y_streams[-1]))
    path = tmp_path / "x.aec"
    path.write_bytes(f.to_bytes())
    with Image.open(path) as im:
        assert im.format == "AEC" and im.size == (96, 64) and im.mode == "RGB"
        assert im.info["icc_profile"] == f.metadata["icc_profile"]
        assert im.getexif()[0x0112] == 8
        with pytest.raises(CorruptFileError):
            im.load()


def test_open_needs_only_the_first_bytes(aec_bytes):
    assert aec_bytes.count(b"ZSTR") == 1
    head_len = aec_bytes.index(b"ZSTR") + 4  # up to the first stream chunk's type
    with Image.open(io.BytesIO(aec_bytes[:head_len])) as im:  # streams cut off
        assert im.size == (96, 64)


def test_load_gives_the_same_pixels_as_decompress(aec_bytes):
    with Image.open(io.BytesIO(aec_bytes)) as im:
        im.load()
        ref = aecodec.decompress(aec_bytes)
        assert np.array_equal(np.asarray(im), np.asarray(ref))
        assert im.info["exif"] == ref.info["exif"]


def test_save_and_reopen(photo, tmp_path):
    path = tmp_path / "saved.aec"
    photo.save(path, quality=35)
    assert container.parse(path.read_bytes()).header.quality == 35
    with Image.open(path) as im:
        assert im.format == "AEC"
        assert np.array_equal(np.asarray(im), np.asarray(aecodec.decompress(path)))
    photo.save(tmp_path / "bpp.aec", bpp=1.0)
    assert (tmp_path / "bpp.aec").stat().st_size * 8 / (96 * 64) <= 1.0
    photo.save(tmp_path / "e3.aec", quality=35, effort=3)
    assert (tmp_path / "e3.aec").read_bytes() == aecodec.compress(photo, quality=35, effort=3)
    with pytest.raises(ValueError, match="effort"):
        photo.save(tmp_path / "bad.aec", effort=9)
    photo.save(tmp_path / "explicit.bin", format="AEC")
    assert (tmp_path / "explicit.bin").read_bytes().startswith(container.MAGIC)


def test_save_default_quality_and_metadata(photo):
    buf = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo.save(buf, format="AEC", icc_profile=icc, xmp=b"<x/>")
    f = container.parse(buf.getvalue())
    assert f.header.quality == aecodec.DEFAULT_QUALITY
    assert f.metadata["icc_profile"] == icc and f.metadata["xmp"] == b"<x/>"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L"])
def test_modes_round_trip(photo, mode):
    im = photo.convert(mode)
    if mode in ("RGBA", "LA"):
        a = (np.arange(96 * 64).reshape(64, 96) % 251).astype(np.uint8)
        im.putalpha(Image.fromarray(a))
    buf = io.BytesIO()
    im.save(buf, format="AEC")
    buf.seek(0)
    with Image.open(buf) as out:
        assert out.mode == mode
        out.load()
        if mode in ("RGBA", "LA"):
            assert np.array_equal(np.asarray(out)[..., -1], np.asarray(im)[..., -1])


def test_bomb_is_refused_on_open(aec_bytes):
    f = container.parse(aec_bytes)
    h = f.header
    h.width = h.height = 100000
    h.slice_rows = h.latent_height
    f.y_streams = f.y_streams[:1]
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        bomb = f.to_bytes()
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    with pytest.raises(DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))


def test_unknown_model_opens_but_load_names_it(aec_bytes):
    f = container.parse(aec_bytes)
    f.header.model_name = "someone-elses-model"
    with Image.open(io.BytesIO(f.to_bytes())) as im:
        assert im.size == (96, 64)
        with pytest.raises(ModelNotFoundError, match="someone-elses-model"):
            im.load()


def test_other_formats_are_not_claimed(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "fake.aec", format="PNG")
    with Image.open(tmp_path / "fake.aec") as im:  # a PNG named .aec is still a PNG
        assert im.format == "PNG"
    (tmp_path / "junk.aec").write_bytes(b"\x89AEC\r\n\x1a\n\x01\x00garbage")
    with pytest.raises(CorruptFileError):
        Image.open(tmp_path / "junk.aec")
