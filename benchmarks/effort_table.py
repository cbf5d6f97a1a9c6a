#!/usr/bin/env python
"""The encoder-effort table: BD-rate and encode time of each effort, from rd.py runs.

    python benchmarks/rd.py --effort 4 --jobs 1 --threads 2 --out /tmp/rd_e4
    python benchmarks/effort_table.py benchmarks/results/rd.json \
        benchmarks/results/rd-effort3.json /tmp/rd_e4/rd.json --out benchmarks/results/effort.md

Each rd.json holds one run of aecodec at one effort with the other codecs measured in the same
run. The table gives, per effort: BD-rate (PSNR) against effort 1 (the run whose effort is 1,
which must be among the inputs; same images and qualities), against WebP and AVIF of the same
run, and the mean encode seconds per image with the threads the run used (rd.py runs
--jobs workers in parallel, so times from --jobs 1 --threads 2 runs are the 2-core figures).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics import bd_rate  # noqa: E402


def curve(run: dict, codec: str) -> tuple[list[float], list[float]] | None:
    pts = run["curves"].get(codec)
    if not pts:
        return None
    return [p["bpp"] for p in pts], [p["psnr"] for p in pts]


def bd(anchor, test) -> str:
    if anchor is None or test is None:
        return "n/a"
    r = bd_rate(*anchor, *test)
    return "n/a" if r["bd_rate"] is None else f"{r['bd_rate']:+.1f} %"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="rd.json files, one per effort")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    a = ap.parse_args(argv)
    runs = sorted((json.loads(p.read_text()) for p in a.runs),
                  key=lambda r: r["codecs"]["aecodec"]["origin"]["effort"])
    base = next((r for r in runs if r["codecs"]["aecodec"]["origin"]["effort"] == 1), None)
    if base is None:
        ap.error("one of the runs must be at effort 1")
    ref = curve(base, "aecodec")
    lines = ["| effort | images | BD-rate vs effort 1 | vs WebP | vs AVIF | encode s/image "
             "| threads × jobs | run |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        o = r["codecs"]["aecodec"]["origin"]
        test = curve(r, "aecodec")
        secs = sum(p["enc_s"] for p in r["curves"]["aecodec"]) / len(r["curves"]["aecodec"])
        same = r["images"] == base["images"]
        lines.append(
            f"| {o['effort']} | {r['n_images']} | {bd(ref, test) if same else 'n/a (images)'} "
            f"| {bd(curve(r, 'webp'), test)} | {bd(curve(r, 'avif'), test)} | {secs:.1f} "
            f"| {r['threads_per_job']} × {r['jobs']} | {r['date_utc'][:16]} `{r['command']}` |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
