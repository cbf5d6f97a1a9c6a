#!/usr/bin/env python
"""Rate–distortion benchmark: aecodec against JPEG, WebP, AVIF and JPEG XL, measured in one run.

    python benchmarks/rd.py                      # all 24 Kodak images, every installed codec
    python benchmarks/rd.py --images 3 --codecs jpeg,webp,avif,jxl --out /tmp/rd

For each codec and setting it encodes every PNG of the folder, decodes it again and measures the
size of the whole file (bpp = 8·bytes / pixels), RGB PSNR and MS-SSIM (benchmarks/metrics.py),
then averages over the images (the CompressAI convention, so the published Kodak curves are
comparable).  It then computes the BD-rate of aecodec (PSNR and MS-SSIM) against every codec of the
run and every published curve in ../shared/anchors/kodak_published.json.

Writes <out>/rd.json (everything, per image too), <out>/rd.png (RD curves) and <out>/rd.md
(tables; `python benchmarks/update_readme.py` pastes it into README.md).  Codecs that are not
installed are skipped with a message.  Images are processed in parallel (--jobs, default: one
worker per core, each codec single-threaded), so the times in rd.json are only indicative; use
benchmarks/speed.py for speed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import metrics  # noqa: E402

# rough cost of one encode+decode relative to JPEG's, to schedule the slow tasks first
_COST = {"aecodec": 60, "avif": 30, "jxl": 20, "webp": 6, "jpeg": 1}

_WORKER_ADAPTERS: dict = {}


def _task(args):
    """Worker: one codec, one image, all settings.  Returns per-setting measurements."""
    name, threads, model, effort, path, settings = args
    key = (name, threads, model, effort)
    if key not in _WORKER_ADAPTERS:
        _WORKER_ADAPTERS[key] = common.make_adapter(name, threads, model, effort)
    ad = _WORKER_ADAPTERS[key]
    ref = common.load_rgb(path)
    h, w = ref.shape[:2]
    rows = []
    for s in settings:
        row = {"setting": s}
        try:
            t0 = time.perf_counter()
            data = ad.encode(ref, s)
            t1 = time.perf_counter()
            rec = ad.decode(data)
            t2 = time.perf_counter()
            if rec.shape != ref.shape:
                raise ValueError(f"decoded shape {rec.shape} != {ref.shape}")
            row.update(
                bytes=len(data),
                bpp=8.0 * len(data) / (h * w),
                psnr=metrics.psnr_rgb(ref, rec),
                ms_ssim=metrics.ms_ssim_rgb(ref, rec),
                enc_s=t1 - t0,
                dec_s=t2 - t1,
            )
        except Exception as e:  # recorded, reported, and the setting left out of the curve
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return name, Path(path).name, rows


def run_measurements(adapters, images, jobs, threads, model, aec_settings, effort=None):
    from tqdm import tqdm

    tasks = []
    for ad in adapters:
        settings = aec_settings if ad.name == "aecodec" else ad.settings
        for p in images:
            tasks.append((ad.name, threads, model, effort, str(p), list(settings)))
    tasks.sort(key=lambda t: -_COST.get(t[0], 10) * len(t[-1]))
    total = sum(len(t[-1]) for t in tasks)
    per_image: dict = {ad.name: {} for ad in adapters}
    bar = tqdm(total=total, unit="img", desc="encode+decode+metrics", dynamic_ncols=True)
    if jobs > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs) as pool:
            for name, img, rows in pool.imap_unordered(_task, tasks, chunksize=1):
                per_image[name][img] = rows
                bar.update(len(rows))
    else:
        for t in tasks:
            name, img, rows = _task(t)
            per_image[name][img] = rows
            bar.update(len(rows))
    bar.close()
    return per_image


def summarize(per_image: dict, images) -> dict:
    """Mean bpp/PSNR/MS-SSIM per codec and setting (settings that failed on an image: left out)."""
    names = [Path(p).name for p in images]
    curves = {}
    for codec, by_img in per_image.items():
        n_set = len(next(iter(by_img.values())))
        pts = []
        for i in range(n_set):
            rows = [by_img[n][i] for n in names]
            errs = [r["error"] for r in rows if "error" in r]
            pt = {"setting": rows[0]["setting"]}
            if errs:
                pt["error"] = f"failed on {len(errs)} image(s): {errs[0]}"
                print(f"warning: {codec} at {pt['setting']}: {pt['error']}", file=sys.stderr)
            else:
                for k in ("bpp", "psnr", "ms_ssim", "enc_s", "dec_s"):
                    pt[k] = float(np.mean([r[k] for r in rows]))
                pt["ms_ssim_db"] = metrics.ms_ssim_db(pt["ms_ssim"])
            pts.append(pt)
        curves[codec] = pts
    return curves


def load_published(path: Path) -> dict:
    if not path.is_file():
        print(f"note: no published curves at {path}; BD-rates against them are skipped",
              file=sys.stderr)
        return {}
    d = json.loads(path.read_text())
    out = {}
    for name, c in d.get("curves", {}).items():
        ms = c.get("ms-ssim-rgb") or c.get("ms-ssim")
        out[name] = {
            "bpp": list(c["bpp"]),
            "psnr": list(c["psnr-rgb"]),
            "ms_ssim": list(ms) if ms else None,
        }
    return out


def _xy(curve_pts):
    ok = [p for p in curve_pts if "error" not in p]
    return ([p["bpp"] for p in ok], [p["psnr"] for p in ok], [p["ms_ssim_db"] for p in ok])


def compute_bd(curves: dict, published: dict, test: str, min_overlap: float) -> list:
    """BD-rate of `test` against every other measured codec and every published curve."""
    r_t, p_t, m_t = _xy(curves[test])
    rows = []
    anchors = [(n, "measured", *_xy(c)) for n, c in curves.items() if n != test]
    for n, c in published.items():
        ms = [metrics.ms_ssim_db(v) for v in c["ms_ssim"]] if c["ms_ssim"] else None
        anchors.append((n, "published", c["bpp"], c["psnr"], ms))
    for name, source, r_a, p_a, m_a in anchors:
        row = {"anchor": name, "source": source}
        row["psnr"] = metrics.bd_rate(r_a, p_a, r_t, p_t, min_overlap=min_overlap)
        if m_a:
            row["ms_ssim"] = metrics.bd_rate(r_a, m_a, r_t, m_t, min_overlap=min_overlap)
        else:
            row["ms_ssim"] = {"bd_rate": None, "reason": "no MS-SSIM published"}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# outputs


def _fmt_bd(r):
    v = r.get("bd_rate")
    if v is None:
        return "n/a"
    s = f"{v:+.1f} %"
    if r.get("coverage", 1.0) < 0.5:
        s += " ¹"
    return s


def _fmt_range(r):
    ov = r.get("overlap")
    return f"{ov[0]:.1f}–{ov[1]:.1f}" if ov else "–"


def markdown(res: dict) -> str:
    labels = {n: v["label"] for n, v in res["codecs"].items()}
    test = res.get("bd_test")
    lines = [f"**Rate–distortion, {res['dataset']}** ({res['n_images']} images). "
             f"{res['header']}", ""]
    if res.get("bd"):
        lines += [
            f"BD-rate of **{labels.get(test, test)}** against each codec: the average difference "
            "in bits for the same quality over the quality range both curves cover (negative = "
            f"{labels.get(test, test)} needs fewer bits). MS-SSIM BD-rates are computed on "
            "−10·log10(1 − MS-SSIM).",
            "",
            "| anchor | source | BD-rate (PSNR) | BD-rate (MS-SSIM) | PSNR range compared (dB) |",
            "|---|---|---:|---:|---|",
        ]
        for r in res["bd"]:
            name = labels.get(r["anchor"], r["anchor"])
            lines.append(f"| {name} | {r['source']} | {_fmt_bd(r['psnr'])} | "
                         f"{_fmt_bd(r['ms_ssim'])} | {_fmt_range(r['psnr'])} |")
        lines += [
            "",
            "n/a: the curves overlap by less than "
            f"{res['bd_min_overlap_db']:g} dB (or no MS-SSIM is published). "
            f"¹ computed over less than half of {labels.get(test, test)}'s own quality range. "
            f"Published curves: CompressAI's Kodak results ({res.get('published_source', '')}).",
            "",
        ]
    lines += ["| codec | version | settings | values (low → high rate) | bpp range |",
              "|---|---|---|---|---|"]
    for n, v in res["codecs"].items():
        ok = [p for p in res["curves"][n] if "error" not in p]
        rng = f"{ok[0]['bpp']:.2f}–{ok[-1]['bpp']:.2f}" if ok else "–"
        vals = ", ".join(f"{s:g}" for s in v["settings"])
        lines.append(f"| {v['label']} | {v['version']} | {v['describe']} | {v['knob']} {vals} "
                     f"| {rng} |")
    if res.get("skipped"):
        lines += ["", "Skipped (not installed): " + "; ".join(
            f"{k}: {w}" for k, w in res["skipped"].items())]
    lines += ["", "<details><summary>All measured points (means over the images)</summary>", "",
              "| codec | setting | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) |",
              "|---|---:|---:|---:|---:|---:|"]
    for n, pts in res["curves"].items():
        for p in pts:
            if "error" in p:
                lines.append(f"| {labels[n]} | {p['setting']:g} | failed | | | |")
            else:
                lines.append(f"| {labels[n]} | {p['setting']:g} | {p['bpp']:.3f} | "
                             f"{p['psnr']:.2f} | {p['ms_ssim']:.4f} | {p['ms_ssim_db']:.2f} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def plot(res: dict, published: dict, path: Path, xmax: float = 2.0) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; no plot (pip install matplotlib)",
              file=sys.stderr)
        return False
    colors = {"aecodec": "#d62728", "jpeg": "#7f7f7f", "webp": "#2ca02c", "avif": "#1f77b4",
              "jxl": "#9467bd"}
    same = {"JPEG": "jpeg", "WebP": "webp"}  # published curves of codecs we also measure
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (0, 4, 6, 8, 14)]
    for ax, key, ylabel in ((axes[0], "psnr", "RGB PSNR (dB)"),
                            (axes[1], "ms_ssim_db", "MS-SSIM (dB) = −10·log10(1 − MS-SSIM)")):
        ys = []
        for i, (name, c) in enumerate(published.items()):
            if key == "psnr":
                y = c["psnr"]
            elif c["ms_ssim"]:
                y = [metrics.ms_ssim_db(v) for v in c["ms_ssim"]]
            else:
                continue
            x = c["bpp"]
            ys += [v for xv, v in zip(x, y) if xv <= xmax]
            color = colors[same[name]] if name in same else palette[i % len(palette)]
            ax.plot(x, y, "--", lw=0.9, color=color, alpha=0.8, marker=".", ms=3,
                    label=f"{name} [published]")
        for n, pts in res["curves"].items():
            ok = [p for p in pts if "error" not in p]
            x, y = [p["bpp"] for p in ok], [p[key] for p in ok]
            ys += [v for xv, v in zip(x, y) if xv <= xmax]
            main = n == res.get("bd_test")
            ax.plot(x, y, "-", color=colors.get(n), lw=2.6 if main else 1.6, marker="o",
                    ms=5 if main else 3.5, label=f"{res['codecs'][n]['label']} [measured]",
                    zorder=5 if main else 4)
        ax.set_xlim(0, xmax)
        if ys:
            ax.set_ylim(min(ys) - 1.0, max(ys) + 1.5)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_title(f"{res['dataset']}, {res['n_images']} images: PSNR")
    axes[1].set_title("MS-SSIM (RGB)")
    handles, lbls = axes[0].get_legend_handles_labels()
    fig.legend(handles, lbls, loc="center right", fontsize=7.5, frameon=False)
    footer = textwrap.fill(res["header"].replace("`", ""), 230)
    fig.text(0.01, 0.005, footer, fontsize=6.5, alpha=0.7, va="bottom")
    fig.tight_layout(rect=(0, 0.04, 0.8, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=common.DEFAULT_DATA,
                    help="folder of PNG images (default: ../shared/data/kodak)")
    ap.add_argument("--images", type=int, default=None, help="use only the first N images")
    ap.add_argument("--codecs", default="aecodec,jpeg,webp,avif,jxl",
                    help="comma-separated subset of aecodec,jpeg,webp,avif,jxl")
    ap.add_argument("--qualities", default=None,
                    help="aecodec qualities, comma-separated (default: "
                         + ",".join(str(q) for q in common.Aec.settings) + ")")
    ap.add_argument("--model", default=None, help="aecodec model package (default: the runtime's)")
    ap.add_argument("--effort", type=int, default=None, choices=(1, 2, 3, 4, 5),
                    help="aecodec encoder effort (default: the runtime's default)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="parallel worker processes (default: number of cores)")
    ap.add_argument("--threads", type=int, default=1, help="threads per codec in each worker")
    ap.add_argument("--anchors", type=Path, default=common.DEFAULT_ANCHORS,
                    help="published curves JSON (default: ../shared/anchors/kodak_published.json)")
    ap.add_argument("--bd-test", default="aecodec",
                    help="codec whose BD-rates are reported (default: aecodec)")
    ap.add_argument("--min-overlap", type=float, default=1.0,
                    help="minimum overlap in dB for a BD-rate, else n/a (default 1)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT,
                    help="output folder (default: benchmarks/results)")
    args = ap.parse_args(argv)

    started = common.utcnow()
    t_start = time.perf_counter()
    machine = common.machine_info()
    git = common.git_info()
    images = common.list_images(args.data, args.images)
    names = common.parse_codecs(args.codecs)
    aec_q = ([float(q) for q in args.qualities.split(",")] if args.qualities
             else list(common.Aec.settings))
    jobs = args.jobs or max(1, min(len(images) * len(names), common.os.cpu_count() or 1))

    adapters, skipped = common.available_adapters(names, args.threads, args.model, args.effort)
    if "aecodec" in names and (note := common.stale_model_note(args.model)):
        print(note, file=sys.stderr)
    if not adapters:
        print("error: none of the requested codecs is available", file=sys.stderr)
        return 1
    print(f"{len(images)} images from {args.data}; codecs: "
          f"{', '.join(a.label for a in adapters)}; {jobs} worker(s) × {args.threads} thread(s)",
          file=sys.stderr)

    per_image = run_measurements(adapters, images, jobs, args.threads, args.model, aec_q,
                                 args.effort)
    curves = summarize(per_image, images)
    published = load_published(args.anchors)
    anchors_meta = {}
    if args.anchors.is_file():
        d = json.loads(args.anchors.read_text())
        anchors_meta = {k: v for k, v in d.items() if k != "curves"}

    bd = []
    bd_test = None
    if args.bd_test in curves:
        bd_test = args.bd_test
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bd = compute_bd(curves, published, bd_test, args.min_overlap)
    else:
        print(f"note: {args.bd_test} is not in this run; no BD-rates", file=sys.stderr)

    elapsed = time.perf_counter() - t_start
    given = sys.argv[1:] if argv is None else argv
    cmd = "python benchmarks/rd.py" + ("" if not given else " " + " ".join(given))
    res = {
        "benchmark": "rate-distortion",
        "dataset": "Kodak" if args.data.resolve() == common.DEFAULT_DATA.resolve()
        else str(args.data),
        "n_images": len(images),
        "images": [p.name for p in images],
        "date_utc": started.isoformat(timespec="seconds"),
        "git": git,
        "machine": machine,
        "command": cmd,
        "elapsed_s": round(elapsed, 1),
        "loadavg_at_end": common.loadavg(),
        "jobs": jobs,
        "threads_per_job": args.threads,
        "metrics": {
            "bpp": "8 * whole file bytes / pixels, per image, then mean over images",
            "psnr": "RGB PSNR over all samples (peak 255) per image, then mean over images",
            "ms_ssim": "MS-SSIM per RGB channel, averaged over channels (pytorch_msssim / "
                       "CompressAI convention; 5 scales, 11x11 Gaussian sigma 1.5), mean over "
                       "images; ms_ssim_db = -10 log10(1 - mean MS-SSIM)",
            "bd_rate": "percent bits of the test codec vs the anchor at equal quality; "
                       "bjontegaard package (Akima), integrated over the overlapping quality range",
            "times": "enc_s/dec_s measured inside parallel workers: indicative only",
        },
        "codecs": {
            a.name: {"label": a.label, "version": a.version(), "describe": a.describe(),
                     "origin": a.origin(),
                     "knob": a.knob,
                     "settings": aec_q if a.name == "aecodec" else list(a.settings)}
            for a in adapters
        },
        "skipped": skipped,
        "curves": curves,
        "bd_test": bd_test,
        "bd_min_overlap_db": args.min_overlap,
        "bd": bd,
        "published_source": anchors_meta.get("source", ""),
        "per_image": per_image,
    }
    res["header"] = common.run_header(cmd, started, git, machine, elapsed)
    out = args.out
    common.write_json(out / "rd.json", res)
    common.write_text(out / "rd.md", markdown(res))
    plot(res, published, out / "rd.png")
    print(markdown(res).split("<details>")[0])
    print(f"wrote {out / 'rd.json'}, {out / 'rd.md'}, {out / 'rd.png'} in {elapsed:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
