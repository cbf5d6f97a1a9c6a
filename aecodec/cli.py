"""The `aecodec` command line: compress, decompress, info (and train/export with torch).

Outputs go to a temporary file in the target folder and are renamed into place, so a failure
never leaves a half-written file; existing files are kept unless --force. Each failure prints
one line on stderr, the batch goes on, and the exit code is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from . import arguments, rate_control
from .errors import UnsupportedImageError
from .geometry import PREVIEW_SCALE, PREVIEW_SCALES, reduced_size

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tqdm import tqdm

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STDIO = "-"
FORMAT_EXT = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif",
              "bmp": ".bmp", "ppm": ".ppm", "tga": ".tga", "gif": ".gif"}


class CliError(Exception):
    """A per-file failure with a message for the user."""


# ---- argument parsing ---------------------------------------------------------------------

def add_encode_options(c: argparse.ArgumentParser) -> None:
    """The encoder's options (target, model, metadata, effort), shared by `aecodec compress`
    and `aecodec batch compress`, so both parse and check them alike."""
    t = c.add_mutually_exclusive_group()
    t.add_argument("-q", "--quality", type=checked(arguments.quality), metavar="Q",
                   help="quality 0-100, higher is better (default 75)")
    t.add_argument("--bpp", type=checked(arguments.positive, name="bpp"), metavar="B",
                   help="target bits per pixel (searched)")
    t.add_argument("--psnr", type=checked(arguments.positive, name="psnr"), metavar="P",
                   help="target PSNR in dB (searched)")
    c.add_argument("--model", default=None,
                   help="model package name or folder (default: the shipped default model)")
    c.add_argument("--strip", action="store_true", help="drop ICC profile, EXIF and XMP")
    c.add_argument("--preview", action=argparse.BooleanOptionalAction, default=None,
                   help="embed the image at 1/8 of its size (~1-3 %% of the file) for fast "
                        "thumbnails (decompress --scale 1/8, Pillow's draft); default: for "
                        "images of 2048 px or more on their short side")
    c.add_argument("-e", "--effort", type=checked(arguments.effort, int),
                   default=rate_control.DEFAULT_EFFORT, metavar="{1..5}",
                   help="encoder effort: 1-3 code 1, 2 or all 8 orientations of the image and "
                        "keep the best file (2 and 3 encode ~6x and ~20x slower); 4 and 5 "
                        "(need torch) then refine its latents by 12 or 40 gradient steps "
                        "(seconds to minutes per image); default 1")


def checked(check: Callable[..., object], parse: Callable[[str], object] = float,
            name: str | None = None) -> Callable[[str], object]:
    """An argparse type: parse the text, then the API's own check (one message for both)."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(name, value) if name else check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aecodec", description="aecodec: a learned image codec (.aec files).",
        epilog="Examples: aecodec compress photo.png  ·  aecodec compress -q 90 photos/ -o out/  "
               "·  aecodec decompress photo.aec  ·  aecodec info photo.aec")
    p.add_argument("--version", action="version", version=f"aecodec {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compress", help="encode images to .aec",
                       description="Encode images (any format Pillow reads) to .aec files.")
    c.add_argument("inputs", nargs="+", metavar="IN",
                   help="image files, folders (searched recursively) or - for stdin")
    c.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input), folder (several), or - for stdout; default: "
                        "NAME.aec in the current folder (stdout for stdin)")
    add_encode_options(c)
    c.add_argument("--refine", type=checked(arguments.refine, int), default=0, metavar="N",
                   help="fit the latents to each image with N gradient steps (needs torch; "
                        "e.g. 60: much slower, smaller files at the same quality)")
    _common(c)

    d = sub.add_parser("decompress", help="decode .aec files to images",
                       description="Decode .aec files to PNG (or another format).")
    d.add_argument("inputs", nargs="+", metavar="IN.aec",
                   help=".aec files, folders (searched recursively) or - for stdin")
    d.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input), folder (several), or - for stdout; default: "
                        "NAME.png in the current folder (stdout for stdin)")
    d.add_argument("--format", default=None, metavar="FMT",
                   help="png (default), jpeg, webp, tiff, bmp, … (default: from -o's extension)")
    d.add_argument("--scale", default="1", type=_scale, metavar="1/K",
                   help="decode a preview at 1/2, 1/4 or 1/8 of the size (the model's preview "
                        "head, no full synthesis); default 1")
    d.add_argument("--fast", action="store_true",
                   help="the model's fast decoder profile: a lighter synthesis, slightly "
                        "different pixels (an error for a model without one)")
    _common(d)

    i = sub.add_parser("info", help="show an .aec file's header, model, bpp and metadata",
                       description="Show header, model, bits per pixel and metadata.")
    i.add_argument("inputs", nargs="+", metavar="FILE.aec", help=".aec files or - for stdin")
    i.add_argument("--json", action="store_true", help="one JSON object per file")

    ms = sub.add_parser("models", help="list the installed models (id, role, size, Kodak figures)",
                        description="List the installed model packages: the default encoder, "
                                    "other encoders, and decode-only (retired) models that "
                                    "keep older files decodable.")
    ms.add_argument("--json", action="store_true", help="one JSON object per model")

    sub.add_parser("batch", help='compress or decompress whole folders on Ray workers (needs '
                                 'ray: pip install "aecodec[ray]")', add_help=False)
    from .analysis_cli import add_parsers

    add_parsers(sub, _common)  # surprise, features
    sub.add_parser("train", help='train a model (needs torch: pip install "aecodec[train]")',
                   add_help=False)
    sub.add_parser("export", help='export a model package (needs torch: pip install '
                                  '"aecodec[train]")', add_help=False)
    return p


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    sp.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="cpu (default) or cuda (needs onnxruntime-gpu)")
    sp.add_argument("--threads", type=checked(arguments.threads, int), default=0, metavar="N",
                    help="worker threads (default: all cores)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _version() -> str:
    from . import __version__

    return __version__


# ---- inputs and outputs -------------------------------------------------------------------

def image_extensions() -> set:
    return {ext for ext in Image.registered_extensions() if ext != ".aec"}


AEC_EXTENSIONS = {".aec"}


def expand(inputs: list[str], exts: set[str]) -> list[tuple[str, Path | None]]:
    """(input, path relative to the folder it came from, or None) for every input file: a
    folder gives its files with these extensions (lower-cased), recursively."""
    out = []
    for arg in inputs:
        p = Path(arg)
        if arg != STDIO and p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
            out += [(str(f), f.relative_to(p)) for f in found]
            if not found:
                out.append((arg, Path("")))  # reported as an error: nothing to do there
        else:
            out.append((arg, None))
    return out


def plan(items: Sequence[tuple[str, Path | None]], output: str | None,
         suffix: str) -> list[tuple[str, str | None]]:
    """Pair every input with its output path (STDIO for stdout); None means an error."""
    many = len(items) > 1 or any(rel is not None for _, rel in items)
    if output == STDIO and many:
        raise CliError("-o - (stdout) takes exactly one input file")
    out_dir = None
    if output is not None and output != STDIO and (many or Path(output).is_dir()):
        out_dir = Path(output)
    elif output is None:
        out_dir = Path(".")
    pairs = []
    for src, rel in items:
        if output is None and src == STDIO:
            pairs.append((src, STDIO))
        elif out_dir is None:
            pairs.append((src, output))
        else:
            name = (rel if rel is not None and rel != Path("") else Path(
                "stdin" if src == STDIO else Path(src).name))
            pairs.append((src, str(out_dir / name.with_suffix(suffix))))
    return pairs


def read_source(src: str) -> bytes:
    if src == STDIO:
        return sys.stdin.buffer.read()
    p = Path(src)
    if p.is_dir():
        raise CliError("no matching files in this folder")
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise CliError("no such file") from None
    except IsADirectoryError:
        raise CliError("is a folder") from None


def source_image(data: bytes) -> Image.Image:
    """The image in a source file's bytes, loaded: UnsupportedImageError for an empty file or
    one Pillow cannot identify (Pillow's own message names an anonymous buffer)."""
    if not data:
        raise UnsupportedImageError("empty file")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImageError("not an image file Pillow can read") from None
    try:
        im.load()
    except BaseException:
        im.close()
        raise
    return im


def check_target(dst: str, force: bool) -> None:
    if dst == STDIO:
        if sys.stdout.isatty():
            raise CliError("refusing to write binary data to a terminal: use -o FILE or "
                           "redirect stdout")
        return
    if os.path.lexists(dst) and not force:
        raise CliError(f"{dst} exists (use --force to overwrite)")
    if os.path.isdir(dst):
        raise CliError(f"{dst} is a folder")


def write_atomic(dst: str, data: bytes, force: bool) -> None:
    """Write to a temporary file next to dst, then rename it into place (no-clobber unless
    force). Nothing is left behind on failure."""
    if dst == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    folder = os.path.dirname(dst) or "."
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CliError(f"cannot write {dst}: {folder} is not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dst) + ".", suffix=".tmp",
                                   dir=folder)
    except OSError as e:  # name dst, not the temporary file
        raise CliError(f"cannot write {dst}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if force:
            os.replace(tmp, dst)
        else:
            try:
                os.link(tmp, dst)  # atomic and fails if dst exists
            except FileExistsError:
                raise CliError(f"{dst} exists (use --force to overwrite)") from None
            except OSError:  # no hard links here: check, then rename
                if os.path.lexists(dst):
                    raise CliError(f"{dst} exists (use --force to overwrite)") from None
                os.replace(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- commands -----------------------------------------------------------------------------

def run_batch(pairs: Sequence[tuple[str, str | None]], work: Callable[[str, str | None], object],
              quiet: bool, force: bool) -> int:
    """Run work(src, dst) for every pair with a progress bar; one stderr line per failure."""
    from tqdm import tqdm

    failures = 0
    seen: set = set()
    bar = tqdm(pairs, unit="file", file=sys.stderr, disable=quiet or len(pairs) <= 1,
               dynamic_ncols=True)
    for src, dst in bar:
        try:
            key = dst if dst == STDIO else os.path.abspath(dst)
            if key in seen and dst != STDIO:
                raise CliError(f"{dst} is also the output of an earlier input")
            seen.add(key)
            check_target(dst, force)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                work(src, dst)
            for w in caught:  # e.g. a CMYK source converted: say which file
                warn(f"{src if src != STDIO else '<stdin>'}: {w.message}", bar)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one line per failure, then go on
            failures += 1
            error(f"{src if src != STDIO else '<stdin>'}: {describe(e)}", bar)
    if len(pairs) > 1 and not quiet:
        print(f"aecodec: {len(pairs) - failures} of {len(pairs)} files done"
              + (f", {failures} failed" if failures else ""), file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def describe(e: Exception) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.strerror and e.filename:
        msg = f"{e.strerror}: {e.filename}"
    return " ".join(msg.split())  # one line


def error(msg: str, bar: tqdm | None = None, kind: str = "error") -> None:
    line = f"aecodec: {kind}: {' '.join(msg.split())}"
    if bar is not None and not bar.disable:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def warn(msg: str, bar: tqdm | None = None) -> None:
    error(msg, bar, kind="warning")


def cmd_compress(args: argparse.Namespace) -> int:
    from .codec import Codec

    try:
        codec = Codec(args.model, device=args.device, threads=args.threads)
        pairs = plan(expand(args.inputs, image_extensions()), args.output, ".aec")
    except Exception as e:
        error(describe(e))
        return EXIT_FAILED
    target = {"quality": args.quality, "bpp": args.bpp, "psnr": args.psnr}

    def work(src, dst):
        with source_image(read_source(src)) as im, _refine_bar(args, src) as progress:
            out = codec.encode(im, **{k: v for k, v in target.items() if v is not None},
                               metadata=not args.strip, refine=args.refine,
                               effort=args.effort, progress=progress,
                               preview=args.preview).data
        write_atomic(dst, out, args.force)

    return run_batch(pairs, work, args.quiet, args.force)


@contextlib.contextmanager
def _refine_bar(args, src: str):
    """A progress bar over the refinement steps of one file (they take seconds each): yields
    the per-call progress callback (None without refinement or with --quiet)."""
    if not (args.refine or args.effort >= min(rate_control.EFFORT_REFINE_STEPS)) or args.quiet:
        yield None
        return
    from tqdm import tqdm

    name = "<stdin>" if src == STDIO else os.path.basename(src)
    bar = tqdm(total=args.refine or None, unit="step", desc=f"refining {name}", leave=False,
               file=sys.stderr, dynamic_ncols=True)

    def step(done: int, total: int) -> None:
        if done == 1:  # the total is known once the refinement starts (steps × tiles)
            bar.reset(total=total)
        bar.update(1)

    try:
        yield step
    finally:
        bar.close()


def image_bytes(im: Image.Image, fmt: str) -> bytes:
    """A decoded image as the bytes `aecodec decompress --format fmt` (and `aecodec batch
    decompress`) write, with its ICC profile, EXIF and XMP."""
    fmt = fmt.lower()
    if fmt in ("jpeg", "jpg") and im.mode in ("RGBA", "LA"):
        raise CliError(f"JPEG cannot store the alpha channel of this {im.mode} image: "
                       "use --format png or webp")
    buf = io.BytesIO()
    extra = {k: im.info[k] for k in ("icc_profile", "exif") if im.info.get(k)}
    if fmt == "png" and im.info.get("xmp"):
        extra["xmp"] = im.info["xmp"]  # Pillow writes XMP for PNG (and JPEG/WebP/TIFF)
    im.save(buf, format=fmt.upper().replace("JPG", "JPEG"), **extra)
    return buf.getvalue()


def _save_format(args, dst: str) -> str:
    if args.format:
        return args.format.lower()
    if dst != STDIO:
        ext = Path(dst).suffix.lower()
        fmt = Image.registered_extensions().get(ext)
        if fmt and fmt != "AEC":
            return fmt.lower()
    return "png"


def _scale(text: str) -> int:
    """"1", "1/2", "1/4", "1/8" (or "2", "4", "8": PREVIEW_SCALES) → the divisor."""
    k = text.split("/", 1)[1] if text.startswith("1/") else text
    allowed = (1, *PREVIEW_SCALES)
    if k not in map(str, allowed):
        names = ["1"] + [f"1/{s}" for s in PREVIEW_SCALES]
        raise argparse.ArgumentTypeError(f"{text!r}: use {', '.join(names[:-1])} or {names[-1]}")
    return int(k)


def output_suffix(fmt: str) -> str:
    """The file suffix `decompress --format fmt` writes (".png" for png, ...); ValueError for a
    format Pillow cannot write."""
    f = fmt.lower()
    if f not in FORMAT_EXT and f.upper() not in Image.SAVE:
        raise ValueError(f"unknown output format {fmt!r} (try png, jpeg, webp, tiff, bmp)")
    return FORMAT_EXT.get(f, "." + f)


def cmd_decompress(args: argparse.Namespace) -> int:
    from .codec import Codec

    try:
        suffix = output_suffix(args.format or "png")
    except ValueError as e:
        error(str(e))
        return EXIT_FAILED
    try:
        codec = Codec(device=args.device, threads=args.threads)
        pairs = plan(expand(args.inputs, AEC_EXTENSIONS), args.output, suffix)
    except Exception as e:
        error(describe(e))
        return EXIT_FAILED

    def work(src, dst):
        im = codec.decode(read_source(src), scale=args.scale,
                          profile="fast" if args.fast else "exact").image
        write_atomic(dst, image_bytes(im, _save_format(args, dst)), args.force)

    return run_batch(pairs, work, args.quiet, args.force)


def describe_file(data: bytes, name: str) -> dict:
    """Everything `aecodec info` shows, as a dict."""
    from . import container, model_package

    f = container.parse(data)
    h = f.header
    m, nz, installed = h.latent_channels, h.hyper_channels, False
    try:
        folder = model_package.find(h.model_name, h.model_hash.hex())
        arch = model_package.read_manifest(folder).get("architecture", {})
        installed = True
        m, nz = m or arch.get("M"), nz or arch.get("Nz")  # version 2+ files leave them to the model
    except Exception:
        pass
    meta = {k: len(v) for k, v in f.metadata.items()}
    icc_desc = None
    if f.metadata.get("icc_profile"):
        try:
            from PIL import ImageCms

            icc_desc = ImageCms.getProfileDescription(
                ImageCms.ImageCmsProfile(io.BytesIO(f.metadata["icc_profile"]))).strip()
        except Exception:
            icc_desc = None
    return {
        "file": name, "format_version": f"{h.version[0]}.{h.version[1]}", "width": h.width,
        "height": h.height, "mode": h.mode, "bytes": len(data),
        "bpp": round(len(data) * 8 / (h.width * h.height), 4),
        "model": h.model_name, "model_hash": h.model_hash.hex(), "model_installed": installed,
        "quality": round(h.quality, 3), "orientation": h.orientation,
        "latent_shape": [m, h.latent_height, h.latent_width],
        "hyper_latent_shape": [nz, h.hyper_height, h.hyper_width],
        "slices": h.n_slices, "slice_rows": h.slice_rows,
        "z_stream_bytes": len(f.z_stream), "y_stream_bytes": sum(len(s) for s in f.y_streams),
        "alpha_bytes": len(f.alpha) if f.alpha is not None else None,
        "preview_bytes": len(f.preview) if f.preview is not None else None,
        "preview_size": (list(reduced_size(h.width, h.height, PREVIEW_SCALE))
                         if f.preview is not None else None),
        "metadata_bytes": meta, "icc_description": icc_desc, "skipped_chunks": f.skipped,
    }


_ORIENTATION_NAMES = ("as is", "turned a quarter left", "turned half", "turned a quarter right",
                      "mirrored", "mirrored, turned a quarter left", "mirrored, turned half",
                      "mirrored, turned a quarter right")


def _format_info(d: dict) -> str:
    from . import model_package

    meta = ", ".join(f"{ {'icc_profile': 'ICC profile', 'exif': 'EXIF', 'xmp': 'XMP'}[k]} "
                     f"{v:,} bytes" + (f" ({d['icc_description']})" if k == "icc_profile"
                                       and d["icc_description"] else "")
                     for k, v in d["metadata_bytes"].items()) or "none"
    m, yh, yw = d["latent_shape"]
    z_shape = "x".join(str(v or "?") for v in d["hyper_latent_shape"])  # channels None: no model
    alpha = "none" if d["alpha_bytes"] is None else f"PNG, {d['alpha_bytes']:,} bytes"
    preview = ("none" if d["preview_bytes"] is None else
               f"{'x'.join(map(str, d['preview_size']))} (1/{PREVIEW_SCALE}), "
               f"{d['preview_bytes']:,} bytes")
    lines = [
        f"{d['file']}: aecodec image, format {d['format_version']}",
        f"  size:      {d['width']}x{d['height']} {d['mode']}",
        f"  file:      {d['bytes']:,} bytes, {d['bpp']:.4f} bpp",
        f"  model:     {d['model']} (content hash {model_package.short_hash(d['model_hash'])}"
        f"{'' if d['model_installed'] else ', NOT INSTALLED'})",
        f"  quality:   {d['quality']:g}, coded in orientation {d['orientation']} "
        f"({_ORIENTATION_NAMES[d['orientation']]})",
        f"  latents:   y {m or '?'}x{yh}x{yw} in {d['slices']} slice(s) of {d['slice_rows']} rows "
        f"({d['y_stream_bytes']:,} bytes), z {z_shape} "
        f"({d['z_stream_bytes']:,} bytes)",
        f"  alpha:     {alpha}",
        f"  preview:   {preview}",
        f"  metadata:  {meta}",
    ]
    if d["skipped_chunks"]:
        lines.append(f"  skipped:   unknown optional chunks {', '.join(d['skipped_chunks'])}")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    failures = 0
    for src in args.inputs:
        try:
            d = describe_file(read_source(src), "<stdin>" if src == STDIO else src)
            print(json.dumps(d) if args.json else _format_info(d))
        except Exception as e:
            failures += 1
            error(f"{src if src != STDIO else '<stdin>'}: {describe(e)}")
    return EXIT_FAILED if failures else EXIT_OK


def describe_models() -> list[dict]:
    """Everything `aecodec models` shows: one dict per installed package, default first."""
    from . import model_package

    rows = []
    for name, h, folder in model_package.available():
        m = model_package.read_manifest(folder)
        default = model_package.is_default(name, h)
        role = ("default encoder" if default else
                "encoder" if model_package.can_encode(folder) else "decode-only")
        kodak = (m.get("figures") or {}).get("kodak") or {}
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        rows.append({"model": name, "content_hash": h, "id": model_package.model_id(name, h),
                     "role": role, "bytes": size, "folder": str(folder),
                     "steps": (m.get("provenance") or {}).get("steps"),
                     "kodak_bd_rate": kodak.get("bd_rate_percent"),
                     "kodak_effort": kodak.get("effort"), "kodak_date": kodak.get("date_utc")})
    return sorted(rows, key=lambda r: (r["role"] != "default encoder", r["role"], r["id"]))


def _format_model(r: dict) -> str:
    bd = r["kodak_bd_rate"] or {}
    peers = ", ".join(f"{peer} {v['psnr']:+.1f} %" for peer, v in bd.items()
                      if isinstance(v, dict) and isinstance(v.get("psnr"), (int, float)))
    figures = (f"Kodak BD-rate (PSNR, effort {r['kodak_effort'] or 1}) vs {peers}" if peers
               else "no Kodak figures")
    steps = f"{r['steps']:,} steps" if r["steps"] else "steps unknown"
    return (f"{r['id']:<28} {r['role']:<16} {r['bytes'] / 2**20:6.1f} MiB  {steps}\n"
            f"{'':<28} {figures}\n{'':<28} {r['folder']}")


def cmd_models(args: argparse.Namespace) -> int:
    rows = describe_models()
    for r in rows:
        print(json.dumps(r) if args.json else _format_model(r))
    if not rows:
        error("no model package is installed: reinstall aecodec")
        return EXIT_FAILED
    return EXIT_OK


def delegate(command: str, argv: list[str]) -> int:
    """`aecodec train|export …` → aecodec.train.cli (needs torch)."""
    try:
        from .train import cli as train_cli
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in ("torch", "onnx", "onnxscript"):
            error(f'aecodec {command} needs PyTorch and ONNX ({e.name} is missing): '
                   'pip install "aecodec[train]"')
            return EXIT_FAILED
        raise
    fn = train_cli.train_main if command == "train" else train_cli.export_main
    return int(fn(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "export"):
        return delegate(argv[0], argv[1:])
    if argv and argv[0] == "batch":  # aecodec.batch (Ray Data)
        from . import batch

        return batch.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        from .analysis_cli import COMMANDS

        return {"compress": cmd_compress, "decompress": cmd_decompress,
                "info": cmd_info, "models": cmd_models, **COMMANDS}[args.command](args)
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_FAILED
