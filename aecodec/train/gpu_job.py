"""One prepared, fixed-budget GPU run (design §5): continue a model package's training.

Here, once:   python scripts/gpu_job.py prepare     # training crops + 4 Kodak images → gpu_data/
On the GPU:   python3 scripts/gpu_job.py train --minutes 8   # → $OUT/state.pt, $OUT/report.json
Here, after:  aecodec export <fetched>/state.pt      # then evaluate; commit only if better
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import torch
from PIL import Image

from .cli import level_power_value, sga_temperatures, warmup_steps_value
from .data import IMAGE_SUFFIXES, load_eval_images
from .evaluate import estimate
from .export import write_state
from .train import TrainArgs, Trainer

QUALITIES = (0, 25, 50, 75, 100)


def spread_order(paths: list[Path]) -> list[Path]:
    """Training files in an order that covers every source photo, and every dataset, early.

    Crops are named `<dataset>_<photo>_c<k>.<ext>`: first crop 0 of every photo, then crop 1, …;
    within a round the datasets take turns. Sorted order would spend a small budget on the first
    dataset alone (bsds500 fills the first 22 MB of ../shared/data/train).
    """
    def key(p: Path) -> tuple[int, str, str]:
        m = re.fullmatch(r"(.+)_c(\d+)", p.stem)
        return (int(m.group(2)), m.group(1).split("_")[0], p.name) if m else (0, "", p.name)

    groups: dict[tuple[int, str], list[Path]] = {}
    for p in sorted(paths, key=key):
        groups.setdefault(key(p)[:2], []).append(p)
    # Within a round each dataset is spread evenly: item i of n sits at (i + 0.5) / n.
    return [p for _, _, p in sorted(
        (k, (i + 0.5) / len(g), p) for (k, _), g in groups.items() for i, p in enumerate(g))]


def prepare(src: Path, kodak: Path, dest: Path, megabytes: float,
            jpeg_quality: int | None = 93) -> int:
    """Write as many training crops as fit in `megabytes` (spread_order) and 4 Kodak images.

    With `jpeg_quality` the crops are stored as JPEG without chroma subsampling (4:4:4): at q93
    a crop takes ~2× fewer bytes than lossless WebP with errors (~44 dB) far below the model's
    best quality (~36 dB), so twice as many distinct photos travel in the device's tree limit.
    """
    (dest / "train").mkdir(parents=True, exist_ok=True)
    (dest / "kodak").mkdir(parents=True, exist_ok=True)
    budget, n = megabytes * 1e6, 0
    for p in spread_order([p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]):
        if jpeg_quality is None:
            target, size = dest / "train" / p.name, p.stat().st_size
            if size <= budget:
                shutil.copy2(p, target)
        else:
            buf = io.BytesIO()
            with Image.open(p) as im:
                im.convert("RGB").save(buf, "JPEG", quality=jpeg_quality, subsampling=0)
            target, size = dest / "train" / (p.stem + ".jpg"), buf.tell()
            if size <= budget:
                target.write_bytes(buf.getvalue())
        if size > budget:
            continue
        budget -= size
        n += 1
    for name in ("kodim01.png", "kodim07.png", "kodim15.png", "kodim23.png"):
        if (kodak / name).exists():
            shutil.copy2(kodak / name, dest / "kodak" / name)
    return n


# What the device sends back (device README): at most 8 files of at most 16 MiB each.
MAX_RETURN_FILES, MAX_RETURN_BYTES = 8, 16 * 2**20


def check_returned(out: Path) -> None:
    """Fail loudly, while there is still time to act, if $OUT would not come back whole."""
    files = [p for p in out.rglob("*") if p.is_file()]
    big = [f"{p.name} ({p.stat().st_size} B)" for p in files if p.stat().st_size > MAX_RETURN_BYTES]
    if len(files) > MAX_RETURN_FILES or big:
        raise RuntimeError(f"{out} holds {len(files)} files (at most {MAX_RETURN_FILES}) and "
                           f"these over 16 MiB: {big}")


def _write_out(tr: Trainer, out: Path, report: dict) -> None:
    """EMA weights (fp16 state.pt) and the report, each written atomically."""
    report = {**report, "steps": tr.session_steps, "total_steps": tr.provenance["steps"],
              "seconds": round(tr.session_seconds, 1),
              "steps_per_s": round(tr.session_steps / max(tr.session_seconds, 1e-9), 2)}
    write_state(tr.ema, out / "state.pt.tmp", tr.provenance)
    os.replace(out / "state.pt.tmp", out / "state.pt")
    (out / "report.json.tmp").write_text(json.dumps(report, indent=2))
    os.replace(out / "report.json.tmp", out / "report.json")
    check_returned(out)
    print(f"saved {out}/state.pt at step {tr.provenance['steps']} "
          f"({report['steps_per_s']} steps/s)", flush=True)


def train(args: argparse.Namespace) -> dict:
    """Train from the package for args.minutes; weights and a report reach $OUT every
    --save-minutes and at the end, so a run killed at the device's limit still returns them."""
    out = Path(args.out or os.environ.get("OUT", "gpu_out"))
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    targs = TrainArgs(data=args.data, eval_data=args.eval_data, run_dir=args.run_dir,
                      init=args.init, minutes=args.minutes, steps=args.steps, batch=args.batch,
                      crop=args.crop, lr=args.lr, lr_final=args.lr_final, ema=args.ema,
                      eval_minutes=0, save_minutes=args.save_minutes, device=device,
                      rate_quant="ste", sga=args.sga, level_power=args.level_power,
                      warmup_steps=args.warmup_steps, amp=None if args.amp == "none" else args.amp)
    t0 = time.time()
    tr = Trainer(targs)
    print(f"{device}: {len(tr.data)} training crops loaded in {time.time() - t0:.1f} s",
          flush=True)
    report = {"device": device,
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
              "batch": args.batch, "lr": [args.lr, args.lr_final], "crops": len(tr.data),
              "amp": args.amp,
              "sga": list(args.sga) if args.sga else None, "level_power": args.level_power}
    images = load_eval_images(args.eval_data, 4)
    if images:
        report["estimate_before"] = estimate(tr.ema, images, QUALITIES, device)
    tr.on_save = lambda t: _write_out(t, out, report)
    tr.run()
    if images:
        report["estimate_after"] = estimate(tr.ema, images, QUALITIES, device)
    _write_out(tr, out, report)
    report = json.loads((out / "report.json").read_text())
    print(json.dumps(report))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_job", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="copy training crops that fit the device's tree limit")
    pp.add_argument("--src", default="../shared/data/train")
    pp.add_argument("--kodak", default="../shared/data/kodak")
    pp.add_argument("--dest", default="gpu_data")
    pp.add_argument("--megabytes", type=float, default=30.0)
    pp.add_argument("--jpeg-quality", type=int, default=93,
                    help="store crops as 4:4:4 JPEG at this quality (0: copy them losslessly)")
    pt = sub.add_parser("train", help="train on the device for a fixed budget")
    pt.add_argument("--init", default="hyperprior-mse",
                    help="model name (its installed default package) or package folder")
    pt.add_argument("--data", default="gpu_data/train")
    pt.add_argument("--eval-data", default="gpu_data/kodak")
    pt.add_argument("--run-dir", default="/tmp/aecodec_gpu_run")
    pt.add_argument("--out", default=None, help="default $OUT")
    pt.add_argument("--minutes", type=float, default=8.0)
    pt.add_argument("--steps", type=int, default=None)
    pt.add_argument("--batch", type=int, default=48)
    pt.add_argument("--crop", type=int, default=256)
    pt.add_argument("--lr", type=float, default=1e-4)
    pt.add_argument("--lr-final", type=float, default=5e-6)
    pt.add_argument("--save-minutes", type=float, default=2.0,
                    help="copy the EMA weights to --out this often")
    # the package carries no Adam state: a fresh Adam's first steps shake the model (training.md)
    pt.add_argument("--warmup-steps", type=warmup_steps_value, default=200, metavar="N")
    # the shipped model's last CPU runs (training.md): SGA rounding, high rates drawn more often
    pt.add_argument("--sga", type=sga_temperatures, default=(0.035, 0.025), metavar="START,END")
    pt.add_argument("--level-power", type=level_power_value, default=0.5, metavar="P")
    pt.add_argument("--ema", type=float, default=0.995)
    # bf16 autocast for g_a and g_s (the rate stays in float32): untried on the GPU so far
    # (docs/notes/2026-12-04-first-gpu-run.md); fp32 with TF32 ran at 26.9 steps/s at batch 48
    pt.add_argument("--amp", choices=("none", "bf16"), default="none")
    pt.add_argument("--cpu", action="store_true", help="force the CPU (for testing here)")
    args = p.parse_args(argv)
    if args.cmd == "prepare":
        n = prepare(Path(args.src), Path(args.kodak), Path(args.dest), args.megabytes,
                    args.jpeg_quality or None)
        print(f"copied {n} training images to {args.dest}/train")
        return 0
    train(args)
    return 0
