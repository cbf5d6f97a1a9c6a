"""`aecodec export`: training state → a self-contained model package (docs/model-package.md)."""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import model_package
from ..cdf_tables import gaussian_family, pmf_to_cdf
from .entropy_models import SCALE_MAX, SCALE_MIN
from .networks import HyperpriorCodec, model_kmac_per_pixel

PACKAGE_FORMAT = 2  # per-file digests; the content hash covers IDENTITY_FILES only
PRECISION = 16
N_SCALES = 64
Z_TAIL = 1e-9
# What training needs beyond the runtime files (the ONNX graphs hold the transforms' weights,
# hyper_synthesis.npz h_s's): the factorized density's parameters and the log-domain gains
# and level scales, whose exp() the tables hold. Small (~60 kB): no weight is stored twice.
TRAINING_FILE = model_package.TRAINING_FILE


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with fixed zip timestamps and order, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name], order="C"), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)),
                        buf.getvalue())


def content_hash(folder: Path) -> str:
    """The model's id: model_package.compute_hash over its identity files."""
    return model_package.compute_hash(Path(folder), model_package.IDENTITY_FILES)


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path, inp: str, out: str,
                 extra: dict[str, torch.Tensor] | None = None) -> None:
    """One ONNX graph with a dynamic-size image-like input (and fixed-shape `extra` inputs)."""
    extra = extra or {}
    torch.onnx.export(
        module, (example, *extra.values()), str(path), input_names=[inp, *extra],
        output_names=[out],
        dynamic_axes={inp: {2: "height", 3: "width"}, out: {2: "height", 3: "width"}},
        opset_version=17, dynamo=False, do_constant_folding=True,
    )
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def scale_table() -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced Gaussian scales and the float32 log-σ thresholds between neighbours."""
    scales = np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), N_SCALES))
    logs = np.log(scales)
    return scales, ((logs[:-1] + logs[1:]) / 2).astype(np.float32)


def factorized_tables(model: HyperpriorCodec, radius: int = 256) -> dict[str, np.ndarray]:
    """Per-channel integer CDFs of the factorized ẑ density, support trimmed to the tails."""
    pmf, first = model.z_density.pmf_table(radius)
    cdfs, offsets = [], []
    for row in pmf:
        cum = np.cumsum(row)
        lo = int(np.searchsorted(cum, Z_TAIL / 2))
        hi = int(np.searchsorted(cum, cum[-1] - Z_TAIL / 2))
        hi = max(hi, lo)
        core = row[lo : hi + 1]
        tail = max(0.0, 1.0 - float(core.sum()))
        cdfs.append(pmf_to_cdf(np.append(core, tail), PRECISION))
        offsets.append(first + lo)
    width = max(len(c) for c in cdfs)
    table = np.zeros((len(cdfs), width), dtype=np.uint32)
    for i, c in enumerate(cdfs):
        table[i, : len(c)] = c
        table[i, len(c) :] = c[-1]
    return {
        "z_cdf": table,
        "z_cdf_len": np.array([len(c) for c in cdfs], dtype=np.int32),
        "z_offset": np.array(offsets, dtype=np.int32),
    }


def round_hyper_synthesis_to_fp16(model: HyperpriorCodec) -> None:
    """The package stores h_s in float16: make the torch weights equal to what the core uses."""
    with torch.no_grad():
        for p in model.h_s.parameters():
            p.copy_(p.half().float())


def hyper_synthesis_arrays(model: HyperpriorCodec) -> dict[str, np.ndarray]:
    layers = [model.h_s[0], model.h_s[2], model.h_s[4]]
    out = {}
    for i, layer in enumerate(layers, 1):
        out[f"w{i}"] = layer.weight.detach().half().numpy()
        out[f"b{i}"] = layer.bias.detach().half().numpy()
    return out


def runtime_state(folder: Path) -> dict[str, torch.Tensor]:
    """The parameters a package's runtime files hold as they are: the transforms' from the ONNX
    graphs' initializers (named as the torch parameters), h_s's from hyper_synthesis.npz."""
    import onnx
    from onnx import numpy_helper

    state: dict[str, torch.Tensor] = {}
    for stage in ("g_a", "h_a", "g_s"):
        if not (folder / f"{stage}.onnx").exists():
            continue
        for init in onnx.load(str(folder / f"{stage}.onnx")).graph.initializer:
            state[f"{stage}.{init.name}"] = torch.from_numpy(numpy_helper.to_array(init).copy())
    with np.load(folder / model_package.HYPER_FILE, allow_pickle=False) as z:
        for i, layer in enumerate((0, 2, 4), 1):
            state[f"h_s.{layer}.weight"] = torch.from_numpy(z[f"w{i}"].astype(np.float32))
            state[f"h_s.{layer}.bias"] = torch.from_numpy(z[f"b{i}"].astype(np.float32))
    return state


def training_arrays(model: HyperpriorCodec, folder: Path) -> dict[str, np.ndarray]:
    """TRAINING_FILE's arrays: every parameter the runtime files of `folder` do not hold as
    it is (the factorized density, log gains and level scales, and any weight the ONNX
    exporter merged with an equal one), so that no weight is stored twice."""
    have = runtime_state(folder)
    return {k: v.detach().float().numpy() for k, v in model.state_dict().items()
            if k not in have or not torch.equal(have[k], v.detach().float())}


def package_state(folder: str | Path) -> tuple[dict, dict]:
    """(state_dict, manifest) of a package, rebuilt from its runtime files and TRAINING_FILE.
    Exact: exporting it again gives the same files."""
    folder = Path(folder)
    manifest = model_package.read_manifest(folder)
    model_package.verify(folder, manifest)
    needed = (*model_package.ENCODER_FILES, TRAINING_FILE)
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:
        raise ValueError(f"{folder} cannot be trained from: it lacks {', '.join(missing)} (a "
                         f"decode-only package keeps only what decoding needs)")
    state = runtime_state(folder)
    with np.load(folder / TRAINING_FILE, allow_pickle=False) as z:
        state.update({k: torch.from_numpy(z[k].copy()) for k in z.files})
    return state, manifest


def load_model(source: str | Path, use_ema: bool = True) -> tuple[HyperpriorCodec, dict]:
    """A model from a training checkpoint (its EMA weights), a package folder or a state.pt."""
    from .train import load_state_file

    cfg, state, prov = load_state_file(source, use_ema)
    model = HyperpriorCodec(cfg)
    model.load_state_dict(state)
    return model.eval(), prov


def write_state(model: HyperpriorCodec, path: str | Path, provenance: dict) -> None:
    """The compact fp16 training state that a package carries to resume training from."""
    state = {k: v.detach().cpu().half() for k, v in model.state_dict().items()}
    torch.save({"config": model.cfg.to_dict(), "state_dict": state, "provenance": provenance},
               str(path))


def _scales(per_level) -> dict[str, torch.Tensor]:
    """The fixed-shape second input of a level-conditioned graph (level 0's scales), or none."""
    scales = per_level(torch.zeros(1))
    return {} if scales is None else {"scales": scales.detach()}


def export_package(model: HyperpriorCodec, out_dir: str | Path, name: str,
                   provenance: dict, figures: dict | None = None) -> dict:
    """Write the model package; returns its manifest. Same weights → same content hash."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = model.eval()
    round_hyper_synthesis_to_fp16(model)
    cfg = model.cfg
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    y = torch.rand(1, cfg.M, 8, 8, generator=torch.Generator().manual_seed(1))
    mp = model_package
    _export_onnx(model.g_a, x, tmp / mp.G_A_FILE, "x", "y", _scales(model.encoder_scales))
    _export_onnx(model.h_a, y, tmp / mp.H_A_FILE, "y", "z")
    _export_onnx(model.g_s, y, tmp / mp.G_S_FILE, "y_hat", "x_hat", _scales(model.decoder_scales))
    write_npz(tmp / model_package.HYPER_FILE, hyper_synthesis_arrays(model))

    scales, thresholds = scale_table()
    fam = gaussian_family(scales, precision=PRECISION)
    tables = {
        "precision": np.array(PRECISION, dtype=np.int32),
        **factorized_tables(model),
        "y_cdf": fam["cdf"], "y_cdf_len": fam["cdf_len"], "y_offset": fam["offset"],
        "y_scales": scales, "scale_log_thresholds": thresholds,
        "gains": torch.exp(model.log_gains).detach().float().numpy(),
        "lambdas": np.array(cfg.lambdas, dtype=np.float64),
    }
    if cfg.encoder_scales:
        tables["encoder_scales"] = torch.exp(model.g_a.log_scales).detach().float().numpy()
    if cfg.decoder_scales:
        tables["decoder_scales"] = torch.exp(model.g_s.log_scales).detach().float().numpy()
    write_npz(tmp / model_package.TABLES_FILE, tables)

    write_npz(tmp / TRAINING_FILE, training_arrays(model, tmp))
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {
        "name": name,
        "format": PACKAGE_FORMAT,
        "content_hash": content_hash(tmp),
        "identity": list(model_package.IDENTITY_FILES),
        "files": {f: model_package.file_digest(tmp / f) for f in files},
        "architecture": {
            "kind": "mean-scale hyperprior with gain units (Minnen 2018, Cui 2021)"
                    + (", level-conditioned g_a" if cfg.encoder_scales else "")
                    + (", level-conditioned g_s" if cfg.decoder_scales else ""),
            **cfg.to_dict(),
            "kmac_per_pixel": model_kmac_per_pixel(cfg),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "entropy": {"precision": PRECISION, "gaussian_tables": N_SCALES,
                    "scale_range": [SCALE_MIN, SCALE_MAX]},
        "quality": {"range": [0, 100], "levels": len(cfg.lambdas),
                    "mapping": "t = quality/100*(levels-1); gain = gains[k]^(1-f)*gains[k+1]^f"
                               + ("; g_a's scales likewise from encoder_scales"
                                  if cfg.encoder_scales else "")
                               + ("; g_s's scales likewise from decoder_scales"
                                  if cfg.decoder_scales else "")},
        "provenance": provenance,
        "figures": figures or {},
    }
    (tmp / model_package.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return manifest


def retire_package(src: str | Path, dest: str | Path) -> dict:
    """Write the decode-only copy of package `src` to `dest`: its identity files and a
    manifest (format 2) listing their digests. Same id: every file the model wrote still
    decodes. A format-1 source keeps its id through model_package.RETIRED_LEGACY, which must
    hold the returned manifest's `identity_hash` for it."""
    src, dest = Path(src), Path(dest)
    old = model_package.read_manifest(src)
    model_package.verify(src, old)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in model_package.IDENTITY_FILES:
        shutil.copy2(src / f, tmp / f)
    legacy = old.get("format", 1) < 2
    manifest = {k: v for k, v in old.items() if k not in ("files", "identity")}
    manifest.update({
        "format": PACKAGE_FORMAT,
        "identity": "format-1" if legacy else list(model_package.IDENTITY_FILES),
        "files": {f: model_package.file_digest(tmp / f) for f in model_package.IDENTITY_FILES},
        "retired": True,
    })
    identity = model_package.compute_hash(tmp, model_package.IDENTITY_FILES)
    (tmp / model_package.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return {**manifest, "identity_hash": identity}


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aecodec export", description="Write a model package.")
    p.add_argument("source",
                   help="run folder or last.ckpt (EMA weights), package folder or state.pt")
    p.add_argument("--name", default=model_package.DEFAULT_MODEL, help="package name")
    p.add_argument("--out", default=None,
                   help="output folder (default models/<name>-<first 12 digits of its hash>)")
    p.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    p.add_argument("--data", default="../shared/data/train", help="training data (provenance)")
    return p


def run_export(args: argparse.Namespace) -> int:
    model, prov = load_model(args.source, use_ema=not args.raw)
    prov = dict(prov)
    prov.setdefault("data", str(args.data))
    prov["export_command"] = "aecodec export " + " ".join(sys.argv[2:])
    out = Path(args.out) if args.out else Path("models") / f".{args.name}.export"
    manifest = export_package(model, out, args.name, prov)
    if not args.out:  # models/<name>-<hash12>: a new model never replaces a landed one
        final = Path("models") / model_package.folder_name(args.name, manifest["content_hash"])
        if final.exists():
            shutil.rmtree(final)  # the same id: the same identity files
        out.rename(final)
        out = final
    print(f"wrote {out} (content hash {model_package.short_hash(manifest['content_hash'])}…)")
    return 0
