#!/usr/bin/env python
"""The fast decoder profile on Kodak (issue 39): PSNR cost and decode time against the exact one.

    python benchmarks/fast_profile.py                          # the installed default model
    python benchmarks/fast_profile.py --head runs/fast32/fast.npz   # a candidate, not installed

Every Kodak image is encoded once per quality; each file is then decoded with
profile="exact" and profile="fast" in one process, interleaved (--repeat rounds, median times).
Reported per quality: mean PSNR (RGB, against the source) of both, their difference, and the
mean decode times. --head installs a candidate fast.npz into a temporary copy of the default
package first, so the candidate is measured as a user would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from metrics import psnr_rgb  # noqa: E402

QUALITIES = (0, 29, 57, 86, 100)


def with_head(head: Path, tmp: Path) -> Path:
    """A copy of the default package with `head` as its fast.npz (digest in the manifest)."""
    from aecodec import model_package
    from aecodec.synthesis_fast import FAST_FILE

    src = model_package.find(model_package.DEFAULT_MODEL, model_package.DEFAULT_HASH)
    dst = tmp / src.name
    shutil.copytree(src, dst)
    shutil.copyfile(head, dst / FAST_FILE)
    man = json.loads((dst / "manifest.json").read_text())
    man["files"][FAST_FILE] = model_package.file_digest(dst / FAST_FILE)
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


def measure(images: list, qualities, threads: int, repeat: int, model_path) -> list:
    from tqdm import tqdm

    import aecodec

    codec = aecodec.Codec(threads=threads, model_path=model_path)
    rows = []
    for q in qualities:
        acc = {"exact": [], "fast": [], "t_exact": [], "t_fast": [], "bpp": []}
        for p in tqdm(images, desc=f"q{q}", unit="image", leave=False):
            rgb = common.load_rgb(p)
            data = codec.encode(rgb, q).data
            acc["bpp"].append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
            times = {"exact": [], "fast": []}
            out = {}
            for _ in range(repeat):
                for prof in ("exact", "fast"):
                    t0 = time.perf_counter()
                    out[prof] = np.asarray(codec.decompress(data, profile=prof))
                    times[prof].append(time.perf_counter() - t0)
            for prof in ("exact", "fast"):
                acc[prof].append(psnr_rgb(rgb, out[prof]))
                acc["t_" + prof].append(statistics.median(times[prof]))
        rows.append({"quality": q, "bpp": float(np.mean(acc["bpp"])),
                     "psnr_exact": float(np.mean(acc["exact"])),
                     "psnr_fast": float(np.mean(acc["fast"])),
                     "delta_db": float(np.mean(np.subtract(acc["fast"], acc["exact"]))),
                     "worst_delta_db": float(np.min(np.subtract(acc["fast"], acc["exact"]))),
                     "decode_exact_s": float(np.mean(acc["t_exact"])),
                     "decode_fast_s": float(np.mean(acc["t_fast"]))})
    return rows


def markdown(res: dict) -> str:
    lines = [f"**Fast decoder profile** ({res['head']}, {res['threads']} thread(s), "
             f"{res['images']} Kodak images, decode times interleaved in one process, median of "
             f"{res['repeat']}). {res['header']}", "",
             "| quality | bpp | PSNR exact (dB) | PSNR fast (dB) | ΔPSNR mean / worst (dB) | "
             "decode exact | decode fast | speed-up |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append(
            f"| {r['quality']} | {r['bpp']:.3f} | {r['psnr_exact']:.2f} | {r['psnr_fast']:.2f} | "
            f"{r['delta_db']:+.2f} / {r['worst_delta_db']:+.2f} | {r['decode_exact_s'] * 1e3:.0f}"
            f" ms | {r['decode_fast_s'] * 1e3:.0f} ms | "
            f"{r['decode_exact_s'] / r['decode_fast_s']:.2f}× |")
    d = [r["delta_db"] for r in res["rows"]]
    lines += ["", f"Mean ΔPSNR over the qualities: {np.mean(d):+.2f} dB.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", type=Path, default=None,
                    help="a candidate fast.npz (default: the installed model's own)")
    ap.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    args = ap.parse_args(argv)
    started, t0 = common.utcnow(), time.perf_counter()
    images = common.list_images(args.data)[: args.images]
    qualities = [float(q) for q in args.qualities.split(",")]
    with tempfile.TemporaryDirectory(prefix="aecodec-fast-") as d:
        model_path = [with_head(args.head, Path(d)).parent] if args.head else None
        rows = measure(images, qualities, args.threads, args.repeat, model_path)
    given = sys.argv[1:] if argv is None else argv
    cmd = "python benchmarks/fast_profile.py" + "".join(" " + a for a in given)
    machine, git = common.machine_info(), common.git_info()
    res = {"benchmark": "fast_profile", "command": cmd, "head": str(args.head or "installed"),
           "threads": args.threads, "repeat": args.repeat, "images": len(images), "rows": rows,
           "machine": machine, "git": git,
           "header": common.run_header(cmd, started, git, machine, time.perf_counter() - t0)}
    print(common.save_report(args.out, "fast-profile", res, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
