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
from aecodec import container  # noqa: E402
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
    # steps this large only make things worse
    monkeypatch.setattr(refine_mod, "schedule_for", lambda n: refine_mod.Schedule(n, lr=50.0))
    codec.compress(crop, quality=50, refine=3)
    s = codec.last_refine
    assert s["cost_after"] == s["cost_before"] and s["tiles_refined"] == 0  # encoder's kept
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


@pytest.mark.parametrize("hz,wz,tile,halo", [(1, 1, 16, 1), (47, 63, 16, 1), (5, 3, 2, 1),
                                               (17, 16, 16, 2), (9, 9, 4, 0)])
def test_tiles_cover_the_grid_once_with_clipped_halos(hz, wz, tile, halo):
    seen = np.zeros((hz, wz), int)
    for (r0, r1, c0, c1), (e0, e1, f0, f1) in refine_mod.tiles(hz, wz, tile, halo):
        assert 0 < r1 - r0 <= tile and 0 < c1 - c0 <= tile
        assert (e0, e1) == (max(0, r0 - halo), min(hz, r1 + halo))
        assert (f0, f1) == (max(0, c0 - halo), min(wz, c1 + halo))
        seen[r0:r1, c0:c1] += 1
    assert (seen == 1).all()
    sizes = {r1 - r0 for (r0, r1, *_), _ in refine_mod.tiles(hz, wz, tile, halo)}
    assert max(sizes) - min(sizes) <= 1  # near-equal: no sliver tile at the edge


def test_tiled_refinement_is_the_same_for_any_thread_count(codec, monkeypatch):
    with Image.open(DATA / "kodim23.webp") as im:  # 3×2 hyper-latents: 6 tiles of one
        img = np.ascontiguousarray(np.asarray(im.convert("RGB"))[100:292, 200:328])
    monkeypatch.setattr(refine_mod, "TILE", 1)
    results = [codec.encode(img, quality=60, refine=3, effort=1) for _ in range(2)]
    one = aecodec.Codec(threads=1).encode(img, quality=60, refine=3, effort=1)
    st = results[0].refine
    assert st["tiles"] == 6 and st["tiles_refined"] >= 1 and st["cost_after"] < st["cost_before"]
    assert results[0].data == results[1].data == one.data
    lam = float(codec.package.lmbda(60.0))
    plain = codec.compress(img, quality=60)
    assert rd_cost(codec, results[0].data, img, lam) < rd_cost(codec, plain, img, lam)


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
        codec.compress(crop, quality=50, refine=2, effort=2)  # the chosen orientation only
    finally:
        codec.refine_progress = None
    assert seen == [(1, 3), (2, 3), (3, 3)] + [(1, 2), (2, 2)]


def test_refine_progress_and_costs_per_call(codec, crop):
    seen = []
    r = codec.encode(crop, quality=50, refine=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)] and r.refine["steps"] == 2
    assert r.data == codec.compress(crop, quality=50, refine=2) and "refine" in r.timings


# ---- efforts 4 and 5 -----------------------------------------------------------------------

def test_refine_steps_per_effort_and_size():
    steps = aecodec.rate_control.refine_steps
    assert [steps(e, 768 * 512) for e in (1, 2, 3)] == [0, 0, 0]
    assert steps(4, 768 * 512) == 12 and steps(5, 768 * 512) == 40
    assert 4 <= steps(4, 4000 * 3000) < 12 and steps(4, 10**9) == 4  # bounded time, then 1/3
    assert steps(5, 4000 * 3000) == 40


@pytest.mark.parametrize("effort", [4, 5])
def test_high_effort_refines_and_keeps_the_better_file(codec, crop, effort):
    lam = float(codec.package.lmbda(80.0))
    r = codec.encode(crop, quality=80, effort=effort)
    plain = codec.encode(crop, quality=80, effort=effort - 2)  # the same orientation search
    assert r.refine["steps"] == aecodec.rate_control.refine_steps(effort, crop.size // 3)
    assert r.orientation in aecodec.rate_control.EFFORT_ORIENTATIONS[effort]
    assert rd_cost(codec, r.data, crop, lam) <= rd_cost(codec, plain.data, crop, lam)
    assert np.asarray(aecodec.decompress(r.data)).shape == crop.shape


def test_high_effort_meets_targets(codec, crop):
    data = codec.compress(crop, bpp=0.8, effort=4)
    assert len(data) * 8 / (crop.shape[0] * crop.shape[1]) <= 0.8
    data = codec.compress(crop, psnr=31.0, effort=4)
    out = np.asarray(aecodec.decompress(data), np.float64)
    assert 10 * np.log10(255**2 / np.mean((out - crop) ** 2)) >= 31.0


def test_high_effort_without_torch_says_what_to_install(codec, crop, monkeypatch):
    monkeypatch.setitem(sys.modules, "aecodec.train.refine", None)  # import fails
    with pytest.raises(aecodec.AecError, match=r"effort 4 and 5 .*pip install 'aecodec\[train\]'"):
        codec.compress(crop, quality=50, effort=4)
    data = codec.compress(crop, quality=50, effort=3)  # lower efforts never need it
    assert container.parse(data).header.quality == 50
    assert codec.decompress(data).size == crop.shape[1::-1]
