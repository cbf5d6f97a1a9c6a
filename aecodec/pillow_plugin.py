"""Pillow plugin for .aec files (registered by `import aecodec`).

Image.open reads only the header (size, mode, ICC/EXIF/XMP in `info`, and `aec_quality`, the
quality it was coded at, and `aec_model`, its model id); load() decodes;
im.draft("RGB", (w, h)) (hence im.thumbnail) and im.reduce(k) decode a preview at 1/k, k = 2, 4
or 8, without the full synthesis (as JPEG's draft: the largest k that keeps the size ≥ (w, h));
im.save("x.aec", quality=…) encodes (also bpp=…, psnr=…, icc_profile=, exif=, xmp=, model=,
device=, threads=, refine=, effort=, preview=, metadata=). Modes: see README ("Pillow") and
docs/format.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image, ImageFile

from . import container
from .errors import UnsupportedImageError
from .geometry import PREVIEW_SCALES, reduced_size

if TYPE_CHECKING:
    from .codec import Codec

FORMAT = "AEC"


def shared_codec(model: str | None = None, device: str = "cpu", threads: int = 0) -> Codec:
    from .codec import shared

    return shared(model, device, threads)


def _accept(prefix: bytes) -> bool:
    return prefix[: len(container.MAGIC)] == container.MAGIC


# Pillow 11 names a tile ImageFile._Tile; Pillow 10 (pyproject allows >= 10.0) takes a tuple.
_TILE = getattr(ImageFile, "_Tile", lambda *fields: tuple(fields))


class AecImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "aecodec learned image"

    def _open(self) -> None:
        f = container.read_header(self.fp)  # raises a typed AecError if damaged
        h = f.header
        self._size = (h.width, h.height)
        self._mode = h.mode
        self.info.update(f.metadata)
        self.info["aec_quality"] = h.quality
        self.info["aec_model"] = h.model_id
        self._full_size = self.size
        self.aec_scale = 1
        self.tile = [_TILE("aec", (0, 0) + self.size, 0, (1,))]

    def _loaded(self) -> bool:
        try:
            return self.im is not None
        except AssertionError:  # Pillow 11+: `im` asserts before load()
            return False

    def _set_scale(self, k: int) -> None:
        w, h = self._full_size
        self.aec_scale = k
        self._size = reduced_size(w, h, k)
        self.tile = [_TILE("aec", (0, 0) + self.size, 0, (k,))]

    def draft(self, mode: str | None, size: tuple[int, int] | None
              ) -> tuple[str, tuple[int, int, float, float]] | None:
        """Decode at 1/k (k = 8, 4 or 2, the largest that keeps both sides ≥ size), as JPEG's
        draft; the mode stays the recorded one."""
        if size is None or self._loaded() or self.aec_scale != 1:
            return None
        w, h = self._full_size
        fit = min(w // max(size[0], 1), h // max(size[1], 1))
        k = max((s for s in PREVIEW_SCALES if s <= fit), default=1)
        if k == 1:
            return None
        self._set_scale(k)
        return self.mode, (0, 0, w / k, h / k)

    def reduce(self, factor: int | tuple[int, int],
               box: tuple[int, int, int, int] | None = None) -> Image.Image:
        """im.reduce(k), k = 2, 4 or 8 on an image not yet loaded: the 1/k preview (this image
        stays as it is, not loaded)."""
        f = factor if isinstance(factor, (list, tuple)) else (factor, factor)
        if (not self._loaded() and self.aec_scale == 1 and f[0] == f[1] and f[0] in PREVIEW_SCALES
                and box in (None, (0, 0) + self.size) and self.fp is not None):
            pos = self.fp.tell()
            self.fp.seek(0)
            data = self.fp.read()
            self.fp.seek(pos)
            return shared_codec().decompress(data, scale=f[0])
        return super().reduce(factor, box)


class AecDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer: object) -> tuple[int, int]:
        assert self.fd is not None
        self.fd.seek(0)
        scale = self.args[0] if self.args else 1
        im = shared_codec().decompress(self.fd.read(), scale=scale)
        if im.size != (self.state.xsize, self.state.ysize) or im.mode != self.mode:
            raise ValueError("decoded image does not match the header")
        self.set_as_raw(im.tobytes(), im.mode)
        return -1, 0


def _save(im: Image.Image, fp, filename) -> None:
    info = im.encoderinfo
    codec = shared_codec(info.get("model"), info.get("device", "cpu"), info.get("threads", 0))
    target = {k: info[k] for k in ("quality", "bpp", "psnr") if info.get(k) is not None}
    meta = {k: info[k] for k in ("icc_profile", "exif", "xmp") if info.get(k) is not None}
    if info.get("effort") is not None:  # else the codec's default
        meta["effort"] = info["effort"]
    fp.write(codec.compress(im, **target, metadata=info.get("metadata", True),
                            refine=info.get("refine", 0), preview=info.get("preview"), **meta))


def _save_all(im: Image.Image, fp, filename) -> None:
    """save_all=True: an .aec file holds one image, so only a single frame can be saved."""
    if getattr(im, "n_frames", 1) > 1 or im.encoderinfo.get("append_images"):
        raise UnsupportedImageError(
            "an .aec file holds one image: save each frame to its own file "
            "(im.seek(i); im.save(...)), or save without save_all=True")
    _save(im, fp, filename)


Image.register_open(FORMAT, AecImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_save_all(FORMAT, _save_all)
Image.register_extension(FORMAT, ".aec")
Image.register_mime(FORMAT, "image/x-aec")
Image.register_decoder("aec", AecDecoder)
