#!/usr/bin/env python
"""Compare trained models by their own rate–distortion estimate: which snapshot should ship?

    python benchmarks/compare_models.py hyperprior-mse runs/default
    python benchmarks/compare_models.py hyperprior-mse runs/r4/last.ckpt --stride 1

Each argument is a model name (its installed package), a package folder, a run folder (its
last.ckpt), a checkpoint file or a GPU job's state.pt; checkpoints are read at their EMA
weights, which is what `aecodec export` writes.
For every model: the torch estimate (bits from the likelihoods, PSNR of the 8-bit reconstruction;
within ~3 % of the coded files, see tests/test_train.py) at the package qualities of rd.py, on
every --stride-th Kodak image, and Pillow's WebP (method 6) on the same images in the same run.
Prints each curve, its BD-rate (PSNR) against WebP, and each model's BD-rate against the first.
Needs the training extra (torch).  Full 24 images: ~3 min per model on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from metrics import bd_rate, psnr_rgb  # noqa: E402

QUALITIES = (0, 14, 29, 43, 57, 71, 86, 100)


def load_model(path: str):
    """(model, steps) from a package folder, a run folder or a .ckpt file (EMA weights)."""
    from aecodec.train.export import load_model as load

    model, provenance = load(path)
    return model, provenance.get("steps")


def webp_curve(images: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean bpp and PSNR of Pillow's WebP at rd.py's settings."""
    codec = common.Webp()
    rates, dists = [], []
    for q in codec.settings:
        res = []
        for im in images:
            data = codec.encode(im, q)
            res.append((8 * len(data) / (im.shape[0] * im.shape[1]),
                        psnr_rgb(im, codec.decode(data))))
        rates.append(float(np.mean([r[0] for r in res])))
        dists.append(float(np.mean([r[1] for r in res])))
    return rates, dists


def model_curve(model, images: list[np.ndarray]) -> tuple[list[float], list[float]]:
    from aecodec.train.evaluate import estimate

    res = estimate(model, images, qualities=QUALITIES)
    return [r["bpp"] for r in res], [r["psnr"] for r in res]


def bd_text(anchor: tuple, test: tuple) -> str:
    res = bd_rate(*anchor, *test)
    return "n/a (" + res["reason"] + ")" if res["bd_rate"] is None else f"{res['bd_rate']:+.1f} %"


def fmt(rates, dists) -> str:
    return "  ".join(f"{r:.3f}/{d:.2f}" for r, d in zip(rates, dists))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="package folders, run folders or .ckpt files")
    ap.add_argument("--data", default="../shared/data/kodak", type=Path)
    ap.add_argument("--stride", type=int, default=4, help="use every n-th image (default 4)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    a = ap.parse_args(argv)
    if a.stride < 1:
        ap.error(f"--stride must be at least 1, got {a.stride}")
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    paths = common.list_images(a.data)[:: a.stride]
    images = [common.load_rgb(p) for p in paths]
    print(f"{len(images)} images of {a.data}; bpp/PSNR at qualities {list(QUALITIES)}")
    wr, wd = webp_curve(images)
    print(f"{'webp':>28}  {fmt(wr, wd)}")
    curves = []
    for path in a.models:
        model, steps = load_model(path)
        r, d = model_curve(model, images)
        curves.append((path, r, d))
        print(f"{path[-28:]:>28}  {fmt(r, d)}  steps {steps}  "
              f"BD vs WebP {bd_text((wr, wd), (r, d))}", flush=True)
    for path, r, d in curves[1:]:
        print(f"{path} vs {curves[0][0]}: BD-rate {bd_text(curves[0][1:], (r, d))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
