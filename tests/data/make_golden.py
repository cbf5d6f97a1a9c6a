"""Regenerate the golden fixtures (needs torch): python tests/data/make_golden.py

Writes tests/data/models/golden-tiny/ (a tiny randomly initialised hyperprior exported as a model
package, so the golden file does not change when the shipped model is retrained),
tests/data/golden-v3.aec (a 120×200 synthetic image coded with it, several Y slices, in the
current format, HEAD's orientation set to a half turn) and tests/data/golden.json (SHA-256 of its
decoded latent symbols). Only rerun this on purpose: the whole point of the golden files is that
their symbols never change. tests/data/golden.aec and golden-v2.aec hold the same image and symbols
in format versions 1 and 2 (written by this script before formats 2 and 3; aecodec no longer writes
those versions, so they cannot be regenerated — keep them).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NAME = "golden-tiny"


def make_package(out: Path) -> None:
    import torch

    from aecodec.cdf_tables import gaussian_family
    from aecodec.train import export as ex
    from aecodec.train.networks import Config, HyperpriorCodec

    torch.manual_seed(1234)
    model = HyperpriorCodec(Config(N=8, M=8, Nz=4, C1=8, C2=8)).eval()
    with torch.no_grad():  # spread the latents so the symbols are not all zero
        model.g_a[-1].weight.mul_(60.0)
        model.h_a[-1].weight.mul_(4.0)
        model.h_s[-1].weight.mul_(12.0)
    ex.round_hyper_synthesis_to_fp16(model)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    y = torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    ex._export_onnx(model.g_a, x, out / "g_a.onnx", "x", "y")
    ex._export_onnx(model.h_a, y, out / "h_a.onnx", "y", "z")
    ex._export_onnx(model.g_s, y, out / "g_s.onnx", "y_hat", "x_hat")
    ex.write_npz(out / "hyper_synthesis.npz", ex.hyper_synthesis_arrays(model))
    scales = np.exp(np.linspace(math.log(0.11), math.log(16.0), 16))  # a small family
    logs = np.log(scales)
    fam = gaussian_family(scales, precision=16)
    ex.write_npz(out / "tables.npz", {
        "precision": np.array(16, dtype=np.int32), **ex.factorized_tables(model, radius=64),
        "y_cdf": fam["cdf"], "y_cdf_len": fam["cdf_len"], "y_offset": fam["offset"],
        "y_scales": scales, "scale_log_thresholds": ((logs[:-1] + logs[1:]) / 2).astype(np.float32),
        "gains": torch.exp(model.log_gains).detach().float().numpy(),
        "lambdas": np.array(model.cfg.lambdas, dtype=np.float64),
    })
    manifest = {"name": NAME, "format": 1, "content_hash": ex.content_hash(out),
                "architecture": model.cfg.to_dict(),
                "provenance": {"note": "random init (seed 1234), test fixture only"}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def golden_image() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:120, 0:200]
    img = np.stack([xx * 255 / 199, yy * 255 / 119, (xx + yy) % 64 * 4], axis=2)
    img = img + rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def symbol_hash(z_hat: np.ndarray, s: np.ndarray) -> str:
    """SHA-256 of ẑ then s, as little-endian int32."""
    h = hashlib.sha256()
    for a in (z_hat, s):
        h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
    return h.hexdigest()


def hyper_hash(mu: np.ndarray, index: np.ndarray) -> str:
    """SHA-256 of the exact kernel's μ (little-endian float32) then table indexes (int32)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mu, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(index, dtype="<i4").tobytes())
    return h.hexdigest()


def main() -> int:
    import aecodec
    from aecodec import container

    make_package(HERE / "models" / NAME)
    codec = aecodec.Codec(NAME, model_path=[HERE / "models"], slice_symbols=200)
    # Coded in orientation 0, then HEAD says 2 (a half turn): a valid file whose decoder has to
    # turn the image back, so the golden test covers that step too.
    f = container.parse(codec.compress(golden_image(), quality=90, effort=1))
    f.header.orientation = 2
    data = f.to_bytes()
    (HERE / "golden-v3.aec").write_bytes(data)
    header, z_hat, s = codec.decode_latents(data)
    mu, index = codec._hyper_synthesis(codec._engine(), z_hat)
    v1 = (HERE / "golden.aec").read_bytes()
    v2 = (HERE / "golden-v2.aec").read_bytes()
    record = {"file": "golden.aec", "sha256_of_file": hashlib.sha256(v1).hexdigest(),
              "v2_file": "golden-v2.aec",
              "sha256_of_v2_file": hashlib.sha256(v2).hexdigest(),
              "v3_file": "golden-v3.aec", "sha256_of_v3_file": hashlib.sha256(data).hexdigest(),
              "v3_orientation": 2,
              "latent_symbol_sha256": symbol_hash(z_hat, s),
              "hyper_synthesis_sha256": hyper_hash(mu, index), "slices": header.n_slices,
              "z_shape": list(z_hat.shape), "y_shape": list(s.shape),
              "nonzero_symbols": int(np.count_nonzero(s)),
              "max_abs_symbol": int(np.abs(s).max()), "nonzero_z": int(np.count_nonzero(z_hat))}
    (HERE / "golden.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
