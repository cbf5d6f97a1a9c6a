#!/usr/bin/env python
"""Tune the refinement schedule (aecodec.train.refine.Schedule) on training crops, never on Kodak.

    python benchmarks/refine_tune.py --crops 6 --qualities 10,50,90 --steps 8,12,20 \
        --lr 0.01,0.02,0.04 --tau 0.5:0.05,0.3:0.05

For every crop and quality it takes the plain encoder's latents, refines them with each schedule
and reports the model's own hard-rounded cost R + λ·255²·MSE before and after (the objective the
encoder minimises; it predicts the coded files to ~0.5 %), as the mean relative change in %, and
the seconds a step. Crops are drawn with a fixed seed from ../shared/data/train (every
--stride-th file). Writes nothing; prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

import aecodec  # noqa: E402
from aecodec.train import refine  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def load_crops(folder: Path, n: int, seed: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".webp", ".png"))
    pick = np.random.default_rng(seed).choice(len(files), size=n, replace=False)
    return [np.asarray(Image.open(files[i]).convert("RGB")) for i in sorted(pick)]


def latents(codec: aecodec.Codec, rgb: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    eng = codec._engine()
    pkg = eng.package
    y = eng.transforms.analysis(rgb, pkg.encoder_scales(q))
    yg = y * pkg.gain(q)[:, None, None]
    return yg, eng.transforms.hyper_analysis(yg)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=common.REPO / ".." / "shared" / "data" / "train")
    ap.add_argument("--crops", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--qualities", type=floats, default=[10.0, 50.0, 90.0])
    ap.add_argument("--steps", default="8,12,20")
    ap.add_argument("--lr", type=floats, default=[0.01, 0.02, 0.04])
    ap.add_argument("--tau", default="0.5:0.05", help="start:end pairs, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    codec = aecodec.Codec(threads=args.threads)
    pkg = codec.package
    crops = load_crops(args.data, args.crops, args.seed)
    cases = [(rgb, q, *latents(codec, rgb, q)) for rgb in crops for q in args.qualities]
    taus = [tuple(float(v) for v in t.split(":")) for t in args.tau.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    print(f"{len(crops)} crops × qualities {args.qualities}; "
          f"model {pkg.name}@{pkg.content_hash[:12]}")
    print("steps  lr     tau        Δcost%  " + "  ".join(f"q{q:g}" for q in args.qualities)
          + "  s/step")
    for n, lr, (t0, t1) in itertools.product(steps, args.lr, taus):
        sched = refine.Schedule(n, lr, t0, t1)
        rel, secs = [], 0.0
        for rgb, q, yg, z in cases:
            t = time.perf_counter()
            _, _, st = refine.refine_latents(pkg.path, pkg.content_hash, rgb, yg, z, q, sched,
                                             args.threads)
            secs += time.perf_counter() - t
            rel.append(100 * (st["cost_after"] / st["cost_before"] - 1))
        per_q = np.array(rel).reshape(len(crops), len(args.qualities)).mean(axis=0)
        print(f"{n:>5}  {lr:<5g}  {t0:g}:{t1:<6g}  {np.mean(rel):+6.2f}  "
              + "  ".join(f"{v:+.1f}" for v in per_q) + f"  {secs / (n * len(cases)):.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
