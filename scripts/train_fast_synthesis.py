#!/usr/bin/env python
"""Distil a lighter g_s (fast decoder profile, issue 39) from a model on its frozen latents.

    python scripts/train_fast_synthesis.py --out runs/fast48 --width 48 --minutes 60
    python scripts/train_fast_synthesis.py --out runs/fast48 --minutes 60     # resumes

The student (aecodec/train/fast_synthesis.py) keeps the teacher's first two g_s layers (one with
--front-width) and trains a narrower rest (with per-level scales: --level-scales) on the training
crops (../shared/data/train; the last --holdout images
are never trained on and measure the student: ΔPSNR against the teacher's own g_s on the same
latents). Writes OUT/state.pt (resumable: student, optimiser, step, data RNG), OUT/report.json
(steps, steps/s, kMAC/px, the validation history), OUT/g_s_fast.onnx (to inspect) and
OUT/fast.npz (the trained layers, what a package carries), every --save-minutes and at the end
(Ctrl-C or SIGTERM ends the run there too).
`--install PACKAGE` then puts fast.npz into a package (`decompress(..., profile="fast")`).
Kodak is never used here.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder (resumed if it exists)")
    ap.add_argument("--model", default=None,
                    help="teacher: package folder, run folder or checkpoint (default: the "
                         "default model's package)")
    ap.add_argument("--width", type=int, default=48, help="third-layer channels (default 48)")
    ap.add_argument("--front-width", type=int, default=None,
                    help="train a second layer of this many channels too (default: keep the "
                         "teacher's, frozen)")
    ap.add_argument("--level-scales", action="store_true",
                    help="per-level channel scales for the trained layers (LevelScaleMap)")
    ap.add_argument("--warm", type=Path, default=None, metavar="STATE",
                    help="start from another run's state.pt (same widths; layers it lacks, "
                         "e.g. level scales, start at their neutral values)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    ap.add_argument("--holdout", type=int, default=48, help="images kept out for validation")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lr-final", type=float, default=1e-5)
    ap.add_argument("--steps", type=int, default=20000, help="length of the lr schedule")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long")
    ap.add_argument("--max-steps", type=int, default=None, help="stop at this step")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--save-minutes", type=float, default=5.0)
    ap.add_argument("--validate-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--install", type=Path, default=None, metavar="PACKAGE",
                    help="copy OUT/fast.npz into this package folder and list its digest in "
                         "the manifest (the model's identity is unchanged), then exit")
    args = ap.parse_args(argv)
    if args.install:
        return install(args.out / "fast.npz", args.install)
    stop = []  # SIGINT/SIGTERM end the loop; the state is saved as at the end

    def request_stop(*_):
        stop.append(True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)

    import numpy as np
    import torch
    from tqdm import tqdm

    from aecodec import model_package
    from aecodec.train import fast_synthesis as fs
    from aecodec.train.data import CropDataset
    from aecodec.train.export import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    source = args.model or str(model_package.find(model_package.DEFAULT_MODEL,
                                                  model_package.DEFAULT_HASH))
    model, prov = load_model(source)
    for p in model.parameters():
        p.requires_grad_(False)

    train = CropDataset(args.data, args.crop, seed=args.seed)
    if len(train) <= args.holdout:
        raise SystemExit(f"--holdout {args.holdout} leaves no training image of {len(train)}")
    held = copy.copy(train)  # the last --holdout images (sorted names), never trained on
    held.images, held.rng = train.images[-args.holdout:], np.random.default_rng(12345)
    train.images = train.images[: -args.holdout]
    val_x = torch.from_numpy(held.batch(16)).float().div_(255)
    val_t = torch.linspace(0, model.levels - 1, 16)

    args.out.mkdir(parents=True, exist_ok=True)
    state_path, report_path = args.out / "state.pt", args.out / "report.json"
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        student = fs.FastSynthesis(model.g_s, st["width"], st.get("front_width"),
                                   st.get("level_scales", False))
        student.load_state_dict(st["student"])
        opt = torch.optim.Adam(student.trained_parameters(), lr=args.lr)
        opt.load_state_dict(st["opt"])
        train.set_state(st["data"])
        step, history = st["step"], st["history"]
        print(f"resumed {state_path} at step {step}", file=sys.stderr)
    else:
        init_x = torch.from_numpy(train.batch(16)).float().div_(255)
        student = fs.from_teacher(model, args.width, init_x,
                                  torch.linspace(0, model.levels - 1, 16), args.front_width,
                                  args.level_scales)
        if args.warm:
            warm = torch.load(args.warm, map_location="cpu", weights_only=True)["student"]
            missing, unexpected = student.load_state_dict(warm, strict=False)
            if unexpected or any(not k.endswith(("_scale.a", "_scale.c")) for k in missing):
                raise SystemExit(f"--warm {args.warm} does not fit: missing {missing}, "
                                 f"unexpected {unexpected}")
            for name in ("up_scale", "mid_scale"):  # maps the warm state lacks: scale 1
                if f"{name}.a" in missing:
                    torch.nn.init.zeros_(getattr(student, name).a)
                    torch.nn.init.zeros_(getattr(student, name).c)
        opt = torch.optim.Adam(student.trained_parameters(), lr=args.lr)
        step, history = 0, [{"step": 0, **fs.validate(model, student, val_x, val_t)}]
        print(f"pruned start: {history[0]}", file=sys.stderr)

    cfg = model.cfg
    kmac = fs.kmac_per_pixel(cfg.N, cfg.M, student.width, student.front_width)
    teacher_kmac = fs.kmac_per_pixel(cfg.N, cfg.M, cfg.N)

    def save(steps_per_s: float) -> None:
        torch.save({"width": student.width, "front_width": student.front_width,
                    "level_scales": student.level_scales, "student": student.state_dict(),
                    "opt": opt.state_dict(), "data": train.state(), "step": step,
                    "history": history}, str(state_path) + ".tmp")
        Path(str(state_path) + ".tmp").replace(state_path)
        report = {"teacher": source, "teacher_provenance": prov, "width": student.width,
                  "front_width": student.front_width, "level_scales": student.level_scales,
                  "kmac_per_px": round(kmac, 2), "teacher_kmac_per_px": round(teacher_kmac, 2),
                  "step": step, "steps_per_s": round(steps_per_s, 3), "batch": args.batch,
                  "crop": args.crop, "holdout_images": args.holdout, "history": history}
        report_path.write_text(json.dumps(report, indent=1) + "\n")
        export(student, model, args.out / "g_s_fast.onnx")
        np.savez(args.out / "fast.npz", **fs.head_arrays(student))

    t0 = last_save = time.monotonic()
    start_step = step
    deadline = None if args.minutes is None else t0 + 60 * args.minutes
    bar = tqdm(initial=step, total=args.max_steps, unit="step", desc="distil", dynamic_ncols=True)
    losses: list = []
    while not stop and (args.max_steps is None or step < args.max_steps) and (
            deadline is None or time.monotonic() < deadline):
        for g in opt.param_groups:
            g["lr"] = fs.learning_rate(step, args.steps, args.lr, args.lr_final)
        x = torch.from_numpy(train.batch(args.batch)).float().div_(255)
        losses.append(fs.distill_step(model, student, opt, x))
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(psnr=f"{-10 * np.log10(np.mean(losses[-20:])):.2f}")
        if step % args.validate_every == 0:
            history.append({"step": step, **fs.validate(model, student, val_x, val_t)})
            bar.write(f"step {step}: {history[-1]}")
        if time.monotonic() - last_save > 60 * args.save_minutes:
            save((step - start_step) / (time.monotonic() - t0))
            last_save = time.monotonic()
    bar.close()
    if not history or history[-1]["step"] != step:
        history.append({"step": step, **fs.validate(model, student, val_x, val_t)})
    save((step - start_step) / max(time.monotonic() - t0, 1e-9))
    print(json.dumps({"step": step, **history[-1]}))
    return 0


def install(head: Path, folder: Path) -> int:
    """fast.npz into a package: a decoder-side extra, covered by its digest in `files`."""
    import shutil

    from aecodec import model_package
    from aecodec.synthesis_fast import FAST_FILE

    if not head.is_file():
        raise SystemExit(f"{head} does not exist: train first")
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    shutil.copyfile(head, folder / FAST_FILE)
    manifest["files"][FAST_FILE] = model_package.file_digest(folder / FAST_FILE)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    model_package.verify(folder, manifest)
    print(f"installed {folder / FAST_FILE} ({(folder / FAST_FILE).stat().st_size:,} bytes)")
    return 0


def export(student, model, path: Path) -> None:
    """The student as an ONNX g_s with the teacher's inputs (y_hat, and its level scales)."""
    import torch

    from aecodec.train.export import _export_onnx

    example = torch.zeros(1, model.cfg.M, 4, 4)
    scales = model.decoder_scales(torch.zeros(1))
    _export_onnx(student.eval(), example, path, "y_hat", "x_hat",
                 {} if scales is None else {"scales": scales.detach()})
    student.train()


if __name__ == "__main__":
    sys.exit(main())
