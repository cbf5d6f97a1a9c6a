"""aecodec.numcodecs: the numcodecs codec and Zarr arrays of images (formats 3 and 2)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

numcodecs = pytest.importorskip("numcodecs")
zarr = pytest.importorskip("zarr")

import aecodec  # noqa: E402
from aecodec.errors import UnsupportedImageError  # noqa: E402
from aecodec.numcodecs import STACK_MAGIC, Aec, AecZarr3, split  # noqa: E402

from helpers import psnr  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # zarr: "not in the v3 spec"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A natural 96×128 RGB crop (kodim23)."""
    with Image.open(DATA / "kodim23.webp") as im:
        return np.asarray(im.convert("RGB"))[200:296, 300:428].copy()


def create(path, data, chunks, fmt: int, quality: float = 80):
    kw = ({"serializer": AecZarr3(quality=quality), "compressors": None} if fmt == 3 else
          {"zarr_format": 2, "compressors": Aec(quality=quality), "filters": None})
    z = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype="uint8", **kw)
    z[:] = data
    return z


def chunk_file(root: Path, fmt: int, index: tuple) -> Path:
    key = ("c/" + "/".join(map(str, index))) if fmt == 3 else ".".join(map(str, index))
    return root / key


@pytest.mark.skipif(AecZarr3 is None, reason="zarr >= 3.1.3 needed for Zarr format 3")
@pytest.mark.parametrize("fmt", [3, 2])
@pytest.mark.parametrize("layout", ["nhwc-1", "nhwc-2", "hwc", "hw"])
def test_zarr_round_trip(tmp_path, photo, fmt, layout):
    if layout == "hw":
        data, chunks = np.asarray(Image.fromarray(photo).convert("L")), (96, 128)
    elif layout == "hwc":
        data, chunks = photo, (96, 128, 3)
    else:  # three images, one or two per chunk (the last chunk padded by zarr)
        data = np.stack([photo, photo[::-1], photo[:, ::-1]])
        chunks = (1 if layout == "nhwc-1" else 2, 96, 128, 3)
    root = tmp_path / "a.zarr"
    create(root, data, chunks, fmt)
    z = zarr.open_array(str(root), mode="r")
    back = z[:]
    assert back.shape == data.shape and back.dtype == np.uint8
    assert psnr(data, back) > 30

    stored = chunk_file(root, fmt, (0,) * data.ndim).read_bytes()
    files = split(stored)
    n = chunks[0] if layout.startswith("nhwc") else 1
    assert len(files) == n and stored.startswith(STACK_MAGIC if n > 1 else b"\x89AEC")
    for i, f in enumerate(files):  # a chunk is .aec files: decoding it is aecodec.decompress
        expect = np.asarray(aecodec.decompress(f))
        got = back[i] if layout.startswith("nhwc") else back
        assert np.array_equal(expect, got)


def test_codec_direct_and_registry(photo):
    codec = numcodecs.get_codec({"id": "aecodec", "quality": 50})
    assert isinstance(codec, Aec) and codec.quality == 50 and codec.effort == 1
    assert codec.get_config() == {"id": "aecodec", "quality": 50.0, "effort": 1}
    enc = codec.encode(photo)
    assert enc == aecodec.compress(photo, quality=50)  # the chunk is exactly an .aec file
    out = np.empty((1,) + photo.shape, np.uint8)
    codec.decode(enc, out=out)
    assert np.array_equal(out[0], np.asarray(aecodec.decompress(enc)))
    grey_alpha = np.dstack([photo[..., 0], np.full(photo.shape[:2], 200, np.uint8)])
    back = codec.decode(codec.encode(grey_alpha))
    assert back.shape == grey_alpha.shape and np.array_equal(back[..., 1], grey_alpha[..., 1])
    if AecZarr3 is not None:
        assert zarr.registry.get_codec_class("numcodecs.aecodec") is AecZarr3
        assert AecZarr3(quality=50).to_dict() == {
            "name": "numcodecs.aecodec", "configuration": {"quality": 50.0, "effort": 1}}


@pytest.mark.parametrize("shape,dtype", [((8, 32, 48), "uint8"), ((32, 48, 5), "uint8"),
                                         ((2, 2, 8, 8, 3), "uint8"), ((32, 48, 3), "uint16"),
                                         ((32, 48, 3), "float32"), ((0, 48, 3), "uint8"),
                                         ((48,), "uint8")])
def test_unsupported_chunks_name_their_shape(shape, dtype):
    with pytest.raises(UnsupportedImageError, match=r"chunk of shape \(" + ", ".join(
            map(str, shape)) + r",?\) and dtype " + dtype):
        Aec().encode(np.zeros(shape, dtype))


@pytest.mark.skipif(AecZarr3 is None, reason="zarr >= 3.1.3 needed for Zarr format 3")
def test_zarr3_refuses_bad_chunks_when_the_array_is_created(tmp_path):
    with pytest.raises(UnsupportedImageError, match=r"\(4, 32, 48\)"):
        zarr.create_array(str(tmp_path / "b.zarr"), shape=(8, 32, 48), chunks=(4, 32, 48),
                          dtype="uint8", serializer=AecZarr3(), compressors=None)


def test_bad_arguments_and_damaged_chunks():
    with pytest.raises(ValueError, match="quality"):
        Aec(quality=101)
    with pytest.raises(ValueError, match="effort"):
        Aec(effort=6)
    with pytest.raises(aecodec.CorruptFileError):
        Aec().decode(b"not an aecodec chunk")
    with pytest.raises(aecodec.CorruptFileError):
        Aec().decode(STACK_MAGIC + b"\x02\x00\x00\x00\x05")


def _entry_point(group: str, name: str) -> bool:
    return any(e.name == name and e.value.startswith("aecodec.")
               for e in importlib.metadata.entry_points(group=group))


@pytest.mark.skipif(not _entry_point("numcodecs.codecs", "aecodec")
                    or not _entry_point("zarr.codecs", "numcodecs.aecodec"),
                    reason="aecodec not installed with its entry points (pip install .)")
def test_entry_points_open_an_array_without_importing_aecodec(tmp_path, photo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        create(tmp_path / "c.zarr", photo, (96, 128, 3), 3)
    code = ("import sys, numcodecs, zarr; "
            "assert 'aecodec' not in sys.modules; "
            "print(type(numcodecs.get_codec({'id': 'aecodec'})).__module__); "
            f"print(zarr.open_array({str(tmp_path / 'c.zarr')!r}, mode='r')[:].shape)")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)  # not the checkout's aecodec
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["aecodec.numcodecs", "(96,", "128,", "3)"]
