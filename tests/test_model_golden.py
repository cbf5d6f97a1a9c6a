"""Every model that has landed keeps decoding (docs/model-package.md, "Lifecycle").

tests/data/model-golden/ holds, per shipped model, a small .aec file written by it with the SHA-256
of its latent symbols and its decoded pixels (tests/data/make_model_golden.py writes one when a
model lands). Each must decode with the installed models, for as long as aecodec exists. The
second half simulates the next model landing with tiny models: the old one is retired to a
decode-only package and its files still decode to the same symbols and pixels.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import model_package

from helpers import psnr

DATA = Path(__file__).resolve().parent / "data" / "model-golden"
RECORD = json.loads((DATA / "record.json").read_text())
REPO_MODELS = Path(__file__).resolve().parents[1] / "models"


def symbol_sha256(z_hat, s) -> str:
    h = hashlib.sha256()
    for a in (z_hat, s):
        h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("model_id", sorted(RECORD))
def test_every_shipped_model_decodes_its_golden_file(model_id):
    rec = RECORD[model_id]
    data = (DATA / rec["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == rec["file_sha256"]
    codec = aecodec.Codec()
    _, z_hat, s = codec.decode_latents(data)
    assert symbol_sha256(z_hat, s) == rec["latent_symbol_sha256"]  # bit-exact, everywhere
    with Image.open(DATA / rec["pixels"]) as im:
        reference = np.asarray(im)
    assert hashlib.sha256(reference.tobytes()).hexdigest() == rec["pixel_sha256"]
    pixels = np.asarray(codec.decompress(data))
    # g_s runs in onnxruntime's floats: another machine may round a few values the other way
    assert pixels.shape == reference.shape
    assert np.abs(pixels.astype(int) - reference).max() <= 1
    assert psnr(pixels, reference) > 50


def test_the_default_and_every_repository_model_have_a_golden_file():
    default = model_package.load()
    assert f"{default.name}@{default.content_hash[:12]}" in RECORD
    installed = {f"{n}@{h[:12]}" for n, h, f in model_package.available([REPO_MODELS])}
    assert set(RECORD) <= installed  # no model that has landed was ever removed


def test_retired_models_are_decode_only_and_small():
    for name, h, folder in model_package.available([REPO_MODELS]):
        if folder.parent != REPO_MODELS or model_package.is_default(name, h):
            continue
        assert not model_package.can_encode(folder), folder
        files = sorted(p.name for p in folder.iterdir())
        assert files == sorted([*model_package.IDENTITY_FILES, "manifest.json"]), files
        assert sum(p.stat().st_size for p in folder.iterdir()) < 12e6


# -- the next model lands: simulated with tiny models -------------------------------------------

torch = pytest.importorskip("torch", reason="exporting the tiny models needs torch")


def _tiny_package(dest: Path, name: str, seed: int) -> Path:
    from aecodec.train.export import export_package
    from aecodec.train.networks import Config, HyperpriorCodec

    torch.manual_seed(seed)
    model = HyperpriorCodec(Config(N=8, M=8, Nz=4, C1=8, C2=8))
    with torch.no_grad():
        model.g_a[-1].weight.mul_(40.0)  # spread the latents: symbols that are not all zero
    export_package(model, dest / name, name, {"steps": 0, "history": []})
    return dest / name


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """tiny-a codes an image; then tiny-a is retired (decode-only) beside a new tiny-b."""
    from aecodec.train.export import retire_package

    root = tmp_path_factory.mktemp("lifecycle")
    full, shelf = root / "full", root / "installed"
    pkg = _tiny_package(full, "tiny-a", 1)
    rng = np.random.default_rng(3)
    img = np.clip(rng.normal(128, 40, (40, 72, 3)), 0, 255).astype(np.uint8)
    before = aecodec.Codec(str(pkg))
    data = before.compress(img, quality=50)
    _, z_hat, s = before.decode_latents(data)
    pixels = np.asarray(before.decompress(data))
    _tiny_package(shelf, "tiny-b", 2)
    retire_package(pkg, shelf / "tiny-a")
    shutil.rmtree(full)  # the encoder package is gone: only the retired copy remains
    return {"shelf": shelf, "data": data, "symbols": symbol_sha256(z_hat, s), "pixels": pixels,
            "img": img}


def test_a_file_decodes_the_same_after_its_model_is_retired(landed):
    codec = aecodec.Codec(model_path=[landed["shelf"]])
    _, z_hat, s = codec.decode_latents(landed["data"])
    assert symbol_sha256(z_hat, s) == landed["symbols"]
    pixels = np.asarray(codec.decompress(landed["data"]))
    assert abs(psnr(pixels, landed["img"]) - psnr(landed["pixels"], landed["img"])) <= 0.02
    assert np.array_equal(pixels, landed["pixels"])  # same graph, same machine: same pixels


def test_the_retired_package_holds_only_what_decoding_needs(landed):
    folder = landed["shelf"] / "tiny-a"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*model_package.IDENTITY_FILES, "manifest.json"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["retired"] is True and set(manifest["files"]) == set(
        model_package.IDENTITY_FILES)


def test_a_decode_only_model_refuses_to_encode_and_names_the_default(landed):
    codec = aecodec.Codec(str(landed["shelf"] / "tiny-a"))
    with pytest.raises(aecodec.ModelNotFoundError, match="decode-only.*hyperprior-mse"):
        codec.compress(landed["img"], quality=50)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_retired_package_is_refused_naming_the_file(landed, tmp_path, damage):
    shelf = tmp_path / "shelf"
    shutil.copytree(landed["shelf"] / "tiny-a", shelf / "tiny-a")
    target = shelf / "tiny-a" / "g_s.onnx"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(target.read_bytes())
        raw[len(raw) // 2] ^= 0x40
        target.write_bytes(bytes(raw))
    else:
        target.unlink()
    with pytest.raises(aecodec.ModelPackageError, match="g_s.onnx"):
        aecodec.Codec(model_path=[shelf]).decompress(landed["data"])


def test_a_manifest_cannot_vouch_for_other_files(landed, tmp_path):
    """Digests rewritten to match swapped files: the content hash (the file's id) still fails."""
    shelf = tmp_path / "shelf"
    shutil.copytree(landed["shelf"] / "tiny-a", shelf / "tiny-a")
    shutil.copy2(landed["shelf"] / "tiny-b" / "g_s.onnx", shelf / "tiny-a" / "g_s.onnx")
    mpath = shelf / "tiny-a" / "manifest.json"
    m = json.loads(mpath.read_text())
    m["files"]["g_s.onnx"] = model_package.file_digest(shelf / "tiny-a" / "g_s.onnx")
    mpath.write_text(json.dumps(m))
    with pytest.raises(aecodec.ModelPackageError, match="damaged"):
        aecodec.Codec(model_path=[shelf]).decompress(landed["data"])
