"""Concurrency (issue 35): the module functions and one shared Codec, called from 8 threads at
once, give what serial calls give; each call's timings and figures come back to its caller."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import aecodec

THREADS = 8


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Eight tiny (48×64) distinct images, some with alpha, so calls differ."""
    rng = np.random.default_rng(35)
    base = np.linspace(0, 255, 48 * 64 * 3).reshape(48, 64, 3)
    out = []
    for i in range(THREADS):
        a = np.clip(base + rng.normal(0, 10 + 4 * i, base.shape), 0, 255).astype(np.uint8)
        if i % 3 == 2:
            a = np.dstack([a, np.full(a.shape[:2], 200 - i, np.uint8)])
        out.append(a)
    return out


# quality, bpp, psnr and effort targets, one per image: the search paths run concurrently too
TARGETS = [dict(quality=10), dict(quality=90), dict(bpp=1.5), dict(psnr=26.0),
           dict(quality=50, effort=2), dict(quality=0), dict(bpp=0.8), dict(quality=100)]


def _at_once(fn, items):
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(fn, items))


def test_module_functions_from_8_threads_match_serial(images):
    jobs = list(zip(images, TARGETS, strict=True))
    serial = [aecodec.compress(a, **kw) for a, kw in jobs]
    assert _at_once(lambda j: aecodec.compress(j[0], **j[1]), jobs) == serial
    decoded = [np.asarray(aecodec.decompress(d)) for d in serial]
    for got, want in zip(_at_once(aecodec.decompress, serial), decoded, strict=True):
        assert np.array_equal(np.asarray(got), want)


def test_one_codec_shared_by_8_threads_returns_each_call_its_own_results(images):
    codec = aecodec.Codec(threads=2)
    jobs = list(zip(images, TARGETS, strict=True))
    serial = [codec.encode(a, **kw) for a, kw in jobs]
    results = _at_once(lambda j: codec.encode(j[0], **j[1]), jobs)
    for got, want, (a, _) in zip(results, serial, jobs, strict=True):
        assert got.data == want.data and got.quality == want.quality
        assert (got.width, got.height) == (a.shape[1], a.shape[0])
        assert got.stats["bytes"] == len(got.data) and got.timings["total"] > 0
    decoded = _at_once(codec.decode, [r.data for r in serial])
    for got, want in zip(decoded, serial, strict=True):
        assert got.size == len(want.data) and got.quality == want.quality
        assert np.array_equal(np.asarray(got.image), np.asarray(codec.decompress(want.data)))


def test_last_results_are_per_thread(images):
    """The deprecated last_* attributes are the calling thread's own."""
    codec = aecodec.Codec(threads=1)

    def run(i):
        r = codec.encode(images[i], quality=10 * i)
        return codec.last_stats, r.stats

    for seen, own in _at_once(run, range(THREADS)):
        assert seen == own
