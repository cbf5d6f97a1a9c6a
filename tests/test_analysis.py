"""aecodec.surprise / features / embedding (issue 33) and their CLI: tiny images only."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import analysis, container

DATA = Path(__file__).resolve().parent / "data"
SHARED_KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"


def kodak23() -> Image.Image:
    p = SHARED_KODAK / "kodim23.png"
    with Image.open(p if p.exists() else DATA / "kodim23.webp") as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def codec():
    return aecodec.Codec()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 56×40 natural-image crop."""
    return kodak23().crop((330, 220, 386, 260))


@pytest.fixture(scope="module")
def other() -> Image.Image:
    """A different 56×40 crop (the sky and a bird's edge, not the photo's feathers)."""
    return kodak23().crop((40, 20, 96, 60))


def stream_bits(data: bytes) -> int:
    f = container.parse(data)
    return 8 * (len(f.z_stream) + sum(len(s) for s in f.y_streams))


# ---- bits ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(56, 40), (8, 8), (20, 70)])
def test_bits_sum_to_the_coded_streams(codec, photo, size):
    img = photo.resize(size)
    s = analysis.surprise(img, codec=codec)
    assert s.bits.shape == (size[1], size[0]) and s.bits.dtype == np.float32
    assert np.all(s.bits > 0)
    total = float(s.bits.sum(dtype=np.float64))
    assert total == pytest.approx(s.total_bits, rel=1e-5)
    coded = stream_bits(codec.compress(img, 75))
    # rANS spends −log2 p per symbol plus its framing: a header byte and 4 bytes per lane's
    # final state in each of the two streams (3 lanes), and at most a word of rounding each
    assert 0 <= coded - total <= 8 * (2 + 4 * 3 + 4) + 0.01 * total
    assert s.bpp == pytest.approx(total / (size[0] * size[1]))


def test_bits_from_pixels_and_from_the_aec_are_identical(codec, photo):
    data = codec.compress(photo, 60)
    a = analysis.surprise(photo, 60, codec=codec)
    b = analysis.surprise(data, codec=codec)
    assert np.array_equal(a.bits, b.bits)
    assert a.total_bits == b.total_bits and a.score == b.score and b.quality == 60
    assert b.error is None and b.mse is None and b.psnr is None
    assert a.error is not None


def test_symbol_bits_match_the_tables(codec):
    """−log2 of the table frequency, and an escaped symbol pays the escape bin + bypass bits."""
    tables = codec.package.tables
    prec = codec.package.precision
    t = 5
    cdf, off = tables["y_cdf"][t].astype(np.int64), int(tables["y_offset"][t])
    support = int(tables["y_cdf_len"][t]) - 2
    idx = np.full(3, t, np.int32)
    sym = np.array([off, off + support // 2, off + support + 4], np.int32)  # last: escape, d=4
    bits = analysis.symbol_bits(codec.package, "y", sym, idx)
    assert bits[0] == pytest.approx(prec - np.log2(cdf[1] - cdf[0]))
    mid = support // 2
    assert bits[1] == pytest.approx(prec - np.log2(cdf[mid + 1] - cdf[mid]))
    esc = prec - np.log2(cdf[support + 1] - cdf[support])
    assert bits[2] == pytest.approx(esc + 7 + 2)  # u = 5: 2 mantissa bits
    # and the coder agrees: a long run of that escape costs what the bits say
    from aecodec import _core

    many = np.full(4096, off + support + 4, np.int32)
    data = _core.encode(many, np.full(4096, t, np.int32), tables["y_cdf"], tables["y_cdf_len"],
                        tables["y_offset"], prec, lanes=1)
    assert len(data) * 8 == pytest.approx(4096 * bits[2], rel=0.01)


def test_error_is_the_decoders_squared_error(codec, photo):
    s = analysis.surprise(photo, codec=codec)
    decoded = np.asarray(codec.decompress(codec.compress(photo, 75)), np.float32)
    expected = ((np.asarray(photo, np.float32) - decoded) ** 2).mean(axis=2)
    assert s.error.shape == expected.shape and s.error.dtype == np.float32
    assert np.array_equal(s.error, expected)
    assert s.mse == pytest.approx(float(expected.mean()))


def test_grey_images_compare_grey(codec, photo):
    grey = photo.convert("L")
    s = analysis.surprise(grey, codec=codec)
    decoded = np.asarray(codec.decompress(codec.compress(grey, 75)), np.float32)
    assert np.array_equal(s.error, (np.asarray(grey, np.float32) - decoded) ** 2)


def test_a_noise_patch_raises_the_bits_there(codec, photo):
    a = np.asarray(photo.resize((96, 64))).copy()
    noisy = a.copy()
    rng = np.random.default_rng(1)
    noisy[16:48, 32:64] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    clean, dirty = (analysis.surprise(x, codec=codec) for x in (a, noisy))
    inside = np.zeros(a.shape[:2], bool)
    inside[16:48, 32:64] = True
    assert dirty.bits[inside].mean() > 3 * clean.bits[inside].mean()
    assert dirty.bits[inside].mean() > 3 * dirty.bits[~inside].mean()
    assert dirty.score > clean.score
    for m in (dirty.error, dirty.combined):
        assert m[inside].mean() > 3 * m[~inside].mean()


@pytest.mark.parametrize("size", [(40, 70), (70, 40)])
def test_any_orientation_maps_back_to_the_image(codec, photo, size):
    """effort=3 codes these turned (orientations 2 and 7 here: the maps are turned back)."""
    img = photo.resize(size)
    data = codec.compress(img, 75, effort=3)
    s = analysis.surprise(data, codec=codec)
    assert s.bits.shape == (size[1], size[0])
    assert float(s.bits.sum(dtype=np.float64)) == pytest.approx(s.total_bits, rel=1e-5)
    shape = (codec.package.latent_channels, -(-size[1] // 16), -(-size[0] // 16))
    assert analysis.features(data, codec=codec).shape == shape
    # turned back, the latents lie where their blocks are: their spatial patterns (each
    # channel's mean removed) match those of the image coded as is (~0.47 here, against
    # -0.2..0.13 for the other flips), though the numbers differ (the model is not equivariant)
    plain, turned = (analysis.features(x, codec=codec) for x in (img, data))

    def corr(a, b):
        a, b = (v - v.mean(axis=(1, 2), keepdims=True) for v in (a, b))
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))

    assert corr(plain, turned) > 0.3
    assert corr(plain, turned) > corr(plain, turned[:, ::-1, ::-1]) + 0.2


def test_overlay_images(codec, photo):
    s = analysis.surprise(photo, codec=codec)
    for which in ("auto", "bits", "error", "combined"):
        im = s.to_image(which)
        assert im.mode == "RGB" and im.size == photo.size
    from_file = analysis.surprise(codec.compress(photo), codec=codec)
    assert from_file.to_image().size == photo.size  # background decoded on demand
    with pytest.raises(ValueError, match="error map"):
        from_file.to_image("error")
    with pytest.raises(ValueError, match="which"):
        s.to_image("colour")


# ---- features and embedding ----------------------------------------------------------------

def test_features_from_pixels_equal_those_from_the_aec(codec, photo, tmp_path):
    m = codec.package.latent_channels
    f = analysis.features(photo, 40, codec=codec)
    assert f.shape == (m, 3, 4) and f.dtype == np.float32
    path = tmp_path / "p.aec"
    path.write_bytes(codec.compress(photo, 40))
    assert np.array_equal(f, analysis.features(path, codec=codec))
    with open(path, "rb") as fh:
        assert np.array_equal(f, analysis.features(fh, codec=codec))
    assert np.array_equal(analysis.embedding(photo, 40, codec=codec),
                          analysis.embedding(path.read_bytes(), codec=codec))


def test_features_are_the_dequantized_latents(codec, photo):
    data = codec.compress(photo, 75)
    header, z_hat, s = codec.decode_latents(data)
    eng = codec._engine(header.model_name, header.model_hash.hex())
    mu, _ = codec._hyper_synthesis(eng, z_hat)
    y_hat = (s.astype(np.float32) + mu) / eng.package.gain(75)[:, None, None]
    np.testing.assert_allclose(analysis.features(data, codec=codec), y_hat[:, :3, :4],
                               rtol=1e-6, atol=1e-6)


def test_embedding_is_unit_length_and_size_independent(codec, photo):
    a = analysis.embedding(photo, codec=codec)
    b = analysis.embedding(photo.resize((8, 8)), codec=codec)
    c = analysis.embedding(kodak23().crop((0, 0, 200, 130)), codec=codec)
    assert a.dtype == np.float32 and a.ndim == 1
    assert a.shape == b.shape == c.shape
    for v in (a, b, c):
        assert np.linalg.norm(v) == pytest.approx(1, abs=1e-5)


def test_a_jpeg_copy_is_nearer_than_another_image(codec, photo, other):
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=30)
    buf.seek(0)
    jpeg = Image.open(buf).convert("RGB")
    e, ej, eo = (analysis.embedding(x, codec=codec) for x in (photo, jpeg, other))
    assert float(e @ ej) > float(e @ eo)


def test_public_api(photo):
    assert aecodec.surprise is analysis.surprise and aecodec.Surprise is analysis.Surprise
    assert aecodec.features(photo).shape[0] == aecodec.embedding(photo).shape[0] // 2


def test_another_installed_model_is_read_from_its_files(photo):
    tiny = aecodec.Codec("golden-tiny", model_path=[DATA / "models"])
    data = tiny.compress(photo, 50)
    s = analysis.surprise(data, codec=tiny)
    assert float(s.bits.sum(dtype=np.float64)) <= stream_bits(data)
    assert analysis.features(data, codec=tiny).shape[0] == tiny.package.latent_channels


# ---- bad input -----------------------------------------------------------------------------

def rewrite_header(data: bytes, **changes) -> bytes:
    f = container.parse(data)
    for k, v in changes.items():
        setattr(f.header, k, v)
    return f.to_bytes()


@pytest.mark.parametrize("fn", [analysis.surprise, analysis.features, analysis.embedding])
def test_bad_input_raises_typed_errors(codec, photo, fn):
    data = codec.compress(photo.resize((24, 20)), 30)
    with pytest.raises(aecodec.NotAecFileError):
        fn(b"\x89PNG\r\n\x1a\n not an aec", codec=codec)
    with pytest.raises(aecodec.CorruptFileError):
        fn(data[: len(data) // 2], codec=codec)
    with pytest.raises(aecodec.ModelNotFoundError, match="no-such-model"):
        fn(rewrite_header(data, model_name="no-such-model"), codec=codec)
    with pytest.raises(aecodec.UnsupportedImageError):
        fn(np.zeros((8, 8, 3), np.float32), codec=codec)
    with pytest.raises(ValueError, match="quality"):
        fn(photo, 101, codec=codec)
    with pytest.raises(TypeError):
        fn(42, codec=codec)


def test_a_file_named_aec_that_is_not_one(tmp_path, codec):
    p = tmp_path / "x.aec"
    p.write_bytes(b"hello")
    with pytest.raises(aecodec.NotAecFileError):
        analysis.surprise(p, codec=codec)


# ---- CLI -----------------------------------------------------------------------------------

def run(args, cwd) -> subprocess.CompletedProcess:
    """`python -m aecodec ARGS` in cwd, importing the aecodec under test (not an installed one)."""
    root = str(Path(aecodec.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "aecodec", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photo, other):
    d = tmp_path_factory.mktemp("imgs")
    (d / "sub").mkdir()
    photo.save(d / "photo.png")
    other.save(d / "sub" / "other.png")
    noisy = np.asarray(photo).copy()
    noisy[8:32, 16:40] = np.random.default_rng(3).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(d / "noisy.png")
    (d / "photo2.aec").write_bytes(aecodec.compress(photo))
    return d


def test_cli_surprise_one_file(folder, tmp_path):
    r = run(["surprise", folder / "photo.png", "-o", "photo-surprise.png"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "surprise score" in r.stdout
    with Image.open(tmp_path / "photo-surprise.png") as im:
        assert im.format == "PNG" and im.size == (56, 40)
    again = run(["surprise", folder / "photo.png", "-o", "photo-surprise.png"], tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr
    js = run(["surprise", folder / "photo2.aec", "--json"], tmp_path)
    row = json.loads(js.stdout)
    assert row["from"] == "aec" and row["psnr"] is None and row["rank"] == 1


def test_cli_surprise_ranks_a_folder(folder, tmp_path):
    r = run(["surprise", folder, "--json", "-o", "maps", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["rank"] for x in rows] == [1, 2, 3, 4]
    scores = [x["score"] for x in rows]
    assert scores == sorted(scores, reverse=True)
    assert rows[0]["file"].endswith("noisy.png")
    assert (tmp_path / "maps" / "sub" / "other-surprise.png").is_file()
    assert (tmp_path / "maps" / "photo2-surprise.png").is_file()
    text = run(["surprise", folder], tmp_path)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 4


def test_cli_features(folder, tmp_path):
    r = run(["features", folder / "photo.png", folder / "photo2.aec", "-o", "f.npz"], tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "f.npz") as z:
        assert list(z["names"]) == [str(folder / "photo.png"), str(folder / "photo2.aec")]
        e = z["embeddings"]
        assert e.shape[0] == 2 and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
        assert np.array_equal(z["features_00000"], z["features_00001"])  # same file, q75
    r = run(["features", folder, "-o", "e.npz", "--embeddings-only"], tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "e.npz") as z:
        assert set(z.files) == {"names", "embeddings"} and len(z["names"]) == 4


def test_cli_bad_inputs(folder, tmp_path):
    (tmp_path / "bad.aec").write_bytes(b"nope")
    r = run(["surprise", tmp_path / "bad.aec", folder / "photo.png"], tmp_path)
    assert r.returncode == 1 and "bad.aec" in r.stderr and "not an .aec" in r.stderr
    assert "photo.png" in r.stdout  # the batch went on
    r = run(["features", tmp_path / "missing.png", "-o", "x.npz"], tmp_path)
    assert r.returncode == 1 and "no such file" in r.stderr
    assert not (tmp_path / "x.npz").exists()
    r = run(["surprise", folder / "photo.png", "-q", "120"], tmp_path)
    assert r.returncode == 1 and "quality" in r.stderr
