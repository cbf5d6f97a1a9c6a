"""Pillow plugin for .aec files (registered by `import aecodec`).

Image.open reads only the header (size, mode, ICC/EXIF/XMP in `info`); load() decodes;
im.save("x.aec", quality=…) encodes (also bpp=…, psnr=…, icc_profile=, exif=, xmp=, model=,
device=, threads=, refine=, effort=). Modes: see README ("Pillow") and docs/format.md.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import container
from .errors import UnsupportedImageError

FORMAT = "AEC"


def shared_codec(model=None, device: str = "cpu", threads: int = 0):
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
        self.tile = [_TILE("aec", (0, 0) + self.size, 0, None)]


class AecDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer):
        assert self.fd is not None
        self.fd.seek(0)
        im = shared_codec().decompress(self.fd.read())
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
                            refine=info.get("refine", 0), **meta))


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
