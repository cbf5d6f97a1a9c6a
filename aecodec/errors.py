"""Typed errors of the aecodec runtime. Every message says what went wrong and what to do.

    AecError                          base class: ``except aecodec.AecError`` catches them all
    ├── FormatError (ValueError)      the bytes are not a valid .aec file
    │   ├── NotAecFileError           wrong magic number (empty file, PNG renamed .aec, …)
    │   ├── CorruptFileError          truncated, failed integrity check, inconsistent header
    │   └── UnsupportedVersionError   newer major version or unknown critical chunk
    ├── DecompressionBombError        dimensions above PIL.Image.MAX_IMAGE_PIXELS
    │                                 (also a PIL.Image.DecompressionBombError)
    ├── ModelNotFoundError (LookupError)   the model a file names is not installed
    ├── ModelPackageError             a model package is damaged or incomplete
    ├── UnsupportedImageError (ValueError) an image mode/dtype aecodec cannot code
    └── DeviceError (RuntimeError)    device="cuda" without onnxruntime-gpu, unknown device
"""

from __future__ import annotations

from PIL import Image


class AecError(Exception):
    """Base class of every error raised by aecodec."""


class FormatError(AecError, ValueError):
    """The data is not a valid .aec file."""


class NotAecFileError(FormatError):
    """The data does not start with the .aec magic number."""


class CorruptFileError(FormatError):
    """The file is truncated, damaged (integrity check failed) or internally inconsistent."""


class UnsupportedVersionError(FormatError):
    """The file needs a newer reader (unknown major version or unknown critical chunk)."""


class DecompressionBombError(AecError, Image.DecompressionBombError):
    """The image is larger than PIL.Image.MAX_IMAGE_PIXELS allows."""


class ModelNotFoundError(AecError, LookupError):
    """No installed model package matches the requested name (and content hash)."""


class ModelPackageError(AecError):
    """A model package is incomplete, damaged or does not match its recorded content hash."""


class UnsupportedImageError(AecError, ValueError):
    """The image's mode or array type cannot be coded."""


class DeviceError(AecError, RuntimeError):
    """The requested device is unknown or its onnxruntime provider is not installed."""


__all__ = [
    "AecError",
    "CorruptFileError",
    "DecompressionBombError",
    "DeviceError",
    "FormatError",
    "ModelNotFoundError",
    "ModelPackageError",
    "NotAecFileError",
    "UnsupportedImageError",
    "UnsupportedVersionError",
]
