"""Argument checks at the API edge (issue 35): numpy scalars accepted, bool refused, Codec's
own arguments checked, the same message from the API and the CLI; save_all on .aec."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import arguments, cli
from aecodec.errors import UnsupportedImageError


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    return np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)


@pytest.fixture(scope="module")
def codec():
    return aecodec.Codec(threads=1)


@pytest.mark.parametrize("kw, same", [
    (dict(quality=np.float32(40.0)), dict(quality=40.0)),
    (dict(quality=np.int64(40)), dict(quality=40)),
    (dict(bpp=np.float64(1.25)), dict(bpp=1.25)),
    (dict(psnr=np.float32(24.0)), dict(psnr=24.0)),
    (dict(quality=30, effort=np.int8(2)), dict(quality=30, effort=2)),
])
def test_numpy_scalars_are_accepted(codec, img, kw, same):
    assert codec.compress(img, **kw) == codec.compress(img, **same)


@pytest.mark.parametrize("kw, name", [
    (dict(quality=True), "quality"), (dict(bpp=True), "bpp"), (dict(psnr=True), "psnr"),
    (dict(effort=True), "effort"), (dict(refine=True), "refine"),
    (dict(quality=np.bool_(True)), "quality"), (dict(quality=float("nan")), "quality"),
    (dict(quality="50"), "quality"), (dict(bpp=float("inf")), "bpp"),
    (dict(effort=2.0), "effort"), (dict(refine=np.float64(2)), "refine"),
])
def test_bad_encode_arguments_are_named(codec, img, kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        codec.compress(img, **kw)
    with pytest.raises(ValueError, match=f"^{name} must be"):
        aecodec.compress(img, **kw)


@pytest.mark.parametrize("kw, name", [
    (dict(threads=-1), "threads"), (dict(threads=1.5), "threads"), (dict(threads=True), "threads"),
    (dict(threads="2"), "threads"), (dict(tile=0), "tile"), (dict(tile=2.5), "tile"),
    (dict(tile=False), "tile"), (dict(slice_symbols=0), "slice_symbols"),
])
def test_codec_checks_its_arguments(kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        aecodec.Codec(**kw)


def test_codec_takes_numpy_integers():
    c = aecodec.Codec(threads=np.int32(2), tile=np.int64(16))
    assert (c.threads, c.tile) == (2, 16) and type(c.threads) is int


def test_module_functions_check_threads(img):
    with pytest.raises(ValueError, match="^threads must be"):
        aecodec.compress(img, threads=-3)
    with pytest.raises(ValueError, match="^threads must be"):
        aecodec.decompress(b"", threads=True)


@pytest.mark.parametrize("option, value, check", [
    ("--quality", "101", lambda: arguments.quality(101.0)),
    ("--bpp", "0", lambda: arguments.positive("bpp", 0.0)),
    ("--psnr", "-3", lambda: arguments.positive("psnr", -3.0)),
    ("--effort", "6", lambda: arguments.effort(6)),
    ("--refine", "10001", lambda: arguments.refine(10001)),
    ("--threads", "-1", lambda: arguments.threads(-1)),
])
def test_cli_says_what_the_api_says(capsys, option, value, check):
    with pytest.raises(ValueError) as api:
        check()
    with pytest.raises(SystemExit) as e:
        cli.main(["compress", "x.png", option, value])
    assert e.value.code == 2
    assert str(api.value) in capsys.readouterr().err


def test_save_all_saves_one_frame_and_refuses_more(img):
    im = Image.fromarray(img)
    one, plain = io.BytesIO(), io.BytesIO()
    im.save(one, format="AEC", save_all=True, quality=20)
    im.save(plain, format="AEC", quality=20)
    assert one.getvalue() == plain.getvalue()
    with pytest.raises(UnsupportedImageError, match="holds one image"):
        im.save(io.BytesIO(), format="AEC", save_all=True, append_images=[im])
    gif = io.BytesIO()
    im.save(gif, format="GIF", save_all=True, append_images=[Image.fromarray(img[::-1].copy())])
    with Image.open(gif) as frames, pytest.raises(UnsupportedImageError, match="holds one image"):
        frames.save(io.BytesIO(), format="AEC", save_all=True)
