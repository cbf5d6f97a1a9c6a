"""Fast decoding (issue 39): the phase-form g_s, g_s tiling, and reduced-size (preview) decoding.

No timing here (benchmarks/speed.py): what can fail is checked — the generated graph equals the
package's g_s, symbols never depend on the graph or the tiling, pixels stay within the PSNR
bounds, drafts have the right sizes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import model_package, synthesis_fast
from aecodec.transform import Transforms

from helpers import kodim23, psnr

DATA = Path(__file__).resolve().parent / "data"
REPO_MODELS = Path(__file__).resolve().parents[1] / "models"
GOLDEN = json.loads((DATA / "model-golden" / "record.json").read_text())


@pytest.fixture(scope="module")
def photo():
    return kodim23((100, 60, 292, 188))  # 192×128: 12×8 latents


@pytest.fixture(scope="module")
def aec(photo):
    return aecodec.compress(photo, quality=60)


def repo_packages():
    return [f for _, _, f in model_package.available([REPO_MODELS]) if f.parent == REPO_MODELS]


@pytest.mark.parametrize("folder", repo_packages(), ids=lambda f: f.name)
def test_phase_graph_equals_the_package_g_s(folder):
    import onnxruntime as ort

    pkg = model_package.load(str(folder))
    fast = synthesis_fast.build(folder / "g_s.onnx")
    assert fast is not None  # the shipped models all have the known structure
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((1, pkg.latent_channels, 5, 7)) * 3).astype(np.float32)
    feeds = {"y_hat": y}
    if pkg.decoder_scales(50) is not None:
        feeds["scales"] = pkg.decoder_scales(50)[None].astype(np.float32)
    opts = ort.SessionOptions()
    ref = ort.InferenceSession(str(folder / "g_s.onnx"), opts,
                               providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    out = ort.InferenceSession(fast, opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert out.shape == ref.shape == (1, 3, 80, 112)
    assert np.abs(out - ref).max() <= 1e-4  # float rounding only (sums in another order)


def test_generated_graph_is_valid_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    fast = synthesis_fast.build(model_package.load().path / "g_s.onnx")
    onnx.checker.check_model(onnx.load_from_string(fast))


def test_unknown_graphs_are_run_as_they_are():
    assert synthesis_fast.build_from_bytes(b"") is None
    h_a = model_package.load().path / "h_a.onnx"  # a chain of convolutions, not g_s's structure
    assert synthesis_fast.build(h_a) is None


def _codec(graph="phase", tile=None) -> aecodec.Codec:
    c = aecodec.Codec()
    eng = c._engine()
    eng.transforms = Transforms(eng.package, synthesis_graph=graph, synthesis_tile=tile)
    return c


def test_symbols_and_pixels_do_not_depend_on_graph_or_tiling(aec, photo):
    runs = {(g, t): _codec(g, t) for g in ("phase", "reference") for t in (None, 3, 5)}
    symbols = {k: c.decode_latents(aec) for k, c in runs.items()}
    for _, z, s in symbols.values():
        _, z0, s0 = symbols[("reference", None)]
        assert np.array_equal(z, z0) and np.array_equal(s, s0)
    ref = np.asarray(runs[("reference", None)].decompress(aec), dtype=int)
    for k, c in runs.items():
        out = np.asarray(c.decompress(aec), dtype=int)
        assert np.abs(out - ref).max() <= 1, k
        assert abs(psnr(out, photo) - psnr(ref, photo)) <= 0.05, k


def test_default_decoder_is_the_phase_graph():
    t = aecodec.Codec()._engine().transforms
    assert t.synthesis_graph == "phase" and t.synthesis_tile == 64
    assert aecodec.Codec(tile=3)._engine().transforms.synthesis_tile == 3
    with pytest.raises(ValueError):
        Transforms(model_package.load(), synthesis_graph="fastest")


def test_default_model_ships_a_verified_preview_head():
    pkg = model_package.load()
    assert synthesis_fast.PREVIEW_FILE in pkg.manifest["files"]
    assert pkg.manifest["content_hash"] == model_package.compute_hash(pkg.path)  # id unchanged
    assert synthesis_fast.PREVIEW_FILE not in model_package.IDENTITY_FILES


@pytest.mark.parametrize("k", [2, 4, 8])
def test_preview_sizes_and_quality(aec, k):
    full = aecodec.decompress(aec)
    prev = aecodec.Codec().decompress(aec, scale=k)
    assert prev.size == (math.ceil(full.width / k), math.ceil(full.height / k))
    assert prev.mode == full.mode
    assert psnr(prev, full.reduce(k)) > 28  # ~33-41 dB on Kodak (speed.py); a tiny image: less


@pytest.mark.parametrize("k", [2, 4, 8])
def test_draft_reduce_and_thumbnail(tmp_path, aec, k):
    path = tmp_path / "x.aec"
    path.write_bytes(aec)
    with Image.open(path) as im:
        w, h = im.size
        assert im.draft("RGB", (w // k, h // k)) == ("RGB", (0, 0, w / k, h / k))
        assert im.size == (math.ceil(w / k), math.ceil(h / k))
        im.load()
        assert im.size == (math.ceil(w / k), math.ceil(h / k))
        drafted = im.copy()
    with Image.open(path) as im:
        red = im.reduce(k)
        assert red.size == drafted.size and im.size == (w, h)  # reduce leaves im as it was
        assert np.array_equal(np.asarray(red), np.asarray(drafted))
    with Image.open(path) as im:
        im.thumbnail((w // k // 2, h // k // 2))  # draft at 1/k (reducing_gap 2), then resize
        assert max(im.size) == max(w // k // 2, h // k // 2)


def test_draft_keeps_the_size_when_no_scale_fits(tmp_path, aec):
    path = tmp_path / "x.aec"
    path.write_bytes(aec)
    with Image.open(path) as im:
        assert im.draft("RGB", (im.width - 1, im.height)) is None and im.size == (192, 128)
        im.load()
        assert im.size == (192, 128)


def test_model_without_preview_head_reduces_the_full_decode():
    rec = next(r for m, r in GOLDEN.items() if m.endswith("e541f20ff70a"))
    data = (DATA / "model-golden" / rec["file"]).read_bytes()
    c = aecodec.Codec()
    full = c.decompress(data)
    prev = c.decompress(data, scale=4)
    assert prev.size == (math.ceil(full.width / 4), math.ceil(full.height / 4))
    assert np.array_equal(np.asarray(prev), np.asarray(full.reduce(4)))


@pytest.mark.parametrize("bad", [3, 8.0, True, "8"])
def test_bad_scale_is_refused(aec, bad):
    with pytest.raises(ValueError, match="scale must be 1, 2, 4 or 8"):
        aecodec.Codec().decompress(aec, scale=bad)


def test_cli_scale(tmp_path, aec):
    src = tmp_path / "x.aec"
    src.write_bytes(aec)
    out = tmp_path / "x.png"
    subprocess.run([sys.executable, "-m", "aecodec", "decompress", str(src), "-o", str(out),
                    "--scale", "1/8", "--quiet"], check=True, cwd=tmp_path)
    with Image.open(out) as im:
        assert im.size == (24, 16)
    bad = subprocess.run([sys.executable, "-m", "aecodec", "decompress", str(src), "-o",
                          str(out), "--scale", "1/3"], capture_output=True, cwd=tmp_path)
    assert bad.returncode != 0


def test_in_place_dequantization_equals_the_core(aec):
    """The decoder forms ŷ in μ's buffer (release=True); the encoder through core().dequantize:
    the same pixels, bit for bit."""
    from aecodec import decoder

    c = aecodec.Codec(threads=1)
    hd, eng, lat = c.file_latents(aec)
    keep = decoder.Latents(lat.quality, lat.z_hat, lat.s.copy(), lat.mu.copy(), lat.index)
    w, h = hd.coded_size
    released = decoder.synthesize(eng, lat, h, w, release=True)
    assert lat.s is None and lat.mu is None
    assert np.array_equal(released, decoder.synthesize(eng, keep, h, w))


QUALITY = 60  # the `aec` fixture's


def _with_fast_head(tmp_path, head: dict) -> Path:
    """A copy of the default package with `head` as its fast.npz, digest in the manifest."""
    import shutil

    src = model_package.find(model_package.DEFAULT_MODEL, model_package.DEFAULT_HASH)
    dst = tmp_path / "models" / src.name
    shutil.copytree(src, dst)
    np.savez(dst / synthesis_fast.FAST_FILE, **head)
    man = json.loads((dst / "manifest.json").read_text())
    man["files"][synthesis_fast.FAST_FILE] = model_package.file_digest(dst / "fast.npz")
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


def _teacher_head(quality: float) -> dict:
    """The default g_s's own last two layers as a fast head, its level scale at `quality`
    folded into the last layer: the fast profile then computes what g_s does at that quality."""
    pkg = model_package.load(model_package.DEFAULT_MODEL, model_package.DEFAULT_HASH)
    _, layers = synthesis_fast._parse(pkg.onnx_path("g_s").read_bytes())
    big, last = layers[-2], layers[-1]
    s = pkg.decoder_scales(quality)[big["scale"]]
    n = big["beta"].shape[0]
    return {"up_w": big["w"], "up_b": big["b"], "gamma": big["gamma"].reshape(n, n),
            "beta": big["beta"], "last_w": last["w"] * s[:, None, None, None],
            "last_b": last["b"]}


def test_fast_profile_runs_the_package_head(tmp_path, aec):
    folder = _with_fast_head(tmp_path, _teacher_head(QUALITY))
    c = aecodec.Codec(model_path=[folder.parent])
    assert c._engine(model_package.DEFAULT_MODEL, model_package.DEFAULT_HASH).package.path == (
        folder)
    exact = np.asarray(c.decompress(aec), dtype=int)
    fast = np.asarray(c.decompress(aec, profile="fast"), dtype=int)
    assert np.abs(fast - exact).max() <= 1  # the same layers: the same image up to rounding
    head = _teacher_head(QUALITY)
    head["last_w"] = head["last_w"] * 0.5  # a different head gives a different image
    c2 = aecodec.Codec(model_path=[_with_fast_head(tmp_path / "b", head).parent])
    assert np.abs(np.asarray(c2.decompress(aec, profile="fast"), dtype=int) - exact).max() > 10


def test_default_model_ships_a_fast_profile_close_to_the_exact_decode(aec, photo):
    c = aecodec.Codec()
    exact, fast = c.decompress(aec), c.decompress(aec, profile="fast")
    assert fast.size == exact.size == photo.size
    assert not np.array_equal(np.asarray(fast), np.asarray(exact))  # a different synthesis
    assert psnr(fast, photo) > psnr(exact, photo) - 1.0  # Kodak: −0.15 dB at quality 57


def test_fast_profile_is_refused_clearly(tmp_path, aec):
    rec = next(r for m, r in GOLDEN.items() if m.endswith("e541f20ff70a"))  # has no fast.npz
    old = (DATA / "model-golden" / rec["file"]).read_bytes()
    with pytest.raises(aecodec.ModelPackageError, match="no fast decoder profile"):
        aecodec.Codec().decompress(old, profile="fast")
    with pytest.raises(ValueError, match='profile must be "exact" or "fast"'):
        aecodec.Codec().decompress(aec, profile="quick")
    head = _teacher_head(QUALITY)
    head["gamma"] = head["gamma"][:-1]  # the wrong shape: a damaged extra, named
    c = aecodec.Codec(model_path=[_with_fast_head(tmp_path, head).parent])
    with pytest.raises(aecodec.ModelPackageError, match="fast.npz does not fit"):
        c.decompress(aec, profile="fast")


def test_fast_head_with_level_scales_and_a_mid_layer(tmp_path, aec):
    """The optional groups of fast.npz: a level-scale map that selects g_s's own scales is
    g_s itself; a group given in part, or a map without its layer, is refused naming it."""
    pkg = model_package.load(model_package.DEFAULT_MODEL, model_package.DEFAULT_HASH)
    _, layers = synthesis_fast._parse(pkg.onnx_path("g_s").read_bytes())
    big, last = layers[-2], layers[-1]
    n = big["beta"].shape[0]
    head = {"up_w": big["w"], "up_b": big["b"], "gamma": big["gamma"].reshape(n, n),
            "beta": big["beta"], "last_w": last["w"], "last_b": last["b"],
            "up_scale_a": np.eye(n, dtype=np.float32), "up_scale_c": np.zeros(n, np.float32)}
    c = aecodec.Codec(model_path=[_with_fast_head(tmp_path / "a", head).parent])
    exact = np.asarray(c.decompress(aec), dtype=int)
    fast = np.asarray(c.decompress(aec, profile="fast"), dtype=int)
    assert np.abs(fast - exact).max() <= 1  # the map picks g_s's own scales: g_s at any quality
    for bad, match in [({"up_scale_c"}, "up_scale_c missing"),
                       ({"mid_scale_a": np.eye(n, dtype=np.float32),
                         "mid_scale_c": np.zeros(n, np.float32)}, "mid_scale_a"),
                       ({"up_scale_a": np.eye(n + 1, dtype=np.float32)}, "up_scale_a")]:
        h = dict(head)
        if isinstance(bad, set):
            for k in bad:
                del h[k]
        else:
            h |= bad
        c = aecodec.Codec(model_path=[_with_fast_head(tmp_path / str(len(match)), h).parent])
        with pytest.raises(aecodec.ModelPackageError, match=match):
            c.decompress(aec, profile="fast")


@pytest.mark.parametrize("content", ["npy", "strings", "zip-damaged"])
def test_an_unreadable_extra_that_hashes_right_is_a_model_package_error(tmp_path, aec, content):
    """A fast.npz / preview.npz whose bytes match the manifest's digest but are not a usable
    .npz (an .npy in its place, text arrays, a damaged zip) is a ModelPackageError naming it,
    never a TypeError or BadZipFile."""
    dst = _with_fast_head(tmp_path, _teacher_head(QUALITY))
    man = json.loads((dst / "manifest.json").read_text())
    for name in (synthesis_fast.FAST_FILE, synthesis_fast.PREVIEW_FILE):
        path = dst / name
        if content == "npy":
            with open(path, "wb") as f:
                np.save(f, np.zeros(3, np.float32))
        elif content == "strings":
            keys = synthesis_fast.FAST_KEYS if name == synthesis_fast.FAST_FILE else ("w2", "b2")
            np.savez(path, **{k: np.array(["x"]) for k in keys})
        else:
            np.savez(path, w2=np.zeros(4, np.float32))
            data = bytearray(path.read_bytes())
            data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8
            path.write_bytes(bytes(data))
        man["files"][name] = model_package.file_digest(path)
    (dst / "manifest.json").write_text(json.dumps(man))
    model_package._cache.clear()
    c = aecodec.Codec(model_path=[dst.parent])
    with pytest.raises(aecodec.ModelPackageError, match="fast.npz"):
        c.decompress(aec, profile="fast")
    with pytest.raises(aecodec.ModelPackageError, match="preview.npz"):
        c.decompress(aec, scale=2)


def test_extras_of_a_format_1_package_are_not_used(tmp_path):
    """A format-1 manifest's `files` are not verified (fuzz finding: `"files": null` raised
    TypeError on a fast decode): its extras are ignored, and the fast profile refused clearly."""
    import shutil

    dst = tmp_path / "golden-tiny"
    shutil.copytree(DATA / "models" / "golden-tiny", dst)
    man = json.loads((dst / "manifest.json").read_text())
    assert man.get("format", 1) == 1
    for files in (None, {synthesis_fast.FAST_FILE: "0" * 64}):
        man["files"] = files
        (dst / "manifest.json").write_text(json.dumps(man))
        model_package._cache.clear()
        c = aecodec.Codec("golden-tiny", model_path=[tmp_path])
        data = c.compress(np.zeros((16, 24, 3), np.uint8), 50)
        assert c.package.extra(synthesis_fast.FAST_FILE) is None
        with pytest.raises(aecodec.ModelPackageError, match="no fast decoder profile"):
            c.decompress(data, profile="fast")


def test_a_preview_head_that_does_not_fit_is_refused(tmp_path, aec):
    """preview.npz is verified by its digest but may still not fit the model: named, refused."""
    import shutil

    src = model_package.find(model_package.DEFAULT_MODEL, model_package.DEFAULT_HASH)
    for i, (key, value) in enumerate([("w8", np.zeros((), np.float32)),
                                      ("w8", np.zeros((12, 7, 3, 3), np.float32)),
                                      ("b8", np.full(12, np.nan, np.float32))]):
        dst = tmp_path / str(i) / src.name
        shutil.copytree(src, dst)
        with np.load(dst / synthesis_fast.PREVIEW_FILE) as z:
            arrays = dict(z)
        arrays[key] = value
        np.savez(dst / synthesis_fast.PREVIEW_FILE, **arrays)
        man = json.loads((dst / "manifest.json").read_text())
        man["files"][synthesis_fast.PREVIEW_FILE] = model_package.file_digest(
            dst / synthesis_fast.PREVIEW_FILE)
        (dst / "manifest.json").write_text(json.dumps(man))
        c = aecodec.Codec(model_path=[dst.parent])
        with pytest.raises(aecodec.ModelPackageError, match="preview.npz does not fit"):
            c.decode(aec, scale=8)
        assert c.decompress(aec, scale=4).size == (48, 32)  # the other heads still work


def test_cli_fast(tmp_path, aec):
    import os

    folder = _with_fast_head(tmp_path, _teacher_head(30))
    src = tmp_path / "a.aec"
    src.write_bytes(aec)
    env = {**os.environ, "AECODEC_MODEL_PATH": str(folder.parent)}
    r = subprocess.run([sys.executable, "-m", "aecodec", "decompress", str(src), "--fast", "-o",
                        str(tmp_path / "a.png")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    want = aecodec.Codec(model_path=[folder.parent]).decompress(aec, profile="fast")
    with Image.open(tmp_path / "a.png") as im:
        assert np.array_equal(np.asarray(im), np.asarray(want))
