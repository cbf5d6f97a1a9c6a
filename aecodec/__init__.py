"""aecodec: a learned image codec (hyperprior autoencoder, ONNX transforms, exact C++ core).

    data = aecodec.compress("photo.png", quality=75)      # or bpp=0.5, or psnr=32
    im = aecodec.decompress(data)                          # a PIL image
    codec = aecodec.Codec(device="cpu")                    # reusable: loads the model once

    s = aecodec.surprise("photo.png")                      # where the model finds it unusual
    v = aecodec.embedding("photo.aec")                     # content features, no pixels decoded

Importing aecodec registers the Pillow plugin: Image.open("x.aec"), im.save("x.aec", quality=75).
"""

from __future__ import annotations

from PIL import Image

from . import pillow_plugin  # noqa: F401  (registers .aec with Pillow)
from .analysis import Surprise, embedding, features, surprise
from .codec import DEFAULT_EFFORT, DEFAULT_QUALITY, Codec, shared
from .errors import (
    AecError,
    CorruptFileError,
    DecompressionBombError,
    DeviceError,
    FormatError,
    ModelNotFoundError,
    ModelPackageError,
    NotAecFileError,
    UnsupportedImageError,
    UnsupportedVersionError,
)
from .images import AecSource, ImageSource, MetadataValue
from .model_package import DEFAULT_MODEL

__version__ = "0.1.0"


def compress(img: ImageSource,
             quality: float | None = None, *, bpp: float | None = None,
             psnr: float | None = None, device: str = "cpu", model: str | None = None,
             threads: int = 0, metadata: bool = True,
             icc_profile: MetadataValue = None,
             exif: MetadataValue = None,
             xmp: MetadataValue = None,
             refine: int = 0, effort: int = DEFAULT_EFFORT,
             preview: bool | None = None) -> bytes:
    """Encode a PIL image, a uint8 numpy array (H×W, H×W×2/3/4) or an image path to .aec bytes.

    quality: 0–100, higher is better (default 75); or bpp: target bits per pixel (the highest
    quality whose file fits); or psnr: target PSNR in dB (the lowest quality that reaches it).
    device: "cpu" or "cuda" (needs onnxruntime-gpu). ICC/EXIF/XMP are kept unless
    metadata=False; icc_profile/exif/xmp replace them. effort 1–5 (README, "Encoder effort"):
    1–3 code 1, 2 or 8 orientations of the image and keep the best file; 4 and 5 (need torch)
    then fit its latents to this image by 12 or 40 gradient steps (~8 % smaller files, seconds
    an image); refine=N does that with N steps. preview: embed a 1/8-size preview for fast
    thumbnails (default: images of 2048 px or more on their short side). Uses a shared Codec
    per (model, device, threads)."""
    return shared(model, device, threads).compress(
        img, quality, bpp=bpp, psnr=psnr, metadata=metadata, icc_profile=icc_profile,
        exif=exif, xmp=xmp, refine=refine, effort=effort, preview=preview)


def decompress(data_or_path: AecSource,
               *, device: str = "cpu", threads: int = 0, scale: int = 1,
               profile: str = "exact") -> Image.Image:
    """Decode .aec bytes, a path or a binary file to a PIL image (RGB, L, RGBA or LA, as
    encoded; ICC/EXIF/XMP in im.info). Raises a typed aecodec.AecError on bad data, ValueError
    on a bad argument (scale, profile), FileNotFoundError for a missing path.
    scale 2, 4, 8: a preview; profile "fast": the model's fast decoder (Codec.decode)."""
    return shared(None, device, threads).decompress(data_or_path, scale=scale, profile=profile)


__all__ = [
    "DEFAULT_EFFORT",
    "DEFAULT_MODEL",
    "DEFAULT_QUALITY",
    "AecError",
    "Codec",
    "CorruptFileError",
    "DecompressionBombError",
    "DeviceError",
    "FormatError",
    "ModelNotFoundError",
    "ModelPackageError",
    "NotAecFileError",
    "Surprise",
    "UnsupportedImageError",
    "UnsupportedVersionError",
    "compress",
    "decompress",
    "embedding",
    "features",
    "surprise",
]
