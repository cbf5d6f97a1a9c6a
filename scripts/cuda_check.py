#!/usr/bin/env python
"""The prepared check for a CUDA machine: golden files decode exactly there, and decode timings.

    python scripts/cuda_check.py --out $OUT                  # on the CUDA machine
    python scripts/cuda_check.py --device cpu --images 1     # here: the same checks on the CPU

Needs the built core (`python setup.py build_ext --inplace`) and, for --device cuda,
onnxruntime-gpu (`pip install "aecodec[gpu]"`). For every golden file of tests/data/model-golden
it checks, on the device: the latent symbols' SHA-256 equals the recorded one (entropy decoding and
the exact hyper-synthesis run in the core, so this must hold on any machine), and the pixels are
within ±1 of the recorded PNG (g_s runs in the device's floats). Then it decodes the first
--images Kodak files encoded here (effort 1, quality 75) --repeat times and reports the median
time per stage; and whether an encode on the device gives the same file as on the CPU (g_a in
the device's floats may round a latent the other way: reported, not required). Writes
report.json to --out and exits 1 if a golden check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aecodec  # noqa: E402

GOLDEN = REPO / "tests" / "data" / "model-golden"
KODAK = REPO.parent / "shared" / "data" / "kodak"


def symbol_sha256(z_hat: np.ndarray, s: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (z_hat, s):
        h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
    return h.hexdigest()


def check_golden(codec: aecodec.Codec) -> list[dict]:
    rows = []
    for model_id, rec in sorted(json.loads((GOLDEN / "record.json").read_text()).items()):
        data = (GOLDEN / rec["file"]).read_bytes()
        _, z_hat, s = codec.decode_latents(data)
        with Image.open(GOLDEN / rec["pixels"]) as im:
            ref = np.asarray(im).astype(int)
        out = np.asarray(codec.decompress(data)).astype(int)
        diff = int(np.abs(out - ref).max()) if out.shape == ref.shape else None
        ok_symbols = symbol_sha256(z_hat, s) == rec["latent_symbol_sha256"]
        rows.append({"model": model_id, "symbols_identical": ok_symbols,
                     "max_pixel_difference": diff, "ok": ok_symbols and diff is not None
                     and diff <= 1})
    return rows


def time_decodes(codec: aecodec.Codec, cpu: aecodec.Codec, images: list[Path],
                 repeat: int) -> list[dict]:
    rows = []
    for path in images:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        data = cpu.compress(rgb, quality=75)
        codec.decode(data)  # warm-up: sessions, CUDA kernels
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = codec.decode(data)
            runs.append((time.perf_counter() - t, r.timings))
        total = statistics.median(t for t, _ in runs)
        stages = {k: statistics.median(tm.get(k, 0.0) for _, tm in runs) for k in runs[0][1]}
        same = codec.compress(rgb, quality=75) == data
        rows.append({"image": path.name, "decode_ms": 1000 * total,
                     "stages_ms": {k: 1000 * v for k, v in stages.items()},
                     "encode_same_file_as_cpu": same})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--images", type=int, default=4, help="Kodak images to time (0: none)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("."))
    a = ap.parse_args(argv)
    codec = aecodec.Codec(device=a.device, threads=a.threads)
    cpu = codec if a.device == "cpu" else aecodec.Codec(threads=a.threads)
    import onnxruntime as ort

    report = {"device": a.device, "python": platform.python_version(),
              "onnxruntime": ort.__version__, "providers": ort.get_available_providers(),
              "golden": check_golden(codec)}
    images = sorted(KODAK.glob("*.png"))[: a.images] if KODAK.is_dir() else []
    report["decode"] = time_decodes(codec, cpu, images, a.repeat)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "report.json").write_text(json.dumps(report, indent=1))
    for g in report["golden"]:
        print(f"{g['model']}: symbols {'identical' if g['symbols_identical'] else 'DIFFER'}, "
              f"pixels within {g['max_pixel_difference']}")
    for d in report["decode"]:
        print(f"{d['image']}: decode {d['decode_ms']:.1f} ms on {a.device}, "
              f"encode same file as CPU: {d['encode_same_file_as_cpu']}")
    return 0 if all(g["ok"] for g in report["golden"]) else 1


if __name__ == "__main__":
    sys.exit(main())
