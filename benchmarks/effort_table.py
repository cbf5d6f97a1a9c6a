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


def bd_value(anchor, test) -> float | None:
    if anchor is None or test is None:
        return None
    v = bd_rate(*anchor, *test)["bd_rate"]
    return None if v is None else round(v, 2)


def bd(anchor, test) -> str:
    v = bd_value(anchor, test)
    return "n/a" if v is None else f"{v:+.1f} %"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="rd.json files, one per effort")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    ap.add_argument("--json", type=Path, default=None,
                    help="also write the rows as JSON (python -m aecodec.train.figures --efforts)")
    a = ap.parse_args(argv)
    runs = sorted((json.loads(p.read_text()) for p in a.runs),
                  key=lambda r: r["codecs"]["aecodec"]["origin"]["effort"])
    base = next((r for r in runs if r["codecs"]["aecodec"]["origin"]["effort"] == 1), None)
    if base is None:
        ap.error("one of the runs must be at effort 1")
    ref = curve(base, "aecodec")
    rows = []
    lines = ["| effort | images | BD-rate vs effort 1 | vs WebP | vs AVIF | encode s/image "
             "| threads × jobs | run |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        o = r["codecs"]["aecodec"]["origin"]
        test = curve(r, "aecodec")
        secs = sum(p["enc_s"] for p in r["curves"]["aecodec"]) / len(r["curves"]["aecodec"])
        same = r["images"] == base["images"]
        rows.append({"effort": o["effort"], "images": r["n_images"],
                     "bd_rate_percent": {"effort_1": bd_value(ref, test) if same else None,
                                         "webp": bd_value(curve(r, "webp"), test),
                                         "avif": bd_value(curve(r, "avif"), test)},
                     "qualities": [p["setting"] for p in r["curves"]["aecodec"]],
                     "encode_seconds_per_image": round(secs, 2),
                     "threads": r["threads_per_job"], "jobs": r["jobs"],
                     "date_utc": r["date_utc"], "command": r["command"]})
        lines.append(
            f"| {o['effort']} | {r['n_images']} | {bd(ref, test) if same else 'n/a (images)'} "
            f"| {bd(curve(r, 'webp'), test)} | {bd(curve(r, 'avif'), test)} | {secs:.1f} "
            f"| {r['threads_per_job']} × {r['jobs']} | {r['date_utc'][:16]} `{r['command']}` |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
