#!/usr/bin/env python
"""Throughput of `aecodec batch compress` (Ray Data) for 1 and 2 workers, against the CLI.

    python benchmarks/batch.py                      # the 24 Kodak images, 1 and 2 workers
    python benchmarks/batch.py --workers 1,2,4 --quality 75 --repeat 2

One local Ray (loopback only, as many CPUs as cores) is started first and kept for every run,
so its start-up (reported apart) is not in the figures; each run is a fresh job into an empty
folder: worker start, model loading, reading, coding and writing included. Images/s = images
/ job wall time (the best of --repeat runs). For reference the single-process CLI
(`aecodec compress FOLDER -o OUT`, all cores) codes the same folder in this process, and every
batch output is checked byte for byte against its files. Requires `pip install ".[ray]"`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=common.DEFAULT_DATA, help="folder of PNGs")
    p.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    p.add_argument("--quality", type=float, default=75.0)
    p.add_argument("--repeat", type=int, default=1, help="runs per worker count (best kept)")
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT)
    args = p.parse_args(argv)

    from aecodec import __version__, batch, cli

    started = common.utcnow()
    images = common.list_images(args.data)
    counts = [int(w) for w in args.workers.split(",")]
    git, machine = common.git_info(), common.machine_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="aecodec-batch-bench-") as tmp:
        src = Path(tmp) / "kodak"
        src.mkdir()
        for path in images:
            os.symlink(path.resolve(), src / path.name)

        ref = Path(tmp) / "cli"
        t = time.perf_counter()
        assert cli.main(["compress", "-q", f"{args.quality:g}", str(src), "-o", str(ref),
                         "--quiet"]) == 0
        cli_s = time.perf_counter() - t
        expected = {p.name: p.read_bytes() for p in ref.glob("*.aec")}
        print(f"CLI (one process, all cores): {len(images) / cli_s:.2f} images/s", flush=True)

        t = time.perf_counter()
        ray = batch.start_local_ray(num_cpus=max(os.cpu_count() or 1, max(counts)))
        ray_s = time.perf_counter() - t
        try:
            for w in counts:
                best = None
                for r in range(args.repeat):
                    out = Path(tmp) / f"batch-{w}-{r}"
                    rep = batch.compress_folder([src], out, quality=args.quality, workers=w,
                                                quiet=True)
                    got = {p.name: p.read_bytes() for p in out.glob("*.aec")}
                    if not rep.ok or got != expected:
                        raise SystemExit(f"error: {w} workers: outputs differ from the CLI's "
                                         f"or failed ({len(rep.failures)} failures)")
                    if best is None or rep.seconds < best.seconds:
                        best = rep
                rows.append({"workers": w, "threads_per_worker": 1, "images": len(images),
                             "seconds": round(best.seconds, 2),
                             "images_per_second": round(len(images) / best.seconds, 3),
                             "identical_to_cli": True})
                print(f"{w} worker(s): {len(images) / best.seconds:.2f} images/s "
                      f"({best.seconds:.1f} s for {len(images)} images)", flush=True)
        finally:
            ray.shutdown()

    given = list(sys.argv[1:] if argv is None else argv)
    result = {
        "benchmark": "batch", "date_utc": started.isoformat(timespec="seconds"), "git": git,
        "machine": machine, "loadavg_at_end": common.loadavg(),
        "command": " ".join(["python benchmarks/batch.py"] + given),
        "aecodec": __version__, "ray": ray.__version__, "quality": args.quality, "effort": 1,
        "data": f"{len(images)} images of {args.data.name}", "repeat": args.repeat,
        "ray_start_s": round(ray_s, 2),
        "cli": {"threads": "all cores", "seconds": round(cli_s, 2),
                "images_per_second": round(len(images) / cli_s, 3)},
        "batch": rows,
        "note": "Job wall time with Ray already up: worker start and model loading included; "
                "outputs byte-identical to `aecodec compress`. Other processes on the machine "
                "show in the load averages.",
    }
    common.write_json(args.out / "batch.json", result)
    print(f"wrote {args.out / 'batch.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
