"""A model package's measured figures: rate parity of the real codec, and Kodak RD from rd.py.

    python -m aecodec.train.figures models/hyperprior-mse-<hash12> --rd benchmarks/results/rd.json

Writes the "figures" entry of the package's manifest.json (not part of the content hash):
- parity: per quality, the bpp the torch model estimates and the bpp aecodec really writes
  (whole file, and its entropy-coded streams alone) on a few Kodak images, and their ratios
  (issue target: within 3 %);
- kodak: aecodec's averaged RD points and its BD-rates against WebP and AVIF from an rd.py run;
- efforts: per encoder effort, BD-rates against effort 1, WebP and AVIF and encode seconds per
  image (benchmarks/effort_table.py --json);
- training: steps, wall time and steps/s from the package's provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .. import container, model_package
from .evaluate import estimate_one
from .export import load_model


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def parity(package: Path, images: list[Path], qualities=(0, 25, 50, 75, 100)) -> list[dict]:
    """Estimated vs really coded bpp (and PSNR) of the package at each quality, image means."""
    import aecodec

    model, _ = load_model(package)
    model.eval()
    codec = aecodec.Codec(model=str(package.resolve()))
    arrays = [_rgb(p) for p in images]
    rows = []
    for q in qualities:
        est, real, streams, p_est, p_real = [], [], [], [], []
        for a in arrays:
            b, p = estimate_one(model, a, q)
            data = codec.compress(a, quality=q, effort=1)  # as the estimate: orientation 0
            f = container.parse(data)
            streams_bytes = len(f.z_stream) + sum(len(y) for y in f.y_streams)
            pixels = a.shape[0] * a.shape[1]
            out = np.asarray(codec.decompress(data), dtype=np.float64)
            mse = float(np.mean((out - a) ** 2))
            est.append(b)
            p_est.append(p)
            real.append(len(data) * 8 / pixels)
            streams.append(streams_bytes * 8 / pixels)
            p_real.append(10 * np.log10(255.0**2 / max(mse, 1e-10)))
        rows.append({"quality": q, "bpp_estimated": float(np.mean(est)),
                     "bpp_coded": float(np.mean(real)),
                     "ratio": float(np.mean(real) / np.mean(est)),
                     "bpp_streams": float(np.mean(streams)),
                     "ratio_streams": float(np.mean(streams) / np.mean(est)),
                     "psnr_estimated": float(np.mean(p_est)),
                     "psnr_decoded": float(np.mean(p_real))})
    return rows


def kodak_figures(rd_json: Path) -> dict:
    """aecodec's curve and its BD-rates against the measured WebP and AVIF of one rd.py run."""
    rd = json.loads(Path(rd_json).read_text())
    curve = [{"quality": p["setting"], "bpp": round(p["bpp"], 4), "psnr": round(p["psnr"], 3),
              "ms_ssim": round(p["ms_ssim"], 5)} for p in rd["curves"]["aecodec"]]
    bd = {}
    for row in rd["bd"]:
        if row["source"] == "measured" and row["anchor"] in ("webp", "avif", "jpeg", "jxl"):
            bd[row["anchor"]] = {m: row[m].get("bd_rate") for m in ("psnr", "ms_ssim")}
    return {"images": rd["n_images"], "dataset": rd["dataset"], "date_utc": rd["date_utc"],
            "command": rd["command"], "git": rd["git"]["short"], "curve": curve,
            "effort": rd["codecs"]["aecodec"].get("origin", {}).get("effort"),
            "bd_rate_percent": bd}


def training_figures(provenance: dict) -> dict:
    """Steps, wall time and steps/s of the whole training history."""
    steps, secs = provenance.get("steps", 0), provenance.get("wall_seconds", 0.0)
    history = provenance.get("history") or [{}]
    # A session that trains a few parameters (--only) runs faster than the model trains.
    whole = [h for h in history if "--only" not in str(h.get("command", ""))]
    last = (whole or history)[-1]
    out = {"steps": steps, "wall_hours": round(secs / 3600, 2),
           "steps_per_second": round(steps / secs, 3) if secs else None}
    if last.get("steps") and last.get("seconds"):
        out["last_session"] = {"device": last.get("device"), "batch": last.get("batch"),
                               "crop": last.get("crop"),
                               "steps_per_second": round(last["steps"] / last["seconds"], 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aecodec.train.figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("package", type=Path, help="model package folder")
    p.add_argument("--rd", type=Path, default=None, help="rd.json of a benchmarks/rd.py run")
    p.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    p.add_argument("--images", type=int, default=4, help="Kodak images for the parity check")
    p.add_argument("--efforts", type=Path, default=None,
                   help="effort table JSON of benchmarks/effort_table.py --json")
    p.add_argument("--no-parity", action="store_true", help="keep the parity figures as they are")
    args = p.parse_args(argv)

    manifest_path = args.package / model_package.MANIFEST_FILE
    manifest = model_package.read_manifest(args.package)
    figures = dict(manifest.get("figures") or {})
    images = sorted(args.kodak.glob("*.png"))[: args.images]
    if not images:
        print(f"error: no PNG images in {args.kodak}", file=sys.stderr)
        return 1
    if not args.no_parity:
        figures["parity"] = {"images": [i.name for i in images],
                             "rows": parity(args.package, images)}
    if args.efforts:
        figures["efforts"] = json.loads(args.efforts.read_text())
    if args.rd:
        figures["kodak"] = kodak_figures(args.rd)
    figures["training"] = training_figures(manifest.get("provenance", {}))
    manifest["figures"] = figures
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for r in figures.get("parity", {}).get("rows", []) if not args.no_parity else []:
        print(f"q{r['quality']:>3}: estimated {r['bpp_estimated']:.4f} bpp, coded "
              f"{r['bpp_coded']:.4f} bpp ({100 * (r['ratio'] - 1):+.2f} %; streams alone "
              f"{100 * (r['ratio_streams'] - 1):+.2f} %), PSNR "
              f"{r['psnr_estimated']:.2f} / {r['psnr_decoded']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
