"""aecodec.cdf_tables: pmf quantization and the Gaussian table family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aecodec import _core
from aecodec.cdf_tables import gaussian_family, gaussian_radius, pmf_to_cdf


def check_cdf(cdf, nbins, precision):
    assert cdf.dtype == np.uint32 and cdf.shape == (nbins + 1,)
    assert cdf[0] == 0 and cdf[-1] == 1 << precision
    assert np.all(np.diff(cdf.astype(np.int64)) >= 1)


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(0, 1e6)),
    st.integers(8, 16),
)
def test_pmf_to_cdf_valid(pmf, precision):
    if pmf.sum() <= 0:
        pmf[0] = 1.0
    cdf = pmf_to_cdf(pmf, precision)
    check_cdf(cdf, pmf.size, precision)
    assert np.array_equal(cdf, pmf_to_cdf(pmf.copy(), precision))  # deterministic


def test_pmf_to_cdf_is_near_optimal():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.full(50, 0.3))
        p = np.append(p, 1e-9)
        cdf = pmf_to_cdf(p, 16)
        q = np.diff(cdf.astype(np.float64)) / 65536
        p = p / p.sum()
        kl = float(np.sum(p[p > 0] * np.log2(p[p > 0] / q[p > 0])))
        assert kl < 1e-3


def test_pmf_to_cdf_exact_cases():
    np.testing.assert_array_equal(pmf_to_cdf(np.array([1.0]), 4), [0, 16])
    np.testing.assert_array_equal(pmf_to_cdf(np.array([0.5, 0.5]), 4), [0, 8, 16])
    # zero-mass bins still get one slot, taken from the bigger bins
    np.testing.assert_array_equal(pmf_to_cdf(np.array([0.0, 1.0, 0.0]), 4), [0, 1, 15, 16])
    # as many bins as slots: all ones
    np.testing.assert_array_equal(pmf_to_cdf(np.array([0.9, 0.1, 0, 0]), 2), [0, 1, 2, 3, 4])


@pytest.mark.parametrize(
    "pmf, precision, match",
    [
        (np.array([0.5, -0.1]), 16, "non-negative"),
        (np.array([0.5, np.nan]), 16, "finite"),
        (np.zeros(3), 16, "positive sum"),
        (np.zeros((2, 2)) + 1, 16, "1-D"),
        (np.ones(5), 2, "5 bins but precision 2"),
        (np.ones(2), 0, "precision must be an integer in"),
        (np.ones(2), 17, "precision must be"),
        (np.ones(2), 16.0, "precision must be"),
    ],
)
def test_pmf_to_cdf_errors(pmf, precision, match):
    with pytest.raises(ValueError, match=match):
        pmf_to_cdf(pmf, precision)


def normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def test_gaussian_family_layout_and_masses():
    scales = np.exp(np.linspace(math.log(0.11), math.log(256), 64))
    fam = gaussian_family(scales)
    cdf, cdf_len, off = fam["cdf"], fam["cdf_len"], fam["offset"]
    assert cdf.dtype == np.uint32 and cdf_len.dtype == np.int32 and off.dtype == np.int32
    assert cdf.shape == (64, cdf_len.max())
    for t, sigma in enumerate(scales):
        n, r = int(cdf_len[t]), -int(off[t])
        assert n == 2 * r + 3
        check_cdf(cdf[t, :n], n - 1, 16)
        assert np.all(cdf[t, n:] == 65536)
        # tail beyond the support is within the requested bound, and R is the smallest such
        assert 2 * (1 - normal_cdf((r + 0.5) / sigma)) <= 1e-9 * 1.0001
        assert r == 0 or 2 * (1 - normal_cdf((r - 0.5) / sigma)) > 1e-9
        # quantized masses follow the Gaussian
        freq = np.diff(cdf[t, :n].astype(np.float64))[:-1]
        v = np.arange(-r, r + 1)
        mass = np.array([normal_cdf((x + 0.5) / sigma) - normal_cdf((x - 0.5) / sigma) for x in v])
        big = mass > 1e-3
        np.testing.assert_allclose(freq[big] / 65536, mass[big], rtol=0.02, atol=2 / 65536)
    # the core accepts it
    _core.RansTables(cdf, cdf_len, off, 16)


def test_gaussian_family_codes_at_entropy():
    fam = gaussian_family(np.array([0.5, 2.0, 8.0]))
    tb = _core.RansTables(fam["cdf"], fam["cdf_len"], fam["offset"], 16)
    rng = np.random.default_rng(1)
    n = 100_000
    idx = rng.integers(0, 3, n).astype(np.int32)
    sigma = np.array([0.5, 2.0, 8.0])[idx]
    sym = np.round(rng.normal(0, sigma)).astype(np.int32)
    bits = 8 * len(tb.encode(sym, idx))
    v = sym.astype(np.float64)
    p = np.array([normal_cdf((x + 0.5) / s) - normal_cdf((x - 0.5) / s) for x, s in zip(v, sigma)])
    ideal = float(-np.log2(p).sum())
    assert ideal <= bits <= ideal * 1.01


def test_gaussian_radius_small_and_precision_limits():
    assert gaussian_radius(0.11, 1e-9) == 1
    assert gaussian_radius(1.0, 0.7) == 0 and gaussian_radius(1.0, 0.5) == 1
    small = gaussian_family(np.array([0.2, 1.0]), precision=8, tail=1e-3)
    assert small["cdf"][0, small["cdf_len"][0] - 1] == 256
    with pytest.raises(ValueError, match="raise precision or tail"):
        gaussian_family(np.array([256.0]), precision=8)


@pytest.mark.parametrize(
    "scales, kw, match",
    [
        (np.array([]), {}, "non-empty"),
        (np.array([1.0, 0.0]), {}, "> 0"),
        (np.array([1.0, np.inf]), {}, "finite"),
        (np.array([1.0]), {"tail": 0.0}, "tail must be"),
        (np.array([1.0]), {"precision": 20}, "precision must be"),
    ],
)
def test_gaussian_family_errors(scales, kw, match):
    with pytest.raises(ValueError, match=match):
        gaussian_family(scales, **kw)
