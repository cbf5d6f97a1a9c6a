#!/usr/bin/env python
"""Anomaly localisation with aecodec.surprise on Kodak with inserted defects (issue 33).

    python benchmarks/anomaly.py                    # 24 Kodak images at half size × 5 defects
    python benchmarks/anomaly.py --images 4 --scale 0.25 --out /tmp/anomaly

Every Kodak image, downscaled by --scale (default 0.5, 384×256: the full benchmark then fits in
a few minutes on 2 cores), gets each of 5 defects in turn, at a seeded random place:

    paste    a square patch (30–48 px at half size) cut from another photo (a training crop)
    scratch  a 2-px bright or dark curved line, 30–50 % of the image width long
    blur     a disk (radius 14–24 px) blurred (Gaussian, radius 4), in a textured part
    stain    a soft ellipse (radii 12–30 px) tinted with a random colour (40–60 % opacity)
    noise    a square (24–40 px) with Gaussian noise added (σ = 20 of 255)

(sizes scale with --scale). The ground-truth mask is the defect's region. Each map is scored
against it: pixel-level AUROC (per defective image, then averaged; and pooled over all the
defective images with every map divided by its image's mean), and image-level AUROC of one score
per image (the 24 clean images against the 24 with that defect), the score being the map's mean
over its top 1 % of 16×16 blocks (aecodec's Surprise.score) for every map; and, paired, how
often an image's score rose when the defect was inserted.

Maps: aecodec's .bits, .error (raw, and averaged over 16×16 blocks), .combined (per 16×16 block
the geometric mean of bits per pixel and mean squared error), against two
baselines: local variance (grey, 16×16 window) and |x − JPEG(x)| (JPEG quality 50, mean over
the channels; raw and 16×16 box-filtered). All at aecodec quality --quality (default 75).

Writes results/anomaly.json, results/anomaly.md and results/anomaly-example.jpg (one defective
image: the image with its defect outlined, the bits overlay, the combined overlay).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

import aecodec  # noqa: E402
from aecodec import analysis  # noqa: E402

DEFAULT_TRAIN = common.REPO / ".." / "shared" / "data" / "train"
DEFECTS = ("paste", "scratch", "blur", "stain", "noise")
BOX = 16


# ---------------------------------------------------------------------------------------------
# defects: (image, mask) -> defective image; every size is in half-size Kodak pixels × k


def _place(rng, h, w, rh, rw):
    return int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))


def defect_paste(rgb, rng, k, sources):
    h, w = rgb.shape[:2]
    side = max(4, int(rng.integers(30, 49) * k))
    src = sources[int(rng.integers(len(sources)))]
    sy, sx = _place(rng, src.shape[0], src.shape[1], side, side)
    y, x = _place(rng, h, w, side, side)
    out = rgb.copy()
    out[y:y + side, x:x + side] = src[sy:sy + side, sx:sx + side]
    mask = np.zeros((h, w), bool)
    mask[y:y + side, x:x + side] = True
    return out, mask


def defect_scratch(rgb, rng, k, sources):
    h, w = rgb.shape[:2]
    length = rng.uniform(0.3, 0.5) * w
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    p0, p2 = np.array([cx, cy]) - d, np.array([cx, cy]) + d
    bend = np.array([-d[1], d[0]]) * rng.uniform(-0.3, 0.3)
    t = np.linspace(0, 1, 64)[:, None]
    ctrl = (p0 + p2) / 2 + bend  # a quadratic Bézier curve from p0 to p2
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * ctrl + t ** 2 * p2
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).line([tuple(p) for p in pts], fill=255, width=max(1, round(2 * k)))
    mask = np.asarray(m) > 127
    colour = np.array([235, 232, 225] if rng.random() < 0.5 else [25, 22, 20], np.float32)
    out = rgb.astype(np.float32)
    out[mask] = 0.1 * out[mask] + 0.9 * colour
    return np.rint(out).astype(np.uint8), mask


def _disk(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def local_std(grey: np.ndarray, size: int = BOX) -> np.ndarray:
    g = grey.astype(np.float64)
    m = box(g, size)
    return np.sqrt(np.maximum(box(g * g, size) - m * m, 0))


def defect_blur(rgb, rng, k, sources):
    h, w = rgb.shape[:2]
    r = rng.uniform(14, 24) * k
    texture = local_std(np.asarray(Image.fromarray(rgb).convert("L")))
    inner = texture[int(r):h - int(r), int(r):w - int(r)]
    cands = [(int(rng.integers(inner.shape[0])), int(rng.integers(inner.shape[1])))
             for _ in range(64)]
    cy, cx = max(cands, key=lambda c: inner[c])  # the most textured of 64 random places
    cy, cx = cy + int(r), cx + int(r)
    dist = _disk(h, w, cy, cx, r, r)
    alpha = np.clip((1.15 - np.sqrt(dist)) / 0.3, 0, 1)[..., None]  # feathered edge
    blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(4 * k)),
                         np.float32)
    out = rgb * (1 - alpha) + blurred * alpha
    return np.rint(out).astype(np.uint8), dist <= 1


def defect_stain(rgb, rng, k, sources):
    h, w = rgb.shape[:2]
    ry, rx = rng.uniform(12, 30, size=2) * k
    cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
    dist = _disk(h, w, cy, cx, ry, rx)
    opacity = rng.uniform(0.4, 0.6)
    alpha = (opacity * np.clip((1.2 - np.sqrt(dist)) / 0.4, 0, 1))[..., None]
    colour = np.asarray(Image.new("HSV", (1, 1), (int(rng.integers(256)), 200, 200))
                        .convert("RGB"), np.float32)[0, 0]
    out = rgb * (1 - alpha) + colour * alpha
    return np.rint(out).astype(np.uint8), dist <= 1


def defect_noise(rgb, rng, k, sources):
    h, w = rgb.shape[:2]
    side = max(4, int(rng.integers(24, 41) * k))
    y, x = _place(rng, h, w, side, side)
    out = rgb.astype(np.float32)
    out[y:y + side, x:x + side] += rng.normal(0, 20, (side, side, 3))
    mask = np.zeros((h, w), bool)
    mask[y:y + side, x:x + side] = True
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8), mask


DEFECT_FNS = {"paste": defect_paste, "scratch": defect_scratch, "blur": defect_blur,
              "stain": defect_stain, "noise": defect_noise}


# ---------------------------------------------------------------------------------------------
# maps and metrics


def box(a: np.ndarray, size: int = BOX) -> np.ndarray:
    """Mean over a size×size window around every pixel (edge-replicated), via cumulative sums."""
    lo, hi = size // 2, size - size // 2
    p = np.pad(a.astype(np.float64), ((lo, hi), (lo, hi)), mode="edge")
    c = np.zeros((p.shape[0] + 1, p.shape[1] + 1))
    c[1:, 1:] = p.cumsum(0).cumsum(1)
    h, w = a.shape
    s = (c[size:size + h, size:size + w] - c[:h, size:size + w] - c[size:size + h, :w]
         + c[:h, :w])
    return s / (size * size)


def jpeg_residual(rgb: np.ndarray, quality: int = 50) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        dec = np.asarray(im.convert("RGB"), np.float32)
    return np.abs(rgb.astype(np.float32) - dec).mean(axis=2)


def maps_of(rgb: np.ndarray, codec, quality: float, times: dict) -> dict:
    t = time.perf_counter()
    s = analysis.surprise(rgb, quality, codec=codec)
    times["surprise (pixels)"].append(time.perf_counter() - t)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    jr = jpeg_residual(rgb)
    return {
        "bits": s.bits,
        "error": s.error,
        "error, 16-px box": box(s.error),
        "combined": s.combined,
        "local variance (baseline)": local_std(grey) ** 2,
        "|x − JPEG(x)| (baseline)": jr,
        "|x − JPEG(x)|, 16-px box (baseline)": box(jr),
    }, s


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with average ranks for ties)."""
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels, bool).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # average rank of each distinct value (1-based)
    avg = upper - (counts - 1) / 2.0
    ranks = avg[inv]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def outline(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask's boundary drawn in cyan."""
    m = mask
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    out = rgb.copy()
    out[edge] = (0, 255, 255)
    return out


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=common.DEFAULT_DATA, help="Kodak PNG folder")
    ap.add_argument("--train", type=Path, default=DEFAULT_TRAIN,
                    help="photos the pasted patches come from (webp)")
    ap.add_argument("--images", type=int, default=None, help="first N Kodak images (default all)")
    ap.add_argument("--scale", type=float, default=0.5, help="downscale Kodak (default 0.5)")
    ap.add_argument("--quality", type=float, default=75.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=33)
    ap.add_argument("--example", default="kodim01.png:scratch",
                    help="IMAGE:DEFECT shown in anomaly-example.jpg")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    args = ap.parse_args(argv)
    started, t_start = common.utcnow(), time.perf_counter()
    git, machine = common.git_info(), common.machine_info()
    rng = np.random.default_rng(args.seed)
    codec = aecodec.Codec(threads=args.threads)
    paths = common.list_images(args.data, args.images)
    sources = [common.load_rgb(p) for p in sorted(args.train.glob("*.webp"))[:40]]

    def load(p):
        im = Image.open(p).convert("RGB")
        if args.scale != 1:
            im = im.resize((round(im.width * args.scale), round(im.height * args.scale)),
                           Image.LANCZOS)
        return np.asarray(im)

    times: dict = {"surprise (pixels)": [], "surprise (.aec)": [], "compress": []}
    methods = None
    per_image: dict = {}  # (method, defect) -> [pixel AUROC of each image]
    pooled: dict = {}  # method -> ([relative map samples], [labels])
    scores: dict = {}  # (method, "clean" | defect) -> [image scores]
    example = None
    ex_name, ex_defect = args.example.split(":")
    for n, path in enumerate(paths):
        rgb = load(path)
        maps, _ = maps_of(rgb, codec, args.quality, times)
        methods = list(maps)
        for m, a in maps.items():
            scores.setdefault((m, "clean"), []).append(analysis.image_score(a))
        if n < 4:  # time the .aec path on a few
            t = time.perf_counter()
            data = codec.compress(rgb, args.quality)
            times["compress"].append(time.perf_counter() - t)
            t = time.perf_counter()
            analysis.surprise(data, codec=codec)
            times["surprise (.aec)"].append(time.perf_counter() - t)
        for defect in DEFECTS:
            bad, mask = DEFECT_FNS[defect](rgb, rng, args.scale * 2, sources)
            maps, s = maps_of(bad, codec, args.quality, times)
            sub = np.zeros(mask.shape, bool)
            sub[::3, ::3] = True  # pooled: every 9th pixel of every image
            for m, a in maps.items():
                per_image.setdefault((m, defect), []).append(auroc(a, mask))
                scores.setdefault((m, defect), []).append(analysis.image_score(a))
                rel = a / max(float(a.mean()), 1e-12)
                pooled.setdefault(m, ([], []))
                pooled[m][0].append(rel[sub])
                pooled[m][1].append(mask[sub])
            if path.name == ex_name and defect == ex_defect:
                example = (bad, mask, s)
        print(f"  {n + 1}/{len(paths)} {path.name}", file=sys.stderr)

    table = {}
    for m in methods:
        row = {"pixel": {d: float(np.mean(per_image[(m, d)])) for d in DEFECTS}}
        row["pixel"]["all"] = float(np.mean([v for d in DEFECTS for v in per_image[(m, d)]]))
        row["pixel_pooled"] = auroc(np.concatenate(pooled[m][0]), np.concatenate(pooled[m][1]))
        clean = scores[(m, "clean")]
        row["image"] = {d: auroc(np.r_[clean, scores[(m, d)]],
                                 np.r_[np.zeros(len(clean)), np.ones(len(scores[(m, d)]))])
                        for d in DEFECTS}
        bad = [v for d in DEFECTS for v in scores[(m, d)]]
        row["image"]["all"] = auroc(np.r_[clean, bad],
                                    np.r_[np.zeros(len(clean)), np.ones(len(bad))])
        # paired: how often the same image scores higher with the defect than without
        row["paired"] = {d: float(np.mean(np.array(scores[(m, d)]) > np.array(clean)))
                         for d in DEFECTS}
        row["paired"]["all"] = float(np.mean(np.array([scores[(m, d)] for d in DEFECTS])
                                             > np.array(clean)[None]))
        table[m] = row

    if example is not None:
        bad, mask, s = example
        panels = [outline(bad, mask), np.asarray(s.to_image("bits")),
                  np.asarray(s.to_image("combined"))]
        strip = Image.fromarray(np.concatenate(panels, axis=1))
        args.out.mkdir(parents=True, exist_ok=True)
        strip.save(args.out / "anomaly-example.jpg", quality=85, optimize=True)

    elapsed = time.perf_counter() - t_start
    cmd = "python benchmarks/anomaly.py" + (" " + " ".join(argv if argv is not None
                                                           else sys.argv[1:])).rstrip()
    size = load(paths[0]).shape
    out = {"command": cmd, "started_utc": started.isoformat(), "elapsed_s": elapsed, "git": git,
           "machine": machine, "images": len(paths), "scale": args.scale,
           "size_first_image": [size[1], size[0]], "quality": args.quality,
           "defects": list(DEFECTS), "auroc": table,
           "median_ms_per_image": {k: statistics.median(v) * 1000 for k, v in times.items()
                                   if v}}
    common.write_json(args.out / "anomaly.json", out)
    md = markdown(out, started, git, machine, elapsed)
    common.write_text(args.out / "anomaly.md", md)
    print(md)
    return 0


def markdown(out, started, git, machine, elapsed) -> str:
    header = common.run_header(out["command"], started, git, machine, elapsed)
    w, h = out["size_first_image"]
    cols = [*DEFECTS, "all"]
    lines = [f"**Anomaly localisation** ({out['images']} Kodak images at {w}×{h} "
             f"(scale {out['scale']:g}), each clean and with each of {len(DEFECTS)} inserted "
             f"defects; aecodec quality {out['quality']:g}). {header}", "",
             "Pixel-level AUROC (per defective image, averaged; *pooled*: all defective images' "
             "pixels together, each map divided by its image's mean):", "",
             "| map | " + " | ".join(cols) + " | pooled |", "|---|" + "---:|" * (len(cols) + 1)]
    for m, row in out["auroc"].items():
        lines.append(f"| {m} | " + " | ".join(f"{row['pixel'][c]:.3f}" for c in cols)
                     + f" | {row['pixel_pooled']:.3f} |")
    lines += ["", "Image-level AUROC (the clean images against those with the defect; score = "
              "the map's mean over its top 1 % of 16×16 blocks):", "",
              "| map | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for m, row in out["auroc"].items():
        lines.append(f"| {m} | " + " | ".join(f"{row['image'][c]:.3f}" for c in cols) + " |")
    lines += ["", "Paired: the share of images whose score rose when the defect was inserted:",
              "", "| map | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for m, row in out["auroc"].items():
        lines.append(f"| {m} | " + " | ".join(f"{row['paired'][c]:.2f}" for c in cols) + " |")
    lines += ["", f"Time per {w}×{h} image (median, ms): " + ", ".join(
        f"{k} {v:,.0f}" for k, v in out["median_ms_per_image"].items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
