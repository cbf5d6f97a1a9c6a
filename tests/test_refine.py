"""Encoder-side latent refinement (aecodec.train.refine, `compress(..., refine=N)`): it fits the
latents to one image, the decoder and format stay the same. Tiny crops keep it fast."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec

torch = pytest.importorskip("torch", reason="refinement needs the train extra (torch)")
from aecodec.train import refine as refine_mod  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    with Image.open(DATA / "kodim23.webp") as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[200:264, 300:396])


@pytest.fixture(scope="module")
def codec():
    return aecodec.Codec(threads=2)


def rd_cost(codec, data: bytes, img: np.ndarray, lam: float) -> float:
    """bits per pixel + λ·255²·MSE of a real file, decoded by the normal decoder."""
    out = np.asarray(codec.decompress(data), np.float64) / 255
    bpp = len(data) * 8 / (img.shape[0] * img.shape[1])
    return bpp + lam * 255**2 * float(np.mean((out - img / 255.0) ** 2))


def test_refined_file_costs_less_and_decodes_normally(codec, crop):
    lam = float(codec.package.tables["lambdas"][-1])
    plain = codec.compress(crop, quality=100)
    refined = codec.compress(crop, quality=100, refine=25)
    stats = codec.last_refine
    assert stats["steps"] == 25 and stats["cost_after"] < stats["cost_before"]
    assert "refine" in codec.last_timings
    assert rd_cost(codec, refined, crop, lam) < rd_cost(codec, plain, crop, lam)
    assert aecodec.decompress(refined).size == (crop.shape[1], crop.shape[0])
    assert codec.compress(crop, quality=100, refine=25) == refined  # seeded: same file


def test_refine_applies_to_searched_targets(codec, crop):
    data = codec.compress(crop, bpp=1.0, refine=2)
    assert len(data) * 8 / crop.size * 3 <= 1.0 and codec.last_refine["steps"] == 2


def test_refine_never_returns_worse_latents(codec, crop, monkeypatch):
    monkeypatch.setattr(refine_mod, "LR", 50.0)  # steps this large only make things worse
    codec.compress(crop, quality=50, refine=3)
    s = codec.last_refine
    assert s["cost_after"] >= s["cost_before"]  # rejected: the encoder's latents were kept
    assert codec.compress(crop, quality=50, refine=3) == codec.compress(crop, quality=50)


def test_sga_round_tends_to_rounding():
    x = torch.linspace(-3, 3, 1001)
    r = refine_mod.sga_round(x, 1e-3)
    assert torch.all((r >= torch.floor(x)) & (r <= torch.floor(x) + 1))
    away = (x - torch.floor(x) - 0.5).abs() > 0.05  # not at a tie
    assert torch.allclose(r[away], torch.round(x[away]), atol=1e-3)


@pytest.mark.parametrize("bad", [-1, 10001, 2.5, "3"])
def test_bad_refine_values_are_named(codec, crop, bad):
    with pytest.raises(ValueError, match="refine"):
        codec.compress(crop, quality=50, refine=bad)


def test_refine_refuses_images_too_large_for_it(codec, crop, monkeypatch):
    monkeypatch.setattr(refine_mod, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match="at most 1000 pixels"):
        codec.compress(crop, quality=50, refine=2)


def test_refine_without_torch_says_what_to_install(codec, crop, monkeypatch):
    monkeypatch.setitem(sys.modules, "aecodec.train.refine", None)  # import fails
    with pytest.raises(aecodec.AecError, match=r"pip install 'aecodec\[train\]'"):
        codec.compress(crop, quality=50, refine=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without")
def test_refine_on_cuda_without_a_gpu_is_refused(codec, crop):
    pkg = codec.package
    y = np.zeros((pkg.latent_channels, 4, 8), np.float32)
    z = np.zeros((pkg.hyper_channels, 1, 2), np.float32)
    for device, msg in (("cuda", "CUDA build"), ("tpu", "device must be")):
        with pytest.raises(ValueError, match=msg):
            refine_mod.refine_latents(pkg.path, pkg.content_hash, crop, y, z, 50.0, 2,
                                      device=device)


def test_refine_reports_its_progress(codec, crop):
    seen = []
    codec.refine_progress = lambda done, total: seen.append((done, total))
    try:
        codec.compress(crop, quality=50, refine=3, effort=1)
        codec.compress(crop, quality=50, refine=2, effort=2)  # each orientation is refined
    finally:
        codec.refine_progress = None
    assert seen == [(1, 3), (2, 3), (3, 3)] + [(1, 2), (2, 2)] * 2


def test_refine_progress_and_costs_per_call(codec, crop):
    seen = []
    r = codec.encode(crop, quality=50, refine=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)] and r.refine["steps"] == 2
    assert r.data == codec.compress(crop, quality=50, refine=2) and "refine" in r.timings
