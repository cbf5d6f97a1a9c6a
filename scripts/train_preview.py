#!/usr/bin/env python
"""Fit the preview heads of a model package (decoder-side extra `preview.npz`).

    python scripts/train_preview.py [--model FOLDER] [--crops 240]

A preview at 1/k of the full size (k = 2, 4, 8: Pillow's draft/reduce, `decompress --scale`) is
one 3×3 convolution of the dequantized latents ŷ into (16/k)²·3 channels and a DepthToSpace —
no g_s. Its weights are a ridge regression, fitted in closed form on frozen latents of random
256×256 crops of the training images (../shared/data/train, never Kodak) coded at random
qualities, against Image.reduce(k) of the model's own full decode. Minutes on a CPU. Writes
FOLDER/preview.npz (float16 weights, float32 biases) and its SHA-256 into the manifest's
`files`; the model's identity files and content hash are untouched.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aecodec import container, model_package  # noqa: E402
from aecodec.codec import Codec  # noqa: E402
from aecodec.decoder import decode_symbols  # noqa: E402
from aecodec.engine import core  # noqa: E402
from aecodec.results import Timings  # noqa: E402

SCALES = (2, 4, 8)
CROP = 256


def im2col(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] → [N·H·W, C·9]: 3×3 neighbourhoods, zero padded (Conv weight order)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], 2)
    return cols.transpose(0, 3, 4, 1, 2).reshape(n * h * w, c * 9)


def collect(codec: Codec, files: list, crops: int, rng: random.Random):
    eng = codec._engine()
    pkg = eng.package
    ys, fulls = [], []
    for fn in files:
        im = Image.open(fn).convert("RGB")
        if min(im.size) < CROP:
            continue
        x0, y0 = rng.randrange(im.size[0] - CROP + 1), rng.randrange(im.size[1] - CROP + 1)
        data = codec.compress(im.crop((x0, y0, x0 + CROP, y0 + CROP)),
                              quality=rng.choice([20, 35, 50, 65, 80, 95]))
        lat = decode_symbols(eng, container.parse(data), codec.threads, codec._map, Timings())
        y = core().dequantize(lat.s, lat.mu)
        y /= pkg.gain(lat.quality)[:, None, None]
        ys.append(y)
        fulls.append(np.asarray(codec.decompress(data)))
        if len(ys) >= crops:
            break
    return np.stack(ys), np.stack(fulls)


def fit(ys: np.ndarray, fulls: np.ndarray, k: int, ridge: float = 1e-3):
    grid = ys.shape[2]
    x = im2col(ys).astype(np.float64)
    x = np.concatenate([x, np.ones((len(x), 1))], 1)
    red = np.stack([np.asarray(Image.fromarray(f).reduce(k)) for f in fulls]) / 255.0
    blk = red.shape[1] // grid
    t = red.reshape(len(red), grid, blk, grid, blk, 3).transpose(0, 1, 3, 2, 4, 5)
    t = t.reshape(-1, blk * blk * 3)  # channel (a·blk + b)·3 + c: DepthToSpace, mode DCR
    xtx = x.T @ x
    sol = np.linalg.solve(xtx + ridge * np.trace(xtx) / len(xtx) * np.eye(len(xtx)), x.T @ t)
    mse = float(np.mean((np.clip(x @ sol, 0, 1) - t) ** 2))
    w = sol[:-1].T.reshape(blk * blk * 3, ys.shape[1], 3, 3)
    return w.astype(np.float16), sol[-1].astype(np.float32), 10 * np.log10(1 / mse)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="package folder (default model)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    ap.add_argument("--crops", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    folder = (args.model or model_package.find()).resolve()
    codec = Codec(str(folder))
    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".png", ".webp", ".jpg"))
    rng = random.Random(args.seed)
    rng.shuffle(files)
    ys, fulls = collect(codec, files, args.crops, rng)
    out = {}
    for k in SCALES:
        w, b, train_psnr = fit(ys, fulls, k)
        out[f"w{k}"], out[f"b{k}"] = w, b
        print(f"1/{k}: head {w.shape}, training PSNR {train_psnr:.2f} dB vs reduce({k})")
    path = folder / "preview.npz"
    np.savez(path, **out)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["preview.npz"] = model_package.file_digest(path)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {len(ys)} crops) and its digest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
