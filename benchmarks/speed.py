#!/usr/bin/env python
"""Speed and memory benchmark: encode/decode wall time and peak memory of aecodec and its peers.

    python benchmarks/speed.py                   # 3 Kodak images + a 12-megapixel photo
    python benchmarks/speed.py --images 1 --no-large --codecs jpeg,avif --out /tmp/speed

Same run, same images, one setting per codec (each near 0.75 bpp on Kodak; the bpp reached is
reported).  Every (codec, image, encode|decode) runs in a fresh child process: a warm-up call
(not on the 12 MP image), then --repeat timed calls, and the median is reported.  The child also
reports its peak resident memory: the process peak (VmHWM: interpreter, libraries, model and
image included) and the operation's own peak above the resident size just before the first call
(VmHWM when the operation raised it, else a 1 ms /proc/self/statm sampler); on the 12 MP
image a call on a 64×64 corner loads the model first, so that figure is above interpreter and model.
aecodec's time is split into the stages its runtime reports (Codec.encode/decode's `timings`).
Then, per image, aecodec's decoders side by side in one process, interleaved (decoders_child):
the reference g_s graph (the decoder before issue 39) against the default phase-form graph,
the previews at 1/2, 1/4, 1/8 and Pillow thumbnails; --no-decoders skips it.

The 12-megapixel photo (4032×3024) is a mosaic of Kodak crops made deterministically in a
temporary folder, never committed.  Threads: --threads (default: all cores) for aecodec
(onnxruntime and the native core), AVIF (libavif/aom) and JPEG XL; JPEG and WebP encode and decode
on one thread in Pillow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

LARGE_NAME = "mosaic-12mp"


# ---------------------------------------------------------------------------------------------
# child process: one codec, one image, one operation


def _rss_kib() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return 0


def _maxrss_kib() -> int:
    """Peak resident size of this process so far.  On Linux VmHWM of /proc/self/status: unlike
    getrusage's ru_maxrss, which survives fork+exec and so starts at the parent's size, it
    belongs to this process's own address space."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r


class _Sampler:
    def __init__(self, period: float = 0.001):
        self.period, self.peak = period, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_kib())
            time.sleep(self.period)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_kib())


def child(spec: dict) -> dict:
    ad = common.make_adapter(spec["codec"], spec["threads"], spec.get("model"),
                             spec.get("effort"))
    why = ad.unavailable()
    if why:
        return {"error": why}
    rgb = np.load(spec["image"])
    data = Path(spec["data"]).read_bytes() if spec["op"] == "decode" else None

    def op():
        if spec["op"] == "encode":
            return ad.encode(rgb, spec["setting"])
        out = ad.decode(data)
        if out.shape != rgb.shape:
            raise ValueError(f"decoded shape {out.shape} != {rgb.shape}")
        return out

    if not spec["warmup"]:
        # No warm-up on a large image, but the model still loads first, on a 64×64 corner: the
        # op peak is then what the image costs above the interpreter and the loaded model.
        tiny = ad.encode(np.ascontiguousarray(rgb[:64, :64]), spec["setting"])
        if spec["op"] == "decode":
            ad.decode(tiny)
    rss0, max0 = _rss_kib(), _maxrss_kib()
    times, stages = [], []
    with _Sampler() as sampler:
        for i in range(spec["warmup"] + spec["repeat"]):
            t0 = time.perf_counter()
            out = op()
            dt = time.perf_counter() - t0
            if i >= spec["warmup"]:
                times.append(dt)
                if ad.last_timings:
                    stages.append(dict(ad.last_timings))
    max1 = _maxrss_kib()
    op_peak = (max1 if max1 > max0 else sampler.peak) - rss0
    res = {
        "times_s": times,
        "median_s": statistics.median(times),
        "peak_rss_mib": max1 / 1024,
        "op_peak_mib": max(op_peak, 0) / 1024,
        "rss_before_mib": rss0 / 1024,
    }
    if stages:
        keys = list(dict.fromkeys(k for s in stages for k in s))
        res["stages_s"] = {k: statistics.median([s.get(k, 0.0) for s in stages]) for k in keys}
    if spec["op"] == "encode":
        Path(spec["data"]).write_bytes(out)
        res["bytes"] = len(out)
    return res


def _child_main(spec: dict) -> dict:
    return decoders_child(spec) if spec["op"] == "decoders" else child(spec)


def decoders_child(spec: dict) -> dict:
    """aecodec's decoders on one image, in one process, interleaved (the machine may be shared:
    only ratios measured side by side mean much): the reference g_s graph (the package's
    g_s.onnx, tiles of 32 latents: the decoder before issue 39) against the default phase-form
    graph, then the previews (scale 2, 4, 8; PSNR against Image.reduce of the full decode) and
    Pillow thumbnails of 256 px (thumbnail() with its defaults, and after draft("RGB",
    (256, 256))); a file with an embedded preview (prvw) is timed without it too. Medians of
    `repeat` rounds."""
    import io

    from PIL import Image

    import aecodec
    from aecodec import container
    from aecodec.transform import TILE, Transforms

    data = Path(spec["data"]).read_bytes()
    f = container.parse(data)
    bare = data  # the same file without its embedded preview
    if f.preview is not None:
        f.preview = None
        bare = f.to_bytes()
    codecs = {}
    for graph in ("reference", "phase"):
        c = aecodec.Codec(threads=spec["threads"])
        eng = c._engine()
        eng.transforms = Transforms(eng.package, "cpu", spec["threads"], TILE,
                                    synthesis_graph=graph)
        codecs[graph] = c
    full = {g: c.decompress(data) for g, c in codecs.items()}  # warm-up (sessions)
    ref = np.asarray(full["reference"], np.float64)
    out: dict = {"psnr_phase_vs_reference": _psnr(np.asarray(full["phase"]), ref)}
    rgb = np.load(spec["image"])
    out["psnr_vs_source"] = {g: _psnr(np.asarray(im), rgb) for g, im in full.items()}

    def thumb(draft, src=data):
        with Image.open(io.BytesIO(src)) as im:
            if draft:
                im.draft("RGB", (256, 256))
            im.thumbnail((256, 256))
            return im

    ops = {"reference": lambda: codecs["reference"].decode(data),
           "phase": lambda: codecs["phase"].decode(data)}
    for k in (2, 4, 8):
        ops[f"scale {k}"] = lambda k=k: codecs["phase"].decode(data, scale=k)
    if codecs["phase"]._engine().transforms.session("g_s_fast") is not None:
        ops["fast"] = lambda: codecs["phase"].decode(data, profile="fast")
        out["psnr_vs_source"]["fast"] = _psnr(
            np.asarray(codecs["phase"].decompress(data, profile="fast")), rgb)
    ops["thumbnail 256"] = lambda: thumb(False)
    ops["draft + thumbnail 256"] = lambda: thumb(True)
    if bare is not data:
        ops["draft + thumbnail 256, no prvw"] = lambda: thumb(True, bare)
    aecodec.pillow_plugin.shared_codec()  # the plugin's codec: sessions made before timing
    thumb(True)
    times: dict = {k: [] for k in ops}
    stages: dict = {k: [] for k in ops}
    for _ in range(spec["repeat"]):
        for k, op in ops.items():
            t0 = time.perf_counter()
            r = op()
            times[k].append(time.perf_counter() - t0)
            if hasattr(r, "timings"):
                stages[k].append(r.timings)
    out["median_s"] = {k: statistics.median(v) for k, v in times.items()}
    out["stages_s"] = {k: {s: statistics.median([t.get(s, 0.0) for t in v]) for s in v[0]}
                       for k, v in stages.items() if v}
    out["preview_psnr"] = {
        k: _psnr(np.asarray(codecs["phase"].decompress(data, scale=k)),
                 np.asarray(full["reference"].reduce(k), np.float64)) for k in (2, 4, 8)}
    out["thumbnail_size"] = list(thumb(False).size)
    ref_thumb = full["reference"].copy()
    ref_thumb.thumbnail((256, 256))
    out["thumbnail_psnr"] = {"draft": _psnr(np.asarray(thumb(True)), np.asarray(ref_thumb)),
                             "no draft": _psnr(np.asarray(thumb(False)), np.asarray(ref_thumb))}
    out["bytes"], out["preview_bytes"] = len(data), len(data) - len(bare)
    return out


def _psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def decoders_markdown(res: dict) -> list:
    rows = res.get("decoders") or {}
    if not rows:
        return []
    lines = ["", f"aecodec decoders (issue 39), {res['threads']} thread(s), one process per image, "
             "the operations interleaved round by round (median of "
             f"{res['repeat']} rounds; {res['repeat_large']} on the 12 MP photo): reference = "
             "the package's g_s.onnx in tiles of 32 latents (the decoder before), phase = the "
             "default (g_s in phase form, generated at load time, tiles of 64 latents); "
             "scale k = the preview decode (no g_s); thumbnail = Pillow's thumbnail((256, 256)) "
             "(its draft picks the largest k keeping ≥ 512 px), draft + thumbnail = after "
             "draft(\"RGB\", (256, 256)). PSNR of the preview against Image.reduce(k) of the full "
             "decode. fast = profile=\"fast\" (the package's fast.npz; – without one), its "
             "speed-up against the reference and its PSNR against the source less the phase "
             "decoder's. prvw = the file's embedded preview (1/8 size, written for images of "
             "2048 px or more on the short side), and draft + thumbnail timed without it; "
             "thumbnail PSNR: against thumbnail((256, 256)) of the full decode.", "",
             "| image | reference | phase | speed-up | ΔPSNR phase−reference (dB) | fast | "
             "fast speed-up | ΔPSNR fast−phase (dB) | scale 2 | "
             "scale 4 | scale 8 | preview PSNR 2 / 4 / 8 (dB) | thumbnail 256 | draft + "
             "thumbnail 256 | thumbnail PSNR (dB) | prvw | draft + thumbnail 256 without prvw "
             "| h_s + entropy decoding |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
             "---:|---:|"]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | {r['error']} |" + " |" * 16)
            continue
        m, st = r["median_s"], r.get("stages_s", {}).get("phase", {})
        dpsnr = r["psnr_vs_source"]["phase"] - r["psnr_vs_source"]["reference"]
        pp = " / ".join(f"{r['preview_psnr'][k]:.1f}" for k in ("2", "4", "8")
                        if k in r["preview_psnr"]) or " / ".join(
            f"{v:.1f}" for v in r["preview_psnr"].values())
        hs = st.get("hyper_synthesis", 0) + st.get("entropy_decode", 0)
        fast = "– | – | –"
        if "fast" in m:
            fast = (f"{_ms_col(m['fast'])} | {m['reference'] / m['fast']:.2f}× | "
                    f"{r['psnr_vs_source']['fast'] - r['psnr_vs_source']['phase']:+.2f}")
        tp = r.get("thumbnail_psnr", {}).get("draft")
        prvw, bare = "–", "–"
        if r.get("preview_bytes"):
            prvw = (f"{r['preview_bytes']:,} B ({100 * r['preview_bytes'] / r['bytes']:.1f} %)")
            bare = _ms_col(m["draft + thumbnail 256, no prvw"])
        lines.append(
            f"| {name} | {_ms_col(m['reference'])} | {_ms_col(m['phase'])} | "
            f"{m['reference'] / m['phase']:.2f}× | {dpsnr:+.3f} | {fast} | "
            f"{_ms_col(m['scale 2'])} | "
            f"{_ms_col(m['scale 4'])} | {_ms_col(m['scale 8'])} | {pp} | "
            f"{_ms_col(m['thumbnail 256'])} | {_ms_col(m['draft + thumbnail 256'])} | "
            f"{_num(tp, '.1f')} | {prvw} | {bare} | {_ms_col(hs)} |")
    return lines


def run_child(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    return common.run_json_child(cmd, timeout)


# ---------------------------------------------------------------------------------------------
# parent


def prepare_images(folder: Path, n: int, large: bool, tmp: Path):
    paths = common.list_images(folder)
    imgs = []
    for p in paths[:n]:
        a = common.load_rgb(p)
        f = tmp / (p.stem + ".npy")
        np.save(f, a)
        imgs.append({"name": p.name, "file": str(f), "width": a.shape[1], "height": a.shape[0]})
    if large:
        a = common.make_mosaic(paths)
        f = tmp / (LARGE_NAME + ".npy")
        np.save(f, a)
        imgs.append({"name": LARGE_NAME, "file": str(f), "width": a.shape[1],
                     "height": a.shape[0], "large": True})
    return imgs


def _ms(v):
    return f"{v * 1000:,.0f}"


STAGE_GROUPS = ["transforms (ONNX)", "hyper-synthesis", "entropy coding", "container", "other"]


def group_stages(stages: dict) -> dict:
    """Map the runtime's stage names (Codec.encode/decode's `timings`) onto the stage table."""
    g = dict.fromkeys(STAGE_GROUPS, 0.0)
    for k, v in stages.items():
        k = k.lower()
        if k == "total":
            continue
        if "hyper_synthesis" in k or "hyper-synthesis" in k:
            g["hyper-synthesis"] += v
        elif "analysis" in k or "synthesis" in k or "transform" in k:
            g["transforms (ONNX)"] += v
        elif "entropy" in k:
            g["entropy coding"] += v
        elif "container" in k:
            g["container"] += v
        else:
            g["other"] += v
    return g


def _num(v, fmt):
    return "–" if v is None else format(v, fmt)


def _ms_col(v):
    if v is None:
        return "–"
    return f"{v * 1000:,.0f} ms" if v < 10 else f"{v:,.1f} s"


def markdown(res: dict) -> str:
    labels = {n: v["label"] for n, v in res["codecs"].items()}
    lines = [f"**Speed and memory** (CPU, {res['threads']} thread(s) where the codec can use "
             f"them; JPEG and WebP use one). {res['header']}", ""]
    small = [i for i in res["images"] if not i.get("large")]
    large = [i for i in res["images"] if i.get("large")]

    def agg(codec, imgs, key, op):
        vals = [res["results"][codec][i["name"]][op].get(key) for i in imgs]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals and len(vals) == len(imgs) else None

    groups = []
    if small:
        what = "median" if len(small) == 1 else f"mean of {len(small)} images' medians"
        groups.append((f"Kodak 768×512 ({what})", small))
    if large:
        li = large[0]
        groups.append((f"{li['width']}×{li['height']} ({li['width'] * li['height'] / 1e6:.1f} MP)",
                       large))
    lines += ["| image | codec | setting | bpp | encode | decode | encode MP/s | decode MP/s | "
              "peak RSS enc / dec (MiB) | op peak enc / dec (MiB) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for gname, imgs in groups:
        mp = float(np.mean([i["width"] * i["height"] for i in imgs])) / 1e6
        for k, c in enumerate(res["codecs"]):
            enc, dec = agg(c, imgs, "median_s", "encode"), agg(c, imgs, "median_s", "decode")
            bpp = agg(c, imgs, "bpp", "encode")
            pe, pd = agg(c, imgs, "peak_rss_mib", "encode"), agg(c, imgs, "peak_rss_mib", "decode")
            oe, od = agg(c, imgs, "op_peak_mib", "encode"), agg(c, imgs, "op_peak_mib", "decode")
            cfg = res["codecs"][c]
            lines.append(
                f"| {gname if k == 0 else ''} | {labels[c]} | {cfg['knob']} {cfg['setting']:g} | "
                f"{_num(bpp, '.2f')} | {_ms_col(enc)} | {_ms_col(dec)} | "
                f"{_num(enc and mp / enc, '.2f')} | {_num(dec and mp / dec, '.2f')} | "
                f"{_num(pe, ',.0f')} / {_num(pd, ',.0f')} | "
                f"{_num(oe, ',.0f')} / {_num(od, ',.0f')} |")
    # aecodec stage split, grouped as the issue asks; the raw stages are in speed.json
    if "aecodec" in res["results"]:
        rows = []
        for i in res["images"]:
            for op in ("encode", "decode"):
                r = res["results"]["aecodec"][i["name"]][op]
                if "median_s" in r and r.get("stages_s"):
                    rows.append((i["name"], op, r["median_s"], group_stages(r["stages_s"])))
        if rows:
            lines += ["", f"aecodec time by stage (ms, medians; {res['threads']} thread(s)); "
                      "transforms = the onnxruntime graphs (analysis, hyper-analysis, synthesis), "
                      "hyper-synthesis = the exact kernel in the native core, other = "
                      "preparation, quantization, the embedded preview's encode (12 MP) and the "
                      "rest (each column is a median of its own, so the columns need not add up "
                      "to the total):", "",
                      "| image | op | total | " + " | ".join(STAGE_GROUPS) + " |",
                      "|---|---|---:|" + "---:|" * len(STAGE_GROUPS)]
            for name, op, total, g in rows:
                g["other"] = max(total - sum(v for k, v in g.items() if k != "other"), 0.0)
                lines.append(f"| {name} | {op} | {_ms(total)} | "
                             + " | ".join(_ms(g[k]) for k in STAGE_GROUPS) + " |")
    lines += decoders_markdown(res)
    lines += ["", "Settings: " + "; ".join(
        f"{v['label']} {v['describe']} ({v['version']})" for v in res["codecs"].values()) + ". "
        "Times: median of the timed calls after one warm-up call (no warm-up on the 12 MP photo: "
        f"{res['repeat']} calls per Kodak image, {res['repeat_large']} on the 12 MP photo), wall "
        "clock, each codec in its own process. Peak RSS: the process's peak resident memory "
        "(interpreter, libraries, model and image included); op peak: the peak above the resident "
        "size just before the first timed call (on the 12 MP photo after a call on a 64×64 corner "
        "that loads the model: the peak above interpreter and model). The 12 MP photo is a 6×6 "
        "mosaic of 672×504 Kodak crops."]
    if res.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{k}: {w}" for k, w in res["skipped"].items())]
    errors = [f"{labels[c]} {img} {op}: {r['error']}" for c, by in res["results"].items()
              for img, ops in by.items() for op, r in ops.items() if "error" in r]
    if errors:
        lines += ["", "Failures: " + "; ".join(errors)]
    lines += ["", "<details><summary>Per image (medians)</summary>", "",
              "| image | codec | bpp | encode | decode | peak RSS enc / dec (MiB) |",
              "|---|---|---:|---:|---:|---:|"]
    for i in res["images"]:
        for c in res["codecs"]:
            e, d = res["results"][c][i["name"]]["encode"], res["results"][c][i["name"]]["decode"]
            lines.append(
                f"| {i['name']} | {labels[c]} | {e.get('bpp', 0):.2f} | "
                f"{_ms_col(e.get('median_s'))} | {_ms_col(d.get('median_s'))} | "
                f"{e.get('peak_rss_mib', 0):,.0f} / {d.get('peak_rss_mib', 0):,.0f} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=common.DEFAULT_DATA,
                    help="folder of PNG images (default: ../shared/data/kodak)")
    ap.add_argument("--images", type=int, default=3, help="number of images from --data (3)")
    ap.add_argument("--no-large", action="store_true", help="skip the 12-megapixel photo")
    ap.add_argument("--codecs", default="aecodec,jpeg,webp,avif,jxl")
    ap.add_argument("--quality", type=float, default=common.Aec.speed_setting,
                    help=f"aecodec quality (default {common.Aec.speed_setting})")
    ap.add_argument("--model", default=None, help="aecodec model package")
    ap.add_argument("--effort", type=int, default=None, choices=(1, 2, 3),
                    help="aecodec encoder effort (default: the runtime's default)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for the codecs that can use them (default: all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per Kodak image (3)")
    ap.add_argument("--repeat-large", type=int, default=2,
                    help="timed calls on the 12 MP photo (2)")
    ap.add_argument("--timeout", type=float, default=600, help="per child process, seconds")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT,
                    help="output folder (default: benchmarks/results)")
    ap.add_argument("--no-decoders", action="store_true",
                    help="skip the aecodec decoder comparison (reference vs phase g_s, "
                         "previews, thumbnails)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        try:
            print(json.dumps(_child_main(json.loads(args.child))))
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 0

    from tqdm import tqdm

    started = common.utcnow()
    t_start = time.perf_counter()
    machine = common.machine_info()
    git = common.git_info()
    names = common.parse_codecs(args.codecs)
    adapters, skipped = common.available_adapters(names, args.threads, args.model, args.effort)
    if not adapters:
        print("error: none of the requested codecs is available", file=sys.stderr)
        return 1
    settings = {a.name: (args.quality if a.name == "aecodec" else a.speed_setting)
                for a in adapters}
    results: dict = {a.name: {} for a in adapters}
    with tempfile.TemporaryDirectory(prefix="aecodec-speed-") as tmpd:
        tmp = Path(tmpd)
        images = prepare_images(args.data, args.images, not args.no_large, tmp)
        jobs = [(a, i, op) for i in images for a in adapters for op in ("encode", "decode")]
        bar = tqdm(jobs, unit="run", desc="speed", dynamic_ncols=True)
        for a, img, op in bar:
            bar.set_postfix_str(f"{a.name} {img['name']} {op}")
            large = bool(img.get("large"))
            spec = {
                "codec": a.name, "threads": args.threads, "model": args.model,
                "effort": args.effort,
                "image": img["file"], "setting": settings[a.name], "op": op,
                "data": str(tmp / f"{a.name}-{img['name']}.bin"),
                "warmup": 0 if large else 1,
                "repeat": args.repeat_large if large else args.repeat,
            }
            slot = results[a.name].setdefault(img["name"], {})
            if op == "decode" and "error" in slot.get("encode", {}):
                slot[op] = {"error": "encode failed"}
                continue
            r = run_child(spec, args.timeout)
            if "error" in r:
                print(f"warning: {a.label} {img['name']} {op}: {r['error']}", file=sys.stderr)
            if op == "encode" and "bytes" in r:
                r["bpp"] = 8.0 * r["bytes"] / (img["width"] * img["height"])
            slot[op] = r
        bar.close()
        decoders = {}
        if "aecodec" in results and not args.no_decoders:
            for img in tqdm(images, unit="image", desc="decoders", dynamic_ncols=True):
                slot = results["aecodec"].get(img["name"], {})
                if "error" in slot.get("encode", {"error": 1}):
                    continue
                large = bool(img.get("large"))
                decoders[img["name"]] = run_child({
                    "op": "decoders", "threads": args.threads, "image": img["file"],
                    "data": str(tmp / f"aecodec-{img['name']}.bin"),
                    "repeat": args.repeat_large if large else args.repeat}, 3 * args.timeout)

    elapsed = time.perf_counter() - t_start
    given = sys.argv[1:] if argv is None else argv
    cmd = "python benchmarks/speed.py" + ("" if not given else " " + " ".join(given))
    res = {
        "benchmark": "speed",
        "date_utc": started.isoformat(timespec="seconds"),
        "git": git,
        "machine": machine,
        "loadavg_at_end": common.loadavg(),
        "command": cmd,
        "elapsed_s": round(elapsed, 1),
        "threads": args.threads,
        "repeat": args.repeat,
        "repeat_large": args.repeat_large,
        "memory_method": "child process per (codec, image, op); peak_rss_mib = the child's "
                         "VmHWM (/proc/self/status) at the end (not getrusage ru_maxrss, which "
                         "inherits the parent's peak through fork+exec); op_peak_mib = peak above "
                         "the RSS before the first timed call (VmHWM if it rose, else a 1 ms "
                         "statm sampler); without a warm-up call (12 MP) a call on a 64×64 "
                         "corner loads the model first",
        "images": [{k: v for k, v in i.items() if k != "file"} for i in images],
        "codecs": {a.name: {"label": a.label, "version": a.version(), "describe": a.describe(),
                            "origin": a.origin(), "knob": a.knob, "setting": settings[a.name],
                            "threads": args.threads if a.threaded else 1}
                   for a in adapters},
        "skipped": skipped,
        "results": results,
        "decoders": decoders,
    }
    res["header"] = common.run_header(cmd, started, git, machine, elapsed)
    common.write_json(args.out / "speed.json", res)
    md = markdown(res)
    common.write_text(args.out / "speed.md", md)
    print(md.split("<details>")[0])
    print(f"wrote {args.out / 'speed.json'}, {args.out / 'speed.md'} in {elapsed:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
