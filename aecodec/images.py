"""Images in and out: what the codec stores of an input image, and the image it gives back.

An input (PIL image, uint8 array or path) is reduced to 8-bit RGB, a mode to restore, an optional
alpha plane (coded losslessly as PNG) and ICC/EXIF/XMP metadata; `orient` turns the RGB array
into the orientation it is coded in. Nothing here depends on the model.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np
from PIL import Image

from . import container
from .errors import AecError, CorruptFileError, UnsupportedImageError

# What the API takes (type hints): an image to encode, an .aec file to decode, a metadata value.
ImageSource = Union[Image.Image, np.ndarray, str, os.PathLike, BinaryIO]
AecSource = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]
MetadataValue = Optional[Union[bytes, bytearray, memoryview, str, Image.Exif]]


def orient(a: np.ndarray, orientation: int, inverse: bool = False) -> np.ndarray:
    """An image array (H × W × …) in one of the 8 orientations of a rectangle (a view).

    orientation k: mirror left-right if k >= 4, then turn counter-clockwise by k % 4 quarter
    turns (numpy.rot90); inverse=True undoes it. Odd k swap width and height."""
    if not (isinstance(orientation, (int, np.integer))
            and 0 <= orientation < container.ORIENTATIONS):
        raise ValueError(f"orientation must be an integer from 0 to 7, got {orientation!r}")
    if inverse:
        a = np.rot90(a, -(orientation % 4))
        return a[:, ::-1] if orientation >= 4 else a
    return np.rot90(a[:, ::-1] if orientation >= 4 else a, orientation % 4)


@dataclass
class Prepared:
    """An input image reduced to what the codec stores."""

    rgb: np.ndarray  # H×W×3 uint8, C-contiguous
    mode: str  # "RGB", "L", "RGBA" or "LA": what decoding gives back
    alpha: np.ndarray | None  # H×W uint8
    metadata: dict  # "icc_profile" / "exif" / "xmp" -> bytes


_MODE_OF_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def prepare(img: ImageSource,
            metadata: bool = True) -> Prepared:
    """A PIL image, a uint8 array (H×W, H×W×1..4) or a path/file → Prepared (modes: README)."""
    if isinstance(img, np.ndarray):
        return _prepare_array(img)
    if isinstance(img, (str, os.PathLike)) or hasattr(img, "read"):
        with Image.open(img) as im:
            im.load()
            return _prepare_pil(im, metadata)
    if isinstance(img, Image.Image):
        return _prepare_pil(img, metadata)
    raise TypeError(f"cannot compress a {type(img).__name__}: give a PIL image, a uint8 numpy "
                    "array or a path")


def _prepare_array(a: np.ndarray) -> Prepared:
    if a.dtype != np.uint8:
        raise UnsupportedImageError(
            f"arrays must be uint8 (8 bits per channel), got {a.dtype}: scale and convert first")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _MODE_OF_CHANNELS or 0 in a.shape:
        raise UnsupportedImageError(
            f"array shape {a.shape} is not an image: use H×W (grey), H×W×2 (grey+alpha), "
            "H×W×3 (RGB) or H×W×4 (RGBA)")
    mode = _MODE_OF_CHANNELS[a.shape[2]]
    colour = a[:, :, :3] if a.shape[2] >= 3 else np.repeat(a[:, :, :1], 3, axis=2)
    alpha = np.ascontiguousarray(a[:, :, -1]) if mode in container.ALPHA_MODES else None
    return Prepared(np.ascontiguousarray(colour), mode, alpha, {})


def _metadata_of(im: Image.Image) -> dict:
    meta = {}
    if im.info.get("icc_profile"):
        meta["icc_profile"] = bytes(im.info["icc_profile"])
    exif = im.info.get("exif")
    if not exif:
        ex = im.getexif()
        exif = ex.tobytes() if len(ex) else None
    if exif:
        meta["exif"] = bytes(exif)
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp:
        meta["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return meta


def _prepare_pil(im: Image.Image, metadata: bool = True) -> Prepared:
    meta = _metadata_of(im) if metadata else {}
    _warn_if_multi_frame(im)
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        raise UnsupportedImageError(
            f"{mode} images (16/32 bits per pixel) are not supported: aecodec codes 8 bits per "
            "channel; reduce to 8 bits first (e.g. Image.fromarray((np.asarray(im) >> 8)"
            ".astype('uint8')) for 16-bit)")
    if mode == "CMYK":
        warnings.warn("CMYK image converted to RGB without colour management (its ICC profile, "
                      "if any, is dropped); convert with PIL.ImageCms first for accurate colour",
                      stacklevel=3)
        meta.pop("icc_profile", None)
        im = im.convert("RGB")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("RGBa", "RGBX"):
        im = im.convert("RGBA" if mode == "RGBa" else "RGB")
    elif mode not in ("RGB", "L", "LA", "RGBA"):
        try:
            im = im.convert("RGB")
        except ValueError as e:
            raise UnsupportedImageError(f"cannot code {mode} images: convert to RGB first") from e
    if im.width < 1 or im.height < 1:
        raise UnsupportedImageError("the image is empty (0 pixels)")
    a = np.asarray(im)
    p = _prepare_array(a)
    p.metadata = meta
    return p


def _warn_if_multi_frame(im: Image.Image) -> None:
    """An .aec file holds one image: say so when the others of an animation or a multi-page
    file would be left out (the source keeps them; nothing is lost silently). A camera's MPO
    JPEG is not warned about: its frames after the first are auxiliary (previews, depth)."""
    if im.format == "MPO":
        return
    try:
        frames = int(getattr(im, "n_frames", 1))
    except (OSError, EOFError, ValueError, TypeError):  # a damaged later frame: counted as one
        frames = 1
    if frames > 1:
        warnings.warn(f"the image has {frames} frames (an animation or pages): only frame "
                      f"{im.tell() + 1} is coded, as an .aec file holds one image", stacklevel=4)


def reduced(p: Prepared, k: int) -> Prepared:
    """p at 1/k of its size, ceil(W/k) × ceil(H/k), by Pillow's box reduction (Image.reduce,
    as the preview decode of a file without a preview head), without metadata: what an
    embedded preview codes."""
    rgb = np.asarray(Image.fromarray(p.rgb, "RGB").reduce(k))
    alpha = None if p.alpha is None else np.asarray(Image.fromarray(p.alpha, "L").reduce(k))
    return Prepared(np.ascontiguousarray(rgb), p.mode, alpha, {})


def to_image(rgb: np.ndarray, mode: str, alpha: Image.Image | None, meta: dict) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA"):
        im = im.convert("L")
    if alpha is not None:
        im.putalpha(alpha)
    for key, value in meta.items():
        im.info[key] = value
    return im


def encode_alpha(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def decode_alpha(png: bytes, width: int, height: int) -> Image.Image:
    """The alpha plane of a file: a PNG of exactly width × height, 8-bit greyscale. Its IHDR is
    checked before Pillow opens it, so a PNG claiming a huge size is refused as damaged rather
    than reaching Pillow's own bomb check (whose errors are not AecErrors)."""
    if len(png) >= 24 and png[12:16] == b"IHDR" and struct.unpack(">II", png[16:24]) != (
            width, height):
        raise CorruptFileError("damaged .aec file: the alpha plane does not match the image size")
    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
            if im.size != (width, height) or im.mode != "L":
                raise CorruptFileError("damaged .aec file: the alpha plane does not match")
            im.load()
            return im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, AecError):
            raise
        raise CorruptFileError(f"damaged .aec file: cannot decode the alpha plane ({e})") from e


def read_input(data_or_path: AecSource
               ) -> bytes:
    """bytes-like, a path or a binary file object → the file's bytes."""
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return bytes(data_or_path)
    if isinstance(data_or_path, (str, os.PathLike)):
        return Path(data_or_path).read_bytes()
    if hasattr(data_or_path, "read"):
        return data_or_path.read()
    raise TypeError(f"cannot decompress a {type(data_or_path).__name__}: give bytes, a path or "
                    "a binary file")


def with_metadata(p: Prepared, keep: bool = True,
                  icc_profile: MetadataValue = None,
                  exif: MetadataValue = None,
                  xmp: MetadataValue = None
                  ) -> Prepared:
    """p with its metadata dropped unless keep, then icc_profile/exif/xmp put in (replacing)."""
    if not keep:
        p.metadata = {}
    for key, value in (("icc_profile", icc_profile), ("exif", exif), ("xmp", xmp)):
        if value is not None:
            if isinstance(value, Image.Exif):
                value = value.tobytes()
            p.metadata[key] = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return p
