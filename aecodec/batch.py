"""Batch jobs on Ray Data: compress or decompress whole folders on one machine or a cluster.

    aecodec batch compress photos/ out/ -q 75            # a local Ray, one worker per core
    aecodec batch compress photos/ out/ --address HOST:PORT --gpus-per-worker 1
    aecodec batch decompress out/ png/

    from aecodec import batch
    report = batch.compress_folder(["photos/"], "out/", quality=75, workers=2)

The inputs (folders searched recursively, or files: the same selection as `aecodec compress`)
become a Ray dataset of (input, output) paths; `map_batches` runs them through a pool of actors,
each of which loads the model once (a `Codec`), reads its images, codes them and writes the
results under OUT, mirroring the tree of each input folder. Outputs are byte-identical to
`aecodec compress`/`decompress` of the same file with the same options (the bits do not depend
on the thread count). Writes are atomic (a temporary file renamed into place); an output that
already exists and is valid is skipped, so a re-run resumes an interrupted job (--force redoes
everything). A failing image never stops the others: every failure, with its reason, goes to the
manifest OUT/aecodec-failures.json (rewritten by every run; its "failures" list is empty when
all went well), and the exit status is 1 if anything failed.

Without --address a local Ray is started for the job, listening on the loopback interface only,
and stopped at the end (an already initialised Ray is used as it is); with --address the job
joins that cluster, where every node must have aecodec installed and see IN and OUT at the same
paths (a shared file system). Ray and Ray Data come with `pip install "aecodec[ray]"`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from . import arguments
from .codec import DEFAULT_EFFORT, DEFAULT_QUALITY

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from types import ModuleType

MANIFEST_NAME = "aecodec-failures.json"
# Ray Data blocks: one image per block up to this many images (the pool balances them one by
# one), then blocks of ~IMAGES_PER_BLOCK so that huge jobs do not make millions of blocks.
SMALL_JOB = 1024
IMAGES_PER_BLOCK = 16
LOCAL_OBJECT_STORE = 256 * 2**20  # the local Ray carries only paths and short results


class BatchError(Exception):
    """The job cannot run (bad options, no Ray, workers that cannot start)."""


@dataclass
class Failure:
    input: str
    output: str | None
    error: str
    type: str

    def as_dict(self) -> dict:
        return {"input": self.input, "output": self.output, "error": self.error,
                "type": self.type}


@dataclass
class Report:
    """What a batch job did. ok is True when nothing failed."""

    command: str
    inputs: int = 0  # files found
    written: int = 0
    skipped: int = 0  # valid outputs already there (resume)
    failures: list = field(default_factory=list)  # Failure
    seconds: float = 0.0  # wall time of the whole job
    ray_seconds: float = 0.0  # of which starting or joining Ray
    workers: int = 0
    manifest: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def images_per_second(self) -> float:
        """Images written per second, from the job's start (Ray up) to its end: worker start
        and model loading included."""
        t = self.seconds - self.ray_seconds
        return self.written / t if t > 0 else 0.0

    def as_dict(self) -> dict:
        return {"command": self.command, "inputs": self.inputs, "written": self.written,
                "skipped": self.skipped, "failed": len(self.failures),
                "seconds": round(self.seconds, 3), "ray_seconds": round(self.ray_seconds, 3),
                "workers": self.workers,
                "images_per_second": round(self.images_per_second, 3),
                "failures": [f.as_dict() for f in self.failures]}


# ---- the work of one actor ----------------------------------------------------------------

class _Worker:
    """A Ray Data actor: loads the model once, then codes one (input, output) row at a time."""

    def __init__(self, job: dict):
        from .codec import Codec

        self.job = job
        self.codec = Codec(job.get("model"), device=job["device"], threads=job["threads"])
        if job["command"] == "compress":
            self.model = self.codec.package  # load it now, once, not at the first image
            self.model_hash = self.model.hash_bytes

    def __call__(self, batch: dict) -> dict:
        rows = {k: [] for k in ("input", "output", "status", "error", "type", "bytes",
                                "seconds")}
        for name, out, src, dst in zip(batch["input"], batch["output"], batch["src"],
                                       batch["dst"]):
            src, dst = str(src), str(dst)  # absolute: a worker's folder is not the driver's
            t = time.perf_counter()
            status, error, etype, size = "written", "", "", 0
            try:
                if not self.job["force"] and self._valid_output(dst):
                    status = "skipped"
                else:
                    size = self._code(src, dst)
            except Exception as e:  # reported in the manifest; the other images go on
                from .cli import describe

                status, error, etype = "failed", describe(e), type(e).__name__
            for k, v in (("input", str(name)), ("output", str(out)), ("status", status),
                         ("error", error),
                         ("type", etype), ("bytes", size),
                         ("seconds", time.perf_counter() - t)):
                rows[k].append(v)
        return rows

    def _code(self, src: str, dst: str) -> int:
        from .cli import image_bytes, read_source, source_image, write_atomic

        data = read_source(src)
        if self.job["command"] == "compress":  # exactly what `aecodec compress` does
            with source_image(data) as im:
                out = self.codec.encode(im, **self.job["target"],
                                        metadata=not self.job["strip"],
                                        effort=self.job["effort"],
                                        preview=self.job.get("preview")).data
        else:  # exactly what `aecodec decompress` does
            out = image_bytes(self.codec.decode(data).image, self.job["format"])
        write_atomic(dst, out, force=True)
        return len(out)

    def _valid_output(self, dst: str) -> bool:
        """An output already there that a re-run keeps: a whole .aec file (every byte checked)
        coded by this model at the quality asked for, or an image Pillow reads."""
        if not os.path.isfile(dst):
            return False
        try:
            if self.job["command"] == "decompress":
                with Image.open(dst) as im:
                    im.load()
                return True
            from .container import parse

            h = parse(Path(dst).read_bytes()).header
            if h.model_hash != self.model_hash[:len(h.model_hash)]:
                return False
            target = self.job["target"]
            q = target.get("quality", None if target else DEFAULT_QUALITY)  # bpp/psnr: searched
            return q is None or math.isclose(h.quality, q, abs_tol=1e-3)
        except Exception:
            return False


# ---- planning -----------------------------------------------------------------------------

def plan(inputs: str | os.PathLike | Iterable[str | os.PathLike], output: str | os.PathLike,
         command: str, suffix: str) -> tuple[list[dict], list[Failure]]:
    """(rows of input/output paths, failures found while planning) for every input file:
    folders are searched recursively like `aecodec compress` does, and their tree is mirrored
    under output; a file given directly goes to output/NAME."""
    from .cli import AEC_EXTENSIONS, STDIO, expand, image_extensions

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    rows, failures, seen = [], [], {}
    out = Path(output)
    exts = AEC_EXTENSIONS if command == "decompress" else image_extensions()
    for src, rel in expand([os.fspath(p) for p in inputs], exts):
        if src == STDIO:
            failures.append(Failure(src, None, "standard input is not supported by batch jobs",
                                    "BatchError"))
            continue
        if rel == Path(""):
            failures.append(Failure(src, None, "no matching files in this folder", "CliError"))
            continue
        if rel is None and not os.path.isfile(src):
            failures.append(Failure(src, None, "no such file", "CliError"))
            continue
        dst = str(out / (rel if rel is not None else Path(Path(src).name)).with_suffix(suffix))
        key = os.path.abspath(dst)
        if key in seen:
            failures.append(Failure(src, dst, f"{dst} is also the output of {seen[key]}",
                                    "CliError"))
            continue
        seen[key] = src
        rows.append({"input": src, "output": dst, "src": os.path.abspath(src), "dst": key})
    return rows, failures


# ---- Ray ----------------------------------------------------------------------------------

def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise BatchError(f'batch jobs need Ray Data ({e}): pip install "aecodec[ray]"') from None
    return ray


def _loopback_only():
    """Import ray so that this process and the Ray processes it starts use 127.0.0.1."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray swaps 127.0.0.1 for the machine's network address (one other nodes could reach)
    # unless clusters are disabled: then every Ray process listens and connects on the loopback
    # interface. Ray reads the variable when it is imported (its worker processes do too); the
    # module constant covers a ray imported before this call.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = _import_ray()
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # pragma: no cover - another Ray version
        pass
    return ray


def start_local_ray(num_cpus: int | None = None, num_gpus: int | None = None,
                    object_store_memory: int = LOCAL_OBJECT_STORE,
                    quiet: bool = True) -> ModuleType:
    """Start a Ray instance on this machine, on the loopback interface only (no dashboard, no
    usage report). Returns the ray module; stop it with ray.shutdown()."""
    ray = _loopback_only()
    with _from_this_aecodec():
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                 include_dashboard=False, _node_ip_address="127.0.0.1",
                 object_store_memory=object_store_memory, log_to_driver=not quiet,
                 logging_level=logging.ERROR)
    return ray


@contextlib.contextmanager
def _from_this_aecodec():
    """Run ray.init from the folder that holds this aecodec package. Ray puts the driver's
    working directory first on its workers' sys.path: started from a checkout's root, they
    would import the checkout's aecodec (maybe without its built core) instead of the one
    running here. The Ray processes it starts work there too, so rows carry absolute paths."""
    old = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        yield
    finally:
        os.chdir(old)


def _connect(ray, address: str, quiet: bool) -> None:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", "::1") or host.startswith("127."):
        ray = _loopback_only()  # a cluster on this machine: stay on the loopback interface
    try:
        with _from_this_aecodec():
            ray.init(address=address, log_to_driver=not quiet, logging_level=logging.ERROR)
    except Exception as e:
        why = " ".join(str(e.__cause__ or e).split())[:400]
        raise BatchError(f"cannot join the Ray cluster at {address}: {why} (a cluster with "
                         "token authentication needs its token here: RAY_AUTH_MODE=token and "
                         "RAY_AUTH_TOKEN or ~/.ray/auth_token)") from e


def _pool_size(ray, workers: int | None, cpus_per_worker: float, gpus_per_worker: float) -> int:
    """The number of actors: as asked, or as many as the cluster's CPUs (GPUs) allow."""
    res = ray.cluster_resources()
    if gpus_per_worker > 0:
        gpus = res.get("GPU", 0)
        if gpus < gpus_per_worker:  # the actors would wait for GPUs forever
            raise BatchError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has "
                             f"{gpus:g} GPU(s)")
        return workers or int(gpus // gpus_per_worker)
    return workers or max(1, int(res.get("CPU", 1) // cpus_per_worker))


@contextlib.contextmanager
def _quiet_ray_logs():
    """Ray and Ray Data log at INFO on the console; our progress bar says what matters (Ray's
    own logs stay in its session folder)."""
    loggers = [logging.getLogger(n) for n in ("ray", "ray.data")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)


def _run(rows: list[dict], job: dict, workers: int, cpus_per_worker: float,
         gpus_per_worker: float, progress, deadline: float | None):
    """Run the rows through the actor pool; yields result rows as they finish."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.max_errored_blocks
    ctx.enable_progress_bars = False  # ours counts images, written, skipped and failed
    # Ray restarts a dead actor and retries its task; a block that still errors is reported
    # (its images as failures), the rest goes on.
    ctx.max_errored_blocks = -1
    try:
        n = len(rows)
        blocks = n if n <= SMALL_JOB else max(SMALL_JOB, -(-n // IMAGES_PER_BLOCK))
        ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _Worker, fn_constructor_kwargs={"job": job}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None)
        results: queue.Queue = queue.Queue()

        def consume():
            try:
                for r in ds.iter_rows():
                    results.put(("row", r))
                results.put(("end", None))
            except BaseException as e:  # handed to the caller's thread
                results.put(("error", e))

        threading.Thread(target=consume, name="aecodec-batch", daemon=True).start()
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                kind, value = results.get(timeout=timeout)
            except queue.Empty:
                return "timeout"
            if kind == "end":
                return "done"
            if kind == "error":
                raise value
            progress(value)
    finally:
        ctx.enable_progress_bars, ctx.max_errored_blocks = saved


def run_job(command: str, inputs: str | os.PathLike | Iterable[str | os.PathLike],
            output: str | os.PathLike, *, job: dict, workers: int | None = None,
            cpus_per_worker: float = 1, gpus_per_worker: float = 0, address: str | None = None,
            manifest: str | os.PathLike | None = None, quiet: bool = False,
            timeout: float | None = None, suffix: str = ".aec") -> Report:
    if workers is not None and workers < 1:
        raise BatchError("workers must be at least 1")
    if not cpus_per_worker > 0 or gpus_per_worker < 0:
        raise BatchError("cpus_per_worker must be positive and gpus_per_worker not negative")
    t0 = time.monotonic()
    deadline = None if timeout is None else t0 + timeout
    report = Report(command)
    rows, report.failures = plan(inputs, output, command, suffix)
    report.inputs = len(rows) + sum(f.output is not None for f in report.failures)
    job = dict(job, command=command, device="cuda" if gpus_per_worker > 0 else "cpu")
    job.setdefault("threads", max(1, int(cpus_per_worker)))
    Path(output).mkdir(parents=True, exist_ok=True)

    if rows:
        with _ray_for_job(report, workers, cpus_per_worker, address, quiet) as ray:
            report.workers = _pool_size(ray, workers, cpus_per_worker, gpus_per_worker)
            done, end = _run_with_progress(rows, job, report, cpus_per_worker, gpus_per_worker,
                                           quiet, deadline)
            _record_unfinished(report, rows, done, end, timeout)
    report.seconds = time.monotonic() - t0
    report.failures.sort(key=lambda f: f.input)
    report.manifest = os.fspath(manifest or Path(output) / MANIFEST_NAME)
    _write_manifest(report)
    if not quiet:
        print(f"aecodec batch {command}: {report.written} written, {report.skipped} already "
              f"done, {len(report.failures)} failed of {report.inputs} in "
              f"{report.seconds:.1f} s ({report.images_per_second:.2f} images/s, "
              f"{report.workers} workers)"
              + (f"; failures in {report.manifest}" if report.failures else ""),
              file=sys.stderr)
    return report


@contextlib.contextmanager
def _ray_for_job(report: Report, workers: int | None, cpus_per_worker: float,
                 address: str | None, quiet: bool) -> Iterator[ModuleType]:
    """The ray module for a job: an already initialised Ray as it is; else a local Ray started
    (address None) or the cluster at address joined, and shut down when the job ends. The time
    it takes goes to report.ray_seconds."""
    ray = _import_ray()
    owned = not ray.is_initialized()
    t = time.monotonic()
    with _quiet_ray_logs():
        if owned and address is None:
            need = (workers or 1) * cpus_per_worker
            start_local_ray(num_cpus=max(os.cpu_count() or 1, math.ceil(need)), quiet=quiet)
        elif owned:
            _connect(ray, address, quiet)
    report.ray_seconds = time.monotonic() - t
    try:
        yield ray
    finally:
        if owned:
            ray.shutdown()


def _run_with_progress(rows: list[dict], job: dict, report: Report, cpus_per_worker: float,
                       gpus_per_worker: float, quiet: bool,
                       deadline: float | None) -> tuple[set, str]:
    """Run the rows on report.workers actors with a progress bar, counting each result into
    the report as it comes: (the outputs that got a result, "done" or "timeout")."""
    from tqdm import tqdm

    bar = tqdm(total=len(rows), unit="img", file=sys.stderr, disable=quiet,
               dynamic_ncols=True, desc=f"aecodec batch {report.command}")
    done: set = set()

    def progress(r: dict) -> None:
        done.add(r["output"])
        if r["status"] == "written":
            report.written += 1
        elif r["status"] == "skipped":
            report.skipped += 1
        else:
            report.failures.append(Failure(r["input"], r["output"], r["error"], r["type"]))
            if not quiet:
                bar.write(f"aecodec: error: {r['input']}: {r['error']}", file=sys.stderr)
        bar.update(1)
        bar.set_postfix(written=report.written, skipped=report.skipped,
                        failed=len(report.failures), refresh=False)

    try:
        with _quiet_ray_logs():
            end = _run(rows, job, report.workers, cpus_per_worker, gpus_per_worker, progress,
                       deadline)
    except Exception as e:
        raise BatchError(f"the Ray job failed: {' '.join(str(e).split())}") from e
    finally:
        bar.close()
    return done, end


def _record_unfinished(report: Report, rows: list[dict], done: set, end: str,
                       timeout: float | None) -> None:
    """Record every row without a result as a failure: the time limit ran out (end
    "timeout"), or its worker kept dying."""
    for r in rows:
        if r["output"] not in done:
            reason = (f"not done within the {timeout:g} s time limit: run again to "
                      "resume" if end == "timeout" else
                      "no result: its worker died (a crash or out of memory)")
            report.failures.append(Failure(r["input"], r["output"], reason,
                                           "Timeout" if end == "timeout" else "WorkerDied"))


def _write_manifest(report: Report) -> None:
    from .cli import write_atomic

    data = json.dumps(report.as_dict(), indent=1).encode() + b"\n"
    write_atomic(report.manifest, data, force=True)


# ---- Python API ---------------------------------------------------------------------------

def _checked(check, *args):
    """aecodec.arguments' check of an option (the message of the API and CLI) as a BatchError."""
    try:
        return check(*args)
    except ValueError as e:
        raise BatchError(str(e)) from None


def _target(quality, bpp, psnr) -> dict:
    values = _checked(arguments.target, quality, bpp, psnr)
    return {k: v for k, v in zip(("quality", "bpp", "psnr"), values) if v is not None}


def compress_folder(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                    output: str | os.PathLike, *, quality: float | None = None,
                    bpp: float | None = None, psnr: float | None = None,
                    effort: int = DEFAULT_EFFORT, model: str | None = None,
                    strip: bool = False, preview: bool | None = None,
                    workers: int | None = None, cpus_per_worker: float = 1,
                    gpus_per_worker: float = 0, threads: int | None = None,
                    address: str | None = None, force: bool = False,
                    manifest: str | os.PathLike | None = None, quiet: bool = False,
                    timeout: float | None = None) -> Report:
    """Compress images (folders searched recursively, or files) to .aec files under output.

    quality / bpp / psnr / effort / model / strip / preview: as `aecodec compress` (the files
    are the same bytes). workers: actors (default: the cluster's CPUs / cpus_per_worker, or
    its GPUs / gpus_per_worker); gpus_per_worker > 0 codes on CUDA (onnxruntime-gpu on the workers);
    threads: per worker (default cpus_per_worker). address: a Ray cluster to join (default:
    an already initialised Ray, else a local one on the loopback interface, stopped after).
    force: redo outputs that are already there. timeout: seconds, after which the images not
    done are reported as failures (a re-run resumes). Returns a Report; the manifest of
    failures is written to output/aecodec-failures.json (or manifest)."""
    job = {"target": _target(quality, bpp, psnr), "effort": _checked(arguments.effort, effort),
           "model": model, "strip": bool(strip), "force": bool(force),
           "preview": _checked(arguments.preview, preview)}
    if threads:
        job["threads"] = _checked(arguments.threads, threads)
    return run_job("compress", inputs, output, job=job, workers=workers,
                   cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                   address=address, manifest=manifest, quiet=quiet, timeout=timeout)


def decompress_folder(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                      output: str | os.PathLike, *, format: str = "png",
                      workers: int | None = None, cpus_per_worker: float = 1,
                      gpus_per_worker: float = 0, threads: int | None = None,
                      address: str | None = None, force: bool = False,
                      manifest: str | os.PathLike | None = None, quiet: bool = False,
                      timeout: float | None = None) -> Report:
    """Decode .aec files (folders searched recursively, or files) to images under output,
    as `aecodec decompress --format FORMAT` writes them. Other options: compress_folder."""
    from .cli import output_suffix

    try:
        suffix = output_suffix(format)
    except ValueError as e:
        raise BatchError(str(e)) from None
    fmt = format.lower()
    job = {"format": fmt, "force": bool(force)}
    if threads:
        job["threads"] = _checked(arguments.threads, threads)
    return run_job("decompress", inputs, output, job=job, workers=workers,
                   cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                   address=address, manifest=manifest, quiet=quiet, timeout=timeout,
                   suffix=suffix)


# ---- command line -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from .cli import (
        add_encode_options,
        checked,  # the CLI's option types: the API's checks
    )

    p = argparse.ArgumentParser(
        prog="aecodec batch",
        description="Compress or decompress whole folders with a pool of Ray workers, each "
                    "loading the model once; OUT mirrors the tree of each input folder. "
                    "Needs Ray: pip install \"aecodec[ray]\".",
        epilog="Examples: aecodec batch compress photos/ out/ -q 75  ·  aecodec batch "
               "compress photos/ out/ --address HOST:6379 --gpus-per-worker 1  ·  aecodec "
               "batch decompress out/ png/")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser("compress", help="encode images to .aec files under OUT")
    c.add_argument("inputs", nargs="+", metavar="IN", help="image folders (searched "
                   "recursively) or files")
    c.add_argument("output", metavar="OUT", help="output folder")
    add_encode_options(c)  # as aecodec compress
    d = sub.add_parser("decompress", help="decode .aec files to images under OUT")
    d.add_argument("inputs", nargs="+", metavar="IN", help=".aec folders (searched "
                   "recursively) or files")
    d.add_argument("output", metavar="OUT", help="output folder")
    d.add_argument("--format", default="png", metavar="FMT",
                   help="png (default), jpeg, webp, tiff, bmp, …")
    for sp in (c, d):
        g = sp.add_argument_group("Ray")
        g.add_argument("--address", default=None, metavar="HOST:PORT",
                       help="join this Ray cluster (default: start a local Ray on the "
                            "loopback interface for the job)")
        g.add_argument("--workers", type=int, default=None, metavar="N",
                       help="actors, each loading the model once (default: the cluster's "
                            "CPUs / --cpus-per-worker, or GPUs / --gpus-per-worker)")
        g.add_argument("--cpus-per-worker", type=float, default=1, metavar="C",
                       help="CPUs reserved per actor (default 1)")
        g.add_argument("--gpus-per-worker", type=float, default=0, metavar="G",
                       help="GPUs per actor: > 0 codes on CUDA (needs onnxruntime-gpu on the "
                            "workers; default 0, CPU actors)")
        g.add_argument("--threads", type=checked(arguments.threads, int), default=None,
                       metavar="N",
                       help="threads per actor (default: --cpus-per-worker)")
        g.add_argument("--timeout", type=float, default=None, metavar="S",
                       help="stop after S seconds; the images not done are reported as "
                            "failures (a re-run resumes)")
        sp.add_argument("-f", "--force", action="store_true",
                        help="redo outputs that already exist (default: keep valid ones)")
        sp.add_argument("--manifest", default=None, metavar="FILE",
                        help=f"where the failures go (default: OUT/{MANIFEST_NAME})")
        sp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    common = {"workers": args.workers, "cpus_per_worker": args.cpus_per_worker,
              "gpus_per_worker": args.gpus_per_worker, "threads": args.threads,
              "address": args.address, "force": args.force, "manifest": args.manifest,
              "quiet": args.quiet, "timeout": args.timeout}
    try:
        if args.command == "compress":
            report = compress_folder(args.inputs, args.output, quality=args.quality,
                                     bpp=args.bpp, psnr=args.psnr, effort=args.effort,
                                     model=args.model, strip=args.strip,
                                     preview=args.preview, **common)
        else:
            report = decompress_folder(args.inputs, args.output, format=args.format, **common)
    except BatchError as e:
        print(f"aecodec: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aecodec: error: interrupted (a re-run resumes)", file=sys.stderr)
        return 130
    return 0 if report.ok else 1
