"""aecodec._core.quantize_residual / dequantize against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aecodec import _core

I32 = np.iinfo(np.int32)


def numpy_quantize(y, mu):
    r = (y - mu).astype(np.float32)
    with np.errstate(invalid="ignore"):
        out = np.rint(np.clip(np.nan_to_num(r, nan=0.0), -(2.0**31), 2.0**31)).astype(np.float64)
    return np.clip(out, I32.min, I32.max).astype(np.int32)


floats = hnp.arrays(np.float32, st.integers(0, 300), elements=st.floats(width=32, allow_nan=True))


@settings(max_examples=100, deadline=None)
@given(floats, st.data())
def test_quantize_matches_numpy(y, data):
    mu = data.draw(hnp.arrays(np.float32, y.shape, elements=st.floats(-1e3, 1e3, width=32)))
    np.testing.assert_array_equal(_core.quantize_residual(y, mu), numpy_quantize(y, mu))


def test_round_half_even_and_saturation():
    y = np.array(
        [
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            0.49999997,
            8388609.0,
            -8388609.0,
            3e9,
            -3e9,
            np.inf,
            -np.inf,
            np.nan,
            2147483520.0,
            -2147483648.0,
        ],
        np.float32,
    )
    mu = np.zeros_like(y)
    expect = [
        0,
        2,
        2,
        0,
        -2,
        -2,
        0,
        8388609,
        -8388609,
        I32.max,
        I32.min,
        I32.max,
        I32.min,
        0,
        2147483520,
        I32.min,
    ]
    np.testing.assert_array_equal(_core.quantize_residual(y, mu), np.array(expect, np.int32))


def test_dequantize_and_shapes():
    rng = np.random.default_rng(0)
    s = rng.integers(-100, 100, (4, 5, 6)).astype(np.int32)
    mu = rng.standard_normal((4, 5, 6)).astype(np.float32)
    out = _core.dequantize(s, mu)
    assert out.dtype == np.float32 and out.shape == (4, 5, 6)
    np.testing.assert_array_equal(out, s.astype(np.float32) + mu)
    y = out + rng.uniform(-0.49, 0.49, out.shape).astype(np.float32)
    np.testing.assert_array_equal(_core.quantize_residual(y, mu), s)
    big = np.array([I32.max, I32.min, 2**24 + 1], np.int32)
    np.testing.assert_array_equal(
        _core.dequantize(big, np.zeros(3, np.float32)), big.astype(np.float32)
    )


@pytest.mark.parametrize(
    "fn, args, match",
    [
        (
            "quantize_residual",
            (np.zeros(3, np.float64), np.zeros(3, np.float32)),
            "y must be .* float32",
        ),
        (
            "quantize_residual",
            (np.zeros(3, np.float32), np.zeros(4, np.float32)),
            "y and mu must have the same shape",
        ),
        (
            "quantize_residual",
            (np.zeros((3, 2), np.float32).T, np.zeros((2, 3), np.float32)),
            "not C-contiguous",
        ),
        ("dequantize", (np.zeros(3, np.int64), np.zeros(3, np.float32)), "s must be .* int32"),
        ("dequantize", (np.zeros(3, np.int32), [0.0, 0.0, 0.0]), "mu must be .* float32, got list"),
        ("dequantize", (np.zeros(3, np.int32), np.zeros((3, 1), np.float32)), "same shape"),
    ],
)
def test_value_errors(fn, args, match):
    with pytest.raises(ValueError, match=match):
        getattr(_core, fn)(*args)
