"""aecodec batch (Ray Data): byte-identical to the single-process CLI, failure manifest, resume.

One local Ray for the module (2 CPUs, loopback only); every job runs with a time limit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from aecodec import batch, cli  # noqa: E402

JOB_TIMEOUT = 240  # seconds, per batch job (each takes a few seconds here)
QUALITY = "60"
GOOD = ["a.png", "b.jpg", "grey.png", "rgba.png", "sub/c.png", "sub/d.webp", "sub/deep/e.png",
        "sub/deep/f.bmp", "g.tif", "h.png"]
BAD = {"corrupt.png": "UnsupportedImageError", "sub/sixteen.png": "UnsupportedImageError"}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A dozen tiny images (32×48) in a tree: ten good ones, one corrupt, one 16-bit."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(34)
    yy, xx = np.mgrid[0:32, 0:48]
    for i, name in enumerate(GOOD):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        base = np.stack([xx * 5 + i * 9, yy * 7, (xx + yy) * 3], axis=-1) % 256
        rgb = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(rgb, "RGB")
        if name == "grey.png":
            im = im.convert("L")
        elif name == "rgba.png":
            im = im.convert("RGBA")
            im.putalpha(Image.fromarray((xx * 5).astype(np.uint8)))
        im.save(p)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not a PNG" * 10)
    Image.fromarray((yy * 1000 + xx).astype(np.uint16)).save(root / "sub" / "sixteen.png")
    with Image.open(root / "sub" / "sixteen.png") as im:
        assert im.mode.startswith("I;16") or im.mode == "I"
    return root


@pytest.fixture(scope="module")
def cluster():
    """A local Ray started by the test: 2 CPUs, listening and connecting on 127.0.0.1 only."""
    batch.start_local_ray(num_cpus=2)
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory) -> Path:
    """What the single-process CLI writes for the same folder."""
    out = tmp_path_factory.mktemp("cli") / "out"
    assert cli.main(["compress", "-q", QUALITY, str(images), "-o", str(out), "--quiet"]) == 1
    return out


def files(root: Path, suffix: str) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*" + suffix))}


@pytest.fixture(scope="module")
def batch_run(cluster, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    rc = cli.main(["batch", "compress", str(images), str(out), "-q", QUALITY, "--workers", "2",
                   "--quiet", "--timeout", str(JOB_TIMEOUT)])
    return rc, out


def test_compress_matches_the_cli_byte_for_byte(batch_run, reference):
    rc, out = batch_run
    assert rc == 1  # two inputs failed
    ref = files(reference, ".aec")
    assert sorted(ref) == sorted(str(Path(n).with_suffix(".aec").as_posix()) for n in GOOD)
    assert files(out, ".aec") == ref
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # atomic writes


def test_failure_manifest(batch_run, images):
    _, out = batch_run
    m = json.loads((out / batch.MANIFEST_NAME).read_text())
    assert (m["inputs"], m["written"], m["skipped"], m["failed"]) == (12, 10, 0, 2)
    got = {Path(f["input"]).relative_to(images).as_posix(): f for f in m["failures"]}
    assert {k: f["type"] for k, f in got.items()} == BAD
    assert "I;16" in got["sub/sixteen.png"]["error"]
    assert got["corrupt.png"]["error"] == "not an image file Pillow can read"
    assert got["corrupt.png"]["output"] == str(out / "corrupt.aec")


def test_resume_skips_valid_outputs_and_redoes_the_rest(batch_run, images, reference):
    rc, out = batch_run
    (out / "a.aec").unlink()  # lost
    damaged = out / "sub" / "c.aec"
    damaged.write_bytes(damaged.read_bytes()[:-10])  # truncated: not a valid .aec file
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.aec") if p != damaged}
    report = batch.compress_folder([images], out, quality=float(QUALITY), workers=2,
                                   quiet=True, timeout=JOB_TIMEOUT)
    assert (report.written, report.skipped, len(report.failures)) == (2, 8, 2)
    assert files(out, ".aec") == files(reference, ".aec")
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    # another quality is another job: nothing is kept
    other = batch.compress_folder([images / "sub" / "deep"], out / "q30", quality=30,
                                  workers=1, quiet=True, timeout=JOB_TIMEOUT)
    assert (other.written, other.skipped) == (2, 0)
    again = batch.compress_folder([images / "sub" / "deep"], out / "q30", quality=30,
                                  workers=1, quiet=True, timeout=JOB_TIMEOUT)
    assert (again.written, again.skipped, again.ok) == (0, 2, True)
    assert json.loads(Path(again.manifest).read_text())["failures"] == []


def test_decompress_matches_the_cli(cluster, reference, tmp_path):
    ref = tmp_path / "cli"
    assert cli.main(["decompress", str(reference), "-o", str(ref), "--quiet"]) == 0
    out = tmp_path / "batch"
    rc = cli.main(["batch", "decompress", str(reference), str(out), "--workers", "2",
                   "--quiet", "--timeout", str(JOB_TIMEOUT)])
    assert rc == 0
    assert files(out, ".png") == files(ref, ".png") and len(files(ref, ".png")) == len(GOOD)


def test_planning_and_options_without_ray(images, tmp_path):
    rows, failures = batch.plan([images / "a.png", images / "missing.png", images / "sub"],
                                tmp_path, "compress", ".aec")
    assert {r["output"] for r in rows} >= {str(tmp_path / "a.aec"), str(tmp_path / "c.aec"),
                                          str(tmp_path / "deep" / "e.aec")}
    assert [(Path(f.input).name, f.error) for f in failures] == [("missing.png", "no such file")]
    with pytest.raises(batch.BatchError, match="only one"):
        batch.compress_folder([images], tmp_path, quality=50, bpp=1.0)
    assert cli.main(["batch"]) == 2
    assert os.listdir(tmp_path) == []  # nothing written by refused jobs


def test_gpu_workers_need_gpus(cluster, images, tmp_path):
    with pytest.raises(batch.BatchError, match="0 GPU"):
        batch.compress_folder([images], tmp_path, gpus_per_worker=1, quiet=True)
