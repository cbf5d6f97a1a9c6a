#!/usr/bin/env python
"""Decode memory of large photos (issue 39, "bounded memory"): aecodec's peak resident memory
decoding a 12 MP (4032×3024) and a 50 MP (8192×6144) photo.

    python benchmarks/decode_memory.py                 # both sizes
    python benchmarks/decode_memory.py --sizes 12      # the 12 MP photo only

Each photo is a deterministic mosaic of Kodak crops (benchmarks/common.make_mosaic), encoded at
--quality, then decoded once to a PIL image (Codec.decompress) in a fresh child process, after a
64×64 decode that loads the model. Reported: the child's peak RSS (interpreter, libraries,
model, image), the decode's own peak above the loaded model, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import speed  # noqa: E402

SIZES = {12: (4032, 3024, (672, 504)), 50: (8192, 6144, (512, 512))}


def child(path: str, threads: int) -> dict:
    """Decode `path` to a PIL image, as a viewer would, after a 64×64 decode loaded the model."""
    import aecodec

    codec = aecodec.Codec(threads=threads)
    codec.decode(codec.encode(np.zeros((64, 64, 3), np.uint8), 50).data)
    rss0, max0 = speed._rss_kib(), speed._maxrss_kib()
    with speed._Sampler() as sampler:
        t0 = time.perf_counter()
        im = codec.decompress(path)
        dt = time.perf_counter() - t0
    max1 = speed._maxrss_kib()
    peak = max1 if max1 > max0 else sampler.peak
    return {"decode_s": dt, "size": list(im.size), "peak_rss_mib": max1 / 1024,
            "op_peak_mib": (peak - rss0) / 1024, "rss_before_mib": rss0 / 1024}


def measure(size: int, quality: float, threads: int, tmp: Path, timeout: float) -> dict:
    import aecodec

    width, height, tile = SIZES[size]
    rgb = common.make_mosaic(common.list_images(common.DEFAULT_DATA), width, height, tile)
    t0 = time.perf_counter()
    data = aecodec.Codec(threads=threads).encode(rgb, quality).data
    encode_s = time.perf_counter() - t0
    del rgb
    path = tmp / f"{size}mp.aec"
    path.write_bytes(data)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path),
           "--threads", str(threads)]
    r = common.run_json_child(cmd, timeout)
    if "error" in r:
        return {"error": f"decode: {r['error']}"}
    if r["size"] != [width, height]:
        return {"error": f"decoded size {r['size']} != {[width, height]}"}
    return {"width": width, "height": height, "bytes": len(data),
            "bpp": 8 * len(data) / (width * height), "encode_s": encode_s, **r}


def markdown(res: dict) -> str:
    lines = [f"**Decode memory of large photos** (aecodec, {res['threads']} thread(s), quality "
             f"{res['quality']:g}). {res['header']}", "",
             "| photo | bpp | decode | decode MP/s | peak RSS (MiB) | above interpreter + model "
             "(MiB) |", "|---|---:|---:|---:|---:|---:|"]
    for r in res["results"]:
        if "error" in r:
            lines.append(f"| {r['size']} MP | failed: {r['error']} | | | | |")
            continue
        mp = r["width"] * r["height"] / 1e6
        lines.append(f"| {r['width']}×{r['height']} ({mp:.1f} MP) | {r['bpp']:.2f} | "
                     f"{r['decode_s']:.1f} s | {mp / r['decode_s']:.2f} | "
                     f"{r['peak_rss_mib']:,.0f} | {r['peak_rss_mib'] - r['rss_before_mib']:,.0f}"
                     f" |")
    lines += ["", "Peak RSS: the decoding process's VmHWM (Codec.decompress to a PIL image); above "
              "interpreter + model: its peak less the resident size after a 64×64 decode loaded "
              "the model.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="12,50", help="megapixels, of 12 and 50 (default both)")
    ap.add_argument("--quality", type=float, default=common.Aec.speed_setting)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=900, help="per child process, seconds")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"--sizes: {bad} not among {sorted(SIZES)}")
    started, t0 = common.utcnow(), time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="aecodec-decmem-") as d:
        for s in sizes:
            print(f"{s} MP ...", file=sys.stderr)
            results.append({"size": s, **measure(s, args.quality, args.threads, Path(d),
                                                 args.timeout)})
    given = sys.argv[1:] if argv is None else argv
    cmd = "python benchmarks/decode_memory.py" + "".join(" " + a for a in given)
    machine, git = common.machine_info(), common.git_info()
    res = {"benchmark": "decode_memory", "command": cmd, "threads": args.threads,
           "quality": args.quality, "machine": machine, "git": git, "results": results,
           "header": common.run_header(cmd, started, git, machine, time.perf_counter() - t0)}
    print(common.save_report(args.out, "decode-memory", res, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
