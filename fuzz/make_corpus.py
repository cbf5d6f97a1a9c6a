"""Write the seed corpus of the decoder fuzz target (fuzz/fuzz_decoder.py) to fuzz/corpus/decoder.

    PYTHONPATH=. python3 fuzz/make_corpus.py [out_dir]

Small valid .aec files coded with the tiny test model tests/data/models/golden-tiny: every mode
(RGB, L, LA, RGBA), ICC/EXIF/XMP metadata, several Y slices (a small `slice_symbols`), every
orientation flag that keeps the coded size (a half turn, a mirror image: set in HEAD, the streams
unchanged) plus one found by effort 3, and the committed golden files in format versions 1, 2
and 3, and one with an embedded preview (prvw). Images are 16×24 or 40×56 pixels, so one decode
takes about a millisecond.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "data" / "models"


def image(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 8 % 256],
                    axis=2)
    base = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    if channels == 1:
        return base[:, :, 0]
    if channels == 2:
        return np.stack([base[:, :, 0], (xx * 5 % 256).astype(np.uint8)], axis=2)
    if channels == 4:
        return np.concatenate([base, (yy * 9 % 256).astype(np.uint8)[:, :, None]], axis=2)
    return base


def with_orientation(data: bytes, orientation: int) -> bytes:
    """The same file with HEAD's orientation set (one that keeps the coded size)."""
    from aecodec import container

    f = container.parse(data)
    f.header.orientation = orientation
    return f.to_bytes()


def main(out: Path) -> None:
    import aecodec

    icc = b"\0\0\1\0fuzz" + bytes(range(120))
    exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    codec = aecodec.Codec("golden-tiny", model_path=[MODELS], threads=1, slice_symbols=16)
    one = aecodec.Codec("golden-tiny", model_path=[MODELS], threads=1)
    files = {
        "rgb-16x24-slices.aec": codec.compress(image(24, 16, 3, 1), 50),
        "l-40x56-slices.aec": codec.compress(image(56, 40, 1, 2), 80),
        "la-16x24.aec": one.compress(image(24, 16, 2, 3), 30),
        "rgba-40x56-meta.aec": codec.compress(image(56, 40, 4, 4), 65, icc_profile=icc,
                                              exif=exif, xmp=xmp),
        "rgb-40x56-effort3.aec": one.compress(image(56, 40, 3, 5), 90, effort=3),
        "rgba-40x56-preview.aec": one.compress(image(56, 40, 4, 6), 55, preview=True),
    }
    files["rgb-16x24-halfturn.aec"] = with_orientation(files["rgb-16x24-slices.aec"], 2)
    files["la-16x24-mirror.aec"] = with_orientation(files["la-16x24.aec"], 6)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        aecodec.Codec("golden-tiny", model_path=[MODELS]).decompress(data)  # each one is valid
        (out / name).write_bytes(data)
    for name in ("golden.aec", "golden-v2.aec", "golden-v3.aec"):
        shutil.copy(REPO / "tests" / "data" / name, out / name)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(files) + 3} files ({total} bytes) to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "fuzz" / "corpus" / "decoder")
