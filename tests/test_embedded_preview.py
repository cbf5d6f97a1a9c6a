"""The embedded preview (prvw chunk, docs/format.md): a whole .aec file of the image at 1/8,
written for large images (or when asked) and decoded instead of the full latents at scale 8."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import arguments, container
from aecodec.encoder import PREVIEW_MIN_SIDE, wants_preview
from aecodec.geometry import PREVIEW_SCALE

from helpers import kodim23, psnr

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def photo():
    return kodim23((100, 60, 292, 188))  # 192×128: a 24×16 preview


@pytest.fixture(scope="module")
def codec():
    return aecodec.Codec(threads=1)


@pytest.fixture(scope="module")
def files(codec, photo):
    """The same image coded with and without a preview."""
    return (codec.compress(photo, 60, preview=True), codec.compress(photo, 60, preview=False))


def test_a_preview_is_embedded_when_asked_or_for_large_images(files, codec, photo):
    with_, without = files
    assert container.parse(with_).preview is not None
    assert container.parse(without).preview is None
    assert container.parse(codec.compress(photo, 60)).preview is None  # 0.02 MP: not by default
    side = PREVIEW_MIN_SIDE  # a 256-px thumbnail from its 1/8
    assert wants_preview(None, side, side) and not wants_preview(None, side - 1, 10 * side)
    assert wants_preview(True, 1, 1) and not wants_preview(False, 10**4, 10**4)
    assert container.T_PREVIEW[:1].islower()  # optional: readers that predate it skip it


def test_the_preview_is_the_image_at_one_eighth(files, codec, photo):
    with_, without = files
    full = codec.decompress(with_)
    assert np.array_equal(np.asarray(full), np.asarray(codec.decompress(without)))  # unchanged
    prev = codec.decompress(with_, scale=PREVIEW_SCALE)
    assert prev.size == (24, 16) and prev.mode == "RGB"
    assert psnr(prev, full.reduce(PREVIEW_SCALE)) > 25  # a 24×16 image at quality 60
    nested = container.parse(with_).preview
    assert container.parse(nested).header.quality == 60  # coded at the image's quality
    profile = "fast" if codec._engine().transforms.has_profile("fast") else "exact"
    assert np.array_equal(np.asarray(prev), np.asarray(codec.decompress(nested, profile=profile)))
    head = codec.decompress(without, scale=PREVIEW_SCALE)  # no prvw: the model's preview head
    assert head.size == prev.size and not np.array_equal(np.asarray(head), np.asarray(prev))
    for k in (2, 4):  # the other scales do not use it
        assert np.array_equal(np.asarray(codec.decompress(with_, scale=k)),
                              np.asarray(codec.decompress(without, scale=k)))


def test_a_bpp_target_counts_the_preview(codec, photo):
    data = codec.compress(photo, bpp=0.8, preview=True)
    assert len(data) * 8 / (192 * 128) <= 0.8
    assert container.parse(data).preview is not None


def test_alpha_and_metadata(codec, photo):
    rgba = photo.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[:, :96, 3] = 0
    exif = Image.Exif()
    exif[0x010E] = "a test"
    data = codec.compress(Image.fromarray(a), 60, preview=True, exif=exif.tobytes())
    prev = codec.decompress(data, scale=PREVIEW_SCALE)
    assert prev.mode == "RGBA" and prev.size == (24, 16)
    assert np.array_equal(np.asarray(prev)[:, :, 3],
                          np.asarray(Image.fromarray(a[:, :, 3]).reduce(PREVIEW_SCALE)))
    assert prev.info["exif"] == exif.tobytes()


def _with_preview(data: bytes, preview: bytes) -> bytes:
    f = container.parse(data)
    f.preview = preview
    return f.to_bytes()


def test_a_preview_that_does_not_fit_is_refused(files, codec, photo, monkeypatch):
    with_, without = files
    nested = container.parse(with_).preview
    other_size = codec.compress(photo.crop((0, 0, 184, 128)).reduce(8), 60, preview=False)
    grey = codec.compress(photo.reduce(8).convert("L"), 60, preview=False)
    recursive = _with_preview(nested, nested)
    huge = container.parse(nested)
    huge.header.width = huge.header.height = 100_000  # a bomb, refused by its parse
    huge.header.slice_rows = huge.header.latent_height
    with monkeypatch.context() as m:
        m.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the writer refuses it too
        huge = huge.to_bytes()
    for bad in (other_size, grey, recursive, huge, b"not an aec file", nested[:-3]):
        damaged = _with_preview(without, bad)
        with pytest.raises(aecodec.CorruptFileError, match="preview"):
            codec.decompress(damaged, scale=PREVIEW_SCALE)
        full = codec.decompress(damaged)  # the image itself still decodes
        assert np.array_equal(np.asarray(full), np.asarray(codec.decompress(without)))


def test_two_preview_chunks_are_a_corrupt_file(files):
    with_, _ = files
    i = with_.rindex(b"prvw") - 1
    while with_[i - 1] >= 0x80:  # the chunk's varint length starts here
        i -= 1
    end = len(with_) - 9  # DONE: 1 length byte, type, CRC
    data = bytearray(with_[:end] + with_[i:end])
    container._append_chunk(data, container.T_DONE, b"", checked=True)
    with pytest.raises(aecodec.CorruptFileError, match="two prvw"):
        container.parse(bytes(data))


def test_pillow_draft_and_save(tmp_path, files, codec, photo):
    with_, _ = files
    with Image.open(io.BytesIO(with_)) as im:
        im.draft("RGB", (24, 16))
        im.load()
        assert np.array_equal(np.asarray(im), np.asarray(codec.decompress(with_, scale=8)))
    out = tmp_path / "x.aec"
    photo.save(out, quality=60, preview=True)
    assert container.parse(out.read_bytes()).preview is not None


def test_cli_preview_options_and_info(tmp_path, photo):
    src = tmp_path / "x.png"
    photo.save(src)

    def compress(*flags):
        dst = tmp_path / "x.aec"
        subprocess.run([sys.executable, "-m", "aecodec", "compress", str(src), "-o", str(dst),
                        "-f", "--quiet", "-q", "40", *flags], check=True)
        return dst

    info = subprocess.run([sys.executable, "-m", "aecodec", "info", str(compress("--preview"))],
                          check=True, capture_output=True, text=True).stdout
    assert "preview:   24x16 (1/8)," in info
    assert container.parse(compress("--no-preview").read_bytes()).preview is None


@pytest.mark.parametrize("bad", [1, "yes", 0.0])
def test_preview_argument_is_checked(bad):
    with pytest.raises(ValueError, match="preview must be True, False or None"):
        arguments.preview(bad)
    assert arguments.preview(np.bool_(True)) is True and arguments.preview(None) is None
