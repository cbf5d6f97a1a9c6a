"""Write the golden file of one shipped model: python tests/data/make_model_golden.py [FOLDER]

Run once, when a model lands (FOLDER: its package, default the default model). Codes a 96×64 crop
of tests/data/kodim23.webp at quality 60 and records, in tests/data/model-golden/record.json under
the model's id (name@hash12): the file, the SHA-256 of its latent symbols (ẑ then s, int32 LE)
and of its decoded pixels, and the decoded pixels themselves as a PNG. tests/test_model_golden.py
decodes every recorded file with the installed models, for as long as aecodec exists: a model that
has landed is never removed, only retired to decode-only (docs/model-package.md, "Lifecycle").
Never rerun it for a model that already has a record.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE / "model-golden"
CROP = (320, 200, 416, 264)  # kodim23's parrots: colour, edges and flat background
QUALITY = 60


def symbol_sha256(z_hat: np.ndarray, s: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (z_hat, s):
        h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
    return h.hexdigest()


def main(argv: list[str]) -> int:
    import aecodec
    from aecodec import model_package

    folder = Path(argv[0]) if argv else model_package.find()
    codec = aecodec.Codec(str(folder))
    pkg = codec.package
    key = f"{pkg.name}@{pkg.content_hash[:12]}"
    record_path = OUT / "record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if key in record:
        print(f"{key} already has a golden file: never rewrite it", file=sys.stderr)
        return 1
    with Image.open(HERE / "kodim23.webp") as im:
        img = np.asarray(im.convert("RGB").crop(CROP))
    data = codec.compress(img, quality=QUALITY)
    stem = f"{pkg.name}-{pkg.content_hash[:12]}"
    OUT.mkdir(exist_ok=True)
    (OUT / f"{stem}.aec").write_bytes(data)
    _, z_hat, s = codec.decode_latents(data)
    pixels = np.asarray(codec.decompress(data))
    Image.fromarray(pixels).save(OUT / f"{stem}.png")
    mse = float(np.mean((pixels.astype(np.float64) - img) ** 2))
    record[key] = {
        "file": f"{stem}.aec", "pixels": f"{stem}.png", "quality": QUALITY,
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "latent_symbol_sha256": symbol_sha256(z_hat, s),
        "pixel_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "psnr_vs_source": round(10 * np.log10(255**2 / mse), 4),
    }
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"{key}: {len(data)} bytes, PSNR {record[key]['psnr_vs_source']} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
