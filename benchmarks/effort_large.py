#!/usr/bin/env python
"""Encoder effort on a 12-megapixel photo: seconds, size, PSNR and peak memory per effort.

    python benchmarks/effort_large.py --efforts 1,4 --quality 75

The photo is speed.py's deterministic 4032×3024 mosaic of Kodak crops. Each effort is encoded in
a fresh process (so its peak RSS is its own), then decoded by the normal decoder. Writes
benchmarks/results/effort-large.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from metrics import psnr_rgb  # noqa: E402


def _encode(args) -> dict:
    effort, quality, threads = args
    import aecodec

    img = common.make_mosaic(common.list_images(common.DEFAULT_DATA))
    codec = aecodec.Codec(threads=threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    r = codec.encode(img, quality=quality, effort=effort)
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = np.asarray(codec.decompress(r.data))
    return {"effort": effort, "quality": quality, "seconds": secs, "bytes": len(r.data),
            "bpp": 8 * len(r.data) / (img.shape[0] * img.shape[1]),
            "psnr": psnr_rgb(img, out), "orientation": r.orientation,
            "refine": r.refine, "peak_rss_mib": peak / 1024, "rss_before_mib": base / 1024,
            "timings": r.timings}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--efforts", default="1,4")
    ap.add_argument("--quality", type=float, default=75.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT / "effort-large.json")
    a = ap.parse_args(argv)
    rows = []
    ctx = mp.get_context("spawn")
    for e in (int(v) for v in a.efforts.split(",")):
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(_encode, ((e, a.quality, a.threads),)))
        r = rows[-1]
        print(f"effort {e}: {r['seconds']:.1f} s, {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB, "
              f"orientation {r['orientation']}, peak RSS {r['peak_rss_mib']:.0f} MiB, "
              f"refine {r['refine']}", flush=True)
    when = common.utcnow().isoformat(timespec="seconds")
    a.out.write_text(json.dumps({"date_utc": when, "machine": common.machine_info(),
                                 "git": common.git_info(), "command": " ".join(sys.argv),
                                 "size": [4032, 3024], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
