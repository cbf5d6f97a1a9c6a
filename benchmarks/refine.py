#!/usr/bin/env python
"""What encoder-side latent refinement (`aecodec compress --refine N`) buys: real files, one run.

    python benchmarks/refine.py --steps 60 --images 4 --crop 256x384

Encodes crops of Kodak images with the default model at rd.py's qualities, without refinement and
with each --steps count, decodes every file with the normal decoder and measures bpp (whole
file) and RGB PSNR; Pillow's WebP (method 6) runs on the same crops. Prints each curve, its
BD-rate (PSNR) against WebP and against the unrefined encoder, and the encode time; writes
benchmarks/results/refine.json. Needs the training extra (torch). Refinement is slow on a CPU:
~0.5 s a step for a 256×384 crop on 2 cores, so this is a small-sample measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from compare_models import QUALITIES, bd_text, fmt, webp_curve  # noqa: E402
from metrics import psnr_rgb  # noqa: E402


def crop(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The centre size[0]×size[1] crop (whole image if None or larger)."""
    if size is None:
        return img
    h, w = min(size[0], img.shape[0]), min(size[1], img.shape[1])
    r, c = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[r : r + h, c : c + w])


def aecodec_curve(codec, images, steps: int, qualities) -> dict:
    rates, dists, secs = [], [], 0.0
    for q in qualities:
        res = []
        for im in images:
            t = time.perf_counter()
            data = codec.compress(im, quality=q, refine=steps)
            secs += time.perf_counter() - t
            out = np.asarray(codec.decompress(data))
            res.append((8 * len(data) / (im.shape[0] * im.shape[1]), psnr_rgb(im, out)))
        rates.append(float(np.mean([r[0] for r in res])))
        dists.append(float(np.mean([r[1] for r in res])))
        print(f"  refine {steps:>4} q{q:>3}: {rates[-1]:.4f} bpp {dists[-1]:.2f} dB", flush=True)
    return {"steps": steps, "bpp": rates, "psnr": dists,
            "encode_seconds_per_image": secs / (len(images) * len(qualities))}


def parse_size(text: str) -> tuple[int, int] | None:
    if text == "full":
        return None
    h, w = (int(v) for v in text.lower().split("x"))
    if h < 64 or w < 64:
        raise ValueError(f"--crop must be at least 64x64, got {text}")
    return h, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=common.DEFAULT_DATA, type=Path)
    ap.add_argument("--images", type=int, default=4, help="first N images (default 4)")
    ap.add_argument("--crop", default="256x384", help="HxW centre crop, or 'full'")
    ap.add_argument("--steps", default="60", help="comma-separated refine step counts")
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    ap.add_argument("--threads", type=int, default=0, help="threads (0: all cores)")
    ap.add_argument("--model", default=None, help="model package (default: the runtime's)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT / "refine.json")
    a = ap.parse_args(argv)
    import aecodec

    size = parse_size(a.crop)
    steps = [int(s) for s in a.steps.split(",")]
    qualities = [float(q) for q in a.qualities.split(",")]
    paths = common.list_images(a.data, a.images)
    images = [crop(common.load_rgb(p), size) for p in paths]
    codec = aecodec.Codec(a.model, threads=a.threads)
    print(f"{len(images)} images of {a.data}, crop {a.crop}; qualities {qualities}")
    wr, wd = webp_curve(images)
    print(f"{'webp':>12}  {fmt(wr, wd)}")
    curves = [aecodec_curve(codec, images, 0, qualities)]
    for n in steps:
        curves.append(aecodec_curve(codec, images, n, qualities))
    result = {"images": [p.name for p in paths], "crop": a.crop, "qualities": qualities,
              "model": codec.package.name, "model_hash": codec.package.content_hash[:16],
              "webp": {"bpp": wr, "psnr": wd}, "aecodec": curves, "bd_rate_psnr": {}}
    base = (curves[0]["bpp"], curves[0]["psnr"])
    for c in curves:
        cur = (c["bpp"], c["psnr"])
        vs_webp, vs_base = bd_text((wr, wd), cur), bd_text(base, cur)
        result["bd_rate_psnr"][f"refine {c['steps']}"] = {"vs_webp": vs_webp,
                                                           "vs_refine_0": vs_base}
        print(f"refine {c['steps']:>4}  {fmt(*cur)}  BD vs WebP {vs_webp}, vs refine 0 "
              f"{vs_base}; encode {c['encode_seconds_per_image']:.1f} s/image")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
