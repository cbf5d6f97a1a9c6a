"""Unit tests of the benchmark metrics (benchmarks/metrics.py): pure numpy, fast, no codec peers."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

# load benchmarks/metrics.py by path (benchmarks/ is not a package and must not shadow anything)
_spec = importlib.util.spec_from_file_location(
    "aecodec_bench_metrics", Path(__file__).resolve().parents[1] / "benchmarks" / "metrics.py"
)
metrics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(metrics)


def _synth(h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    g = 128 + 90 * np.sin((xx + yy) / 5.0)
    b = (xx * 3 + yy * 5) % 256
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def _distort(a):
    h, w, _ = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    n = ((xx * 7 + yy * 13) % 17 - 8).astype(np.int16)
    return np.clip(a.astype(np.int16) + n[..., None] * np.array([1, 2, -1]), 0, 255).astype(
        np.uint8
    )


def test_psnr_known_value():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + 1
    assert metrics.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2), abs=1e-9)
    assert metrics.psnr_rgb(a, a) == 100.0


@pytest.mark.parametrize(
    "shape, expected",
    [
        # reference values from pytorch_msssim 1.0.0 (ms_ssim, data_range=255, float64)
        ((192, 256), 0.995347403094411),
        ((181, 203), 0.9953261682796161),  # odd sizes exercise the padded 2x2 pooling
    ],
)
def test_ms_ssim_matches_pytorch_msssim(shape, expected):
    a = _synth(*shape)
    assert metrics.ms_ssim_rgb(a, _distort(a)) == pytest.approx(expected, abs=1e-6)


def test_ms_ssim_identity_and_errors():
    a = _synth(176, 176)
    assert metrics.ms_ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        metrics.ms_ssim_rgb(a[:150], a[:150])  # too small for 5 scales
    with pytest.raises(ValueError):
        metrics.ms_ssim_rgb(a, a[:, :170])
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)


_ANCHOR_R = [0.1, 0.25, 0.5, 1.0, 2.0]
_ANCHOR_D = [26.0, 29.0, 32.0, 35.5, 39.0]


@pytest.mark.parametrize("use_package", [False, True])
def test_bd_rate_of_a_scaled_curve(use_package):
    # use_package=True needs bjontegaard (the test extra): the README's BD-rates come from it
    # the same curve at 80 % of the rate: exactly -20 % whatever the interpolation
    test_r = [0.8 * r for r in _ANCHOR_R]
    res = metrics.bd_rate(_ANCHOR_R, _ANCHOR_D, test_r, _ANCHOR_D, use_package=use_package)
    assert res["bd_rate"] == pytest.approx(-20.0, abs=1e-6)
    assert res["overlap"] == [26.0, 39.0]
    res = metrics.bd_rate(test_r, _ANCHOR_D, _ANCHOR_R, _ANCHOR_D, use_package=use_package)
    assert res["bd_rate"] == pytest.approx(25.0, abs=1e-6)


def test_bd_rate_partial_overlap_and_na():
    # test curve shifted up by 2 dB over part of the range: fewer bits, bd < 0
    res = metrics.bd_rate(_ANCHOR_R, _ANCHOR_D, _ANCHOR_R[:3], [28.0, 31.0, 34.0],
                          use_package=False)
    assert res["overlap"] == [28.0, 34.0]
    assert res["bd_rate"] < 0
    # overlap below the minimum -> n/a, not an exception
    res = metrics.bd_rate(_ANCHOR_R, _ANCHOR_D, [0.1, 0.2], [38.5, 45.0], min_overlap=1.0)
    assert res["bd_rate"] is None and "overlap" in res["reason"]
    res = metrics.bd_rate(_ANCHOR_R, _ANCHOR_D, [0.1, 0.2], [40.0, 45.0])
    assert res["bd_rate"] is None and res["overlap"] is None
    res = metrics.bd_rate(_ANCHOR_R, _ANCHOR_D, [0.5], [33.0])
    assert res["bd_rate"] is None and res["reason"] == "fewer than 2 points"


def test_monotone_curve_drops_dominated_points():
    r, d = metrics.monotone_curve([2.0, 0.5, 1.0, 1.5, 0.0], [40, 30, 35, 34.9, 10])
    assert r == [0.5, 1.0, 2.0] and d == [30.0, 35.0, 40.0]
