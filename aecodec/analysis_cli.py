"""`aecodec surprise` and `aecodec features`: the command line of aecodec.analysis.

    aecodec surprise photo.png -o photo-surprise.png     # heat-map overlay + its score
    aecodec surprise photos/ --json                       # ranked, most unusual first
    aecodec features photos/ archive/*.aec -o feats.npz   # embeddings (+ ŷ) of every file

Inputs are images or .aec files (an .aec is analysed from its stream alone: no pixels decoded,
except for an overlay's background), or folders searched recursively for both.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import cli
from .arguments import DEFAULT_QUALITY

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

OVERLAY_SUFFIX = "-surprise.png"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the two subcommands to cli.build_parser's subparsers."""
    s = sub.add_parser(
        "surprise", help="where the model finds images unusual: heat-map overlays and scores",
        description="Surprise maps (README, 'Surprise maps and features'): the bits the model "
                    "spends on each part of an image (and, from pixels, its reconstruction "
                    "error). One input: its score; several or a folder: a ranked list, most "
                    "unusual first.")
    s.add_argument("inputs", nargs="+", metavar="IN",
                   help="images or .aec files, or folders (searched recursively)")
    s.add_argument("-o", "--output", metavar="OUT",
                   help="write the heat-map overlay: a PNG file (one input) or a folder "
                        f"(NAME{OVERLAY_SUFFIX} per input); default: scores only")
    s.add_argument("-q", "--quality", type=float, default=DEFAULT_QUALITY, metavar="Q",
                   help=f"quality images are encoded at, 0-100 (default {DEFAULT_QUALITY:g}; "
                        "an .aec file keeps its own)")
    s.add_argument("--map", default="auto", choices=("auto", "bits", "error", "combined"),
                   help="what the overlay shows (default: combined from pixels, bits from .aec)")
    s.add_argument("--json", action="store_true", help="one JSON object per file, ranked")
    _model(s)
    common(s)

    f = sub.add_parser(
        "features", help="latent features and embeddings of images or .aec files (.npz)",
        description="Save aecodec.embedding (and aecodec.features, the latent ŷ) of every "
                    "input to one .npz: names (str [N]), embeddings (float32 [N, D]) and "
                    "features_00000, ... (float32 [M, h, w], unless --embeddings-only). "
                    ".aec files are read from their stream alone (no pixels decoded).")
    f.add_argument("inputs", nargs="+", metavar="IN",
                   help="images or .aec files, or folders (searched recursively)")
    f.add_argument("-o", "--output", metavar="OUT.npz", required=True, help="the .npz to write")
    f.add_argument("-q", "--quality", type=float, default=DEFAULT_QUALITY, metavar="Q",
                   help=f"quality images are encoded at, 0-100 (default {DEFAULT_QUALITY:g})")
    f.add_argument("--embeddings-only", action="store_true",
                   help="leave out the feature maps (much smaller)")
    _model(f)
    common(f)


def _model(sp) -> None:
    sp.add_argument("--model", default=None,
                    help="model that encodes images (default: the default model; an .aec file "
                         "is read with the model it names)")


def _source(src: str):
    """A file's bytes as analysis input: .aec bytes or a file-like image."""
    data = cli.read_source(src)
    from .container import MAGIC

    return data if data[: len(MAGIC)] == MAGIC or src.lower().endswith(".aec") else (
        io.BytesIO(data))


def _check_quality(args) -> bool:
    if not 0 <= args.quality <= 100:
        cli.error("--quality must be between 0 and 100")
        return False
    return True


def _bar(items, quiet: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, unit="file", desc=desc, file=sys.stderr, dynamic_ncols=True,
                disable=quiet or len(items) <= 1)


def _setup(args, codec_class, target: str | None = None):
    """(codec, inputs) of a command, or None after printing why not (bad quality, a model or
    device that cannot be loaded, no inputs, an existing target without --force)."""
    if not _check_quality(args):
        return None
    try:
        codec = codec_class(args.model, device=args.device, threads=args.threads)
        items = cli.expand(args.inputs, cli.image_extensions() | cli.AEC_EXTENSIONS)
        if target is not None:
            cli.check_target(target, args.force)
    except Exception as e:
        cli.error(cli.describe(e))
        return None
    return codec, items


def cmd_surprise(args: argparse.Namespace) -> int:
    from .analysis import surprise
    from .codec import Codec

    setup = _setup(args, Codec)
    if setup is None:
        return cli.EXIT_FAILED
    codec, items = setup
    many = len(items) > 1 or any(rel is not None for _, rel in items)
    out_dir = None
    if args.output is not None and (many or Path(args.output).is_dir()):
        out_dir = Path(args.output)
    rows, failures, seen = [], 0, set()
    bar = _bar(items, args.quiet, "surprise")
    for src, rel in bar:
        try:
            if rel == Path(""):
                raise cli.CliError("no images or .aec files in this folder")
            s = surprise(_source(src), args.quality, codec=codec)
            row = {"file": src, "score": round(s.score, 4), "bpp": round(s.bpp, 4),
                   "psnr": None if s.psnr is None else round(s.psnr, 3),
                   "quality": round(s.quality, 3), "from": "pixels" if s.error is not None
                   else "aec"}
            if args.output is not None:
                if out_dir is None:
                    dst = args.output
                else:
                    name = rel if rel is not None else Path(Path(src).name)
                    dst = str(out_dir / name.parent / (name.stem + OVERLAY_SUFFIX))
                key = os.path.abspath(dst)
                if key in seen:
                    raise cli.CliError(f"{dst} is also the output of an earlier input")
                seen.add(key)
                cli.check_target(dst, args.force)
                buf = io.BytesIO()
                s.to_image(args.map).save(buf, format="PNG")
                cli.write_atomic(dst, buf.getvalue(), args.force)
                row["overlay"] = dst
            rows.append(row)
        except KeyboardInterrupt:
            raise
        except Exception as e:
            failures += 1
            cli.error(f"{src}: {cli.describe(e)}", bar)
    rows.sort(key=lambda r: -r["score"])
    for rank, r in enumerate(rows, 1):
        if args.json:
            print(json.dumps({"rank": rank, **r}))
        elif many:
            psnr = "" if r["psnr"] is None else f"  {r['psnr']:6.2f} dB"
            print(f"{rank:4d}  {r['score']:7.3f}  {r['bpp']:6.3f} bpp{psnr}  {r['file']}")
        else:
            psnr = "" if r["psnr"] is None else f", {r['psnr']:.2f} dB"
            print(f"{r['file']}: surprise score {r['score']:.3f} ({r['bpp']:.3f} bpp at "
                  f"quality {r['quality']:g}{psnr})"
                  + (f" -> {r['overlay']}" if "overlay" in r else ""))
    return cli.EXIT_FAILED if failures else cli.EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    from .analysis import features, pool
    from .codec import Codec

    setup = _setup(args, Codec, target=args.output)
    if setup is None:
        return cli.EXIT_FAILED
    codec, items = setup
    names, embeddings, maps, failures = [], [], {}, 0
    bar = _bar(items, args.quiet, "features")
    for src, rel in bar:
        try:
            if rel == Path(""):
                raise cli.CliError("no images or .aec files in this folder")
            y = features(_source(src), args.quality, codec=codec)
            if not args.embeddings_only:
                maps[f"features_{len(names):05d}"] = y
            names.append(src)
            embeddings.append(pool(y))
        except KeyboardInterrupt:
            raise
        except Exception as e:
            failures += 1
            cli.error(f"{src}: {cli.describe(e)}", bar)
    if names:
        buf = io.BytesIO()
        np.savez(buf, names=np.array(names), embeddings=np.stack(embeddings), **maps)
        try:
            cli.write_atomic(args.output, buf.getvalue(), args.force)
        except Exception as e:
            cli.error(cli.describe(e))
            return cli.EXIT_FAILED
        if not args.quiet:
            print(f"aecodec: {len(names)} file(s) -> {args.output} (embeddings "
                  f"{embeddings[0].shape[0]}-d{'' if args.embeddings_only else ', features'})",
                  file=sys.stderr)
    return cli.EXIT_FAILED if failures or not names else cli.EXIT_OK


COMMANDS = {"surprise": cmd_surprise, "features": cmd_features}
