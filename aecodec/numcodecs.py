"""aecodec as a numcodecs codec: Zarr arrays of 8-bit images stored as .aec chunks (lossy).

    import zarr
    from aecodec.numcodecs import Aec, AecZarr3

    # Zarr format 3: the codec is the array's serializer (it turns an image chunk into bytes)
    z = zarr.create_array("photos.zarr", shape=(100, 512, 768, 3), chunks=(1, 512, 768, 3),
                          dtype="uint8", serializer=AecZarr3(quality=75), compressors=None)
    # Zarr format 2: the codec is the array's compressor
    z = zarr.create_array("photos.zarr", shape=(100, 512, 768, 3), chunks=(1, 512, 768, 3),
                          dtype="uint8", zarr_format=2, compressors=Aec(quality=75), filters=None)

A chunk must be uint8 and one of H×W (grey), H×W×C or N×H×W×C with C = 1 (grey), 2 (grey +
alpha), 3 (RGB) or 4 (RGBA): one image is stored as exactly the bytes of an .aec file
(`aecodec.decompress` reads a chunk file as it is), N > 1 images as a small stack of .aec files
(STACK_MAGIC, the count and the sizes as u32 little-endian, then the files). Colour is coded
lossily at `quality` (0-100, as aecodec.compress), alpha losslessly. Any other chunk shape or
dtype is refused with an error naming it.

Registration: importing this module registers `Aec` with numcodecs (id "aecodec") and, when
zarr >= 3.1.3 is installed, `AecZarr3` with zarr (name "numcodecs.aecodec"); the package's
entry points ("numcodecs.codecs" and "zarr.codecs") do the same for a process that opens an
existing array without importing aecodec. Install with `pip install "aecodec[zarr]"`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_ndarray_like, ndarray_copy
from numcodecs.registry import register_codec

from . import arguments, container
from .codec import DEFAULT_EFFORT, DEFAULT_QUALITY, shared
from .errors import CorruptFileError, UnsupportedImageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numcodecs.ndarray_like import NDArrayLike
    from numpy.typing import DTypeLike
    from typing_extensions import Buffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

CODEC_ID = "aecodec"
STACK_MAGIC = b"\x89AECSTK"  # N > 1 images in one chunk; one image is a plain .aec file
_U32 = struct.Struct("<I")
_SHAPES = "H×W (grey), H×W×C or N×H×W×C with C = 1, 2, 3 or 4 (grey, grey+alpha, RGB, RGBA)"


def check_chunk(shape: Iterable[int], dtype: DTypeLike) -> None:
    """Raise UnsupportedImageError, naming the chunk's shape, unless Aec can code it."""
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    ok = (dtype == np.uint8 and 2 <= len(shape) <= 4 and 0 not in shape
          and (len(shape) == 2 or 1 <= shape[-1] <= 4))
    if not ok:
        raise UnsupportedImageError(
            f"aecodec cannot code a chunk of shape {shape} and dtype {dtype}: chunks must be "
            f"uint8 images, {_SHAPES} (e.g. chunks=(1, H, W, 3) for an N×H×W×3 array)")


class Aec(Codec):
    """numcodecs codec: uint8 image chunks <-> .aec bytes (lossy, see the module docstring).

    quality: 0-100, higher is better (default 75); effort: 1-5 (aecodec.compress); model: the
    model package that encodes (default: the shipped default; decoding uses the model each
    file names); threads: coding threads per call (0: all cores)."""

    codec_id = CODEC_ID

    def __init__(self, quality: float = DEFAULT_QUALITY, effort: int = DEFAULT_EFFORT,
                 model: str | None = None, threads: int = 0):
        self.quality = arguments.quality(quality)
        self.effort = arguments.effort(effort)
        self.model = model
        self.threads = arguments.threads(threads)

    def get_config(self) -> dict:
        config = {"id": self.codec_id, "quality": self.quality, "effort": self.effort}
        if self.model is not None:
            config["model"] = self.model
        return config  # threads is a local choice, not part of the stored configuration

    def __repr__(self) -> str:
        extra = f", model={self.model!r}" if self.model is not None else ""
        return f"Aec(quality={self.quality:g}, effort={self.effort}{extra})"

    def _codec(self):
        return shared(self.model, "cpu", self.threads)

    def encode(self, buf: Buffer | NDArrayLike) -> bytes:
        a = np.asarray(ensure_ndarray_like(buf))
        check_chunk(a.shape, a.dtype)
        codec = self._codec()
        images = a if a.ndim == 4 else a[None]
        files = [codec.encode(np.ascontiguousarray(im), self.quality, effort=self.effort).data
                 for im in images]
        if len(files) == 1:
            return files[0]
        return b"".join([STACK_MAGIC, _U32.pack(len(files))]
                        + [_U32.pack(len(f)) for f in files] + files)

    def decode(self, buf: Buffer | NDArrayLike,
               out: Buffer | NDArrayLike | None = None) -> np.ndarray | NDArrayLike:
        data = ensure_bytes(buf)
        images = [self._decode_one(f) for f in split(data)]
        if len(images) > 1:
            if len({im.shape for im in images}) != 1:
                raise CorruptFileError("damaged aecodec chunk: its images differ in size")
            arr = np.stack(images)
        else:
            arr = images[0]
        if out is not None:
            out = ensure_ndarray_like(out)
            if out.size != arr.size:
                raise ValueError(f"aecodec chunk of shape {arr.shape} does not fit an output "
                                 f"of shape {out.shape}")
            return ndarray_copy(arr.reshape(out.shape), out)
        return arr

    def _decode_one(self, data: bytes) -> np.ndarray:
        with self._codec().decode(data).image as im:
            return np.asarray(im)


def split(data: bytes) -> list[bytes]:
    """The .aec files of a chunk: [data] for one image, the stack's files for several."""
    if data.startswith(container.MAGIC):
        return [data]
    if not data.startswith(STACK_MAGIC):
        raise CorruptFileError("not an aecodec chunk (neither an .aec file nor a stack of them)")
    pos = len(STACK_MAGIC)
    try:
        (n,) = _U32.unpack_from(data, pos)
        sizes = [_U32.unpack_from(data, pos + 4 + 4 * i)[0] for i in range(n)]
    except struct.error:
        raise CorruptFileError("truncated aecodec chunk (stack header)") from None
    pos += 4 + 4 * n
    if n < 2 or pos + sum(sizes) != len(data):
        raise CorruptFileError(f"damaged aecodec chunk: {n} images of {sum(sizes)} bytes in "
                               f"{len(data) - pos} bytes")
    files = []
    for size in sizes:
        files.append(data[pos:pos + size])
        pos += size
    return files


register_codec(Aec)

try:  # Zarr format 3 arrays: the codec as an array -> bytes codec (their "serializer")
    from zarr.codecs.numcodecs import _NumcodecsArrayBytesCodec
    from zarr.registry import register_codec as _register_zarr_codec
except ImportError:  # zarr < 3.1.3 or not installed: Aec still works as a numcodecs codec
    AecZarr3 = None
else:
    class AecZarr3(_NumcodecsArrayBytesCodec, codec_name=CODEC_ID):
        """Aec for Zarr format 3 arrays, as their serializer: AecZarr3(quality=75, ...), the
        same arguments as Aec. Stored in the array's metadata as "numcodecs.aecodec"."""

        def __init__(self, **codec_config):
            codec_config.pop("id", None)  # checked, completed and stored as Aec's configuration
            super().__init__(**Aec(**codec_config).get_config())

        def validate(self, *, shape: tuple[int, ...],
                     dtype: ZDType[TBaseDType, TBaseScalar] | np.dtype,
                     chunk_grid: ChunkGrid) -> None:
            chunks = getattr(chunk_grid, "chunk_shape", None)
            native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else dtype
            check_chunk(chunks if chunks is not None else shape, native)

    _register_zarr_codec(AecZarr3.codec_name, AecZarr3)
