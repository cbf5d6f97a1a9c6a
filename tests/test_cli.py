"""The `aecodec` command line: end to end, batches, stdin/stdout, overwrite rules, bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec import cli, container

from helpers import psnr

DATA = Path(__file__).resolve().parent / "data"
SHARED_KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"


def aecodec_cmd() -> list[str]:
    exe = shutil.which("aecodec")
    return [exe] if exe else [sys.executable, "-m", "aecodec"]


def run(args, cwd, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(aecodec_cmd() + [str(a) for a in args], cwd=cwd, input=stdin,
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def kodim23(tmp_path_factory) -> Path:
    """../shared/data/kodak/kodim23.png, or the same pixels from tests/data as a PNG."""
    p = SHARED_KODAK / "kodim23.png"
    if p.exists():
        return p
    out = tmp_path_factory.mktemp("kodak") / "kodim23.png"
    with Image.open(DATA / "kodim23.webp") as im:
        im.convert("RGB").save(out)
    return out


@pytest.fixture(scope="module")
def cli_round_trip(kodim23, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    r1 = run(["compress", kodim23], work)
    r2 = run(["decompress", "kodim23.aec"], work)
    return work, r1, r2


def test_compress_then_decompress_kodim23(cli_round_trip, kodim23):
    work, r1, r2 = cli_round_trip
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert (work / "kodim23.aec").exists() and (work / "kodim23.png").exists()
    with Image.open(work / "kodim23.png") as out, Image.open(kodim23) as src:
        assert out.format == "PNG" and out.size == src.size
        with Image.open(work / "kodim23.aec") as via_pillow:
            assert np.array_equal(np.asarray(via_pillow), np.asarray(out))


def test_cli_kodim23_reaches_30db_at_default_quality(cli_round_trip, kodim23):  # model quality
    work, r1, r2 = cli_round_trip
    assert r1.returncode == 0 and r2.returncode == 0
    with Image.open(work / "kodim23.png") as out, Image.open(kodim23) as src:
        assert psnr(src.convert("RGB"), out) >= 30.0


def test_python_m_aecodec(tmp_path):
    r = subprocess.run([sys.executable, "-m", "aecodec", "--help"], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and "compress" in r.stdout and "decompress" in r.stdout


def test_stdin_and_stdout(tmp_path):
    src = io.BytesIO()
    Image.new("RGB", (30, 20), (10, 200, 90)).save(src, "PNG")
    r = run(["compress", "-", "-q", "60"], tmp_path, stdin=src.getvalue())
    assert r.returncode == 0, r.stderr
    assert container.parse(r.stdout).header.quality == 60
    r2 = run(["decompress", "-", "-o", "-", "--format", "bmp"], tmp_path, stdin=r.stdout)
    assert r2.returncode == 0, r2.stderr
    with Image.open(io.BytesIO(r2.stdout)) as im:
        assert im.format == "BMP" and im.size == (30, 20)
    assert list(tmp_path.iterdir()) == []


# ---- in-process runs (fast) ---------------------------------------------------------------

def small_png(path: Path, size=(24, 16), colour=(30, 60, 90), mode="RGB") -> Path:
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def errors(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("aecodec: error:")]


def test_quality_options(work, capsys):
    with Image.open(DATA / "kodim23.webp") as im:
        im.convert("RGB").crop((300, 300, 364, 364)).save(work / "a.png")
    assert cli.main(["compress", "a.png", "-q", "12", "-o", "q.aec"]) == 0
    assert container.parse((work / "q.aec").read_bytes()).header.quality == 12
    assert cli.main(["compress", "a.png", "--bpp", "1.5", "-o", "b.aec"]) == 0
    assert (work / "b.aec").stat().st_size * 8 / (64 * 64) <= 1.5
    assert cli.main(["compress", "a.png", "--psnr", "20", "-o", "p.aec"]) == 0
    with Image.open(work / "a.png") as src:
        assert psnr(aecodec.decompress(work / "p.aec"), src) >= 20
    with pytest.raises(SystemExit) as e:
        cli.main(["compress", "a.png", "-q", "50", "--bpp", "1"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["compress", "a.png", "-q", "500"])
    assert cli.main(["compress", "a.png", "-q", "90", "--refine", "6", "-o", "r.aec"]) == 0
    plain = aecodec.compress(work / "a.png", quality=90)
    assert (work / "r.aec").read_bytes() == aecodec.compress(work / "a.png", quality=90, refine=6)
    # refined latents: this crop gains from 6 steps (fewer may not pay and are then dropped)
    assert (work / "r.aec").read_bytes() != plain
    with pytest.raises(SystemExit):
        cli.main(["compress", "a.png", "--refine", "-1"])
    for effort in ("1", "3"):
        args = ["compress", "a.png", "-q", "40", "-e", effort, "-o", f"e{effort}.aec"]
        assert cli.main(args) == 0
        assert (work / f"e{effort}.aec").read_bytes() == aecodec.compress(
            work / "a.png", quality=40, effort=int(effort))
    assert container.parse((work / "e1.aec").read_bytes()).header.orientation == 0
    with pytest.raises(SystemExit):
        cli.main(["compress", "a.png", "--effort", "6"])


def test_never_overwrites_without_force(work, capsys):
    small_png(work / "a.png")
    assert cli.main(["compress", "a.png"]) == 0
    before = (work / "a.aec").read_bytes()
    assert cli.main(["compress", "a.png", "-q", "5"]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "exists" in err[0] and "--force" in err[0]
    assert (work / "a.aec").read_bytes() == before
    assert cli.main(["compress", "a.png", "-q", "5", "--force"]) == 0
    assert (work / "a.aec").read_bytes() != before
    assert sorted(p.name for p in work.iterdir()) == ["a.aec", "a.png"]


def test_folder_batch_continues_after_failures(work, capsys):
    src = work / "in"
    (src / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.png"]):
        Image.new("RGB", (20 + i, 18), (i * 50, 100, 200)).save(src / name)
    (src / "broken.png").write_bytes(b"not an image at all")
    assert cli.main(["compress", "in", "-o", "out", "-q", "30"]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "broken.png" in err[0]
    made = sorted(str(p.relative_to(work / "out")) for p in (work / "out").rglob("*"))
    assert made == ["a.aec", "b.aec", "sub", os.path.join("sub", "c.aec")]
    assert cli.main(["decompress", "out", "-o", "back", "--format", "webp"]) == 0
    with Image.open(work / "back" / "sub" / "c.webp") as im:
        assert im.size == (22, 18)


def test_several_files_and_duplicate_targets(work, capsys):
    small_png(work / "a.png")
    (work / "d").mkdir()
    small_png(work / "d" / "a.png")
    assert cli.main(["compress", "a.png", "d/a.png", "-o", "o"]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "also the output" in err[0]
    assert (work / "o" / "a.aec").exists()


def test_output_file_and_format_from_extension(work):
    small_png(work / "a.png", mode="RGBA", colour=(1, 2, 3, 128))
    assert cli.main(["compress", "a.png", "-o", "x.aec"]) == 0
    assert cli.main(["decompress", "x.aec", "-o", "y.tif"]) == 0
    with Image.open(work / "y.tif") as im:
        assert im.format == "TIFF" and im.mode == "RGBA"
        assert np.all(np.asarray(im)[..., 3] == 128)


def test_jpeg_cannot_take_alpha_and_nothing_is_left(work, capsys):
    small_png(work / "a.png", mode="RGBA", colour=(1, 2, 3, 128))
    assert cli.main(["compress", "a.png"]) == 0
    assert cli.main(["decompress", "a.aec", "--format", "jpeg"]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "alpha" in err[0]
    assert sorted(p.name for p in work.iterdir()) == ["a.aec", "a.png"]


def test_stdout_needs_a_single_input(work, capsys):
    small_png(work / "a.png")
    small_png(work / "b.png")
    assert cli.main(["compress", "a.png", "b.png", "-o", "-"]) == 1
    assert "exactly one" in capsys.readouterr().err


def test_info(work, capsys):
    im = Image.new("RGB", (40, 30), (5, 90, 200))
    aecodec_bytes = aecodec.compress(im, quality=33, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08"
                                     b"\x00\x00\x00\x00\x00\x00")
    (work / "i.aec").write_bytes(aecodec_bytes)
    assert cli.main(["info", "i.aec"]) == 0
    out = capsys.readouterr().out
    assert "40x30 RGB" in out and "hyperprior-mse" in out and "quality:   33" in out
    assert "bpp" in out and "EXIF" in out
    assert cli.main(["info", "--json", "i.aec"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["width"] == 40 and d["model_installed"] and d["bytes"] == len(aecodec_bytes)
    assert d["bpp"] == pytest.approx(len(aecodec_bytes) * 8 / 1200, abs=1e-3)
    assert d["orientation"] == container.parse(aecodec_bytes).header.orientation
    f = container.parse(aecodec_bytes)
    f.header.orientation = 6
    (work / "m.aec").write_bytes(f.to_bytes())
    assert cli.main(["info", "m.aec"]) == 0
    assert "orientation 6 (mirrored, turned half)" in capsys.readouterr().out


# ---- bad input: one line, exit code 1, nothing left behind --------------------------------

@pytest.fixture(scope="module")
def tiny_aec() -> bytes:
    return aecodec.compress(np.full((3, 5, 3), 128, np.uint8), quality=50)


def forged(data: bytes, **changes) -> bytes:
    f = container.parse(data)
    for k, v in changes.items():
        setattr(f.header, k, v)
    if "width" in changes:
        f.header.slice_rows = f.header.latent_height
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return f.to_bytes()
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def bad_files(tiny: bytes) -> dict:
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    flipped = bytearray(tiny)
    flipped[len(tiny) // 2] ^= 0x10
    return {
        "empty": (b"", "empty"),
        "random": (np.random.default_rng(1).bytes(3000), "not an .aec"),
        "png-renamed": (png.getvalue(), "not an .aec"),
        "truncated": (tiny[: len(tiny) - 9], "truncated"),
        "bit-flip": (bytes(flipped), "damaged"),
        "bomb": (forged(tiny, width=100000, height=100000), "100000x100000"),
        "unknown-model": (forged(tiny, model_name="mystery-model"), "mystery-model"),
    }


@pytest.mark.parametrize("case", ["empty", "random", "png-renamed", "truncated", "bit-flip",
                                  "bomb", "unknown-model"])
def test_bad_input_in_process(work, capsys, tiny_aec, case):
    data, words = bad_files(tiny_aec)[case]
    (work / "bad.aec").write_bytes(data)
    assert cli.main(["decompress", "bad.aec"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aecodec: error: bad.aec: ")
    assert words in err[0]
    assert sorted(p.name for p in work.iterdir()) == ["bad.aec"]
    if case != "unknown-model":
        assert cli.main(["info", "bad.aec"]) == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_bad_input_subprocess(tmp_path, tiny_aec):
    """The real entry point: one line each, exit code 1, the batch goes on, nothing written."""
    cases = bad_files(tiny_aec)
    for name, (data, _) in cases.items():
        (tmp_path / f"{name}.aec").write_bytes(data)
    (tmp_path / "good.aec").write_bytes(tiny_aec)
    names = sorted(f"{n}.aec" for n in cases) + ["good.aec"]
    r = run(["decompress", *names, "-o", "out", "--quiet"], tmp_path)
    assert r.returncode == 1
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == len(cases) and all(ln.startswith("aecodec: error: ") for ln in lines)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_every_truncation_and_bit_flip_fails_cleanly(work, capsys, tiny_aec):
    cases = [tiny_aec[:n] for n in range(0, len(tiny_aec), 7)]
    for bit in range(0, len(tiny_aec) * 8, 3):
        b = bytearray(tiny_aec)
        b[bit // 8] ^= 1 << (bit % 8)
        cases.append(bytes(b))
    for data in cases:
        (work / "x.aec").write_bytes(data)
        assert cli.main(["decompress", "x.aec", "--quiet"]) == 1
        assert len(errors(capsys.readouterr().err)) == 1
    assert sorted(p.name for p in work.iterdir()) == ["x.aec"]


def test_missing_input_and_empty_folder(work, capsys):
    (work / "empty").mkdir()
    assert cli.main(["compress", "nope.png", "empty"]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 2 and "no such file" in err[0] and "no matching files" in err[1]


def test_unreadable_sources_fail_with_a_clear_line(work, capsys):
    (work / "empty.png").write_bytes(b"")
    (work / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    Image.new("RGB", (8, 8)).save(work / "ok.png")
    assert cli.main(["compress", "empty.png", "junk.png", "ok.png", "--quiet"]) == 1
    err = errors(capsys.readouterr().err)
    assert err == ["aecodec: error: empty.png: empty file",
                   "aecodec: error: junk.png: not an image file Pillow can read"]
    assert sorted(p.name for p in work.iterdir()) == ["empty.png", "junk.png", "ok.aec", "ok.png"]


def test_an_unwritable_output_names_it(work, capsys):
    Image.new("RGB", (8, 8)).save(work / "a.png")
    (work / "plain").write_bytes(b"a file, not a folder")
    assert cli.main(["compress", "a.png", "-o", "plain/a.aec"]) == 1
    err = errors(capsys.readouterr().err)
    assert err == ["aecodec: error: a.png: cannot write plain/a.aec: plain is not a folder"]
    assert sorted(p.name for p in work.iterdir()) == ["a.png", "plain"]


def test_a_warning_names_its_file(work, capsys):
    Image.new("CMYK", (8, 8), (10, 20, 30, 0)).save(work / "print.jpg")
    Image.new("RGB", (8, 8)).save(work / "plain.png")
    assert cli.main(["compress", "print.jpg", "plain.png", "--quiet"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecodec: warning: print.jpg: CMYK image")
    assert (work / "print.aec").exists() and (work / "plain.aec").exists()


def test_train_without_torch_says_what_to_install(monkeypatch, capsys):
    for mod in [m for m in sys.modules if m == "aecodec.train" or m.startswith("aecodec.train.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "torch", None)
    assert cli.main(["train", "--steps", "1"]) == 1
    assert 'pip install "aecodec[train]"' in capsys.readouterr().err
