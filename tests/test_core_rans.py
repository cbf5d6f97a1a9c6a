"""aecodec._core rANS coder: exact round trips, efficiency, validation, hostile input."""

from __future__ import annotations

import contextlib
import math
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aecodec import _core

I32_MIN, I32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_tables(rng: np.random.Generator, supports, precision: int, offsets=None):
    """Random valid tables: every bin >= 1, sum 2**precision, rows padded with garbage."""
    rows = []
    total = 1 << precision
    for s in supports:
        nb = s + 1
        assert nb <= total
        # random composition of `total` into nb positive parts
        cuts = (
            np.sort(rng.choice(np.arange(1, total), size=nb - 1, replace=False)) if nb > 1 else []
        )
        rows.append(np.concatenate([[0], cuts, [total]]).astype(np.uint32))
    width = max(len(r) for r in rows) + int(rng.integers(0, 3))
    cdf = rng.integers(0, 2**32, size=(len(rows), width), dtype=np.uint64).astype(np.uint32)
    for t, r in enumerate(rows):
        cdf[t, : len(r)] = r
    cdf_len = np.array([len(r) for r in rows], dtype=np.int32)
    if offsets is None:
        offsets = [int(rng.integers(-s - 3, 3)) for s in supports]
    return cdf, cdf_len, np.array(offsets, dtype=np.int32)


@st.composite
def coding_problem(draw):
    precision = draw(st.integers(1, 16))
    max_support = min(40, (1 << precision) - 1)
    supports = draw(st.lists(st.integers(0, max_support), min_size=1, max_size=5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    offsets = draw(
        st.lists(
            st.one_of(st.integers(-50, 50), st.sampled_from([I32_MIN, -(2**30), 2**30])),
            min_size=len(supports),
            max_size=len(supports),
        )
    )
    offsets = [min(o, I32_MAX - s + 1) for o, s in zip(offsets, supports)]
    tables = make_tables(rng, supports, precision, offsets)
    n = draw(st.sampled_from([0, 1, 2, 7, 31, 33, 100, 1000, 5000]))
    idx = rng.integers(0, len(supports), n).astype(np.int32)
    cdf, cdf_len, off = tables
    # mostly in-support symbols, plus near misses and far out-of-range values
    base = off[idx].astype(np.int64) + rng.integers(-3, np.maximum(cdf_len[idx] - 2, 0) + 3)
    sym = np.clip(base, I32_MIN, I32_MAX)
    extreme = rng.random(n) < 0.05
    sym[extreme] = rng.choice(
        [I32_MIN, I32_MAX, I32_MIN + 1, I32_MAX - 1, 0, -1, 1 << 20], extreme.sum()
    )
    wild = rng.random(n) < 0.02
    sym[wild] = rng.integers(I32_MIN, I32_MAX, wild.sum(), endpoint=True)
    lanes = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 32]))
    return sym.astype(np.int32), idx, cdf, cdf_len, off, precision, lanes


@contextlib.contextmanager
def isa(name):
    """Force the core's instruction set (AECODEC_CORE_ISA); None keeps the best available."""
    old = os.environ.get("AECODEC_CORE_ISA")
    if name is None:
        os.environ.pop("AECODEC_CORE_ISA", None)
    else:
        os.environ["AECODEC_CORE_ISA"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AECODEC_CORE_ISA", None)
        else:
            os.environ["AECODEC_CORE_ISA"] = old


def decode_paths(data, idx, *args):
    """Decode with the SIMD fast path (where the CPU has one) and the scalar one: each gives the
    decoded array or None for ValueError, and both must agree."""
    results = []
    for name in (None, "sse2"):
        with isa(name):
            try:
                results.append(_core.decode(data, idx, *args))
            except ValueError:
                results.append(None)
    a, b = results
    assert (a is None) == (b is None)
    if a is not None:
        np.testing.assert_array_equal(a, b)
    return a


def decode_both_paths(data, idx, *args):
    out = decode_paths(data, idx, *args)
    assert out is not None
    return out


@FAST
@given(coding_problem())
def test_round_trip_exact(problem):
    sym, idx, cdf, cdf_len, off, precision, lanes = problem
    data = _core.encode(sym, idx, cdf, cdf_len, off, precision, lanes=lanes)
    assert isinstance(data, bytes)
    out = decode_both_paths(data, idx, cdf, cdf_len, off, precision)
    assert out.dtype == np.int32 and out.shape == sym.shape
    np.testing.assert_array_equal(out, sym)
    # the prepared-table API produces the same bytes
    tb = _core.RansTables(cdf, cdf_len, off, precision)
    assert tb.encode(sym, idx, lanes=lanes) == data
    np.testing.assert_array_equal(tb.decode(data, idx), sym)


def test_empty_and_multidimensional():
    rng = np.random.default_rng(1)
    cdf, cdf_len, off = make_tables(rng, [3, 10], 12)
    empty = np.zeros(0, np.int32)
    data = _core.encode(empty, empty, cdf, cdf_len, off, 12)
    assert _core.decode(data, empty, cdf, cdf_len, off, 12).shape == (0,)
    sym = rng.integers(-20, 20, (3, 4, 5)).astype(np.int32)
    idx = rng.integers(0, 2, (3, 4, 5)).astype(np.int32)
    data = _core.encode(sym, idx, cdf, cdf_len, off, 12)
    np.testing.assert_array_equal(_core.decode(data, idx, cdf, cdf_len, off, 12), sym)


def test_extremes_and_escape_only_tables():
    # support size 0 (only the escape bin) and offsets at the int32 edges
    rng = np.random.default_rng(2)
    cdf, cdf_len, off = make_tables(rng, [0, 1, 5, 0], 16, [I32_MIN, I32_MAX, I32_MAX - 4, I32_MAX])
    vals = np.array([I32_MIN, I32_MAX, 0, -1, 1, I32_MIN + 1, I32_MAX - 1, I32_MAX - 4], np.int32)
    sym = np.repeat(vals, 4)
    idx = np.tile(np.arange(4, dtype=np.int32), len(vals))
    for lanes in (1, 4, 32):
        data = _core.encode(sym, idx, cdf, cdf_len, off, 16, lanes=lanes)
        np.testing.assert_array_equal(_core.decode(data, idx, cdf, cdf_len, off, 16), sym)


def information_bits(sym, idx, cdf, cdf_len, off, precision):
    freq = np.diff(cdf.astype(np.int64), axis=1)
    b = sym.astype(np.int64) - off[idx]
    support = cdf_len[idx].astype(np.int64) - 2
    inside = (b >= 0) & (b < support)
    assert inside.all()
    return float(np.sum(precision - np.log2(freq[idx, b])))


@pytest.mark.parametrize("precision", [16, 12])
def test_size_close_to_information_content(precision):
    from aecodec.cdf_tables import gaussian_family

    fam = gaussian_family(
        np.exp(np.linspace(math.log(0.11), math.log(16), 24)), precision=precision
    )
    cdf, cdf_len, off = fam["cdf"], fam["cdf_len"], fam["offset"]
    rng = np.random.default_rng(3)
    n = 300_000
    idx = rng.integers(0, len(cdf), n).astype(np.int32)
    # draw symbols from the quantized tables themselves (inverse CDF on uniform slots)
    slots = rng.integers(0, 1 << precision, n)
    bins = np.array(
        [np.searchsorted(cdf[t, : cdf_len[t]], s, side="right") - 1 for t, s in zip(idx, slots)]
    )
    bins = np.minimum(
        bins, cdf_len[idx] - 3
    )  # keep inside the support: escapes are tested elsewhere
    sym = (off[idx] + bins).astype(np.int32)
    bits = information_bits(sym, idx, cdf, cdf_len, off, precision)
    data = _core.encode(sym, idx, cdf, cdf_len, off, precision)
    assert len(data) * 8 <= bits * 1.01 + 8
    assert len(data) * 8 >= bits * 0.99
    np.testing.assert_array_equal(decode_both_paths(data, idx, cdf, cdf_len, off, precision), sym)


def test_escape_cost_is_small():
    rng = np.random.default_rng(4)
    cdf, cdf_len, off = make_tables(rng, [4], 16, [0])
    sym = np.full(1000, 10**9, np.int32)
    idx = np.zeros(1000, np.int32)
    data = _core.encode(sym, idx, cdf, cdf_len, off, 16)
    esc_bits = 16 - math.log2(int(cdf[0, 5]) - int(cdf[0, 4]))
    assert len(data) * 8 <= 1000 * (esc_bits + 7 + 29) + 8 * 40


def test_stream_format_is_stable():
    # guards the on-disk format (docs: csrc/rans.hpp header comment)
    cdf = np.array([[0, 1000, 60000, 65000, 65536]], np.uint32)
    sym = np.array([0, 1, 2, 5, -7, 1, 0, 2], np.int32)
    idx = np.zeros(8, np.int32)
    args = (cdf, np.array([5], np.int32), np.array([0], np.int32), 16)
    data = _core.encode(sym, idx, *args, lanes=2)
    assert data.hex() == GOLDEN_HEX, data.hex()
    np.testing.assert_array_equal(_core.decode(data, idx, *args), sym)


GOLDEN_HEX = "11e40172d3d7ce080083588431"


def test_released_gil_threads_agree():
    rng = np.random.default_rng(5)
    cdf, cdf_len, off = make_tables(rng, [30, 200], 16)
    sym = rng.integers(-10, 150, 200_000).astype(np.int32)
    idx = rng.integers(0, 2, 200_000).astype(np.int32)
    tb = _core.RansTables(cdf, cdf_len, off, 16)
    ref = tb.encode(sym, idx)
    results = []

    def work():
        results.append(tb.decode(tb.encode(sym, idx), idx))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all((r == sym).all() for r in results)
    assert tb.encode(sym, idx) == ref


# ---------------------------------------------------------------------------- hostile input


def small_setup():
    rng = np.random.default_rng(6)
    cdf, cdf_len, off = make_tables(rng, [2, 9, 40], 14)
    sym = rng.integers(-5, 45, 3000).astype(np.int32)
    sym[::97] = I32_MAX
    idx = rng.integers(0, 3, 3000).astype(np.int32)
    return sym, idx, (cdf, cdf_len, off, 14)


def decode_or_valueerror(data, idx, args):
    out = decode_paths(data, idx, *args)
    if out is None:
        return None
    assert out.shape == idx.shape and out.dtype == np.int32
    return out


@FAST
@given(st.binary(max_size=400), st.integers(0, 2000))
def test_random_bytes_never_crash(data, n):
    _sym, idx, args = small_setup()
    decode_or_valueerror(data, idx[:n], args)
    for lanes_log2 in (3, 5):  # a valid header so the (SIMD) fast paths run on garbage
        decode_or_valueerror(bytes([0x10 | lanes_log2]) + data, idx[:n], args)


@FAST
@given(st.data())
def test_truncated_and_bitflipped_streams(draw):
    sym, idx, args = small_setup()
    data = _core.encode(sym, idx, *args, lanes=draw.draw(st.sampled_from([0, 8, 32])))
    cut = draw.draw(st.integers(0, len(data) - 1))
    assert decode_or_valueerror(data[:cut], idx, args) is None or cut == len(data)
    flips = draw.draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=8))
    bad = bytearray(data)
    for f in flips:
        bad[f // 8] ^= 1 << (f % 8)
    decode_or_valueerror(bytes(bad), idx, args)
    # appended garbage and a different symbol count are detected
    assert decode_or_valueerror(data + b"\0\0", idx, args) is None
    assert decode_or_valueerror(data, idx[:-1], args) is None


@pytest.mark.parametrize("lanes", [2, 32])
def test_corrupt_streams_mostly_detected(lanes):
    sym, idx, args = small_setup()
    data = _core.encode(sym, idx, *args, lanes=lanes)
    rng = np.random.default_rng(7)
    detected = 0
    for _ in range(200):
        bad = bytearray(data)
        pos = int(rng.integers(0, len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        out = decode_or_valueerror(bytes(bad), idx, args)
        detected += out is None or not np.array_equal(out, sym)
    assert detected == 200  # a flipped bit never decodes silently to the original symbols


def test_decode_accepts_bytes_like():
    sym, idx, args = small_setup()
    data = _core.encode(sym, idx, *args)
    for buf in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        np.testing.assert_array_equal(_core.decode(buf, idx, *args), sym)


# ---------------------------------------------------------------------------- validation

GOOD_CDF = np.array([[0, 10, 20, 65536], [0, 65535, 65536, 65536]], np.uint32)
GOOD_LEN = np.array([4, 3], np.int32)
GOOD_OFF = np.array([0, -1], np.int32)
GOOD_SYM = np.array([0, 1, 5], np.int32)
GOOD_IDX = np.array([0, 1, 1], np.int32)


def enc(**kw):
    a = dict(
        symbols=GOOD_SYM,
        indexes=GOOD_IDX,
        cdf=GOOD_CDF,
        cdf_len=GOOD_LEN,
        offset=GOOD_OFF,
        precision=16,
    )
    a.update(kw)
    return _core.encode(**a)


def dec(**kw):
    a = dict(
        data=enc(), indexes=GOOD_IDX, cdf=GOOD_CDF, cdf_len=GOOD_LEN, offset=GOOD_OFF, precision=16
    )
    a.update(kw)
    return _core.decode(**a)


def test_good_arguments_work():
    np.testing.assert_array_equal(dec(), GOOD_SYM)


@pytest.mark.parametrize(
    "kw, match",
    [
        (
            dict(symbols=GOOD_SYM.astype(np.int64)),
            "symbols must be a C-contiguous numpy array of dtype int32",
        ),
        (dict(symbols=[0, 1, 5]), "symbols must be .* int32, got list"),
        (dict(symbols=np.arange(6, dtype=np.int32)[::2]), "symbols .*not C-contiguous"),
        (dict(symbols=GOOD_SYM.astype(">i4")), "symbols must be"),
        (dict(indexes=GOOD_IDX.astype(np.uint32)), "indexes must be .* int32"),
        (dict(indexes=GOOD_IDX[:2]), "symbols and indexes must have the same shape"),
        (dict(indexes=np.array([0, 2, 0], np.int32)), r"indexes\[1\] = 2 is out of range \[0, 2\)"),
        (dict(indexes=np.array([0, -1, 0], np.int32)), r"indexes\[1\] = -1 is out of range"),
        (dict(cdf=GOOD_CDF.astype(np.int32)), "cdf must be .* uint32"),
        (dict(cdf=GOOD_CDF[0]), "cdf must have 2 dimension"),
        (
            dict(
                cdf=np.zeros((0, 4), np.uint32),
                cdf_len=np.zeros(0, np.int32),
                offset=np.zeros(0, np.int32),
            ),
            "at least one row",
        ),
        (dict(cdf=np.zeros((2, 1), np.uint32)), "at least 2 entries"),
        (dict(cdf_len=np.array([4], np.int32)), r"cdf_len must have shape \(T,\) = \(2,\)"),
        (dict(cdf_len=GOOD_LEN.astype(np.int64)), "cdf_len must be .* int32"),
        (dict(cdf_len=np.array([5, 3], np.int32)), r"cdf_len\[0\] = 5 is out of range \[2, 4\]"),
        (dict(cdf_len=np.array([4, 1], np.int32)), r"cdf_len\[1\] = 1 is out of range"),
        (dict(offset=np.array([0], np.int32)), r"offset must have shape \(T,\)"),
        (dict(offset=GOOD_OFF.astype(np.float32)), "offset must be .* int32"),
        (
            dict(offset=np.array([I32_MAX, 0], np.int32)),
            r"offset\[0\] = 2147483647 is out of range",
        ),
        (
            dict(cdf=np.array([[1, 10, 20, 65536], [0, 65535, 65536, 65536]], np.uint32)),
            r"cdf\[0, 0\] must be 0, got 1",
        ),
        (
            dict(cdf=np.array([[0, 10, 20, 65535], [0, 65535, 65536, 65536]], np.uint32)),
            r"cdf\[0, cdf_len\[0\] - 1\] must be 2\*\*precision = 65536, got 65535",
        ),
        (
            dict(cdf=np.array([[0, 10, 10, 65536], [0, 65535, 65536, 65536]], np.uint32)),
            r"cdf\[0\] must be strictly increasing.*cdf\[0, 1\] = 10 >= cdf\[0, 2\] = 10",
        ),
        (
            dict(cdf=np.array([[0, 30, 20, 65536], [0, 65535, 65536, 65536]], np.uint32)),
            "strictly increasing",
        ),
        (dict(precision=0), r"precision must be an integer in \[1, 16\], got 0"),
        (dict(precision=17), r"precision must be an integer in \[1, 16\], got 17"),
        (dict(precision=16.0), "precision must be an integer"),
        (dict(precision="16"), "precision must be an integer"),
        (dict(precision=15), r"must be 2\*\*precision = 32768"),
    ],
)
def test_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        enc(**kw)
    dkw = {k: v for k, v in kw.items() if k != "symbols"}
    if "indexes" in dkw and "same shape" in match:
        return
    if "symbols" not in kw:
        with pytest.raises(ValueError, match=match):
            dec(**dkw)


def test_numpy_integer_precision_accepted():
    np.testing.assert_array_equal(dec(precision=np.int32(16)), GOOD_SYM)
    np.testing.assert_array_equal(dec(precision=np.array(16, np.int32)), GOOD_SYM)


@pytest.mark.parametrize("lanes", [-1, 3, 64, 1.0])
def test_lanes_validation(lanes):
    with pytest.raises(ValueError, match="lanes must be"):
        enc(lanes=lanes)


@pytest.mark.parametrize("data", ["text", 123, None, np.zeros(4, np.int32)])
def test_data_must_be_bytes(data):
    with pytest.raises(ValueError, match="data must be"):
        dec(data=data)


def test_decode_errors_are_valueerrors_with_messages():
    data = enc()
    with pytest.raises(ValueError, match="empty"):
        dec(data=b"")
    with pytest.raises(ValueError, match="header"):
        dec(data=b"\x77" + data[1:])
    with pytest.raises(ValueError, match="truncated"):
        dec(data=data[:3])
    with pytest.raises(_core.DecodeError):
        dec(data=data + b"\x00\x00")
    assert issubclass(_core.DecodeError, ValueError)


def test_prepared_tables_properties():
    tb = _core.RansTables(GOOD_CDF, GOOD_LEN, GOOD_OFF, 16)
    assert tb.num_tables == 2 and tb.precision == 16
    with pytest.raises(ValueError, match="cdf_len"):
        _core.RansTables(GOOD_CDF, GOOD_LEN[:1], GOOD_OFF, 16)
