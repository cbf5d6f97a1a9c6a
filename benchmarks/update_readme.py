#!/usr/bin/env python
"""Paste the latest benchmark tables into README.md.

    python benchmarks/update_readme.py [--results benchmarks/results] [--readme README.md]

Replaces what lies between ``<!-- rd:start -->`` and ``<!-- rd:end -->`` with
results/rd.md plus the RD plot, between ``<!-- speed:start -->`` and ``<!-- speed:end -->``
with results/speed.md, and between ``<!-- model:start -->`` and ``<!-- model:end -->`` with the
figures of the default model's manifest.json (``python -m aecodec.train.figures``).  Only those
blocks change; a missing result file (or block) leaves it alone.
If README.md has no markers yet, a "Benchmarks" section with them is appended.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SECTION = """
## Benchmarks

Measured with the scripts in `benchmarks/` (never run as tests). From a clean checkout:

```
pip install ".[bench]"               # + imagecodecs (JPEG XL), matplotlib, bjontegaard
python benchmarks/rd.py              # rate–distortion on Kodak -> benchmarks/results/rd.*
python benchmarks/speed.py           # speed and memory         -> benchmarks/results/speed.*
python benchmarks/update_readme.py   # paste the tables below
```

JPEG, WebP and AVIF come from Pillow, JPEG XL from imagecodecs; codecs that are not installed are
skipped with a message. `--help` lists the options (`--images N`, `--codecs`, `--out`, ...).
Times are wall clock on the machine named above each table; its load average at the start says
whether other work shared the cores (a load above the core count slows every codec alike).

### Rate–distortion

<!-- rd:start -->
<!-- rd:end -->

### Speed and memory

<!-- speed:start -->
<!-- speed:end -->
"""


def replace_block(text: str, key: str, body: str) -> str:
    pat = re.compile(rf"(<!-- {key}:start -->)(.*?)(<!-- {key}:end -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"error: README has no <!-- {key}:start --> ... <!-- {key}:end --> block")
    return pat.sub(lambda m: m.group(1) + "\n" + body.strip() + "\n" + m.group(3), text, count=1)


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def model_block(manifest: dict) -> str:
    """Markdown for the shipped model: training record, Kodak RD points, BD-rates, rate parity."""
    fig, prov = manifest.get("figures") or {}, manifest.get("provenance") or {}
    tr = fig.get("training") or {}
    last = tr.get("last_session") or {}
    devices = list(dict.fromkeys(h.get("device", "cpu") for h in prov.get("history") or []))
    lines = [f"**{manifest['name']}** (content hash `{manifest['content_hash'][:12]}`): "
             f"{manifest['architecture']['parameters'] / 1e6:.2f} M parameters, trained "
             f"{prov.get('steps', 0):,} steps in {tr.get('wall_hours', 0):.1f} h on "
             f"{' and '.join(devices) or last.get('device', 'cpu')} (its last whole-model "
             f"session: {last.get('device', 'cpu')}, batch {last.get('batch', '?')} of "
             f"{last.get('crop', '?')}² crops, {last.get('steps_per_second', 0):.2f} steps/s)."]
    kodak = fig.get("kodak")
    if kodak:
        effort = f", encoder effort {kodak['effort']}" if kodak.get("effort") else ""
        lines += ["", f"Kodak ({kodak['images']} images, rd.py run of {kodak['date_utc']} at "
                  f"`{kodak['git']}`{effort}):", "",
                  "| quality | bpp | PSNR (dB) | MS-SSIM |", "|---:|---:|---:|---:|"]
        lines += [f"| {p['quality']:g} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |"
                  for p in kodak["curve"]]
        bd = kodak.get("bd_rate_percent") or {}
        if bd:
            names = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "jxl": "JPEG XL"}
            parts = [f"vs {names.get(k, k)} {_pct(v.get('psnr'))} / {_pct(v.get('ms_ssim'))}"
                     for k, v in bd.items()]
            lines += ["", "BD-rate of aecodec, PSNR / MS-SSIM (negative = fewer bits): "
                      + "; ".join(parts) + "."]
    par = fig.get("parity")
    if par:
        worst = max(abs(r["ratio"] - 1) for r in par["rows"])
        streams = max(abs(r["ratio_streams"] - 1) for r in par["rows"])
        lines += ["", f"Rate parity: the coded files are within {100 * worst:.1f} % of the "
                  f"model's estimated rate, their entropy-coded streams within "
                  f"{100 * streams:.1f} % ({len(par['images'])} Kodak images, qualities "
                  f"{', '.join(str(r['quality']) for r in par['rows'])}; the difference is the "
                  "file's fixed framing, docs/format.md \"Overhead\")."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--manifest", type=Path, default=None,
                    help="default: the default model's (model_package.find())")
    args = ap.parse_args(argv)
    if args.manifest is None:
        from aecodec import model_package

        args.manifest = model_package.find() / "manifest.json"

    text = args.readme.read_text()
    if "<!-- rd:start -->" not in text and "<!-- speed:start -->" not in text:
        text = text.rstrip("\n") + "\n" + SECTION
    changed = []
    rd_md = args.results / "rd.md"
    if rd_md.is_file():
        body = rd_md.read_text()
        png = args.results / "rd.png"
        if png.is_file():
            rel = Path(os.path.relpath(png, args.readme.parent)).as_posix()
            body = body.replace("<details>", f"![Rate–distortion curves]({rel})\n\n<details>", 1)
        text = replace_block(text, "rd", body)
        changed.append("rd")
    speed_md = args.results / "speed.md"
    if speed_md.is_file():
        text = replace_block(text, "speed", speed_md.read_text())
        changed.append("speed")
    if args.manifest.is_file() and "<!-- model:start -->" in text:
        text = replace_block(text, "model", model_block(json.loads(args.manifest.read_text())))
        changed.append("model")
    tmp = args.readme.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, args.readme)
    print(f"updated {args.readme}: {', '.join(changed) or 'section only (no results yet)'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
